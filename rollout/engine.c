/* engine.c - see engine.h. */
#include "engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fwd_batch.h"
#include "kv_pages.h"
#include "paged_model.h"

/* gpu_paged_copy takes the copies as int triples */
_Static_assert(sizeof(kv_copy) == 3 * sizeof(int), "kv_copy is three ints");

/* Where a step's copies and forward run: the CPU's paged_model, or the GPU's gpu_paged. */
typedef struct engine_fwd {
    paged_model pm;
    gpu_paged *gp;
} engine_fwd;

static int fwd_init(engine_fwd *f, model *m, const engine_opts *eo, const sched_opts *so, int max_blocks,
                    rlvr_err *e) {
    if (!eo || !eo->gpu)
        return paged_model_init(&f->pm, m, so->n_blocks, so->block_size, so->max_tokens, so->max_len,
                                so->max_running, e);
    if (gpu_model_check_host(eo->gpu, m, e) != 0) return -1;
    f->gp = gpu_paged_new(eo->gpu, so->n_blocks, so->block_size, so->max_tokens, so->max_running, max_blocks,
                          so->max_running, e);
    if (!f->gp) return -1;
    if (eo->eager) gpu_paged_use_graphs(f->gp, 0);
    return 0;
}

static void fwd_free(engine_fwd *f) {
    paged_model_free(&f->pm);
    gpu_paged_free(f->gp);
}

/* Scratch of the draws: host logits for the CPU sampler, keys for the GPU's. */
typedef struct draw_bufs {
    sampler smp;
    float *logits;              /* [max_running, V] (CPU) */
    uint64_t *seq_ids, *positions; /* [max_running] (GPU) */
    float *logp;                /* [max_running] */
    int *drawn;                 /* [max_running] */
} draw_bufs;

static int draw_init(draw_bufs *d, const engine_fwd *f, int rows, int V, rlvr_err *e) {
    d->drawn = malloc((size_t)rows * sizeof *d->drawn);
    d->logp = malloc((size_t)rows * sizeof *d->logp);
    int ok = d->drawn && d->logp;
    if (f->gp) {
        d->seq_ids = malloc((size_t)rows * sizeof *d->seq_ids);
        d->positions = malloc((size_t)rows * sizeof *d->positions);
        ok = ok && d->seq_ids && d->positions;
    } else {
        if (sample_init(&d->smp, V, e) != 0) return -1;
        d->logits = malloc((size_t)rows * V * sizeof *d->logits);
        ok = ok && d->logits;
    }
    return ok ? 0 : err_set(e, "engine: out of memory for %d rows of draws", rows);
}

static void draw_free(draw_bufs *d) {
    sample_free(&d->smp);
    free(d->logits);
    free(d->seq_ids);
    free(d->positions);
    free(d->logp);
    free(d->drawn);
}

/* One step: its block copies, the forward, and a token drawn for each draw row into
 * d->drawn with its log-probability in d->logp. On the CPU the logits come to the host
 * and sample_next draws; on the GPU they stay there and kern_sample draws, keyed alike. */
static int fwd_draw(engine_fwd *f, const sched_batch *st, const fwd_batch *b, const sample_seq *seqs,
                    const sample_gen_opts *o, int V, draw_bufs *d, rlvr_err *e) {
    if (!f->gp) {
        paged_model_copy(&f->pm, st->copies, st->n_copies);
        if (paged_model_forward(&f->pm, b, d->logits, e) != 0) return -1;
        for (int k = 0; k < st->n_draws; k++)
            d->drawn[k] = sample_next(&d->smp, d->logits + (size_t)k * V, &o->params, o->seed,
                                      seqs[st->draws[k].sample].seq_id, (uint64_t)st->draws[k].position, &d->logp[k]);
        return 0;
    }
    if (gpu_paged_copy(f->gp, (const int *)st->copies, st->n_copies, e) != 0) return -1;
    gpu_paged_step gs = {.n_seqs = b->n_seqs, .n_tokens = b->n_tokens, .n_draws = b->n_draws,
                         .max_blocks = b->max_blocks, .tokens = b->tokens, .positions = b->positions,
                         .slot_mapping = b->slot_mapping, .cu_q = b->cu_q, .seq_lens = b->seq_lens,
                         .block_tables = b->block_tables, .logit_rows = b->logit_rows,
                         .n_groups = b->n_groups, .cu_groups = b->cu_groups, .prefix_blocks = b->prefix_blocks};
    if (gpu_paged_forward(f->gp, &gs, NULL, e) != 0) return -1;
    if (st->n_draws == 0) return 0;
    for (int k = 0; k < st->n_draws; k++) {
        d->seq_ids[k] = seqs[st->draws[k].sample].seq_id;
        d->positions[k] = (uint64_t)st->draws[k].position;
    }
    const kern_sample_params kp = {o->params.temperature, o->params.top_k, o->params.top_p, o->params.min_p};
    return gpu_paged_sample(f->gp, st->n_draws, &kp, o->seed, d->seq_ids, d->positions, d->drawn, d->logp, e);
}

static int same_prompt(const sample_seq *a, const sample_seq *b) {
    return a->n_prompt == b->n_prompt &&
           (a->prompt == b->prompt || memcmp(a->prompt, b->prompt, (size_t)a->n_prompt * sizeof(int)) == 0);
}

