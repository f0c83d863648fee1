#!/usr/bin/env python3
"""Lists the packages in amm-core's dependency closure whose features differ between the cargo
commands people run (build the binary, build plugins, test the workspace). Each difference makes
cargo build a different libamm_core.so under the same file name; pin the union in
amm-core/Cargo.toml. Exit 1 if any differs."""
import re, subprocess, sys

def tree(args):
    out = subprocess.run(["cargo", "tree", "--prefix", "none", "-e", "normal,build", "-f", "{p}|{f}"] + args,
                         capture_output=True, text=True, check=True).stdout
    d = {}
    for line in out.splitlines():
        if "|" not in line:
            continue
        p, f = line.rsplit("|", 1)
        p = re.sub(r"\s*\(.*\)\s*$", "", p.replace(" (*)", "")).strip()
        d.setdefault(p, set()).update(x.replace(" (*)", "").strip() for x in f.split(",") if x.replace(" (*)", "").strip())
    return d

core = tree(["-p", "amm-core"])
plugins = [p for p in ["tanh-mlp", "swish-net", "linesearch"]]
ctxs = {"cargo build": tree(["-p", "amm"]),
        "cargo test --workspace": tree(["--workspace", "-e", "dev"]),
        "plugins": tree(["-p", "amm"] + sum((["-p", p] for p in plugins), []))}
bad = 0
for p in sorted(core):
    if p.startswith("amm-"):
        continue
    vals = {k: frozenset(v.get(p, set())) for k, v in ctxs.items()}
    if len(set(vals.values())) > 1:
        bad += 1
        print(p, {k: sorted(v) for k, v in vals.items()})
print("features agree" if not bad else f"{bad} packages differ")
sys.exit(1 if bad else 0)
