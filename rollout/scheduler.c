/* scheduler.c - continuous batching: admission, chunked prefill of shared prompts, decode
 * with preemption of the newest work, and the forks that give a group's samples their
 * prompt's blocks. The policy is described in scheduler.h.
 *
 * Running work is a list of units in admission order, oldest first: a group prefilling
 * its prompt (one sequence standing for its G samples) or one sample. A unit's sequence
 * reserves every position whose token is known when it is admitted, so only decodes
 * append, and only decodes can run short of blocks. */
#include "scheduler.h"

#include "rollout.h"

#include <assert.h>
#include <string.h>

typedef enum { SAMPLE_PENDING, SAMPLE_RUNNING, SAMPLE_QUEUED, SAMPLE_DONE } sample_state;

typedef struct sample {
    int group;
    sample_state state;
    int seq;           /* kv sequence, -1 when none */
    int computed;      /* positions whose K/V the model has written */
    int shares_prompt; /* forked from its group's prompt: its leading blocks are the group's */
    int *out;          /* [max_new] generated tokens, in its group's allocation */
    int n_out;
    rollout_finish finish;
} sample;

typedef struct group {
    int *prompt, n_prompt; /* the prompt, the stop ids and the samples' outputs share one allocation */
    int *stop_ids, n_stop;
    int n_samples, max_new, first_sample;
    int seq, computed; /* the prompt's sequence while prefilling, -1 before and after */
} group;

typedef struct unit {
    int is_group, id;
    int item; /* its item in the step being planned, or -1 */
} unit;

/* A sorted list of ids (waiting groups, queued samples): small, so inserts shift. Its
 * room grows when groups are added, never during a step, so preemption cannot fail. */
typedef struct id_list {
    int *ids, n, cap;
} id_list;

struct scheduler {
    sched_opts o;
    kv_pages *kv;
    group *groups;
    int n_groups, cap_groups;
    sample *samples;
    int n_samples, cap_samples;
    unit *run; /* [max_running] admission order, oldest first */
    int n_run;
    unit *run_next; /* [max_running] the list sched_commit builds */
    int run_cost; /* sequences the running units hold or will hold after forking */
    id_list waiting, queued;
    /* the step being planned or awaiting its commit */
    sched_item *items; /* [max_running] */
    int *tokens;       /* [max_tokens] */
    sched_draw *draws; /* [max_running] */
    kv_copy *copies;   /* [max_running] */
    int *cow_seen;     /* [n_blocks] decode planning: appenders counted per shared block */
    sched_batch step;
    int step_open;
    sched_stats stats;
};

/* ---- small helpers ------------------------------------------------------------------ */

static int list_reserve(id_list *l, int n, rlvr_err *e) {
    if (n <= l->cap) return 0;
    int cap = l->cap ? l->cap : 16;
    while (cap < n) cap *= 2;
    int *ids = rollout_realloc(l->ids, (size_t)cap * sizeof *ids);
    if (!ids) return err_set(e, "scheduler: out of memory for a queue of %d", cap);
    l->ids = ids, l->cap = cap;
    return 0;
}

static void list_insert(id_list *l, int id) {
    assert(l->n < l->cap);
    int i = l->n;
    while (i > 0 && l->ids[i - 1] > id) l->ids[i] = l->ids[i - 1], i--;
    l->ids[i] = id;
    l->n++;
}

static void list_pop_front(id_list *l) {
    memmove(l->ids, l->ids + 1, (size_t)(l->n - 1) * sizeof *l->ids);
    l->n--;
}

static int blocks_for(const scheduler *s, long long positions) {
    return (int)((positions + s->o.block_size - 1) / s->o.block_size);
}

/* The token at `pos` of a sample's sequence: the prompt, then what it generated. */
static int sample_token(const scheduler *s, const sample *sm, int pos) {
    const group *g = &s->groups[sm->group];
    return pos < g->n_prompt ? g->prompt[pos] : sm->out[pos - g->n_prompt];
}

static int sample_known(const scheduler *s, const sample *sm) { return s->groups[sm->group].n_prompt + sm->n_out; }

