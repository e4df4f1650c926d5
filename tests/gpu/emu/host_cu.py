"""host_cu.py - a kernels/*.cu as host C++ for the fibers of cuda_emu.h: the same kernels
and launchers, with cuda_common.cuh, attention_tc.cuh and mma.cuh inlined (mma.cuh's PTX
section replaced by mma_emu.h), each `extern __shared__` array pointed at the emulation's
dynamic shared memory, every other __shared__ variable a static, and each <<<grid, ...>>>
launch turned into emu_launch, which runs
the grid's blocks one after another. replace() fails loudly when a .cu no longer holds
what a rewrite expects. host_sampling.py uses these helpers for a kernel whose launchers
it replaces.
usage: python3 host_cu.py kernels/NAME.cu OUT.cpp"""
import os
import re
import sys


def replace(text, old, new, what, count=1):
    if old not in text:
        sys.exit("%s: %s no longer contains %r; update the emulation" % (os.path.basename(sys.argv[0]), what, old))
    return text.replace(old, new, count)


def inline_headers(src, cu_path):
    folder, name = os.path.dirname(cu_path), os.path.basename(cu_path)
    common = open(os.path.join(folder, "cuda_common.cuh")).read()
    common = replace(common, "#include <cuda_bf16.h>", "", "cuda_common.cuh")
    common = replace(common, '#include "cuda_check.h"', '#include "cuda_emu.h"', "cuda_common.cuh")
    if '#include "attention_tc.cuh"' in src:
        tc = open(os.path.join(folder, "attention_tc.cuh")).read()
        src = replace(src, '#include "attention_tc.cuh"', replace(tc, "#include <cuda_runtime.h>", "",
                                                                  "attention_tc.cuh"), name)
    if '#include "mma.cuh"' in src:
        mma = open(os.path.join(folder, "mma.cuh")).read()
        a, b = mma.index("// ---- PTX"), mma.index("// ---- end of PTX")
        src = replace(src, '#include "mma.cuh"', mma[:a] + '#include "mma_emu.h"\n' + mma[b:], name)
    # every copy (the .cu's and the inlined headers'); the include guard keeps one
    return replace(src, '#include "cuda_common.cuh"', common, name, -1)


# extern __shared__ [__align__(n)] TYPE NAME[];  ->  TYPE *NAME = (TYPE *)emu_dyn_smem;
SHARED = re.compile(r"extern __shared__ (?:__align__\(\d+\) )?([\w ]+?) (\w+)\[\];")


def shared_arrays(src):
    src = SHARED.sub(lambda m: "%s *%s = (%s *)emu_dyn_smem;" % (m.group(1), m.group(2), m.group(1)), src)
    # a static-size __shared__ variable is one per block: a static (blocks run one at a time)
    return re.sub(r"\b__shared__ ", "static ", src)


# NAME<<<config>>>(args) -> emu_launch(config, [&]() { NAME(args); }), the arguments up to
# their matching parenthesis (a launch may stand inside a macro's argument, as in
# KERN_DISPATCH, where no semicolon follows it).
LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\(", re.S)


def launches(src, what):
    out, at, n = [], 0, 0
    while True:
        m = LAUNCH.search(src, at)
        if not m:
            break
        depth, end = 1, m.end()
        while depth:
            if end >= len(src):
                sys.exit("%s: unbalanced launch arguments in %s" % (os.path.basename(sys.argv[0]), what))
            depth += {"(": 1, ")": -1}.get(src[end], 0)
            end += 1
        out.append(src[at:m.start()])
        out.append("emu_launch(%s, [&]() { %s(%s); })" % (m.group(2), m.group(1), src[m.end():end - 1]))
        at, n = end, n + 1
    if n < 1:
        sys.exit("%s: found no launch in %s" % (os.path.basename(sys.argv[0]), what))
    return "".join(out) + src[at:]


if __name__ == "__main__":
    text = inline_headers(open(sys.argv[1]).read(), sys.argv[1])
    open(sys.argv[2], "w").write(launches(shared_arrays(text), os.path.basename(sys.argv[1])))
