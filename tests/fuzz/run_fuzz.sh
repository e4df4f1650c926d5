#!/bin/sh
# run_fuzz.sh [SECONDS] - builds the safetensors header fuzzer with clang (libFuzzer,
# ASan, UBSan) and runs it from the seed corpus for SECONDS (default 300). New crashers
# land in build-fuzz/; copy them to tests/fixtures/safetensors/ as regression tests.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-300}
CC=${CC:-clang-14}
mkdir -p build-fuzz/corpus
$CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_DEFAULT_SOURCE \
    -Icore tests/fuzz/fuzz_safetensors.c core/safetensors.c core/util.c core/err.c -lcjson -lm \
    -o build-fuzz/fuzz_safetensors
cp tests/fixtures/safetensors/* build-fuzz/corpus/ 2>/dev/null || true
cp tests/fixtures/model/*/*.safetensors build-fuzz/corpus/ 2>/dev/null || true
cd build-fuzz && ./fuzz_safetensors -max_total_time="$secs" -max_len=4096 -dict=../tests/fuzz/safetensors.dict corpus
