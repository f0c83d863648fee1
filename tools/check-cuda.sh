#!/usr/bin/env bash
# Type-checks the `cuda` feature without a GPU or a system CUDA toolkit: nvcc and the CUDA
# headers come from PyPI's wheels (docs/PERFORMANCE.md, "CUDA"). candle-kernels' build script
# compiles its PTX and GGUF kernels with nvcc (about 5 minutes on 2 cores); nothing is linked or
# run, so this checks amm's code against candle's CUDA backend, not the GPU path itself.
#   tools/check-cuda.sh [VENV]     (default /opt/nvcc-venv; target dir: /tmp/cudatarget)
set -euo pipefail
venv=${1:-/opt/nvcc-venv}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$venv/bin/pip" ]; then python3 -m venv "$venv"; fi
# nvcc 13.5 with its runtime headers; libcu++'s <nv/target> (CCCL) is a separate wheel.
"$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.5.*" "nvidia-cuda-cccl==13.3.5.0.6"
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
export PATH=$cuda/bin:$PATH CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_ROOT=$cuda
# cudarc 0.19.10 knows CUDA up to 13.4 (it rejects nvcc 13.5's version string); an H100/H200 is 9.0.
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040} CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/cudatarget}
cd "$root"
# clippy type-checks everything it lints: the library, the CLI, tests, benches and plugins.
cargo clippy --release --features cuda --workspace --all-targets -- -D warnings
echo "cuda feature: type-checks and is clippy-clean (nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
