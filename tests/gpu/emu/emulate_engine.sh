#!/bin/sh
# emulate_engine.sh - tests/gpu/test_engine_gpu.c on the CPU with the engine's own kernels:
# kernels/paged_attention.cu and kernels/sampling.cu compiled for the host on fibers (as
# emulate_paged_attention.sh and emulate_sampling.sh do), every other launcher from
# tests/host_gpu/host_kernels.c (whose paged attention and sampling launchers are weak, so
# these replace them). It checks how the GPU forward uses the two kernels - split-KV chunk
# lengths and scratch sizes, the tables and lengths it passes, the draws' keys - beside
# the CPU engine, where test_engine_gpu_host checks the same against the kernels' twins.
#   usage, from the repo root: sh tests/gpu/emu/emulate_engine.sh [BUILD_DIR]
# BUILD_DIR (default /tmp/rlvr-emu-build) is configured without CUDA and sanitizers.
set -eu
B=${1:-/tmp/rlvr-emu-build}
E=tests/gpu/emu
W="$B/emu"
cmake -S . -B "$B" -DRLVR_CUDA=OFF -DRLVR_SANITIZE=OFF > /dev/null
cmake --build "$B" --parallel 2 --target rlvr_host_kernels rlvr_rollout rlvr_core > /dev/null
mkdir -p "$W"
python3 "$E/host_paged_attention.py" kernels/paged_attention.cu kernels/cuda_common.cuh "$W/paged_attention_host.cpp"
python3 "$E/host_sampling.py" kernels/sampling.cu "$W/sampling_host.cpp"
CXX="g++ -std=c++17 -O2 -ffp-contract=off -Wno-unknown-pragmas -I$E -Ikernels -Icore"
$CXX -c "$W/paged_attention_host.cpp" -o "$W/paged_attention_host.o"
$CXX -c "$W/sampling_host.cpp" -o "$W/sampling_host.o"
$CXX -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 -c "$E/emu_runtime.cpp" -o "$W/emu_runtime.o" # _longjmp between stacks
CC="gcc -std=c11 -D_DEFAULT_SOURCE -O2 -ffp-contract=off -Ikernels -Icore -Irollout -Itests/gpu"
$CC -c tests/gpu/test_engine_gpu.c -o "$W/test_engine_gpu.o"
$CC -c kernels/model_gpu.c -o "$W/model_gpu.o"
$CC -c kernels/model_gpu_paged.c -o "$W/model_gpu_paged.o"
g++ -o "$W/test_engine_gpu_emu" "$W/test_engine_gpu.o" "$W/model_gpu.o" "$W/model_gpu_paged.o" \
    "$W/paged_attention_host.o" "$W/sampling_host.o" "$W/emu_runtime.o" "$B/tests/librlvr_host_kernels.a" \
    "$B/rollout/librlvr_rollout.a" "$B/core/librlvr_core.a" "$B/lua/librlvr_lua.a" \
    -lcjson -llua5.4 -lopenblas -lpcre2-8 -lsqlite3 -lutf8proc -lpthread -lm
exec "$W/test_engine_gpu_emu"
