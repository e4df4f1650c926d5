/* cuda_check.h - CUDA_CHECK: on failure, fill the caller's rlvr_err with the call, file
 * and CUDA's message, and return -1 from the enclosing function. Library code never
 * exits on a CUDA error. */
#ifndef RLVR_CUDA_CHECK_H
#define RLVR_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "err.h"

#define CUDA_CHECK(call, e)                                                                          \
    do {                                                                                             \
        cudaError_t cuda_check_status_ = (call);                                                     \
        if (cuda_check_status_ != cudaSuccess)                                                       \
            return err_set((e), "%s:%d: %s: %s", __FILE__, __LINE__, #call,                          \
                           cudaGetErrorString(cuda_check_status_));                                  \
    } while (0)

#endif
