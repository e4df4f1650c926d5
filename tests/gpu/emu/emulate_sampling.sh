#!/bin/sh
# emulate_sampling.sh - tests/gpu/test_sampling.c on the CPU, against kernels/sampling.cu
# compiled for the host (host_sampling.py): each CUDA thread a fiber, __syncthreads and the
# warp intrinsics as barriers (cuda_emu.h, emu_runtime.cpp). It checks the kernel's logic
# where no GPU is at hand - index math, ties, the filters, the three-level search, batch
# invariance, barriers reached in the same order by every thread - and nothing about the
# hardware: no timing, no memory model, and expf is glibc's, so every row matches the CPU
# twin exactly (no borderline rows) where a GPU differs by CUDA's expf rounding.
#   usage, from the repo root: sh tests/gpu/emu/emulate_sampling.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build). RLVR_GPU_TEST_SHORT=1 is honoured
# (about 2 minutes on the 2-core dev VM; the whole test takes a few).
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_sampling sampling
