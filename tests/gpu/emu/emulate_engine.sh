#!/bin/sh
# emulate_engine.sh - tests/gpu/test_engine_gpu.c on the CPU with the engine's own kernels:
# kernels/paged_attention.cu and kernels/sampling.cu compiled for the host on fibers (as
# emulate_paged_attention.sh and emulate_sampling.sh do), every other launcher from
# tests/host_gpu/host_kernels.c (whose paged attention and sampling launchers are weak, so
# these replace them). It checks how the GPU forward uses the two kernels - split-KV chunk
# lengths and scratch sizes, the tables and lengths it passes, the draws' keys - beside
# the CPU engine, where test_engine_gpu_host checks the same against the kernels' twins.
#   usage, from the repo root: sh tests/gpu/emu/emulate_engine.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build).
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_kernel paged_attention
emu_kernel attention_tc # the paged form in the training attention's order lives there
emu_kernel sampling
for f in tests/gpu/test_engine_gpu.c kernels/model_gpu.c kernels/model_gpu_paged.c; do
    $CC -c "$f" -o "$W/$(basename "$f" .c).o"
done
# the two kernels' objects come before the host kernels' archive, whose weak twins they replace
emu_link test_engine_gpu_emu "$W/test_engine_gpu.o" "$W/model_gpu.o" "$W/model_gpu_paged.o" \
    "$W/paged_attention_host.o" "$W/attention_tc_host.o" "$W/sampling_host.o"
exec "$W/test_engine_gpu_emu"
