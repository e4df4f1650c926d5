"""host_gemm_inv.py - kernels/gemm_inv.cu as host C++ for emulate_gemm_inv.sh: the same
kernel and launcher, with cuda_common.cuh and mma.cuh inlined (mma_emu.h for the PTX),
dynamic shared memory as a static, and each launch run block by block on fibers.
usage: python3 host_gemm_inv.py kernels/gemm_inv.cu OUT.cpp"""
import sys

from host_cu import inline_headers, launches, replace

src = inline_headers(open(sys.argv[1]).read(), sys.argv[1])
src = replace(src, "extern __shared__ __align__(16) unsigned char smem_inv[];",
              "unsigned char *smem_inv = (unsigned char *)emu_dyn_smem;", "gemm_inv.cu")
open(sys.argv[2], "w").write(launches(src, 1, "gemm_inv.cu"))
