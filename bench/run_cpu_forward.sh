#!/bin/sh
# run_cpu_forward.sh [BUILD_DIR] - the CPU forward benchmark beside PyTorch's, in one run:
# builds nothing (give a Release build without sanitizers), writes the ~10M-parameter
# model once, then alternates rlvr and PyTorch at 1 and 2 threads (OpenBLAS and torch
# intra-op threads set to the same count). Results go in docs/benchmarks.md.
set -eu
build=${1:-build-bench}
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${TMPDIR:-/tmp}/rlvr-bench10m
"$build/bench/bench_cpu_forward" --write "$dir" --iters 1 --threads 1 >/dev/null
for t in 1 2; do
    for rep in 1 2; do
        OPENBLAS_NUM_THREADS=$t "$build/bench/bench_cpu_forward" --model "$dir" --iters 5 --threads "$t" | head -1
        python3 "$src/tests/reference/bench_torch_cpu_forward.py" "$dir" 4 256 5 "$t" 2>/dev/null | head -1
    done
done
