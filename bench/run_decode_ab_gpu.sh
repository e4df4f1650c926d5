#!/bin/sh
# run_decode_ab_gpu.sh BASE_TGZ [BUILD_DIR] - the decode attention and the decode step of
# this tree beside another revision's, in one device run, so that both run on the same GPU
# in the same call: BASE_TGZ is `git archive REV | gzip` of the revision to compare with
# (carried in an ignored folder beside .deps). Both are built Release without BLAS; then
#   bench_paged_attention --batch B --ctx 768 --group 8 --prompt 512 --split S
#     for B in 1 64 256 and S in 64 128 256 (this tree; the base at S = 64),
#   bench_engine_gpu --model M --batch 1,64,256 --prompt 512 --group 8 --new 512
#     for M in $MODELS (default "0.5b 1.5b"), base first.
# Rows from the base are prefixed "BASE". Logs go to $OUT when set, else BUILD_DIR/logs.
#   usage, from the repo root on the GPU machine with .deps carried:
#     sh bench/run_decode_ab_gpu.sh .base/base.tgz [BUILD_DIR]
set -u
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: run_decode_ab_gpu.sh BASE_TGZ [BUILD_DIR]" >&2; exit 2; }
BASE_TGZ=$1
shift
. bench/gpu_build.sh
B0="$B-base"
SRC0=$(mktemp -d)
tar xzf "$BASE_TGZ" -C "$SRC0" || exit 1
nvidia-smi -L
cmake -S "$SRC0" -B "$B0" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DRLVR_BLAS=OFF -DCMAKE_BUILD_TYPE=Release \
    > "$LOGS/configure_base.log" 2>&1 || { tail -20 "$LOGS/configure_base.log"; exit 1; }
cmake --build "$B0" --target bench_paged_attention bench_engine_gpu > "$LOGS/build_base.log" 2>&1 &
base_build=$!
gpu_build bench_paged_attention bench/bench_paged_attention
cmake --build "$B" --target bench_engine_gpu > "$LOGS/build_engine.log" 2>&1 ||
    { tail -40 "$LOGS/build_engine.log"; exit 1; }
wait $base_build || { tail -40 "$LOGS/build_base.log"; exit 1; }
R="$LOGS/decode_ab.log"
: > "$R"
for b in 1 64 256; do
    for S in 64 128 256; do
        echo "== batch $b, split $S" | tee -a "$R"
        "$B/bench/bench_paged_attention" --batch $b --ctx 768 --group 8 --prompt 512 --split $S 2>&1 | tee -a "$R"
        [ $S = 64 ] && "$B0/bench/bench_paged_attention" --batch $b --ctx 768 --group 8 --prompt 512 --split $S 2>&1 |
            sed 's/^/BASE /' | tee -a "$R"
    done
done
for model in ${MODELS:-0.5b 1.5b}; do
    "$B0/bench/bench_engine_gpu" --model $model --batch 1,64,256 --prompt 512 --group 8 --new 512 --reps 1 2>&1 |
        grep RESULT | sed 's/^/BASE /' | tee -a "$R"
    "$B/bench/bench_engine_gpu" --model $model --batch 1,64,256 --prompt 512 --group 8 --new 512 --reps 1 2>&1 |
        grep RESULT | tee -a "$R"
done
rm -rf "$SRC0"
