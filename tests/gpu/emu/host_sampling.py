"""host_sampling.py - kernels/sampling.cu as host C++ for emulate_sampling.sh: the same
kernels, with shared memory as statics (cuda_emu.h) and launchers that run each block on
fibers. The kernels' text is used as is; only the includes, the two shared-memory
declarations and the launchers (whose argument checks are repeated here) are replaced.
usage: python3 host_sampling.py kernels/sampling.cu OUT.cpp"""
import sys

from host_cu import replace as replace_in

src = open(sys.argv[1]).read()


def replace(old, new):
    global src
    src = replace_in(src, old, new, "sampling.cu")


replace('#include "cuda_common.cuh"', '#include "cuda_emu.h"')
replace('extern __shared__ double topp_cols[];', 'double *topp_cols = emu_dyn_smem;')
replace('__shared__ sample_shared sm;', 'static sample_shared sm;')
# drop the CUDA launchers, keep the kernels between them
a = src.index('extern "C" int kern_sample(')
b = src.index('__global__ void rng_uniform_kernel')
c = src.index('extern "C" int kern_rng_uniform(')
src = src[:a] + src[b:c]
src += r'''
struct sample_args {
    const float *logits;
    int V;
    const kern_sample_params *params;
    const uint64_t *seq_ids, *positions;
    uint64_t seed;
    int *tokens;
    float *logp;
};
static void sample_block(void *p) {
    const sample_args *a = (const sample_args *)p;
    sample_kernel(a->logits, a->V, a->params, a->seq_ids, a->positions, a->seed, a->tokens, a->logp);
}
extern "C" int kern_sample(const float *logits, int N, int V, const kern_sample_params *params,
                           const uint64_t *seq_ids, const uint64_t *positions, uint64_t seed, int *tokens,
                           float *logp, void *stream, rlvr_err *e) {
    if (N < 1 || V < 1 || V > INT_MAX - 32 * SAMPLE_THREADS) return err_set(e, "sample: bad shape N=%d V=%d", N, V);
    if (!logits || !params || !seq_ids || !positions || !tokens)
        return err_set(e, "sample: logits, params, seq_ids, positions and tokens are required");
    sample_args a = {logits, V, params, seq_ids, positions, seed, tokens, logp};
    for (int row = 0; row < N; row++) emu_run_block(row, SAMPLE_THREADS, sample_block, &a);
    return 0;
}
extern "C" int kern_rng_uniform(float *out, uint32_t *bits, const uint64_t *keys, int n, void *stream, rlvr_err *e) {
    if (n < 1) return err_set(e, "rng_uniform: bad count %d", n);
    if (!out || !keys) return err_set(e, "rng_uniform: out and keys are required");
    emu_nthreads = 256; // no barriers: the threads run one after another
    for (int i = 0; i < (n + 255) / 256 * 256; i++) {
        emu_block = i / 256, emu_cur = i % 256;
        rng_uniform_kernel(out, bits, keys, n);
    }
    return 0;
}
'''
open(sys.argv[2], 'w').write(src)
