/* test_adamw.c - GPU AdamW and gradient clipping against their CPU twins (rl/optim.c)
 * over five steps on 1,000,003 parameters. Both follow the same operation order with
 * correctly rounded fp32 operations, so without clipping the GPU must match the CPU bit
 * for bit; with clipping the norm's summation order differs (a tree on the GPU), so
 * parameters may differ by 1e-6 relative. Two GPU runs must be identical, and so must a
 * run that leaves the clip factor to the AdamW kernel (kern_grad_norm, then
 * kern_adamw_step with the clip workspace), which must also leave the gradients unscaled. */
#include <math.h>
#include <string.h>

#include "gpu_test.h"
#include "optim.h"
#include "rng.h"

#define N 1000003
#define STEPS 5

typedef struct run_result {
    float *params;
    unsigned short *bf16;
    double norms[STEPS];
} run_result;

static float *grads_for(int step) {
    float *g = malloc(N * sizeof *g);
    rng_stream r;
    rng_stream_init(&r, 99, (uint64_t)step);
    float scale = step == 3 ? 1e-4f : 1.0f; /* one step under the clip, the others over it */
    for (size_t i = 0; i < N; i++) g[i] = scale * rng_stream_normal(&r);
    return g;
}

static float *initial_params(void) {
    float *p = malloc(N * sizeof *p);
    rng_stream r;
    rng_stream_init(&r, 98, 0);
    for (size_t i = 0; i < N; i++) p[i] = rng_stream_normal(&r);
    return p;
}

static void cpu_run(double max_norm, run_result *out) {
    rlvr_err e = {{0}};
    rl_adamw o;
    CHECK(rl_adamw_init(&o, N, 0.9, 0.95, 1e-8, 0.1, &e) == 0, "%s", e.msg);
    out->params = initial_params();
    for (int s = 0; s < STEPS; s++) {
        float *g = grads_for(s);
        out->norms[s] = rl_clip_grad_norm(g, N, max_norm);
        rl_adamw_step(&o, out->params, g, 3e-3);
        free(g);
    }
    rl_adamw_free(&o);
}

/* fused: the clip factor is applied inside the AdamW kernel instead of by kern_grad_scale. */
static void gpu_run(double max_norm, int fused, run_result *out) {
    rlvr_err e = {{0}};
    float *p = initial_params();
    float *dp = kern_malloc(N * sizeof(float), &e), *dg = kern_malloc(N * sizeof(float), &e);
    float *dm = kern_malloc(N * sizeof(float), &e), *dv = kern_malloc(N * sizeof(float), &e);
    void *dbf = kern_malloc(N * 2, &e), *ws = kern_malloc(kern_clip_grad_norm_workspace(), &e);
    CHECK(dp && dg && dm && dv && dbf && ws, "%s", e.msg);
    float *zeros = calloc(N, sizeof *zeros);
    kern_memcpy_h2d(dp, p, N * sizeof(float), &e);
    kern_memcpy_h2d(dm, zeros, N * sizeof(float), &e);
    kern_memcpy_h2d(dv, zeros, N * sizeof(float), &e);
    for (int s = 0; s < STEPS; s++) {
        float *g = grads_for(s);
        kern_memcpy_h2d(dg, g, N * sizeof(float), &e);
        if (fused) {
            CHECK(kern_grad_norm(dg, N, max_norm, ws, &out->norms[s], NULL, &e) == 0, "%s", e.msg);
            CHECK(kern_adamw_step(dp, dbf, dg, ws, dm, dv, N, s + 1, 3e-3, 0.9, 0.95, 1e-8, 0.1, NULL, &e) == 0,
                  "%s", e.msg);
            float *after = malloc(N * sizeof *after);
            CHECK(kern_memcpy_d2h(after, dg, N * sizeof(float), &e) == 0, "%s", e.msg);
            CHECK(memcmp(after, g, N * sizeof(float)) == 0, "step %d: the fused step changed the gradients", s);
            free(after);
        } else {
            CHECK(kern_clip_grad_norm(dg, N, max_norm, ws, &out->norms[s], NULL, &e) == 0, "%s", e.msg);
            CHECK(kern_adamw_step(dp, dbf, dg, NULL, dm, dv, N, s + 1, 3e-3, 0.9, 0.95, 1e-8, 0.1, NULL, &e) == 0,
                  "%s", e.msg);
        }
        free(g);
    }
    out->params = p;
    out->bf16 = malloc(N * 2);
    CHECK(kern_memcpy_d2h(p, dp, N * sizeof(float), &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(out->bf16, dbf, N * 2, &e) == 0, "%s", e.msg);
    kern_free(dp), kern_free(dg), kern_free(dm), kern_free(dv), kern_free(dbf), kern_free(ws);
    free(zeros);
}

static void compare(double max_norm, int exact) {
    run_result cpu = {0}, gpu = {0}, again = {0}, fused = {0};
    cpu_run(max_norm, &cpu);
    gpu_run(max_norm, 0, &gpu);
    gpu_run(max_norm, 0, &again);
    gpu_run(max_norm, 1, &fused);
    for (int s = 0; s < STEPS; s++)
        CHECK(fabs(gpu.norms[s] - cpu.norms[s]) <= 1e-12 * cpu.norms[s], "step %d norm %.17g vs CPU %.17g", s,
              gpu.norms[s], cpu.norms[s]);
    double max_rel = 0;
    size_t differ = 0;
    for (size_t i = 0; i < N; i++) {
        if (gpu.params[i] != cpu.params[i]) differ++;
        double rel = fabs((double)gpu.params[i] - cpu.params[i]) / (fabs(cpu.params[i]) + 1e-30);
        if (rel > max_rel) max_rel = rel;
        /* bf16 copy: the fp32 weight rounded to nearest even. */
        uint32_t bits;
        memcpy(&bits, &gpu.params[i], 4);
        uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
        if (gpu.bf16[i] != (unsigned short)rounded) {
            CHECK(0, "bf16 copy of param %zu is %04x, want %04x", i, gpu.bf16[i], rounded);
            break;
        }
    }
    printf("adamw max_norm=%-6g params differing from CPU: %zu of %d, max relative difference %.3g\n", max_norm,
           differ, N, max_rel);
    if (exact) CHECK(differ == 0, "%zu parameters differ from the CPU twin without clipping", differ);
    else CHECK(max_rel <= 1e-6, "max relative difference %.3g", max_rel);
    CHECK(memcmp(gpu.params, again.params, N * sizeof(float)) == 0, "two GPU runs differ");
    CHECK(memcmp(gpu.params, fused.params, N * sizeof(float)) == 0, "clipping inside AdamW changed the weights");
    CHECK(memcmp(gpu.norms, fused.norms, sizeof gpu.norms) == 0, "kern_grad_norm's norm differs");
    free(cpu.params), free(gpu.params), free(gpu.bf16), free(again.params), free(again.bf16);
    free(fused.params), free(fused.bf16);
}

int main(void) {
    gpu_test_require_device();
    compare(0.0, 1);  /* no clipping: bit for bit */
    compare(50.0, 0); /* clipping on most steps */
    rlvr_err e = {{0}};
    CHECK(kern_adamw_step(NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, 1e-3, 0.9, 0.999, 1e-8, 0, NULL, &e) == -1,
          "step 0 accepted");
    printf("%d passed, %d failed\n", gpu_failures ? 0 : 1, gpu_failures ? 1 : 0);
    return gpu_failures ? 1 : 0;
}
