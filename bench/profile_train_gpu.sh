#!/bin/sh
# profile_train_gpu.sh [BUILD_DIR] [MODEL] [SEQ] - where one training step's GPU time goes:
# bench/bench_train_gpu for one step of MODEL (0.5b or 1.5b, default 1.5b) at sequence
# length SEQ (default 1024, 8192 tokens) under Nsight Compute, each kernel timed without
# cache flushing or clock locking (so back-to-back kernels see the caches as in a real
# run), summarized by bench/ncu_summary.py. Builds BUILD_DIR (default /tmp/b) as
# run_train_gpu.sh does when bench_train_gpu is missing. Logs go to $OUT when set.
set -u
B=${1:-/tmp/b}
MODEL=${2:-1.5b}
SEQ=${3:-1024}
LOGS=${OUT:-$B/logs}
mkdir -p "$LOGS"
if [ ! -x "$B/bench/bench_train_gpu" ]; then
    cmake -S . -B "$B" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DRLVR_BLAS=OFF -DCMAKE_BUILD_TYPE=Release \
        > "$LOGS/configure.log" 2>&1 || { tail -20 "$LOGS/configure.log"; exit 1; }
    cmake --build "$B" --target bench_train_gpu > "$LOGS/build.log" 2>&1 || { tail -40 "$LOGS/build.log"; exit 1; }
fi
CSV="$LOGS/ncu_${MODEL}_${SEQ}.csv"
ncu --csv --cache-control none --clock-control none --metrics gpu__time_duration.sum \
    "$B/bench/bench_train_gpu" --model "$MODEL" --seqs "$SEQ" --steps 1 --warmup 0 > "$CSV" 2> "$LOGS/ncu.err" ||
    { tail -20 "$LOGS/ncu.err"; exit 1; }
echo "== $MODEL, L=$SEQ, one step"
python3 bench/ncu_summary.py "$CSV"
