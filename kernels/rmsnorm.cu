// rmsnorm.cu - RMSNorm forward (alone, or fused with the residual add before it) and
// backward, fp32 or bf16 activations. CPU twins: rmsnorm_forward and rmsnorm_backward in
// core/cpu_ops.c.
//
// Launch: one block of 256 threads per row t; each thread walks a strided slice of the
// row. Row sums go through block_sum (cuda_common.cuh), whose order depends on the block
// shape alone, so results are bit-identical run to run (no atomics anywhere).
#include "cuda_common.cuh"

#define RMSNORM_THREADS 256
// Row groups of the backward's weight gradient: block b sums rows b, b + G, b + 2G, ...
// into its own partial; a fixed G keeps the summation order independent of the device.
#define RMSNORM_BWD_GROUPS 512

// When y is not NULL the row is first x + y, rounded to T and stored to res_out; the norm
// then reads back the rounded sum (each thread only its own elements: no barrier needed).
template <typename T>
__global__ void rmsnorm_forward_kernel(T *out, float *rstd, T *res_out, const T *x, const T *y, const T *weight,
                                       int C, float eps) {
    __shared__ float scratch[33];
    const size_t base = (size_t)blockIdx.x * C;
    const T *row = x + base;
    float sum = 0.0f;
    if (y) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            store_f(res_out + base + c, load_f(row + c) + load_f(y + base + c));
            float v = load_f(res_out + base + c);
            sum += v * v;
        }
        row = res_out + base;
    } else {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float v = load_f(row + c);
            sum += v * v;
        }
    }
    sum = block_sum(sum, scratch);
    const float r = rsqrtf(sum / C + eps);
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) store_f(out + base + c, load_f(row + c) * r * load_f(weight + c));
}

static int rmsnorm_launch(kern_dtype dt, void *out, float *rstd, void *res_out, const void *x, const void *y,
                          const void *weight, int T, int C, float eps, void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "rmsnorm_forward: bad shape T=%d C=%d", T, C);
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (rmsnorm_forward_kernel<float><<<T, RMSNORM_THREADS, 0, s>>>(
                      (float *)out, rstd, (float *)res_out, (const float *)x, (const float *)y,
                      (const float *)weight, C, eps)),
                  (rmsnorm_forward_kernel<bf16><<<T, RMSNORM_THREADS, 0, s>>>(
                      (bf16 *)out, rstd, (bf16 *)res_out, (const bf16 *)x, (const bf16 *)y, (const bf16 *)weight, C,
                      eps)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_rmsnorm_forward(kern_dtype dt, void *out, float *rstd, const void *x, const void *weight, int T,
                                    int C, float eps, void *stream, rlvr_err *e) {
    return rmsnorm_launch(dt, out, rstd, NULL, x, NULL, weight, T, C, eps, stream, e);
}

extern "C" int kern_residual_rmsnorm_forward(kern_dtype dt, void *res_out, void *out, float *rstd, const void *x,
                                             const void *y, const void *weight, int T, int C, float eps,
                                             void *stream, rlvr_err *e) {
    if (!y || !res_out) return err_set(e, "residual_rmsnorm_forward: y and res_out are required");
    return rmsnorm_launch(dt, out, rstd, res_out, x, y, weight, T, C, eps, stream, e);
}

// y = x r w with r = (mean(x^2) + eps)^-1/2, so (as the CPU twin derives)
// dx_c = r w_c dy_c - r^3 / C * x_c * sum_k(dy_k w_k x_k), and dweight_c = sum_t dy_c x_c r.
// Block b handles rows b, b + gridDim.x, ...; its weight-gradient partial lives in
// partial[b, :], touched by one thread per column, so no barrier guards it.
template <typename T>
__global__ void rmsnorm_backward_kernel(T *dx, float *partial, const T *dout, const T *x, const T *weight,
                                        const float *rstd, int rows, int C) {
    __shared__ float scratch[33];
    float *part = partial + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) part[c] = 0.0f;
    for (int t = blockIdx.x; t < rows; t += gridDim.x) {
        const size_t base = (size_t)t * C;
        const float r = rstd[t];
        float dot = 0.0f;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float dy = load_f(dout + base + c), xv = load_f(x + base + c);
            dot += dy * load_f(weight + c) * xv;
            part[c] += dy * xv * r;
        }
        if (!dx) continue; // uniform over the block: no thread skips a barrier the others reach
        dot = block_sum(dot, scratch);
        const float k = dot * r * r * r / C;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float dy = load_f(dout + base + c), xv = load_f(x + base + c);
            store_f(dx + base + c, load_f(dx + base + c) + r * load_f(weight + c) * dy - k * xv);
        }
    }
}

// dweight[c] += sum over groups g = 0..G-1 of partial[g, c], in that order.
__global__ void rmsnorm_dweight_kernel(float *dweight, const float *partial, int groups, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sum = 0.0f;
    for (int g = 0; g < groups; g++) sum += partial[(size_t)g * C + c];
    dweight[c] += sum;
}

static int bwd_groups(int T) { return T < RMSNORM_BWD_GROUPS ? T : RMSNORM_BWD_GROUPS; }

extern "C" size_t kern_rmsnorm_backward_scratch(int T, int C) {
    return T > 0 && C > 0 ? (size_t)bwd_groups(T) * C * sizeof(float) : 0;
}

extern "C" int kern_rmsnorm_backward(kern_dtype dt, void *dx, float *dweight, const void *dout, const void *x,
                                     const void *weight, const float *rstd, int T, int C, void *scratch,
                                     void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "rmsnorm_backward: bad shape T=%d C=%d", T, C);
    if (!scratch) return err_set(e, "rmsnorm_backward: no scratch");
    cudaStream_t s = (cudaStream_t)stream;
    const int groups = bwd_groups(T);
    float *partial = (float *)scratch;
    KERN_DISPATCH(dt, e,
                  (rmsnorm_backward_kernel<float><<<groups, RMSNORM_THREADS, 0, s>>>(
                      (float *)dx, partial, (const float *)dout, (const float *)x, (const float *)weight, rstd, T, C)),
                  (rmsnorm_backward_kernel<bf16><<<groups, RMSNORM_THREADS, 0, s>>>(
                      (bf16 *)dx, partial, (const bf16 *)dout, (const bf16 *)x, (const bf16 *)weight, rstd, T, C)));
    CUDA_CHECK(cudaGetLastError(), e);
    rmsnorm_dweight_kernel<<<(C + 255) / 256, 256, 0, s>>>(dweight, partial, groups, C);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
