// device.cu - device discovery and memory wrappers around the CUDA runtime.
#include "cuda_check.h"
#include "kernels.h"

#include <stdio.h>

extern "C" int kern_device_count(rlvr_err *e) {
    int n = 0;
    cudaError_t st = cudaGetDeviceCount(&n);
    if (st != cudaSuccess) {
        err_set(e, "no CUDA device: %s", cudaGetErrorString(st));
        cudaGetLastError(); // clear the sticky error so later calls start clean
        return 0;
    }
    if (n == 0) err_set(e, "no CUDA device: the driver reports none");
    return n;
}

extern "C" int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e) {
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device), e);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->major = p.major;
    info->minor = p.minor;
    info->multiprocessors = p.multiProcessorCount;
    CUDA_CHECK(cudaSetDevice(device), e);
    CUDA_CHECK(cudaMemGetInfo(&info->free_memory, &info->total_memory), e);
    return 0;
}

extern "C" void *kern_malloc(size_t bytes, rlvr_err *e) {
    void *p = NULL;
    cudaError_t st = cudaMalloc(&p, bytes);
    if (st != cudaSuccess) {
        err_set(e, "cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(st));
        return NULL;
    }
    return p;
}

extern "C" void kern_free(void *p) { cudaFree(p); }

extern "C" int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), e);
    return 0;
}

extern "C" int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), e);
    return 0;
}

extern "C" int kern_synchronize(rlvr_err *e) {
    CUDA_CHECK(cudaDeviceSynchronize(), e);
    return 0;
}

extern "C" int kern_memzero(void *p, size_t bytes, void *stream, rlvr_err *e) {
    if (bytes == 0) return 0;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, (cudaStream_t)stream), e);
    return 0;
}
