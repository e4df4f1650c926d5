#!/bin/sh
# run_on_device.sh - everything the GPU machine checks for kernels/: a Release build
# without BLAS, every GPU test, compute-sanitizer memcheck and racecheck on each test,
# and the attention comparison with PyTorch's scaled_dot_product_attention.
#   usage, from the repo root with .deps staged and carried (shared/device/README.md):
#     sh tests/gpu/run_on_device.sh [BUILD_DIR]
# Logs go to $OUT (the device tool's return folder) when set, else to BUILD_DIR/logs.
# Exit status: 0 when everything passed, 1 otherwise.
set -u
B=${1:-/tmp/b}
LOGS=${OUT:-$B/logs}
mkdir -p "$LOGS"
nvidia-smi -L
cmake -S . -B "$B" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DRLVR_BLAS=OFF -DCMAKE_BUILD_TYPE=Release \
    > "$LOGS/configure.log" 2>&1 || { tail -20 "$LOGS/configure.log"; exit 1; }
tests=$(cd tests/gpu && ls test_*.c | sed 's/^/gpu_/; s/\.c$//')
cmake --build "$B" --target $tests attention_tool > "$LOGS/build.log" 2>&1 || { tail -40 "$LOGS/build.log"; exit 1; }
status=0
ctest --test-dir "$B" --output-on-failure -R '^gpu_' > "$LOGS/ctest.log" 2>&1 || status=1
grep -v '^ *$' "$LOGS/ctest.log" | grep -v '^device:' | tail -120
for t in $tests; do
    for tool in memcheck racecheck; do
        timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$B/tests/$t" > "$LOGS/$tool-$t.log" 2>&1
        rc=$?
        echo "compute-sanitizer $tool $t: exit $rc, $(grep -c 'ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards' "$LOGS/$tool-$t.log") clean summaries"
        [ $rc -eq 0 ] || status=1
    done
done
python3 tests/reference/check_attention_torch.py "$B/tests/attention_tool" 2>&1 | tee "$LOGS/attention_torch.log" | tail -20
grep -q '^passed' "$LOGS/attention_torch.log" || status=1
echo "run_on_device: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
