#!/bin/sh
# emulate_paged_attention.sh - tests/gpu/test_paged_attention.c on the CPU, against
# kernels/paged_attention.cu compiled for the host (host_cu.py, on the fibers of cuda_emu.h
# and emu_runtime.cpp, as emulate_sampling.sh does for the sampler), with attention.cu and
# attention_tc.cu beside it: the paged form in the training attention's order is compared
# bit for bit with the training attention itself (mma.sync and ldmatrix as mma_emu.h's
# warp collectives). It checks the kernels' logic where no GPU is at hand - index math, key
# ranges, the warps' split of the keys and their merge, barriers reached in the same order
# by every thread, batch invariance, bad indices - and nothing about the hardware (no
# timing, no memory model; expf is glibc's, a product's rounding the emulation's own).
#   usage, from the repo root: sh tests/gpu/emu/emulate_paged_attention.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build). RLVR_GPU_TEST_SHORT=1 is honoured.
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_paged_attention paged_attention attention attention_tc
