/* cpu_ops.c - CPU reference layers. */
#include "cpu_ops.h"

#include <math.h>
#include <stddef.h>

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += (double)row[c] * row[c];
        float r = (float)(1.0 / sqrt(sum / C + eps));
        if (rstd) rstd[t] = r;
        float *o = out + (size_t)t * C;
        for (int c = 0; c < C; c++) o[c] = row[c] * r * weight[c];
    }
}
