"""host_cu.py - what the host_*.py converters share: turning a kernels/*.cu into host C++
for cuda_emu.h's fibers. replace() fails loudly when the .cu changed under a rewrite;
inline_headers() puts cuda_common.cuh (and mma.cuh, its PTX section replaced by
mma_emu.h) in place of their includes; launches() turns each <<<grid, ...>>> launch into
emu_launch, which runs the grid's blocks one after another."""
import os
import re
import sys


def replace(text, old, new, what):
    if old not in text:
        sys.exit("%s: %s no longer contains %r; update the emulation" % (os.path.basename(sys.argv[0]), what, old))
    return text.replace(old, new, 1)


def inline_headers(src, cu_path):
    folder, name = os.path.dirname(cu_path), os.path.basename(cu_path)
    common = open(os.path.join(folder, "cuda_common.cuh")).read()
    common = replace(common, "#include <cuda_bf16.h>", "", "cuda_common.cuh")
    common = replace(common, '#include "cuda_check.h"', '#include "cuda_emu.h"', "cuda_common.cuh")
    if '#include "mma.cuh"' in src:
        mma = open(os.path.join(folder, "mma.cuh")).read()
        a, b = mma.index("// ---- PTX"), mma.index("// ---- end of PTX")
        mma = mma[:a] + '#include "mma_emu.h"\n' + mma[b:]
        mma = replace(mma, '#include "cuda_common.cuh"', "", "mma.cuh")
        src = replace(src, '#include "mma.cuh"', mma, name)
    return replace(src, '#include "cuda_common.cuh"', common, name)


# NAME<<<config>>>(args); -> emu_launch(config, [&]() { NAME(args); });
LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);", re.S)


def launches(src, at_least, what):
    src, n = LAUNCH.subn(lambda m: "emu_launch(%s, [&]() { %s(%s); });" % (m.group(2), m.group(1), m.group(3)), src)
    if n < at_least:
        sys.exit("%s: found %d launches in %s (expected at least %d)" % (os.path.basename(sys.argv[0]), n, what,
                                                                          at_least))
    return src
