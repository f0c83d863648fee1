#!/usr/bin/env bash
# How the CNN steps' cost grows with batch and with width/depth, for docs/PERFORMANCE.md: amm
# only (release build), 2 threads, random data; the AMM step is AVG + EXP over a 5-iteration L2
# DeepFool, λ 32 (the peer's regularizer), in the chunks amm sizes itself.
#   tools/perf-growth.sh OUT_DIR    (BATCHES="25 50 100 200"; STEPS=N CE steps, default 5)
# Prints two markdown tables: batch (convnet, resnet20) and width/depth (the LiuNets, the ResNets).
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
amm=$root/target/release/amm
[ -x "$amm" ] || { echo "$0: no release build at $amm: run cargo build --release first" >&2; exit 1; }
reg="deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(32)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u)" | tee "$out/machine.txt"
run() { # name model input batch: one CE and one AMM measurement as JSON lines
  "$amm" bench --model "$2" --input "$3" --batch "$4" --only ce --steps "${STEPS:-5}" --warmup 1 --json > "$out/$1-ce.json"
  "$amm" bench --model "$2" --input "$3" --batch "$4" --reg "$reg" --only amm --steps 2 --warmup 1 --json > "$out/$1-amm.json"
  echo "$1 done"
}
for m in convnet resnet20; do
  for b in ${BATCHES:-25 50 100 200}; do run "batch-$m-$b" "$m" 3x32x32 "$b"; done
done
for m in liunet64 liunet96 resnet20 resnet56; do run "width-$m" "$m" 3x32x32 100; done
python3 - "$out" ${BATCHES:-25 50 100 200} <<'PY'
import json, sys
out, batches = sys.argv[1], sys.argv[2:]
def load(name):
    ce, amm = (json.load(open(f"{out}/{name}-{k}.json")) for k in ("ce", "amm"))
    return ce["ce_step_ms"], ce["ce_peak_rss_mib"], amm["amm_step_ms"], amm["peak_rss_mib"], amm["reg_chunk"]
print("| model | batch | CE ms | CE ms / sample | AMM ms | AMM ms / sample | AMM / CE | AMM chunk | AMM peak RSS MiB |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for m in ("convnet", "resnet20"):
    for b in batches:
        ce, _, amm, rss, chunk = load(f"batch-{m}-{b}")
        print(f"| {m} | {b} | {ce:.1f} | {ce / int(b):.2f} | {amm:,.0f} | {amm / int(b):.1f} | {amm / ce:.1f} | {chunk} | {rss:.0f} |")
print()
print("| model | CE ms | CE peak RSS MiB | AMM ms | AMM / CE | AMM chunk | AMM peak RSS MiB |")
print("|---|--:|--:|--:|--:|--:|--:|")
for m in ("liunet64", "liunet96", "resnet20", "resnet56"):
    ce, cer, amm, rss, chunk = load(f"width-{m}")
    print(f"| {m} | {ce:.1f} | {cer:.0f} | {amm:,.0f} | {amm / ce:.1f} | {chunk} | {rss:.0f} |")
PY
