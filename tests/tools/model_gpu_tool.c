/* model_gpu_tool.c - runs a Hugging Face checkpoint through rlvr's GPU training model
 * (gpu_model_forward, then gpu_model_backward of L = sum of the log-probabilities), for
 * tests/reference/check_model_gpu_torch.py to compare with transformers on the same GPU.
 *   usage: model_gpu_tool MODEL_DIR SEQS OUT_PREFIX bf16|fp32
 * SEQS: one sequence per line, token ids separated by spaces (at least 2 per line). The
 * sequences are packed into one micro-batch; token t of a sequence predicts token t + 1
 * (the last token of each sequence predicts nothing: its log-prob is written as 0 and has
 * no gradient). Writes OUT_PREFIX.logp (float32 [T]), OUT_PREFIX.grads (float32, the
 * model's parameter layout) and OUT_PREFIX.params (one line per tensor: name, offset in
 * floats, element count). Exit 0, 1 on a failure (message on stderr), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_gpu.h"

/* Reads the SEQS file: ids (concatenated) and per-sequence lengths. -1 on bad input. */
static int read_seqs(const char *path, int **ids, int *n_ids, int **lens, int *n_seqs) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int cap = 1024, lcap = 16, n = 0, ns = 0, cur = 0, rc = 0, c;
    int *v = malloc((size_t)cap * sizeof *v), *l = malloc((size_t)lcap * sizeof *l);
    long x = 0;
    int in_num = 0;
    while (v && l && rc == 0) {
        c = fgetc(f);
        if (c >= '0' && c <= '9') {
            x = x * 10 + (c - '0');
            in_num = 1;
            if (x > 1 << 30) rc = -1;
            continue;
        }
        if (in_num) {
            if (n == cap && !(v = realloc(v, (size_t)(cap *= 2) * sizeof *v))) break;
            v[n++] = (int)x, cur++, x = 0, in_num = 0;
        }
        if (c == '\n' || c == EOF) {
            if (cur == 1) rc = -1;
            if (cur > 1) {
                if (ns == lcap && !(l = realloc(l, (size_t)(lcap *= 2) * sizeof *l))) break;
                l[ns++] = cur;
            }
            cur = 0;
            if (c == EOF) break;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            rc = -1;
        }
    }
    fclose(f);
    if (!v || !l || rc != 0 || ns == 0) {
        free(v), free(l);
        return -1;
    }
    *ids = v, *n_ids = n, *lens = l, *n_seqs = ns;
    return 0;
}

static int write_floats(const char *prefix, const char *ext, const float *x, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof *x, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[4], "bf16") != 0 && strcmp(argv[4], "fp32") != 0)) {
        fprintf(stderr, "usage: model_gpu_tool MODEL_DIR SEQS OUT_PREFIX bf16|fp32\n");
        return 2;
    }
    int *ids, *lens, T, n_seqs;
    if (read_seqs(argv[2], &ids, &T, &lens, &n_seqs) != 0) {
        fprintf(stderr, "model_gpu_tool: %s: unreadable, or a line is not 2 or more token ids\n", argv[2]);
        return 2;
    }
    rlvr_err e = {{0}};
    model *m = model_load(argv[1], &e);
    if (!m) {
        fprintf(stderr, "model_gpu_tool: %s\n", e.msg);
        return 1;
    }
    int *targets = malloc((size_t)T * sizeof *targets);
    float *logp = malloc((size_t)T * sizeof *logp), *dlogp = malloc((size_t)T * sizeof *dlogp);
    float *grads = malloc(m->n_params * sizeof *grads);
    int status = 1;
    if (!targets || !logp || !dlogp || !grads) {
        fprintf(stderr, "model_gpu_tool: out of memory\n");
        goto done;
    }
    for (int s = 0, o = 0; s < n_seqs; o += lens[s++])
        for (int t = 0; t < lens[s]; t++) {
            int last = t == lens[s] - 1;
            targets[o + t] = last ? 0 : ids[o + t + 1];
            dlogp[o + t] = last ? 0.0f : 1.0f;
            if (ids[o + t] < 0 || ids[o + t] >= m->cfg.vocab) {
                fprintf(stderr, "model_gpu_tool: token %d is outside the vocabulary (%d)\n", ids[o + t], m->cfg.vocab);
                status = 2;
                goto done;
            }
        }
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) max_len = lens[s] > max_len ? lens[s] : max_len;
    gpu_model_opts o = {.dtype = strcmp(argv[4], "bf16") == 0 ? KERN_BF16 : KERN_F32, .max_tokens = T,
                        .max_seqs = n_seqs, .train = 1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    gpu_model *g = gpu_model_new(m, &o, &e);
    if (!g || gpu_model_zero_grads(g, &e) != 0 ||
        gpu_model_forward(g, n_seqs, lens, ids, targets, logp, NULL, &e) != 0 ||
        gpu_model_backward(g, dlogp, NULL, &e) != 0 || gpu_model_download_grads(g, grads, &e) != 0) {
        fprintf(stderr, "model_gpu_tool: %s\n", e.msg);
        gpu_model_free(g);
        goto done;
    }
    gpu_model_free(g);
    for (int t = 0; t < T; t++)
        if (dlogp[t] == 0.0f) logp[t] = 0.0f;
    char path[4096];
    snprintf(path, sizeof path, "%s.params", argv[3]);
    FILE *f = fopen(path, "w");
    int bad = !f;
    for (int i = 0; f && i < m->n_table; i++)
        bad |= fprintf(f, "%s %zu %zu\n", m->table[i].name, (size_t)(m->table[i].data - m->params),
                       m->table[i].numel) < 0;
    if (f && fclose(f) != 0) bad = 1;
    if (bad || write_floats(argv[3], ".logp", logp, (size_t)T) != 0 ||
        write_floats(argv[3], ".grads", grads, m->n_params) != 0) {
        fprintf(stderr, "model_gpu_tool: cannot write %s.*\n", argv[3]);
        goto done;
    }
    status = 0;
done:
    free(ids), free(lens), free(targets), free(logp), free(dlogp), free(grads);
    model_free(m);
    return status;
}
