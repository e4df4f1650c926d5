// device.cu - device discovery and memory wrappers around the CUDA runtime.
#include "cuda_check.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>

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

extern "C" int kern_memcpy_d2d(void *dst, const void *src, size_t bytes, rlvr_err *e) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), e);
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

extern "C" void *kern_stream_new(rlvr_err *e) {
    cudaStream_t s = NULL;
    cudaError_t st = cudaStreamCreate(&s);
    if (st != cudaSuccess) {
        err_set(e, "cudaStreamCreate: %s", cudaGetErrorString(st));
        return NULL;
    }
    return s;
}

extern "C" void kern_stream_free(void *stream) {
    if (stream) cudaStreamDestroy((cudaStream_t)stream);
}

extern "C" int kern_graphs_supported(void) { return 1; }

struct kern_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

extern "C" int kern_graph_begin(void *stream, rlvr_err *e) {
    if (!stream) return err_set(e, "kern_graph_begin: the legacy default stream cannot be captured");
    // thread-local: another thread's unrelated CUDA calls do not break this capture
    CUDA_CHECK(cudaStreamBeginCapture((cudaStream_t)stream, cudaStreamCaptureModeThreadLocal), e);
    return 0;
}

extern "C" int kern_graph_end(void *stream, kern_graph **graph, rlvr_err *e) {
    *graph = NULL;
    cudaGraph_t g = NULL;
    // ends the capture even when a launch inside it failed, so the stream is usable again
    CUDA_CHECK(cudaStreamEndCapture((cudaStream_t)stream, &g), e);
    kern_graph *k = (kern_graph *)calloc(1, sizeof *k);
    if (!k) {
        cudaGraphDestroy(g);
        return err_set(e, "out of memory");
    }
    k->graph = g;
    cudaError_t st = cudaGraphInstantiate(&k->exec, g, 0);
    if (st != cudaSuccess) {
        kern_graph_free(k);
        return err_set(e, "cudaGraphInstantiate: %s", cudaGetErrorString(st));
    }
    *graph = k;
    return 0;
}

extern "C" int kern_graph_launch(kern_graph *graph, void *stream, rlvr_err *e) {
    CUDA_CHECK(cudaGraphLaunch(graph->exec, (cudaStream_t)stream), e);
    return 0;
}

extern "C" void *kern_event_new(rlvr_err *e) {
    cudaEvent_t ev = NULL;
    cudaError_t st = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (st != cudaSuccess) {
        err_set(e, "cudaEventCreate: %s", cudaGetErrorString(st));
        return NULL;
    }
    return ev;
}

extern "C" void kern_event_free(void *event) {
    if (event) cudaEventDestroy((cudaEvent_t)event);
}

extern "C" int kern_stream_wait(void *waiter, void *waited, void *event, rlvr_err *e) {
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)waited), e);
    CUDA_CHECK(cudaStreamWaitEvent((cudaStream_t)waiter, (cudaEvent_t)event, 0), e);
    return 0;
}

extern "C" void kern_graph_free(kern_graph *graph) {
    if (!graph) return;
    if (graph->exec) cudaGraphExecDestroy(graph->exec);
    if (graph->graph) cudaGraphDestroy(graph->graph);
    free(graph);
}
