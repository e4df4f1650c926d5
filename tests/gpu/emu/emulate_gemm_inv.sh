#!/bin/sh
# emulate_gemm_inv.sh - tests/gpu/test_gemm_inv.c on the CPU, against kernels/gemm_inv.cu
# compiled for the host (host_cu.py; mma.sync, ldmatrix and cp.async as mma_emu.h's
# warp collectives on cuda_emu.h's fibers). It checks the kernel's logic - tile and
# fragment index math, the K ring, tails, the epilogue - and that every tile shape and
# row slice gives the same bits, with the emulation's own rounding of a product, not the
# tensor core's.
#   usage, from the repo root: sh tests/gpu/emu/emulate_gemm_inv.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build). RLVR_GPU_TEST_SHORT=1 is honoured.
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_gemm_inv gemm_inv
