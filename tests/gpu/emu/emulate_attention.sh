#!/bin/sh
# emulate_attention.sh - tests/gpu/test_attention.c on the CPU, against kernels/attention.cu
# and attention_tc.cu compiled for the host (host_cu.py; the tensor-core path's mma.sync,
# ldmatrix and cp.async as mma_emu.h's warp collectives on cuda_emu.h's fibers): the
# training attention's forward and backward, both paths, against the CPU twins. It checks
# the kernels' logic - tiles, masks, the online softmax, the fragments' index math,
# barriers - not the hardware's rounding of a product or its timing.
#   usage, from the repo root: sh tests/gpu/emu/emulate_attention.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build). RLVR_GPU_TEST_SHORT=1 is honoured.
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_attention attention attention_tc
