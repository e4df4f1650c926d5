/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser (st_parse):
 * any input must either parse into tensors that lie inside the buffer or fail with a
 * message, never crash or read outside. Not part of the CMake build (it needs clang);
 * build and run it with tests/fuzz/run_fuzz.sh. Crashers it finds are kept under
 * tests/fixtures/safetensors/ and replayed by tests/unit/test_safetensors.c. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so that ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    st_file f;
    rlvr_err e;
    if (st_parse(&f, buf, size, "fuzz", &e) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            const st_tensor *t = &f.tensors[i];
            assert(t->data >= buf && t->data + t->nbytes <= buf + size);
            if (t->numel > 0 && t->numel < (1 << 16) &&
                (t->dtype == ST_F32 || t->dtype == ST_BF16 || t->dtype == ST_F16 || t->dtype == ST_F64)) {
                float *out = malloc((size_t)t->numel * sizeof(float));
                if (out) st_to_f32(t, out, &e);
                free(out);
            }
        }
        st_close(&f);
    }
    free(buf);
    return 0;
}