static int unit_seq(const scheduler *s, const unit *u) {
    return u->is_group ? s->groups[u->id].seq : s->samples[u->id].seq;
}

static int unit_cost(const scheduler *s, const unit *u) { return u->is_group ? s->groups[u->id].n_samples : 1; }

/* ---- creation ----------------------------------------------------------------------- */

scheduler *sched_new(const sched_opts *o, rlvr_err *e) {
    if (o->max_running < 1 || o->max_tokens < 1 || o->watermark < 0)
        return err_set(e, "scheduler: max_running %d and max_tokens %d must be >= 1, watermark %d >= 0",
                       o->max_running, o->max_tokens, o->watermark),
               NULL;
    scheduler *s = rollout_malloc(sizeof *s);
    if (!s) return err_set(e, "scheduler: out of memory"), NULL;
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->kv = kv_pages_new(o->n_blocks, o->block_size, o->max_running, o->max_len, e);
    if (!s->kv) return rollout_free(s), NULL;
    const size_t R = (size_t)o->max_running;
    s->run = rollout_malloc(R * sizeof *s->run);
    s->run_next = rollout_malloc(R * sizeof *s->run_next);
    s->items = rollout_malloc(R * sizeof *s->items);
    s->tokens = rollout_malloc((size_t)o->max_tokens * sizeof *s->tokens);
    s->draws = rollout_malloc(R * sizeof *s->draws);
    s->copies = rollout_malloc(R * sizeof *s->copies);
    s->cow_seen = rollout_malloc((size_t)o->n_blocks * sizeof *s->cow_seen);
    if (s->cow_seen) memset(s->cow_seen, 0, (size_t)o->n_blocks * sizeof *s->cow_seen);
    if (!s->run || !s->run_next || !s->items || !s->tokens || !s->draws || !s->copies || !s->cow_seen) {
        sched_free(s);
        return err_set(e, "scheduler: out of memory for %d sequences and %d tokens a step", o->max_running,
                       o->max_tokens),
               NULL;
    }
    return s;
}

void sched_free(scheduler *s) {
    if (!s) return;
    for (int g = 0; g < s->n_groups; g++) rollout_free(s->groups[g].prompt);
    void *owned[] = {s->groups, s->samples, s->run,    s->run_next,   s->items,     s->tokens,
                     s->draws,  s->copies,  s->cow_seen, s->waiting.ids, s->queued.ids};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) rollout_free(owned[i]);
    kv_pages_free(s->kv);
    rollout_free(s);
}

