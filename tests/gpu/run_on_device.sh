#!/bin/sh
# run_on_device.sh - what the GPU machine checks for kernels/: a Release build without
# BLAS, every GPU test, and the attention comparison with PyTorch's
# scaled_dot_product_attention, the whole GPU model against transformers
# (tests/reference/check_model_gpu_torch.py); with --sanitize, compute-sanitizer too (memcheck on every
# GPU test, racecheck on those whose kernels are ours alone: cuBLASLt's are left out of
# racecheck, which is slow on them); with --bench, bench/bench_kernels beside its PyTorch
# peer (tests/reference/bench_torch_kernels.py), alternating, at 8 x 1024 and 2 x 4096,
# with Qwen2.5-0.5B's attention heads (14/2 x 64) and Qwen2.5-1.5B's (12/2 x 128), and
# bench/bench_paged_attention (a rollout decode step) on both head shapes. Under
# the sanitizer RLVR_GPU_TEST_SHORT=1 leaves out test_attention's longest shapes.
#   usage, from the repo root with .deps staged and carried (shared/device/README.md):
#     sh tests/gpu/run_on_device.sh [--sanitize] [--bench] [BUILD_DIR]
# Logs go to $OUT (the device tool's return folder) when set, else to BUILD_DIR/logs.
# Exit status: 0 when everything passed, 1 otherwise.
set -u
sanitize=0
bench=0
while [ $# -gt 0 ]; do
    case $1 in
    --sanitize) sanitize=1 ;;
    --bench) bench=1 ;;
    *) break ;;
    esac
    shift
done
B=${1:-/tmp/b}
LOGS=${OUT:-$B/logs}
mkdir -p "$LOGS"
nvidia-smi -L
cmake -S . -B "$B" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DRLVR_BLAS=OFF -DCMAKE_BUILD_TYPE=Release \
    > "$LOGS/configure.log" 2>&1 || { tail -20 "$LOGS/configure.log"; exit 1; }
tests=$(cd tests/gpu && ls test_*.c | sed 's/^/gpu_/; s/\.c$//')
cmake --build "$B" --target $tests attention_tool model_gpu_tool bench_kernels bench_paged_attention > "$LOGS/build.log" 2>&1 || { tail -40 "$LOGS/build.log"; exit 1; }
status=0
ctest --test-dir "$B" --output-on-failure -R '^gpu_' > "$LOGS/ctest.log" 2>&1 || status=1
grep -v '^ *$' "$LOGS/ctest.log" | grep -v '^device:' | tail -150
python3 tests/reference/check_attention_torch.py "$B/tests/attention_tool" > "$LOGS/attention_torch.log" 2>&1
tail -20 "$LOGS/attention_torch.log"
grep -q '^passed' "$LOGS/attention_torch.log" || status=1
python3 tests/reference/check_model_gpu_torch.py "$B/tests/model_gpu_tool" > "$LOGS/model_torch.log" 2>&1
grep -v Warning "$LOGS/model_torch.log" | tail -40
grep -q '^passed' "$LOGS/model_torch.log" || status=1
if [ $sanitize -eq 1 ]; then
    for t in $tests; do
        tools=memcheck
        case $t in gpu_test_gemm | gpu_test_lmhead | gpu_test_model_gpu) ;; *) tools="memcheck racecheck" ;; esac
        for tool in $tools; do
            RLVR_GPU_TEST_SHORT=1 timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$B/tests/$t" > "$LOGS/$tool-$t.log" 2>&1
            rc=$?
            echo "compute-sanitizer $tool $t: exit $rc; $(grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY' "$LOGS/$tool-$t.log" | tail -1)"
            [ $rc -eq 0 ] || status=1
        done
    done
fi
if [ $bench -eq 1 ]; then
    for shape in "8 1024" "2 4096"; do
        set -- $shape
        for rep in 1 2; do
            "$B/bench/bench_kernels" --batch "$1" --seq "$2" --iters 20 | tee -a "$LOGS/bench.log"
            python3 tests/reference/bench_torch_kernels.py "$1" "$2" 20 | tee -a "$LOGS/bench.log"
            "$B/bench/bench_kernels" --batch "$1" --seq "$2" --iters 20 --heads 12 --kv-heads 2 --head-dim 128 |
                grep -i 'shape\|^attention' | tee -a "$LOGS/bench.log"
            python3 tests/reference/bench_torch_kernels.py "$1" "$2" 20 12 2 128 | grep -i 'shape\|^attention' |
                tee -a "$LOGS/bench.log"
        done
    done
fi
if [ $bench -eq 1 ]; then # the rollout engine's decode step: 0.5B heads, then 1.5B heads, short and long contexts
    for ctx in 1024 4096; do
        "$B/bench/bench_paged_attention" --batch 64 --ctx $ctx --prompt 512 --group 8 | tee -a "$LOGS/bench.log"
        "$B/bench/bench_paged_attention" --batch 64 --ctx $ctx --prompt 512 --group 8 --heads 12 --head-dim 128 |
            tee -a "$LOGS/bench.log"
    done
fi
echo "run_on_device: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
