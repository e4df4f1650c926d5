"""host_paged_attention.py - kernels/paged_attention.cu as host C++ for
emulate_paged_attention.sh: the same kernels and launchers, with cuda_common.cuh's helpers
inlined on cuda_emu.h, dynamic shared memory as a static, and each <<<grid, ...>>> launch
turned into emu_launch, which runs the grid's blocks one after another on fibers.
usage: python3 host_paged_attention.py kernels/paged_attention.cu OUT.cpp"""
import sys

from host_cu import inline_headers, launches, replace

src = inline_headers(open(sys.argv[1]).read(), sys.argv[1])
src = replace(src, "extern __shared__ __align__(16) float smem[];", "float *smem = (float *)emu_dyn_smem;",
              "paged_attention.cu")
open(sys.argv[2], "w").write(launches(src, 4, "paged_attention.cu"))