int sched_add_group(scheduler *s, const sched_group *g, rlvr_err *e) {
    const int gi = s->n_groups, bs = s->o.block_size, nb = s->o.n_blocks;
    if (g->n_prompt < 1) return err_set(e, "group %d: the prompt is empty", gi);
    if (g->n_samples < 1 || g->max_new < 1)
        return err_set(e, "group %d: samples %d and max_new %d must be >= 1", gi, g->n_samples, g->max_new);
    if (g->n_stop < 0 || (g->n_stop > 0 && !g->stop_ids)) return err_set(e, "group %d: bad stop ids", gi);
    if (g->n_samples > s->o.max_running)
        return err_set(e, "group %d: %d samples, but at most %d sequences run at once", gi, g->n_samples,
                       s->o.max_running);
    if (blocks_for(s, g->n_prompt) > nb)
        return err_set(e, "group %d: the prompt of %d tokens needs %d blocks of %d tokens, the pool has %d", gi,
                       g->n_prompt, blocks_for(s, g->n_prompt), bs, nb);
    /* the last token drawn is never fed, so a sample holds at most prompt + max_new - 1 positions */
    const long long longest = (long long)g->n_prompt + g->max_new - 1;
    if (longest > s->o.max_len)
        return err_set(e, "group %d: prompt %d + max_new %d - 1 = %lld positions pass max_len %d", gi, g->n_prompt,
                       g->max_new, longest, s->o.max_len);
    if (blocks_for(s, longest) > nb)
        return err_set(e,
                       "group %d: prompt %d + max_new %d - 1 positions need %d blocks of %d tokens, the pool has %d "
                       "(a sample that long could never finish)",
                       gi, g->n_prompt, g->max_new, blocks_for(s, longest), bs, nb);
    if (s->n_groups == s->cap_groups) {
        int cap = s->cap_groups ? 2 * s->cap_groups : 16;
        group *gs = rollout_realloc(s->groups, (size_t)cap * sizeof *gs);
        if (!gs) return err_set(e, "scheduler: out of memory for %d groups", cap);
        s->groups = gs, s->cap_groups = cap;
    }
    if (s->n_samples + g->n_samples > s->cap_samples) {
        int cap = s->cap_samples ? s->cap_samples : 64;
        while (cap < s->n_samples + g->n_samples) cap *= 2;
        sample *ss = rollout_realloc(s->samples, (size_t)cap * sizeof *ss);
        if (!ss) return err_set(e, "scheduler: out of memory for %d samples", cap);
        s->samples = ss, s->cap_samples = cap;
    }
    group *G = &s->groups[gi];
    *G = (group){.n_prompt = g->n_prompt, .n_stop = g->n_stop, .n_samples = g->n_samples, .max_new = g->max_new,
                 .first_sample = s->n_samples, .seq = -1};
    if (list_reserve(&s->waiting, gi + 1, e) < 0 || list_reserve(&s->queued, s->n_samples + g->n_samples, e) < 0)
        return -1;
    /* one allocation: the prompt, the stop ids, then each sample's output */
    const size_t n_ints = (size_t)g->n_prompt + (size_t)g->n_stop + (size_t)g->n_samples * (size_t)g->max_new;
    G->prompt = rollout_malloc(n_ints * sizeof(int));
    if (!G->prompt)
        return err_set(e, "group %d: out of memory for a prompt of %d tokens and %d samples of %d", gi, g->n_prompt,
                       g->n_samples, g->max_new);
    G->stop_ids = G->prompt + g->n_prompt;
    memcpy(G->prompt, g->prompt, (size_t)g->n_prompt * sizeof(int));
    if (g->n_stop) memcpy(G->stop_ids, g->stop_ids, (size_t)g->n_stop * sizeof(int));
    for (int j = 0; j < g->n_samples; j++) {
        sample *sm = &s->samples[s->n_samples + j];
        *sm = (sample){.group = gi, .state = SAMPLE_PENDING, .seq = -1};
        sm->out = G->stop_ids + g->n_stop + (size_t)j * g->max_new;
    }
    list_insert(&s->waiting, gi);
    s->n_groups++;
    s->n_samples += g->n_samples;
    return G->first_sample;
}

/* ---- planning a step ----------------------------------------------------------------- */

/* Frees the newest unit's blocks and queues it again: a group restarts its prompt, a
 * sample recomputes prompt + generated tokens when it is admitted again. */
static void preempt_newest(scheduler *s) {
    assert(s->n_run > 0);
    unit u = s->run[--s->n_run];
    assert(u.item < 0);
    s->run_cost -= unit_cost(s, &u);
    s->stats.preempted++;
    s->step.n_preempted++;
    if (u.is_group) {
        group *g = &s->groups[u.id];
        kv_seq_free(s->kv, g->seq);
        g->seq = -1, g->computed = 0;
        list_insert(&s->waiting, u.id);
        return;
    }
    sample *sm = &s->samples[u.id];
    kv_seq_free(s->kv, sm->seq);
    sm->seq = -1, sm->computed = 0, sm->shares_prompt = 0, sm->state = SAMPLE_QUEUED;
    list_insert(&s->queued, u.id);
}

static int is_decoder(const scheduler *s, const unit *u) {
    if (u->is_group) return 0;
    const sample *sm = &s->samples[u->id];
    return kv_seq_len(s->kv, sm->seq) == sm->computed;
}

/* Blocks the decodes of the first `budget` decoding units need, counted as kv_append will
 * take them in order: of the k holders of a shared partly filled block that append, the
 * first min(k, count - 1) copy it. */