static int blocks_for(int tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

static int block_size_of(const engine_opts *eo) { return eo && eo->block_size > 0 ? eo->block_size : 16; }

/* The scheduler's options for n samples whose largest group has `largest`, whose prompts
 * (once per group) take prompt_blocks blocks, the longest max_prompt tokens: defaults
 * filled in, the pool sized so that every prompt and every running sample's own blocks fit
 * at once unless eo says less. */
static sched_opts plan_sizes(int n, int largest, long long prompt_blocks, int max_prompt, const sample_gen_opts *o,
                             const engine_opts *eo) {
    sched_opts so = {0};
    so.block_size = block_size_of(eo);
    so.max_running = o->batch > 0 && o->batch < n ? o->batch : n;
    if (so.max_running < largest) so.max_running = largest;
    so.max_tokens = eo && eo->max_tokens > 0 ? eo->max_tokens : so.max_running + 1024;
    so.watermark = eo && eo->watermark > 0 ? eo->watermark : 1;
    so.max_len = max_prompt + o->max_new;
    /* each running sample: a copied partial prompt block plus its own tokens */
    long long need = prompt_blocks + (long long)so.max_running * (blocks_for(o->max_new, so.block_size) + 1) +
                     so.watermark;
    so.n_blocks = eo && eo->n_blocks > 0 ? eo->n_blocks : (int)(need < 1 << 30 ? need : 1 << 30);
    return so;
}

/* plan_sizes for these sequences. */
static sched_opts plan(const sample_seq *seqs, int n, const sample_gen_opts *o, const engine_opts *eo) {
    const int block_size = block_size_of(eo);
    /* one pass over the groups (runs of equal prompts): the longest prompt, the prompts'
     * blocks, and the largest group - its samples start together when its prompt is done */
    int max_prompt = 0, largest = 1;
    long long prompt_blocks = 0;
    for (int i = 0, run = 1; i < n; i++) {
        if (seqs[i].n_prompt > max_prompt) max_prompt = seqs[i].n_prompt;
        run = i > 0 && same_prompt(&seqs[i], &seqs[i - 1]) ? run + 1 : 1;
        if (run == 1) prompt_blocks += blocks_for(seqs[i].n_prompt, block_size);
        if (run > largest) largest = run;
    }
    return plan_sizes(n, largest, prompt_blocks, max_prompt, o, eo);
}

size_t engine_gpu_bytes(const model_config *c, kern_dtype dt, int n_groups, int group_size, int max_prompt,
                        const sample_gen_opts *o, const engine_opts *eo) {
    const int bs = block_size_of(eo);
    const sched_opts so = plan_sizes(n_groups * group_size, group_size, (long long)n_groups * blocks_for(max_prompt, bs),
                                     max_prompt, o, eo);
    /* the scheduler's tables are as wide as the longest sequence (kv_pages_new) */
    return gpu_paged_bytes(c, dt, so.n_blocks, so.block_size, so.max_tokens, so.max_running,
                           blocks_for(so.max_len, so.block_size), so.max_running);
}

int engine_generate(model *m, sample_seq *seqs, int n, const sample_gen_opts *o, const engine_opts *eo,
                    sched_stats *stats, rlvr_err *e) {
    if (n < 1) return err_set(e, "engine: no sequences to generate");
    if (sample_params_check(&o->params, e) != 0) return -1;
    if (o->max_new < 1) return err_set(e, "max_new_tokens must be >= 1");
    for (int i = 0; i < n; i++)
        if (seqs[i].n_prompt < 1) return err_set(e, "sequence %d: empty prompt", i);
    const sched_opts so = plan(seqs, n, o, eo);
    const int V = m->cfg.vocab;
    scheduler *s = sched_new(&so, e);
    if (!s) return -1;
    fwd_batch b = {0};
    engine_fwd fwd = {0};
    draw_bufs d = {0};
    int rc = -1; /* the zeroed structs above free safely whatever failed */
    /* groups: runs of consecutive sequences with one prompt; sample k is seqs[k] */
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && same_prompt(&seqs[j], &seqs[i])) j++;
        const sched_group g = {seqs[i].prompt, seqs[i].n_prompt, j - i, o->max_new, o->stop_ids, o->n_stop};
        if (sched_add_group(s, &g, e) < 0) goto done; /* numbered in order: its first sample is i */
        i = j;
    }
    if (fwd_batch_init(&b, so.max_running, so.max_tokens, sched_pages(s)->max_blocks, e) != 0 ||
        fwd_init(&fwd, m, eo, &so, sched_pages(s)->max_blocks, e) != 0 ||
        draw_init(&d, &fwd, so.max_running, V, e) != 0)
        goto done;
    sched_batch st;
    int r;
    while ((r = sched_step(s, &st, e)) == 1) {
        if (fwd_batch_build(&b, &st, sched_pages(s), e) != 0) goto done;
        if (fwd_draw(&fwd, &st, &b, seqs, o, V, &d, e) != 0) goto done;
        for (int k = 0; k < st.n_draws; k++) {
            sample_seq *q = &seqs[st.draws[k].sample];
            if (q->out_logp) q->out_logp[st.draws[k].position - q->n_prompt] = d.logp[k];
        }
        if (sched_commit(s, d.drawn, e) != 0) goto done;
    }
    if (r != 0) goto done;
    for (int k = 0; k < n; k++) {
        int n_out, finished;
        rollout_finish finish;
        const int *toks = sched_output(s, k, &n_out, &finished, &finish);
        memcpy(seqs[k].out, toks, (size_t)n_out * sizeof(int));
        seqs[k].n_out = n_out;
        seqs[k].finish = finish;
    }
    if (stats) *stats = sched_get_stats(s);
    if (eo && eo->graph_steps) *eo->graph_steps = fwd.gp ? gpu_paged_graph_steps(fwd.gp) : 0;
    rc = 0;
done:
    draw_free(&d);
    fwd_free(&fwd);
    fwd_batch_free(&b);
    sched_free(s);
    return rc;
}
