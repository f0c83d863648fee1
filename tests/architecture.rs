//! The layers stay layers: no two source files of a crate import each other, directly or through
//! others (docs/ARCHITECTURE.md). A module file's re-exports (`pub use` in `mod.rs`, `lib.rs`
//! or `x.rs` beside a folder `x/`) are its table of contents, not a dependency, and are not
//! counted; test modules are not either.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 4] = ["amm-core", "amm-dsl", "amm-data", "."];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `file` under `src` (`proxy/deepfool.rs` → `["proxy", "deepfool"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The file that holds the deepest module of `path` (the rest are items in it).
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    let mut best = None;
    for i in 0..=path.len() {
        let base = src.join(path[..i].join("/"));
        let found = if i == 0 {
            [src.join("lib.rs"), src.join("main.rs")].into_iter().find(|p| p.exists())
        } else {
            [base.with_extension("rs"), base.join("mod.rs")].into_iter().find(|p| p.exists())
        };
        match found {
            Some(f) => best = Some(f),
            None if i > 0 => break,
            None => {}
        }
    }
    best
}

/// The paths a `use` tree names, one level of braces expanded (`a::{b, c::{d}}` → `a::b`, `a::c`).
fn use_paths(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = tree.find("::{") else { return vec![tree.split(" as ").next().unwrap().trim().to_string()] };
    let base = &tree[..open];
    let inner = &tree[open + 3..tree.len() - 1];
    let (mut items, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    items.push(cur);
    items
        .iter()
        .map(|i| i.split("::{").next().unwrap().split(" as ").next().unwrap().trim().to_string())
        .filter(|i| !i.is_empty())
        .map(|i| format!("{base}::{i}"))
        .collect()
}

/// Each file's imports of other files of its crate.
fn graph(root: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for krate in CRATES {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let module = module_of(&src, &file);
            let stem = file.file_stem().unwrap().to_string_lossy();
            let is_module_file = matches!(&*stem, "mod" | "lib" | "main") || file.with_extension("").is_dir();
            let mut rest = code;
            while let Some(at) = rest.find("use ") {
                let before = &rest[..at];
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let prefix = before[line_start..].trim();
                let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
                let tree = &rest[at + 4..end];
                rest = &rest[end.min(rest.len())..];
                let public = prefix.starts_with("pub");
                if !(prefix.is_empty() || public) || (public && is_module_file) {
                    continue;
                }
                for p in use_paths(tree) {
                    let parts: Vec<String> = p.split("::").map(str::to_string).collect();
                    let target = match parts[0].as_str() {
                        "crate" => parts[1..].to_vec(),
                        "self" => [module.clone(), parts[1..].to_vec()].concat(),
                        "super" => {
                            let ups = parts.iter().take_while(|s| *s == "super").count();
                            let keep = module.len().saturating_sub(ups);
                            [module[..keep].to_vec(), parts[ups..].to_vec()].concat()
                        }
                        _ => continue,
                    };
                    if let Some(t) = file_of(&src, &target).filter(|t| *t != file) {
                        edges.entry(file.clone()).or_default().insert(t);
                    }
                }
            }
        }
    }
    edges
}

/// A cycle through `start`, if any (depth-first).
fn cycle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        v: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        state.insert(v.clone(), 1);
        stack.push(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            match state.get(w) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == w).unwrap();
                    return Some(stack[from..].iter().chain([w]).cloned().collect());
                }
                None => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in edges.keys() {
        if !state.contains_key(v) {
            if let Some(c) = visit(v, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_source_file_imports_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = graph(root);
    // the check sees the imports it must: the registry builds through the DSL's kinds
    let registry = root.join("amm-core/src/registry.rs");
    assert!(edges.get(&registry).is_some_and(|t| t.contains(&root.join("amm-core/src/proxy/mod.rs"))), "{edges:?}");
    if let Some(c) = cycle(&edges) {
        let names: Vec<String> = c.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        panic!("an import circle: {}", names.join(" -> "));
    }
}

#[test]
fn the_check_finds_a_circle() {
    let (a, b) = (PathBuf::from("a.rs"), PathBuf::from("b.rs"));
    let mut edges = BTreeMap::new();
    edges.insert(a.clone(), BTreeSet::from([b.clone()]));
    edges.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(cycle(&edges), Some(vec![a.clone(), b.clone(), a]));
    assert_eq!(use_paths("super::{abi::{x, y}, elf as e, load}"), ["super::abi", "super::elf", "super::load"]);
}
