#!/bin/sh
# emulate_rope.sh - tests/gpu/test_rope.c on the CPU, against kernels/rope.cu compiled for
# the host (host_cu.py, on cuda_emu.h's fibers): RoPE forward and backward against the CPU
# twins, and the engine's fused RoPE and K/V write (kern_rope_kv_write) against
# kern_rope_forward then kern_kv_write bit for bit.
#   usage, from the repo root: sh tests/gpu/emu/emulate_rope.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build).
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
emu_test test_rope rope
