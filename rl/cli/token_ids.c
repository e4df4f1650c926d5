/* token_ids.c - token id lists in text and JSON, and the tokenizer of the model commands. */
#include "token_ids.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
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
            return err_set(e, "'%s' is not a list of token ids (such as \"1 2 3\")", s);
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

int cli_tokenizer(const cli_args *a, const char *model_dir, tok_tokenizer **t, rlvr_err *e) {
    const char *path = cli_get(a, "tokenizer");
    char *own = NULL;
    *t = NULL;
    if (!path) {
        own = util_path_join(model_dir, "tokenizer.json");
        if (!own) return err_set(e, "out of memory");
        if (!util_is_file(own)) {
            free(own);
            return 0;
        }
        path = model_dir;
    }
    *t = tok_load(path, e);
    free(own);
    return *t ? 0 : -1;
}

int no_tokenizer_error(rlvr_err *e, const char *what, const char *model_dir, const char *ids_hint) {
    return err_set(e, "%s is text but there is no tokenizer.json in %s: pass --tokenizer PATH or give token ids (%s)",
                   what, model_dir, ids_hint);
}

/* Moves tok_ids into an int list, checking every id against the model's vocabulary. */
static int ids_take(tok_ids *v, int vocab, int **ids, int *n, rlvr_err *e) {
    int *out = malloc((v->n ? v->n : 1) * sizeof *out);
    if (!out) return err_set(e, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        if (v->ids[i] < 0 || v->ids[i] >= vocab) {
            free(out);
            return err_set(e, "token id %d from the tokenizer is outside the model's vocabulary [0, %d) (is the "
                              "tokenizer the model's?)", (int)v->ids[i], vocab);
        }
        out[i] = (int)v->ids[i];
    }
    *ids = out;
    *n = (int)v->n;
    return 0;
}

int text_to_ids(tok_tokenizer *t, const char *text, int add_special, int vocab, int **ids, int *n, rlvr_err *e) {
    tok_ids v = {0};
    int rc = tok_encode(t, text, strlen(text), add_special, &v, e);
    if (rc == 0) rc = ids_take(&v, vocab, ids, n, e);
    tok_ids_free(&v);
    return rc;
}

int messages_to_ids(tok_tokenizer *t, const cJSON *messages, int vocab, int **ids, int *n, rlvr_err *e) {
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
        return err_set(e, "\"messages\" must be a non-empty array of {\"role\": ..., \"content\": ...}");
    int count = cJSON_GetArraySize(messages), k = 0;
    tok_message *m = calloc((size_t)count, sizeof *m);
    if (!m) return err_set(e, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, messages) {
        m[k].role = jsonl_get_string(it, "role");
        m[k].content = jsonl_get_string(it, "content");
        if (!m[k].role || !m[k].content) {
            free(m);
            return err_set(e, "messages[%d] needs string \"role\" and \"content\"", k);
        }
        k++;
    }
    char *prompt = tok_chat_render(t, m, (size_t)count, 1, e);
    free(m);
    if (!prompt) return -1;
    int rc = text_to_ids(t, prompt, 0, vocab, ids, n, e);
    free(prompt);
    return rc;
}

void json_put_string(sbuf *b, const char *s, size_t n) {
    sb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') sb_putc(b, '\\'), sb_putc(b, (char)c);
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c == '\r') sb_puts(b, "\\r");
        else if (c < 0x20 || c == 0x7F) sb_printf(b, "\\u%04x", c);
        else sb_putc(b, (char)c);
    }
    sb_putc(b, '"');
}

int json_has_nul_escape(const char *line) {
    for (const char *p = line; (p = strstr(p, "\\u0000")) != NULL; p++) {
        size_t slashes = 0;
        while (p - (long)slashes > line && p[-(long)slashes - 1] == '\\') slashes++;
        if (slashes % 2 == 0) return 1;
    }
    return 0;
}
