fn main() { println!("{:?} {}", amm_core::hello(), amm_core::serde_json::json!({"a":1})); }
