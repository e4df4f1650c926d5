#!/bin/sh
# emulate_logp_exact.sh - tests/gpu/test_logp_exact.c (short mode) on the CPU with the real
# kernels of the batch-invariant path compiled for the host on fibers: the linear layers
# (gemm_inv.cu), the training attention (attention.cu, attention_tc.cu), the engine's
# paged attention (paged_attention.cu), the LM head (lmhead.cu) and the sampler
# (sampling.cu); the norms, RoPE and the rest from tests/host_gpu/host_kernels.c, whose
# twins of these are weak. So the trainer's and the rollout's log-probabilities come from
# the kernels' own code paths, and must agree bit for bit here as on the GPU.
#   usage, from the repo root: sh tests/gpu/emu/emulate_logp_exact.sh [BUILD_DIR]
# BUILD_DIR: emu_build.sh's (default /tmp/rlvr-emu-build).
set -eu
. tests/gpu/emu/emu_build.sh
emu_prepare
objs=""
for k in gemm_inv attention attention_tc paged_attention lmhead sampling; do
    emu_kernel $k
    objs="$objs $W/${k}_host.o"
done
for f in tests/gpu/test_logp_exact.c kernels/model_gpu.c kernels/model_gpu_paged.c; do
    $CC -c "$f" -o "$W/$(basename "$f" .c).o"
done
# the kernels' objects come before the host kernels' archive, whose weak twins they replace
emu_link test_logp_exact_emu "$W/test_logp_exact.o" "$W/model_gpu.o" "$W/model_gpu_paged.o" $objs
RLVR_GPU_TEST_SHORT=1 exec "$W/test_logp_exact_emu"
