#!/usr/bin/env bash
# Measures amm against the PyTorch peer (../shared/bench/peer) in one sitting, for
# docs/PERFORMANCE.md. Run it on an idle machine (the 2-thread timings of both sides collapse
# under any other load). Needs: a release build (cargo build --release), Fashion-MNIST
# (apt-get install dataset-fashion-mnist) and the peer's venv (python3 -m venv V; V/bin/pip
# install torch numpy), given as PEER_PY (default /opt/peer-venv/bin/python).
#   tools/perf-side-by-side.sh OUT_DIR          (CNNS=0: skip the CNN scaling rows; STEPS=N: steps per bench;
#                                               QUICK=1: stop after the interleaved CE and AMM comparisons;
#                                               REPEATS=N: interleaved repeats of the CE and AMM comparisons, default 5)
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
amm=$root/target/release/amm
peer_py=${PEER_PY:-/opt/peer-venv/bin/python}
peer=$root/../shared/bench/peer/amm_torch.py
steps=${STEPS:-50}
repeats=${REPEATS:-5}
fm=fashion-mnist
# The peer's semantics as far as amm can match them (docs/PERFORMANCE.md, "Semantics").
peer_like="deepfool(l2, 5, overshoot=0, failed=keep) |> min(class, 0.2, misclassified=all) |> exp(c=3.1, d=0.62, clip=1e9) |> weight(15)"
# The same with the detached iterates (chain=none, amm's gradient before the exact one), to show
# what the full chain costs; and amm's defaults with chain=none.
peer_like_none=${peer_like/overshoot=0,/overshoot=0, chain=none,}
default_none="deepfool(l2, 5, chain=none) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u)" | tee "$out/machine.txt"
"$amm" --version | tee -a "$out/machine.txt"
"$peer_py" -c 'import torch; print("torch", torch.__version__)' | tee -a "$out/machine.txt"

# 1. The peer's own setting, its default semantics (single pass) and its two-pass MIN with the
#    authors' top-20% pool (ranked among correct samples), which is what amm implements.
for args in "--method ce" "--method amm" "--method amm --two-pass --topk-pool correct"; do
  name=$(echo "$args" | tr -d ' -' )
  (cd "$(dirname "$peer")" && "$peer_py" "$peer" bench $args --steps "$steps" --warmup 5) | tee "$out/peer-$name.txt"
done

#    The CE step is short and noisy (±10% run to run): 200-step runs of each side, interleaved.
for i in $(seq "$repeats"); do
  (cd "$(dirname "$peer")" && "$peer_py" "$peer" bench --method ce --steps 200 --warmup 10) | tee -a "$out/ce-repeats-peer.txt"
  "$amm" bench --only ce --data $fm --steps 200 --json | tee -a "$out/ce-repeats-amm.jsonl"; echo >> "$out/ce-repeats-amm.jsonl"
done

#    The AMM step too (a shared machine's speed can drift by 20% over minutes): the peer's
#    default against amm with the peer's semantics (below) and with its own, interleaved.
for i in $(seq "$repeats"); do
  (cd "$(dirname "$peer")" && "$peer_py" "$peer" bench --method amm --steps "$steps" --warmup 5) | tee -a "$out/amm-repeats-peer.txt"
  "$amm" bench --only amm --data $fm --reg "$peer_like" --steps "$steps" --json | tee -a "$out/amm-repeats-amm.jsonl"; echo >> "$out/amm-repeats-amm.jsonl"
  "$amm" bench --only amm --data $fm --steps "$steps" --json | tee -a "$out/amm-repeats-amm-default.jsonl"; echo >> "$out/amm-repeats-amm-default.jsonl"
  "$amm" bench --only amm --data $fm --reg "$peer_like_none" --steps "$steps" --json | tee -a "$out/amm-repeats-amm-chain-none.jsonl"; echo >> "$out/amm-repeats-amm-chain-none.jsonl"
  "$amm" bench --only amm --data $fm --reg "$default_none" --steps "$steps" --json | tee -a "$out/amm-repeats-amm-default-chain-none.jsonl"; echo >> "$out/amm-repeats-amm-default-chain-none.jsonl"
done
[ "${QUICK:-0}" != 0 ] && { echo "done (QUICK: the interleaved comparisons only): $out"; exit 0; }

#    amm with the gemm crate's kernels instead of its AVX-512 GEMM (where the processor has one).
AMM_GEMM=gemm "$amm" bench --data $fm --steps "$steps" --json | tee "$out/amm-default-gemm-crate.json"
AMM_GEMM=gemm "$amm" bench --data $fm --reg "$peer_like" --only amm --steps "$steps" --json | tee "$out/amm-peer-like-gemm-crate.json"

# 2. amm on the same data, with the peer's semantics as far as they can be matched:
#    no overshoot, failed samples kept, every misclassified sample regularized, no clip,
#    lambda=15, c=3.1, d=0.62 (the peer README's values), lr 0.01.
"$amm" bench --data $fm --reg "$peer_like" --steps "$steps" --json | tee "$out/amm-peer-like.json"
#    ... and amm's defaults (the authors' semantics: overshoot 0.02, MIN on both sides, clip 50).
"$amm" bench --data $fm --steps "$steps" --json | tee "$out/amm-default.json"
#    ... and on random data (the default of `amm bench`, runs anywhere).
"$amm" bench --steps "$steps" --json | tee "$out/amm-random.json"

# 3. One Fashion-MNIST epoch of AMM (600 steps of 100), evaluation excluded.
"$amm" train --data $fm --model "mlp(widths=[800, 800])" --reg "deepfool(l2, 5) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)" \
  --epochs 1 --lr 0.01 --set eval.long_iters=0 --set data.test_size=1000 --out "$out/epoch" --json --quiet | tee "$out/amm-epoch.json"

# 4. Scaling on random data: batch, u, classes (top-10 candidates), models.
for b in 50 100 200; do "$amm" bench --batch $b --steps 20 --json > "$out/scale-batch-$b.json"; done
for u in 1 3 5 10; do "$amm" bench --reg "deepfool(l2, $u) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)" --steps 20 --json > "$out/scale-u-$u.json"; done
for c in 10 100; do "$amm" bench --classes $c --reg "deepfool(l2, 5, candidates=10) |> min(class, 0.2) |> exp(c=2, d=1) |> weight(32)" --steps 20 --json > "$out/scale-classes-$c.json"; done
#    The CNNs take minutes (liunet: 13 s an AMM step); CNNS=0 skips them.
if [ "${CNNS:-1}" != 0 ]; then
  for m in lenet liunet; do "$amm" bench --model $m --input 1x28x28 --steps 10 --warmup 2 --json > "$out/scale-model-$m.json"; done
  "$amm" bench --model convnet --input 3x32x32 --steps 10 --warmup 2 --json > "$out/scale-model-convnet.json"
fi
echo "done: $out"