static int decode_need(scheduler *s, int budget) {
    const kv_pages *p = s->kv;
    int need = 0, n = 0;
    for (int i = 0; i < s->n_run && n < budget; i++) {
        if (!is_decoder(s, &s->run[i])) continue;
        n++;
        const int seq = s->samples[s->run[i].id].seq, len = kv_seq_len(p, seq);
        if (len % p->block_size == 0) {
            need++;
            continue;
        }
        const int last = kv_block_table(p, seq)[len / p->block_size];
        if (kv_refcount(p, last) > 1 && ++s->cow_seen[last] < kv_refcount(p, last)) need++;
    }
    /* undo the counts (touch only what was set) */
    n = 0;
    for (int i = 0; i < s->n_run && n < budget; i++) {
        if (!is_decoder(s, &s->run[i])) continue;
        n++;
        const int seq = s->samples[s->run[i].id].seq, len = kv_seq_len(p, seq);
        if (len % p->block_size) s->cow_seen[kv_block_table(p, seq)[len / p->block_size]] = 0;
    }
    return need;
}

static sched_item *add_item(scheduler *s, unit *u, int seq, int group_id, int pos, int n_tokens) {
    u->item = s->step.n_items;
    sched_item *it = &s->items[s->step.n_items++];
    *it = (sched_item){.seq = seq, .pos = pos, .n_tokens = n_tokens, .first_token = s->step.n_tokens,
                       .group = group_id, .first_draw = s->step.n_draws};
    return it;
}

static void add_draw(scheduler *s, sched_item *it, int sample_id, int position) {
    s->draws[s->step.n_draws++] = (sched_draw){sample_id, position};
    it->n_draws++;
}

/* Feeds up to *budget reserved but not yet computed positions of a prefilling unit; the
 * chunk that reaches the end draws for the unit's samples. */
static void plan_chunk(scheduler *s, unit *u, int *budget) {
    const int seq = unit_seq(s, u), len = kv_seq_len(s->kv, seq);
    const int done = u->is_group ? s->groups[u->id].computed : s->samples[u->id].computed;
    const int n = len - done < *budget ? len - done : *budget;
    assert(n > 0);
    const int gid = u->is_group ? u->id : s->samples[u->id].group;
    sched_item *it = add_item(s, u, seq, gid, done, n);
    for (int i = 0; i < n; i++)
        s->tokens[s->step.n_tokens++] =
            u->is_group ? s->groups[u->id].prompt[done + i] : sample_token(s, &s->samples[u->id], done + i);
    if (done + n == len) {
        if (u->is_group) {
            const group *g = &s->groups[u->id];
            for (int j = 0; j < g->n_samples; j++) add_draw(s, it, g->first_sample + j, len);
        } else
            add_draw(s, it, u->id, len);
    }
    *budget -= n;
}

/* A running sample of sm's group that holds the group's prompt blocks, or NULL. */
static const sample *sibling_with_prompt(const scheduler *s, const sample *sm) {
    for (int i = 0; i < s->n_run; i++) {
        const unit *u = &s->run[i];
        if (!u->is_group && s->samples[u->id].group == sm->group && s->samples[u->id].shares_prompt)
            return &s->samples[u->id];
    }
    return NULL;
}

/* Admits the oldest queued sample, else the oldest waiting group, when the running limit
 * and the blocks allow: 1 admitted, 0 not, -1 error. A queued sample whose group still
 * has a sample holding the prompt's full blocks forks them again and recomputes only
 * the positions after them. */
