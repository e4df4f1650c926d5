#!/bin/sh
# run_train_gpu.sh [BUILD_DIR] - GPU training throughput of rlvr beside PyTorch, in one
# device run: a Release build without BLAS (as tests/gpu/run_on_device.sh makes), then for
# Qwen2.5-0.5B and -1.5B shapes bench/bench_train_gpu and tests/reference/bench_torch_train.py
# alternately, each over sequence lengths 1024 and 4096 at 8192 tokens per step (2 warm-up
# and 5 timed steps), then the ratios rlvr / PyTorch of tokens/s and of peak memory.
# MICRO=M (default 1) makes each optimizer step accumulate M such micro-batches, on both
# sides; MODELS (default "0.5b 1.5b") picks the shapes.
#   usage, from the repo root on the GPU machine with .deps carried:
#     [MICRO=4] sh bench/run_train_gpu.sh [BUILD_DIR]
# Logs go to $OUT when set (the device tool's return folder), else BUILD_DIR/logs.
set -u
. bench/gpu_build.sh
nvidia-smi -L
gpu_build bench_train_gpu bench/bench_train_gpu
R="$LOGS/train_bench.log"
: > "$R"
MICRO=${MICRO:-1}
for model in ${MODELS:-0.5b 1.5b}; do
    "$B/bench/bench_train_gpu" --model $model --seqs 1024,4096 --tokens 8192 --micro "$MICRO" --steps 5 --warmup 2 \
        2>&1 | tee -a "$R"
    python3 tests/reference/bench_torch_train.py $model 1024,4096 8192 5 2 "$MICRO" 2>&1 | grep -v Warning | tee -a "$R"
done
echo "ratios rlvr / torch (tokens/s higher is better; memory lower is better):"
awk '/^RESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        key = f["model"] " L=" f["seq"] " B=" f["batch"] " M=" f["micro"]
        tps[f["impl"], key] = f["tokens_per_s"]; mem[f["impl"], key] = f["mem_gib"]; mfu[f["impl"], key] = f["mfu"]
        if (!(key in seen)) { seen[key] = 1; order[n++] = key }
     }
     END {
        for (i = 0; i < n; i++) {
            k = order[i]
            a = tps["rlvr", k]; b = tps["torch", k]
            printf "  %-18s tokens/s %9.0f vs %9.0f (x%.2f)  MFU %5.1f%% vs %5.1f%%  memory %6.2f vs %6.2f GiB (x%.2f)\n",
                k, a, b, (b > 0 ? a / b : 0), 100 * mfu["rlvr", k], 100 * mfu["torch", k], mem["rlvr", k],
                mem["torch", k], (mem["torch", k] > 0 ? mem["rlvr", k] / mem["torch", k] : 0)
        }
     }' "$R"
