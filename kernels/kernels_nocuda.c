/* kernels_nocuda.c - the kernels interface in a build without CUDA: no devices. */
#include "kernels.h"

int kern_device_count(rlvr_err *e) {
    err_set(e, "built without CUDA (nvcc was not found when rlvr was configured)");
    return 0;
}

int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

void *kern_malloc(size_t bytes, rlvr_err *e) {
    err_set(e, "built without CUDA");
    return NULL;
}

void kern_free(void *p) {}

int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_synchronize(rlvr_err *e) { return err_set(e, "built without CUDA"); }

int kern_rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps,
                         void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_adamw_step(float *params, void *params_bf16, const float *grads, float *m, float *v, size_t n,
                    long long step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                        rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_clip_grad_norm_workspace(void) { return 0; }
