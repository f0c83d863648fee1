#!/usr/bin/env bash
# amm's built-in CNNs against the PyTorch CNN peer (../shared/bench/peer-cnn, plus nin from
# tools/peer/cnn_peer_extra.py), side by side in one sitting, for docs/PERFORMANCE.md. Same
# architectures, batch 100, 2 threads, random data; the AMM step is the peer's (AVG + EXP over a
# 5-iteration L2 DeepFool, λ 32, c 2, d 1). Run it on an idle machine; needs a release build and
# the peer's venv (PEER_PY, default /opt/ref-venv/bin/python, with torch).
#   tools/perf-cnn.sh OUT_DIR    (MODELS="lenet liunet convnet nin resnet20"; REPEATS=N interleaved
#                                 CE repeats, default 3; STEPS=N CE steps, default 10;
#                                 AMM=0 skips the AMM steps, whose peer takes minutes a step)
# The table also gives amm's CE GFLOP/s (FLOPs from tools/peer/flops.py), the machine's GEMM rate
# and one epoch's cost (MNIST for lenet and liunet, CIFAR-10 for the others).
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
amm=$root/target/release/amm
peer_py=${PEER_PY:-/opt/ref-venv/bin/python}
peer=$root/tools/peer/cnn_peer_extra.py
models=${MODELS:-lenet liunet convnet nin resnet20}
reg="deepfool(l2, 5) |> avg |> exp(c=2, d=1) |> weight(32)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u)" | tee "$out/machine.txt"
"$amm" --version | tee -a "$out/machine.txt"
"$peer_py" -c 'import torch; print("torch", torch.__version__)' | tee -a "$out/machine.txt"
# The machine's GEMM rate (torch/MKL, 2048^3 f32, 2 threads, median of 9) and each model's FLOPs.
"$peer_py" - <<'PY' | tee "$out/gemm.txt"
import time, statistics, torch
torch.set_num_threads(2)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
a @ b
t = []
for _ in range(9):
    t0 = time.perf_counter(); a @ b; t.append(time.perf_counter() - t0)
print(f"gemm {2 * 2048**3 / statistics.median(t) / 1e9:.0f} GFLOP/s")
PY
(cd "$root/tools/peer" && PYTHONPATH="$root/../shared/bench/peer-cnn:${PYTHONPATH:-}" "$peer_py" flops.py $models) | tee "$out/flops.txt"
input() { case $1 in lenet|liunet) echo 1x28x28;; *) echo 3x32x32;; esac; }
for m in $models; do
  for i in $(seq "${REPEATS:-3}"); do
    "$peer_py" "$peer" "$m" --only ce --steps "${STEPS:-10}" | tee -a "$out/ce-$m-peer.jsonl"
    "$amm" bench --model "$m" --input "$(input "$m")" --only ce --steps "${STEPS:-10}" --warmup 2 --json | tee -a "$out/ce-$m-amm.jsonl"
    echo >> "$out/ce-$m-amm.jsonl"
  done
  if [ "${AMM:-1}" != 0 ]; then
    "$peer_py" "$peer" "$m" --only amm --steps 1 | tee "$out/amm-$m-peer.jsonl"
    /usr/bin/time -f "%M" -o "$out/amm-$m-amm.rss_kb" "$amm" bench --model "$m" --input "$(input "$m")" --reg "$reg" --only amm --steps 3 --warmup 1 --json | tee "$out/amm-$m-amm.jsonl"
  fi
done
# One table: medians of the repeats.
python3 - "$out" $models <<'PY'
import json, statistics, sys, os
out, models = sys.argv[1], sys.argv[2:]
def vals(path, key):
    if not os.path.exists(path): return []
    return [json.loads(l)[key] for l in open(path) if l.strip()]
flops = {l.split()[0]: float(l.split()[1]) for l in open(f"{out}/flops.txt") if l.strip()}
print(open(f"{out}/gemm.txt").read().strip(), "on this machine (torch/MKL, 2048^3, 2 threads)")
print("| model | amm CE ms | peer CE ms | amm/peer CE | amm CE GFLOP/s | amm AMM ms | peer AMM ms | amm/peer AMM | amm AMM peak RSS MiB | epoch CE / AMM (min) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in models:
    a, p = vals(f"{out}/ce-{m}-amm.jsonl", "ce_step_ms"), vals(f"{out}/ce-{m}-peer.jsonl", "ce_ms")
    aa, pa = vals(f"{out}/amm-{m}-amm.jsonl", "amm_step_ms"), vals(f"{out}/amm-{m}-peer.jsonl", "amm_ms")
    rss = open(f"{out}/amm-{m}-amm.rss_kb").read().strip() if os.path.exists(f"{out}/amm-{m}-amm.rss_kb") else ""
    med = lambda v: statistics.median(v) if v else float("nan")
    # One epoch at batch 100: MNIST's 60,000 training images for the 1x28x28 models, CIFAR-10's 50,000 for the others.
    steps = 600 if m in ("lenet", "liunet") else 500
    gf = flops.get(m, float("nan")) / (med(a) / 1e3)
    print(f"| {m} | {med(a):.1f} | {med(p):.1f} | {med(a)/med(p):.2f} | {gf:.0f} | {med(aa):.0f} | {med(pa):.0f} | {med(aa)/med(pa):.3f} | {int(rss)//1024 if rss else ''} | {steps*med(a)/6e4:.1f} / {steps*med(aa)/6e4:.0f} |")
PY
