/* seq_batch.c - sequences in, per-completion-token log-probs out, and back. */
#include "seq_batch.h"

#include <stdlib.h>
#include <string.h>

int rl_seq_batch_init(rl_seq_batch *b, model *m, gpu_model *gpu, int max_seqs, int max_len, rlvr_err *e) {
    memset(b, 0, sizeof *b);
    b->m = m;
    b->gpu = gpu;
    b->max_seqs = max_seqs;
    b->max_len = max_len;
    size_t n = (size_t)max_seqs * (size_t)max_len;
    if (!gpu && !(b->kv = model_kv_new(m, max_seqs, max_len, e))) return -1;
    b->slots = malloc((size_t)max_seqs * sizeof *b->slots);
    b->n_new = malloc((size_t)max_seqs * sizeof *b->n_new);
    b->tokens = malloc(n * sizeof *b->tokens);
    b->targets = malloc(n * sizeof *b->targets);
    b->logp = malloc(n * sizeof *b->logp);
    b->ent = malloc(n * sizeof *b->ent);
    b->dlogp = malloc(n * sizeof *b->dlogp);
    b->dent = malloc(n * sizeof *b->dent);
    if (!b->slots || !b->n_new || !b->tokens || !b->targets || !b->logp || !b->ent || !b->dlogp || !b->dent) {
        rl_seq_batch_free(b);
        return err_set(e, "out of memory for a micro-batch of %d sequences of %d tokens", max_seqs, max_len);
    }
    return 0;
}

void rl_seq_batch_free(rl_seq_batch *b) {
    model_kv_free(b->kv);
    free(b->slots);
    free(b->n_new);
    free(b->tokens);
    free(b->targets);
    free(b->logp);
    free(b->ent);
    free(b->dlogp);
    free(b->dent);
    memset(b, 0, sizeof *b);
}

/* Lays out the forward tokens and targets of seqs and empties their cache slots. */
static int layout(rl_seq_batch *b, const rl_seq *seqs, int n, rlvr_err *e) {
    if (n < 1 || n > b->max_seqs) return err_set(e, "micro-batch of %d sequences (at most %d)", n, b->max_seqs);
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        int len = seqs[i].n_prompt + seqs[i].n_completion - 1;
        if (seqs[i].n_prompt < 1 || seqs[i].n_completion < 1 || len > b->max_len)
            return err_set(e, "sequence of %d prompt and %d completion tokens does not fit (at most %d)",
                           seqs[i].n_prompt, seqs[i].n_completion, b->max_len + 1);
        b->slots[i] = i;
        b->n_new[i] = len;
        if (b->kv) model_kv_truncate(b->kv, i, 0);
        memcpy(b->tokens + t, seqs[i].ids, (size_t)len * sizeof(int));
        memcpy(b->targets + t, seqs[i].ids + 1, (size_t)len * sizeof(int));
        t += (size_t)len;
    }
    return 0;
}

int rl_seq_forward(rl_seq_batch *b, const rl_seq *seqs, int n, int T, float *out_logp, float *out_ent,
                   rlvr_err *e) {
    if (layout(b, seqs, n, e) != 0) return -1;
    b->last_n = 0;
    if (b->gpu) { /* the sequences packed into one row: tokens and targets are already laid end to end */
        if (gpu_model_forward(b->gpu, n, b->n_new, b->tokens, b->targets, b->logp, b->ent, e) != 0) return -1;
    } else {
        if (model_forward(b->m, b->kv, n, b->slots, b->n_new, b->tokens, e) != 0) return -1;
        model_logprobs(b->m, b->targets, b->logp, b->ent);
    }
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        size_t first = t + (size_t)seqs[i].n_prompt - 1;
        for (int j = 0; j < seqs[i].n_completion && j < T; j++) {
            out_logp[(size_t)i * T + j] = b->logp[first + j];
            if (out_ent) out_ent[(size_t)i * T + j] = b->ent[first + j];
        }
        t += (size_t)b->n_new[i];
    }
    b->last_n = n;
    return 0;
}

int rl_seq_backward(rl_seq_batch *b, const rl_seq *seqs, int n, int T, const float *dlogp, const float *dent,
                    rlvr_err *e) {
    if (n != b->last_n) return err_set(e, "backward of %d sequences after a forward of %d", n, b->last_n);
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        size_t first = t + (size_t)seqs[i].n_prompt - 1;
        memset(b->dlogp + t, 0, (size_t)b->n_new[i] * sizeof(float));
        memset(b->dent + t, 0, (size_t)b->n_new[i] * sizeof(float));
        for (int j = 0; j < seqs[i].n_completion && j < T; j++) {
            b->dlogp[first + j] = dlogp[(size_t)i * T + j];
            if (dent) b->dent[first + j] = dent[(size_t)i * T + j];
        }
        t += (size_t)b->n_new[i];
    }
    if (b->gpu) return gpu_model_backward(b->gpu, b->dlogp, dent ? b->dent : NULL, e);
    return model_backward(b->m, b->targets, b->dlogp, dent ? b->dent : NULL, e);
}
