#!/usr/bin/env bash
# The whole amm <-> PyTorch/ONNX round trip of docs/INTEROP.md, on real Fashion-MNIST:
# reference run -> AMM fine-tuning from it (--init) -> ONNX and PyTorch exports of both, checked in
# onnxruntime and PyTorch against amm's logits -> weights changed in PyTorch -> amm eval on them
# (same predictions as PyTorch) -> fine-tuning again from the PyTorch weights.
#
# Needs a Python with torch, safetensors, onnxruntime and numpy: $PYTHON (default
# /opt/ref-venv/bin/python, see tools/reference/README.md) and Fashion-MNIST
# (apt-get install dataset-fashion-mnist). Usage: tools/interop/roundtrip.sh [WORKDIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-/opt/ref-venv/bin/python}"
AMM="${AMM:-$repo/target/release/amm}"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
[ -x "$AMM" ] || (cd "$repo" && cargo build --release -q)
"$PYTHON" -c "import torch, safetensors, onnxruntime, numpy" || { echo "error: $PYTHON lacks torch, safetensors, onnxruntime or numpy" >&2; exit 1; }
check() { "$PYTHON" "$repo/tools/interop/check.py" "$@"; }
common=(--data fashion-mnist --model lenet --train-size 5000 --batch 100 --set data.test_size=1000 --set eval.long_iters=0 -q)

echo "== 1. reference, then AMM fine-tuning from it"
"$AMM" train "${common[@]}" --epochs 2 --out ref
"$AMM" train "${common[@]}" --epochs 1 --init ref --reg 'deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)' --out amm
for run in ref amm; do
  echo "== 2. $run: ONNX and PyTorch exports against amm's logits"
  "$AMM" export "$run" --format onnx --out "$run.onnx" --samples 256
  check onnx "$run.onnx" "$run.samples.safetensors"
  "$AMM" export "$run" --format pytorch --out "$run-pt" --samples 256
  check torch "$run-pt"
done
echo "== 3. weights changed in PyTorch, evaluated by amm"
check modify amm-pt changed.safetensors --csv torch.csv
"$AMM" eval changed.safetensors --model lenet --data fashion-mnist --samples 256 --long-iters 0 --per-sample amm.csv
check compare-csv amm.csv torch.csv
echo "== 4. fine-tuning again from the PyTorch weights"
"$AMM" train "${common[@]}" --epochs 1 --init changed.safetensors --out again
echo "round trip OK in $work"
