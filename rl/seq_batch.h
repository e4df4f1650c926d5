/* seq_batch.h - running (prompt, completion) sequences through the policy for training:
 * the log-probability and entropy of every completion token, and the backward pass from
 * gradients on them.
 *
 * Completion token j of a sequence is predicted at position n_prompt - 1 + j, so a
 * sequence of n tokens runs n - 1 positions forward. Results are laid out [n_seqs, T]
 * (T = the batch's token slots, at least the longest completion), padding left untouched.
 *
 * With a GPU model the micro-batch's sequences are packed end to end into one row (no
 * padding; attention blocked at their boundaries) and run through kernels/model_gpu.h;
 * otherwise through the CPU model with one KV-cache slot per sequence. */
#ifndef RLVR_SEQ_BATCH_H
#define RLVR_SEQ_BATCH_H

#include "err.h"
#include "model.h"
#include "model_gpu.h"

typedef struct rl_seq {
    const int *ids; /* n_prompt + n_completion tokens */
    int n_prompt, n_completion;
} rl_seq;

/* Scratch for micro-batches of up to max_seqs sequences of up to max_len tokens, run on
 * gpu when it is not NULL (its plan must hold max_seqs sequences of max_len tokens), else
 * on the CPU model m. */
typedef struct rl_seq_batch {
    model *m;
    gpu_model *gpu;  /* when not NULL the sequences run there (m only names the shapes) */
    model_kv *kv;    /* CPU only */
    int max_seqs, max_len;
    int *slots, *n_new, *tokens, *targets; /* [max_seqs], [max_seqs], [max_seqs * max_len] x2 */
    float *logp, *ent, *dlogp, *dent;      /* [max_seqs * max_len] each */
    int last_n;                            /* sequences in the last forward */
} rl_seq_batch;

int rl_seq_batch_init(rl_seq_batch *b, model *m, gpu_model *gpu, int max_seqs, int max_len, rlvr_err *e);
void rl_seq_batch_free(rl_seq_batch *b);

/* Forward of seqs[0..n) (n <= max_seqs); out_logp[i*T + j] (and out_ent, may be NULL)
 * for completion token j of sequence i. */
int rl_seq_forward(rl_seq_batch *b, const rl_seq *seqs, int n, int T, float *out_logp, float *out_ent,
                   rlvr_err *e);

/* Backward through the last rl_seq_forward (same seqs): accumulates into the model's
 * gradients the gradient of sum dlogp*logp + dent*entropy over completion tokens
 * (dent may be NULL). */
int rl_seq_backward(rl_seq_batch *b, const rl_seq *seqs, int n, int T, const float *dlogp, const float *dent,
                    rlvr_err *e);

#endif
