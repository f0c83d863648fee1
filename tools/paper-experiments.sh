#!/usr/bin/env bash
# Runs the paper's experiments (docs/RESULTS.md) one grid after another, two cells at a time.
# Resumable: run it again after an interruption and only the missing cells run.
#   tools/paper-experiments.sh [GRID...]     (default: fig1 tune table1 table2 fig5 fig4)
# AMM=/path/to/amm runs another build (e.g. a copy, so that rebuilding the workspace meanwhile
# cannot swap the binary or libamm_core.so under a running grid).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${AMM:-}" ]; then
    cargo build --release --quiet
    AMM=target/release/amm
fi
grids=("$@")
[ ${#grids[@]} -gt 0 ] || grids=(fig1 tune table1 table2 fig5 fig4)
for g in "${grids[@]}"; do
    echo "== $g  $(date -u +%FT%TZ)"
    "$AMM" grid "specs/paper/$g.amm" --jobs 2
done
echo "== done  $(date -u +%FT%TZ)"
