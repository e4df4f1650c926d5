#!/bin/sh
# emulate_swiglu.sh - tests/gpu/test_swiglu.c on the CPU, against kernels/swiglu.cu compiled
# for the host (host_cu.py, on cuda_emu.h's fibers): forward and backward against the CPU
# twins, vector and element paths, and the stacked forward (the rollout engine's gate and
# up from one product) against the plain one bit for bit. RLVR_GPU_TEST_SHORT=1 is honoured.
#   usage, from the repo root: sh tests/gpu/emu/emulate_swiglu.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build).
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_swiglu swiglu
