//! Keeps docs/RESULTS.md honest: every table in it sits between a line
//! `<!-- amm report ARGS -->` and `<!-- end -->`, and must be exactly what `amm report ARGS` prints
//! from the results committed under docs/results. Regenerate after re-running an experiment:
//! `AMM_UPDATE_RESULTS=1 cargo test --test results_doc`.
mod common;
use common::*;

const OPEN: &str = "<!-- amm report ";
const CLOSE: &str = "<!-- end -->";

/// One generated table: the report's arguments and the byte range of the text under them.
struct Block {
    line: usize,
    args: Vec<String>,
    body: std::ops::Range<usize>,
}

/// Splits at whitespace outside double quotes, as a shell would (`--only none,"min |> exp"`).
fn split_args(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for ch in s.chars() {
        match ch {
            '"' => (quoted, any) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut open: Option<(usize, Vec<String>, usize)> = None;
    for (i, line) in doc.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if let Some(rest) = t.strip_prefix(OPEN) {
            assert!(open.is_none(), "docs/RESULTS.md:{}: a table opens before the previous one is closed with {CLOSE}", i + 1);
            let args = rest.strip_suffix("-->").unwrap_or_else(|| panic!("docs/RESULTS.md:{}: the line should end with -->", i + 1));
            let mut args = split_args(args);
            args.insert(0, "report".into());
            open = Some((i + 1, args, offset + line.len()));
        } else if t == CLOSE {
            let (line, args, start) =
                open.take().unwrap_or_else(|| panic!("docs/RESULTS.md:{}: {CLOSE} without an opening `{OPEN}...`", i + 1));
            out.push(Block { line, args, body: start..offset });
        }
        offset += line.len();
    }
    assert!(open.is_none(), "docs/RESULTS.md: a table is never closed with {CLOSE}");
    out
}

#[test]
fn results_md_tables_are_what_amm_report_prints_from_the_committed_results() {
    let path = repo().join("docs/RESULTS.md");
    let mut doc = std::fs::read_to_string(&path).expect("docs/RESULTS.md");
    let found = blocks(&doc);
    assert!(found.len() >= 5, "docs/RESULTS.md should hold the tables of Fig. 1, Table I, Table II, Fig. 4 and Fig. 5");
    let update = std::env::var_os("AMM_UPDATE_RESULTS").is_some();
    let mut stale = Vec::new();
    // Back to front, so that replacing a body leaves the earlier ranges valid.
    for b in found.iter().rev() {
        let args: Vec<&str> = b.args.iter().map(String::as_str).collect();
        let r = amm(&repo(), &args);
        r.ok();
        assert!(!r.stdout.contains("Not finished"), "docs/RESULTS.md:{}: amm {args:?} reports unfinished runs\n{}", b.line, r.stdout);
        if doc[b.body.clone()] != r.stdout {
            stale.push(format!("docs/RESULTS.md:{}: amm {}", b.line, args.join(" ")));
            if update {
                doc.replace_range(b.body.clone(), &r.stdout);
            }
        }
    }
    if update {
        std::fs::write(&path, &doc).unwrap();
    } else {
        assert!(
            stale.is_empty(),
            "these tables differ from what amm report prints now (regenerate: AMM_UPDATE_RESULTS=1 cargo test --test results_doc):\n{}",
            stale.join("\n")
        );
    }
}

#[test]
fn arguments_split_like_a_shell() {
    assert_eq!(split_args(r#" a --only none,"min |> exp",linear  b"#), ["a", "--only", "none,min |> exp,linear", "b"]);
}
