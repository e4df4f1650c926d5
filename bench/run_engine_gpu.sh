#!/bin/sh
# run_engine_gpu.sh [BUILD_DIR] - decode throughput of the GPU rollout engine beside
# transformers' generate and the memory-bandwidth roofline, in one device run: a Release
# build without BLAS, then for Qwen2.5-0.5B and -1.5B shapes bench/bench_engine_gpu (CUDA
# graphs, then --eager) and tests/reference/bench_torch_generate.py, at batch 1, 64 and
# 256, prompt 512, G = 8, 512 new tokens; then the ratios.
# MODELS (default "0.5b 1.5b"), BATCHES (default 1,64,256), NEW (default 512) and
# EAGER=0 (skip the eager rlvr run) narrow it.
#   usage, from the repo root on the GPU machine with .deps carried:
#     sh bench/run_engine_gpu.sh [BUILD_DIR]
# Logs go to $OUT when set (the device tool's return folder), else BUILD_DIR/logs.
set -u
. bench/gpu_build.sh
nvidia-smi -L
gpu_build bench_engine_gpu bench/bench_engine_gpu
R="$LOGS/engine_bench.log"
: > "$R"
BATCHES=${BATCHES:-1,64,256}
NEW=${NEW:-512}
for model in ${MODELS:-0.5b 1.5b}; do
    "$B/bench/bench_engine_gpu" --model $model --batch "$BATCHES" --prompt 512 --group 8 --new "$NEW" --reps 1 \
        2>&1 | tee -a "$R"
    [ "${EAGER:-1}" = 0 ] || "$B/bench/bench_engine_gpu" --model $model --batch "$BATCHES" --prompt 512 --group 8 \
        --new "$NEW" --reps 1 --eager 2>&1 | grep RESULT | tee -a "$R"
    python3 tests/reference/bench_torch_generate.py $model "$BATCHES" 512 8 "$NEW" 1 2>&1 | grep -v Warning | tee -a "$R"
done
echo "decode: rlvr (CUDA graphs) against the roofline, rlvr eager, and transformers' generate:"
awk '/^RESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        key = f["model"] " B=" f["batch"]
        step[f["impl"], key] = f["step_ms"]; tps[f["impl"], key] = f["total_tps"]
        if (f["impl"] == "rlvr") roof[key] = f["roof_ms"]
        if (!(key in seen)) { seen[key] = 1; order[n++] = key }
     }
     END {
        for (i = 0; i < n; i++) {
            k = order[i]; r = step["rlvr", k]; t = step["torch", k]; e = step["rlvr-eager", k]
            printf "  %-10s %8.3f ms/step = %5.1f%% of roofline %7.3f; eager %8.3f (x%.2f); torch %8.3f ms/step: x%.1f decode, x%.1f end to end\n",
                k, r, (r > 0 ? 100 * roof[k] / r : 0), roof[k], e, (r > 0 ? e / r : 0), t, (r > 0 ? t / r : 0),
                (tps["torch", k] > 0 ? tps["rlvr", k] / tps["torch", k] : 0)
        }
     }' "$R"
