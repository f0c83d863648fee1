//! Nothing: the test plugin of this crate is its example target `amm_test_mismatch`
//! (src/fixture.rs), built only on request (`cargo build -p amm-test-mismatch --example
//! amm_test_mismatch`), never by `cargo build --workspace`. A package needs a library or a binary.