static int admit_next(scheduler *s, rlvr_err *e) {
    int is_group, id, known, reused = 0; /* reused: leading positions shared with a sibling */
    const sample *sibling = NULL;
    if (s->queued.n) {
        is_group = 0, id = s->queued.ids[0], known = sample_known(s, &s->samples[id]);
        sibling = sibling_with_prompt(s, &s->samples[id]);
        if (sibling) reused = s->groups[s->samples[id].group].n_prompt / s->o.block_size * s->o.block_size;
    } else if (s->waiting.n) {
        is_group = 1, id = s->waiting.ids[0], known = s->groups[id].n_prompt;
    } else
        return 0;
    const int cost = is_group ? s->groups[id].n_samples : 1;
    const int need = blocks_for(s, known) - reused / s->o.block_size;
    if (s->run_cost + cost > s->o.max_running) return 0;
    /* with nothing running the whole pool is free, and sched_add_group checked it suffices */
    if (need + s->o.watermark > kv_free_blocks(s->kv) && !(s->n_run == 0 && need <= kv_free_blocks(s->kv)))
        return 0;
    /* ids: run_cost bounds them; blocks: need was checked (a block-aligned cut leaves no
     * partial block to copy) */
    int seq;
    if (reused > 0) {
        seq = kv_fork(s->kv, sibling->seq, e);
        if (seq >= 0) kv_truncate(s->kv, seq, reused);
    } else
        seq = kv_seq_new(s->kv, e);
    if (seq < 0 || kv_append(s->kv, seq, known - reused, NULL, e) < 0) return -1;
    s->stats.prompt_reforks += reused > 0;
    if (is_group) {
        list_pop_front(&s->waiting);
        group *g = &s->groups[id];
        g->seq = seq, g->computed = 0;
    } else {
        list_pop_front(&s->queued);
        sample *sm = &s->samples[id];
        sm->seq = seq, sm->computed = reused, sm->shares_prompt = reused > 0, sm->state = SAMPLE_RUNNING;
    }
    s->run[s->n_run++] = (unit){is_group, id, -1};
    s->run_cost += cost;
    return 1;
}

int sched_step(scheduler *s, sched_batch *step, rlvr_err *e) {
    if (s->step_open) return err_set(e, "scheduler: the last step's draws were not committed");
    s->step = (sched_batch){.items = s->items, .tokens = s->tokens, .draws = s->draws, .copies = s->copies};
    for (int i = 0; i < s->n_run; i++) s->run[i].item = -1;
    int budget = s->o.max_tokens;

    /* 1. decodes, oldest first: preempt the newest work until their blocks are free. All
     * preemption happens before any append, so no block freed here is a copy's source. */
    int n_dec = 0;
    for (int i = 0; i < s->n_run; i++) n_dec += is_decoder(s, &s->run[i]);
    while (n_dec > 0 && decode_need(s, budget) > kv_free_blocks(s->kv)) {
        n_dec -= is_decoder(s, &s->run[s->n_run - 1]);
        preempt_newest(s);
    }
    for (int i = 0; i < s->n_run && budget > 0; i++) {
        unit *u = &s->run[i];
        if (!is_decoder(s, u)) continue;
        sample *sm = &s->samples[u->id];
        kv_copy c;
        const int r = kv_append(s->kv, sm->seq, 1, &c, e);
        assert(r >= 0); /* decode_need counted it */
        if (r < 0) return -1;
        if (r == 1) s->copies[s->step.n_copies++] = c;
        sched_item *it = add_item(s, u, sm->seq, sm->group, sm->computed, 1);
        if (sm->shares_prompt) it->prefix_blocks = s->groups[sm->group].n_prompt / s->o.block_size;
        s->tokens[s->step.n_tokens++] = sample_token(s, sm, sm->computed);
        add_draw(s, it, u->id, sm->computed + 1);
        budget--;
    }
    /* 2. prefill chunks of running units, oldest first */
    for (int i = 0; i < s->n_run && budget > 0; i++)
        if (s->run[i].item < 0 && !is_decoder(s, &s->run[i])) plan_chunk(s, &s->run[i], &budget);
    /* 3. admissions while the budget lasts; each starts its prefill in this step. Not after
     * a preemption: what was just freed would be taken again, only to be preempted again */
    while (budget > 0 && s->step.n_preempted == 0) {
        const int r = admit_next(s, e);
        if (r < 0) return -1;
        if (r == 0) break;
        plan_chunk(s, &s->run[s->n_run - 1], &budget);
    }
    if (s->step.n_items == 0) {
        /* nothing ran: only possible when nothing is left, since the oldest unit always fits
         * (sched_add_group's checks); said out loud rather than ending with work undone */
        *step = s->step;
        if (s->n_run || s->queued.n || s->waiting.n)
            return err_set(e, "scheduler: stalled with %d running, %d preempted and %d waiting", s->n_run,
                           s->queued.n, s->waiting.n);
        return 0;
    }
    s->step_open = 1;
    s->stats.steps++;
    s->stats.tokens += s->step.n_tokens;
    s->stats.copies += s->step.n_copies;
    *step = s->step;
    return 1;
}

