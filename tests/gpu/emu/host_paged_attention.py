"""host_paged_attention.py - kernels/paged_attention.cu as host C++ for
emulate_paged_attention.sh: the same kernels and launchers, with cuda_common.cuh's helpers
inlined on cuda_emu.h, dynamic shared memory as a static, and each <<<grid, ...>>> launch
turned into emu_launch, which runs the grid's blocks one after another on fibers.
usage: python3 host_paged_attention.py kernels/paged_attention.cu OUT.cpp (cuda_common.cuh is
read from the .cu's folder)"""
import os
import re
import sys

src = open(sys.argv[1]).read()
common = open(os.path.join(os.path.dirname(sys.argv[1]), "cuda_common.cuh")).read()


def replace(text, old, new, what):
    if old not in text:
        sys.exit("host_paged_attention.py: %s no longer contains %r; update the emulation" % (what, old))
    return text.replace(old, new, 1)


# cuda_common.cuh without the CUDA headers (cuda_emu.h stands in for them)
common = replace(common, "#include <cuda_bf16.h>", "", "cuda_common.cuh")
common = replace(common, '#include "cuda_check.h"', '#include "cuda_emu.h"', "cuda_common.cuh")
src = replace(src, '#include "cuda_common.cuh"', common, "paged_attention.cu")
src = replace(src, "extern __shared__ __align__(16) float smem[];", "float *smem = (float *)emu_dyn_smem;",
              "paged_attention.cu")
# NAME<<<config>>>(args); -> emu_launch(config, [&]() { NAME(args); });
launch = re.compile(r"([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);", re.S)
src, n = launch.subn(lambda m: "emu_launch(%s, [&]() { %s(%s); });" % (m.group(2), m.group(1), m.group(3)), src)
if n < 4:
    sys.exit("host_paged_attention.py: found %d launches in paged_attention.cu (expected at least 4)" % n)
open(sys.argv[2], "w").write(src)
