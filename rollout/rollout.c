/* rollout.c - names of finish reasons, and the allocator hook of rollout/. */
#include "rollout.h"

#include <stdlib.h>

static void *libc_realloc(void *ptr, size_t size) {
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static rollout_alloc_fn rollout_alloc = libc_realloc;

void rollout_set_alloc(rollout_alloc_fn f) { rollout_alloc = f ? f : libc_realloc; }

void *rollout_realloc(void *ptr, size_t size) { return rollout_alloc(ptr, size); }

const char *rollout_finish_name(rollout_finish f) { return f == ROLLOUT_LENGTH ? "length" : "stop"; }
