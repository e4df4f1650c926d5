/* token_ids.c - token id lists in text and JSON. */
#include "token_ids.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

int ids_parse_text(const char *s, int vocab, int **ids, int *n, rlvr_err *e) {
    size_t cap = strlen(s) / 2 + 2;
    int *out = malloc(cap * sizeof *out), k = 0;
    if (!out) return err_set(e, "out of memory");
    const char *p = s;
    while (*p == ' ' || *p == '[') p++;
    while (*p && *p != ']') {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno) {
            free(out);
            return err_set(e, "'%s' is not a list of token ids (text prompts need the tokenizer, which has not "
                              "landed yet: give ids such as \"1 2 3\")", s);
        }
        if (v < 0 || v >= vocab) {
            free(out);
            return err_set(e, "token id %ld is outside the model's vocabulary [0, %d)", v, vocab);
        }
        out[k++] = (int)v;
        p = end;
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
    }
    if (*p == ']') p++;
    while (*p == ' ') p++;
    if (*p || k == 0) {
        free(out);
        return err_set(e, "'%s' is not a non-empty list of token ids", s);
    }
    *ids = out;
    *n = k;
    return 0;
}

int ids_from_json(const cJSON *arr, int vocab, const char *what, int **ids, int *n, rlvr_err *e) {
    if (!cJSON_IsArray(arr)) return err_set(e, "'%s' must be an array of token ids", what);
    int len = cJSON_GetArraySize(arr), k = 0;
    int *out = malloc((size_t)(len ? len : 1) * sizeof *out);
    if (!out) return err_set(e, "out of memory");
    for (const cJSON *it = arr->child; it; it = it->next, k++) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
        if (!cJSON_IsNumber(it) || v != floor(v) || v < 0 || v >= vocab) {
            free(out);
            return err_set(e, "'%s'[%d] is not a token id in the model's vocabulary [0, %d)", what, k, vocab);
        }
        out[k] = (int)v;
    }
    *ids = out;
    *n = len;
    return 0;
}

void ids_print(FILE *f, const int *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
    fputc(']', f);
}

void floats_print(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? ", " : "", v[i]);
    fputc(']', f);
}

int threads_option(const cli_args *a, rlvr_err *e) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long long n;
    if (cli_int(a, "threads", cpus < 1 ? 1 : cpus > 8 ? 8 : cpus, &n, e) != 0) return -1;
    if (n < 1 || n > 256) return err_set(e, "--threads must be in [1, 256]");
    model_set_threads((int)n);
    return 0;
}
