// emu_runtime.cpp - the fibers behind cuda_emu.h, and kernels.h's device memory calls on
// host memory. A block's threads are ucontext fibers, started with setcontext and switched
// with _setjmp/_longjmp (no signal-mask system call per switch); the scheduler resumes them
// in thread order, round after round, and aborts when a whole round passes with threads
// waiting and none arriving at a barrier (a deadlock).
#include <setjmp.h>
#include <ucontext.h>

#include <vector>

#include "cuda_emu.h"

int emu_cur, emu_block, emu_nthreads, emu_block_y, emu_block_z;
emu_dim3 emu_grid = {1, 1, 1};
double emu_dyn_smem[EMU_DYN_SMEM_BYTES / sizeof(double)];
uint64_t emu_slots[64][32];
static int block_or[2]; // __syncthreads_or's running OR, by barrier parity

#define EMU_STACK (1 << 16)

struct emu_jmp {
    jmp_buf b;
};
static std::vector<ucontext_t> contexts;
static std::vector<emu_jmp> fiber_jmp;
static std::vector<char *> stacks;
static std::vector<int> started, done;
static jmp_buf scheduler_jmp;
static int block_arrived, block_generation, warp_arrived[64], warp_generation[64];
static long progress; // arrivals and exits, to tell a deadlock from waiting
static void (*body)(void *);
static void *body_arg;

static void yield_to_scheduler(void) {
    if (!_setjmp(fiber_jmp[emu_cur].b)) _longjmp(scheduler_jmp, 1);
}

void emu_syncthreads(void) {
    const int g = block_generation;
    progress++;
    if (++block_arrived == emu_nthreads) {
        block_arrived = 0, block_generation++;
        return;
    }
    while (block_generation == g) yield_to_scheduler();
}

// The OR of every thread's pred, to all: the OR gathers before one barrier and is read
// after it; the parity keeps the next call's gathering apart from this call's reading.
int emu_syncthreads_or(int pred) {
    const int k = block_generation & 1;
    if (block_arrived == 0) block_or[k] = 0; // the first to arrive starts this barrier's OR
    block_or[k] |= pred != 0;
    emu_syncthreads();
    return block_or[k];
}

void emu_warp_barrier(void) {
    const int w = emu_cur >> 5, g = warp_generation[w];
    progress++;
    if (++warp_arrived[w] == 32) {
        warp_arrived[w] = 0, warp_generation[w]++;
        return;
    }
    while (warp_generation[w] == g) yield_to_scheduler();
}

static void fiber_main(void) {
    body(body_arg);
    done[emu_cur] = 1;
    progress++;
    _longjmp(scheduler_jmp, 1);
}

void emu_run_block(int block, int nthreads, void (*fn)(void *), void *arg) {
    emu_block = block, emu_nthreads = nthreads, body = fn, body_arg = arg;
    contexts.resize(nthreads), fiber_jmp.resize(nthreads);
    started.assign(nthreads, 0), done.assign(nthreads, 0);
    while ((int)stacks.size() < nthreads) stacks.push_back((char *)malloc(EMU_STACK));
    block_arrived = block_generation = 0;
    memset(warp_arrived, 0, sizeof warp_arrived), memset(warp_generation, 0, sizeof warp_generation);
    for (int i = 0; i < nthreads; i++) {
        getcontext(&contexts[i]);
        contexts[i].uc_stack.ss_sp = stacks[i], contexts[i].uc_stack.ss_size = EMU_STACK;
        contexts[i].uc_link = NULL;
        makecontext(&contexts[i], fiber_main, 0);
    }
    for (int live = nthreads; live > 0;) {
        const long before = progress;
        live = 0;
        for (int i = 0; i < nthreads; i++) {
            if (done[i]) continue;
            emu_cur = i;
            if (!_setjmp(scheduler_jmp)) {
                if (!started[i]) started[i] = 1, setcontext(&contexts[i]);
                _longjmp(fiber_jmp[i].b, 1);
            }
            if (!done[i]) live++;
        }
        if (live > 0 && progress == before) {
            fprintf(stderr, "emu: deadlock in block %d: %d threads wait, %d arrived at __syncthreads\n", block, live,
                    block_arrived);
            abort();
        }
    }
}

// Weak, so that emulate_engine.sh can link tests/host_gpu/host_kernels.c's (the rest of
// the launchers on host memory) in their place.
extern "C" {
#define EMU_WEAK __attribute__((weak))
EMU_WEAK int kern_device_count(rlvr_err *e) { return 1; }
EMU_WEAK int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e) {
    memset(info, 0, sizeof *info);
    strcpy(info->name, "host emulation (tests/gpu/emu)");
    info->major = 9;
    return 0;
}
EMU_WEAK void *kern_malloc(size_t bytes, rlvr_err *e) { return malloc(bytes ? bytes : 1); }
EMU_WEAK void kern_free(void *p) { free(p); }
EMU_WEAK int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e) {
    return memcpy(dst, src, bytes), 0;
}
EMU_WEAK int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e) {
    return memcpy(dst, src, bytes), 0;
}
EMU_WEAK int kern_synchronize(rlvr_err *e) { return 0; }
EMU_WEAK size_t kern_dtype_size(kern_dtype t) { return t == KERN_BF16 ? 2 : 4; }
}
