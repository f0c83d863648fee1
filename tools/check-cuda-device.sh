#!/usr/bin/env bash
# The GPU check of docs/PERFORMANCE.md ("CUDA"), for a machine with an NVIDIA GPU and its driver:
# builds amm with `--features cuda`, runs the gradient tests in that build, times the MLP's and
# ResNet-20's cross-entropy and AMM steps on `cuda:0` (and on the CPU, for the ratio), and prints
# one summary. Meant to finish within 10 minutes on a fresh 16-core GPU machine.
#   tools/check-cuda-device.sh [OUT_DIR]        (default: ./cuda-check; STEPS=N steps per bench)
# nvcc: the system's if on PATH, else PyPI's wheels in a venv (as tools/check-cuda.sh does).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/cuda-check}
steps=${STEPS:-20}
mkdir -p "$out"
cd "$root"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  log "FAIL: no NVIDIA GPU visible (nvidia-smi -L failed); this script needs one"
  exit 2
fi
log "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"

if ! command -v nvcc >/dev/null 2>&1; then
  venv=${NVCC_VENV:-/opt/nvcc-venv}
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.5.*" "nvidia-cuda-cccl==13.3.5.0.6" || { log "FAIL: could not install nvcc"; exit 2; }
  cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
  export PATH=$cuda/bin:$PATH CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_ROOT=$cuda
  # cudarc 0.19.10 knows CUDA up to 13.4 (it rejects nvcc 13.5's version string).
  export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
fi
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap}
log "nvcc: $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), compute capability $CUDA_COMPUTE_CAP"

status=0
step() { # name, command...: runs it, logs ok/FAIL with its time, keeps its output
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$out/$name.log" 2>&1; then log "ok   $name ($((SECONDS - t0)) s)"; else log "FAIL $name ($((SECONDS - t0)) s): see $out/$name.log"; status=1; fi
}

step build cargo build --release --features cuda
amm=$root/target/release/amm
# The gradient tests (finite differences of the whole function, the second-order terms, each
# ablation) and the kernels' unit tests, in the CUDA build.
step gradient-tests cargo test --release --features cuda --test gradcheck
step kernel-tests cargo test --release --features cuda -p amm-core --lib kernels

bench() { # name, device, steps, model args...
  local name=$1 dev=$2 n=$3; shift 3
  step "bench-$name-$dev" "$amm" bench --device "$dev" --steps "$n" --warmup 3 --json "$@"
  grep -o '"ce_step_ms":[0-9.]*\|"amm_step_ms":[0-9.]*\|"peak_rss_mib":[0-9.]*' "$out/bench-$name-$dev.log" | tr '\n' ' ' | sed "s/^/    $name on $dev: /" | tee -a "$out/summary.txt"
  echo | tee -a "$out/summary.txt"
}
bench mlp cuda:0 "$steps"
bench mlp cpu "$steps"
bench resnet20 cuda:0 "$steps" --model resnet20 --input 3x32x32
bench resnet20 cpu 3 --model resnet20 --input 3x32x32

log "summary in $out/summary.txt ($([ $status = 0 ] && echo all ok || echo FAILURES))"
exit $status
