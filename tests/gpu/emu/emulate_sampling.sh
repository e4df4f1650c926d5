#!/bin/sh
# emulate_sampling.sh - tests/gpu/test_sampling.c on the CPU, against kernels/sampling.cu
# compiled for the host (host_sampling.py): each CUDA thread a fiber, __syncthreads and the
# warp intrinsics as barriers (cuda_emu.h, emu_runtime.cpp). It checks the kernel's logic
# where no GPU is at hand - index math, ties, the filters, the three-level search, batch
# invariance, barriers reached in the same order by every thread - and nothing about the
# hardware: no timing, no memory model, and expf is glibc's, so every row matches the CPU
# twin exactly (no borderline rows) where a GPU differs by CUDA's expf rounding.
#   usage, from the repo root: sh tests/gpu/emu/emulate_sampling.sh [BUILD_DIR]
# BUILD_DIR (default /tmp/rlvr-emu-build) is configured without CUDA and sanitizers and
# only the rollout and core libraries are built in it. RLVR_GPU_TEST_SHORT=1 is honoured
# (about 1 minute on the 2-core dev VM; the whole test takes a few).
set -eu
B=${1:-/tmp/rlvr-emu-build}
E=tests/gpu/emu
W="$B/emu"
cmake -S . -B "$B" -DRLVR_CUDA=OFF -DRLVR_SANITIZE=OFF > /dev/null
cmake --build "$B" --parallel 2 --target rlvr_rollout rlvr_core > /dev/null
mkdir -p "$W"
python3 "$E/host_sampling.py" kernels/sampling.cu "$W/sampling_host.cpp"
CXX="g++ -std=c++17 -O2 -ffp-contract=off -Wno-unknown-pragmas -I$E -Ikernels -Icore"
$CXX -c "$W/sampling_host.cpp" -o "$W/sampling_host.o"
$CXX -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 -c "$E/emu_runtime.cpp" -o "$W/emu_runtime.o" # _longjmp between stacks
gcc -std=c11 -D_DEFAULT_SOURCE -O2 -ffp-contract=off -Ikernels -Icore -Irollout -Itests/gpu \
    -c tests/gpu/test_sampling.c -o "$W/test_sampling.o"
g++ -o "$W/test_sampling_emu" "$W/test_sampling.o" "$W/sampling_host.o" "$W/emu_runtime.o" \
    "$B/rollout/librlvr_rollout.a" "$B/core/librlvr_core.a" "$B/lua/librlvr_lua.a" \
    -lcjson -llua5.4 -lopenblas -lpcre2-8 -lsqlite3 -lutf8proc -lpthread -lm
exec "$W/test_sampling_emu"
