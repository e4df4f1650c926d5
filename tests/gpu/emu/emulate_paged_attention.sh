#!/bin/sh
# emulate_paged_attention.sh - tests/gpu/test_paged_attention.c on the CPU, against
# kernels/paged_attention.cu compiled for the host (host_paged_attention.py, on the fibers
# of cuda_emu.h and emu_runtime.cpp, as emulate_sampling.sh does for the sampler). It
# checks the kernels' logic where no GPU is at hand - index math, key ranges, the warps'
# split of the keys and their merge, barriers reached in the same order by every thread,
# batch invariance, bad indices - and nothing about the hardware (no timing, no memory
# model; expf is glibc's).
#   usage, from the repo root: sh tests/gpu/emu/emulate_paged_attention.sh [BUILD_DIR]
# BUILD_DIR (default /tmp/rlvr-emu-build) is configured without CUDA and sanitizers and
# only the core library is built in it. RLVR_GPU_TEST_SHORT=1 is honoured.
set -eu
B=${1:-/tmp/rlvr-emu-build}
E=tests/gpu/emu
W="$B/emu"
cmake -S . -B "$B" -DRLVR_CUDA=OFF -DRLVR_SANITIZE=OFF > /dev/null
cmake --build "$B" --parallel 2 --target rlvr_core > /dev/null
mkdir -p "$W"
python3 "$E/host_paged_attention.py" kernels/paged_attention.cu kernels/cuda_common.cuh "$W/paged_attention_host.cpp"
CXX="g++ -std=c++17 -O2 -ffp-contract=off -Wno-unknown-pragmas -I$E -Ikernels -Icore"
$CXX -c "$W/paged_attention_host.cpp" -o "$W/paged_attention_host.o"
$CXX -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 -c "$E/emu_runtime.cpp" -o "$W/emu_runtime.o" # _longjmp between stacks
gcc -std=c11 -D_DEFAULT_SOURCE -O2 -ffp-contract=off -Ikernels -Icore -Itests/gpu \
    -c tests/gpu/test_paged_attention.c -o "$W/test_paged_attention.o"
g++ -o "$W/test_paged_attention_emu" "$W/test_paged_attention.o" "$W/paged_attention_host.o" "$W/emu_runtime.o" \
    "$B/core/librlvr_core.a" -lcjson -lopenblas -lpcre2-8 -lutf8proc -lpthread -lm
exec "$W/test_paged_attention_emu"