/* ---- committing a step --------------------------------------------------------------- */

static int is_stop(const group *g, int token) {
    for (int i = 0; i < g->n_stop; i++)
        if (g->stop_ids[i] == token) return 1;
    return 0;
}

/* Records a drawn token; 1 when the sample has finished. */
static int take_token(scheduler *s, sample *sm, int token) {
    const group *g = &s->groups[sm->group];
    sm->out[sm->n_out++] = token;
    if (is_stop(g, token))
        sm->finish = ROLLOUT_STOP;
    else if (sm->n_out == g->max_new)
        sm->finish = ROLLOUT_LENGTH;
    else
        return 0;
    sm->state = SAMPLE_DONE;
    return 1;
}

int sched_commit(scheduler *s, const int *tokens, rlvr_err *e) {
    if (!s->step_open) return err_set(e, "scheduler: no step to commit");
    if (s->step.n_draws > 0 && !tokens) return err_set(e, "scheduler: %d draws but no tokens", s->step.n_draws);
    s->step_open = 0;
    /* the running list is rebuilt in order into run_next: finished samples leave, a group
     * whose prompt ended is replaced by its unfinished samples (its run_cost held room) */
    unit *next = s->run_next;
    int n_next = 0;
    for (int i = 0; i < s->n_run; i++) {
        const unit u = s->run[i];
        if (u.item < 0) {
            next[n_next++] = u;
            continue;
        }
        const sched_item *it = &s->items[u.item];
        if (u.is_group) {
            group *g = &s->groups[u.id];
            g->computed += it->n_tokens;
            if (!it->n_draws) {
                next[n_next++] = u;
                continue;
            }
            /* each sample takes its first token; the unfinished share the prompt's sequence
             * (the first keeps it, the others fork it) */
            int owner = -1;
            for (int j = 0; j < g->n_samples; j++) {
                sample *sm = &s->samples[g->first_sample + j];
                if (take_token(s, sm, tokens[it->first_draw + j])) {
                    s->run_cost--;
                    continue;
                }
                const int seq = owner < 0 ? g->seq : kv_fork(s->kv, g->seq, e);
                assert(seq >= 0); /* the group's run_cost reserved an id for each sample */
                if (seq < 0) return -1;
                owner = seq;
                sm->seq = seq, sm->computed = g->n_prompt, sm->shares_prompt = 1, sm->state = SAMPLE_RUNNING;
                next[n_next++] = (unit){0, g->first_sample + j, -1};
            }
            if (owner < 0) kv_seq_free(s->kv, g->seq);
            g->seq = -1;
            continue;
        }
        sample *sm = &s->samples[u.id];
        sm->computed += it->n_tokens;
        if (it->n_draws && take_token(s, sm, tokens[it->first_draw])) {
            kv_seq_free(s->kv, sm->seq);
            sm->seq = -1;
            s->run_cost--;
            continue;
        }
        next[n_next++] = u;
    }
    s->run_next = s->run, s->run = next, s->n_run = n_next;
    return 0;
}

const int *sched_output(const scheduler *s, int sample_id, int *n_out, int *done, rollout_finish *finish) {
    assert(sample_id >= 0 && sample_id < s->n_samples);
    const sample *sm = &s->samples[sample_id];
    if (n_out) *n_out = sm->n_out;
    if (done) *done = sm->state == SAMPLE_DONE;
    if (finish) *finish = sm->finish;
    return sm->out;
}

const kv_pages *sched_pages(const scheduler *s) { return s->kv; }

sched_stats sched_get_stats(const scheduler *s) { return s->stats; }
