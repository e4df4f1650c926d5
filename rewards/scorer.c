/* scorer.c - a pool of reward hosts, one per thread, each with its own Lua state: a
 * batch is split by an atomic counter so every core verifies samples until none are
 * left. Workers live as long as the scorer and sleep between batches. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rewards.h"

typedef struct rw_worker {
    struct rw_scorer *s;
    rw_host *host;
    pthread_t thread;
} rw_worker;

struct rw_scorer {
    int n_workers;
    rw_worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    /* The current batch: workers take indexes from `next` until it passes n. */
    const cJSON *const *samples;
    rw_result *out;
    size_t n;
    atomic_size_t next;
    unsigned long generation; /* bumped per batch; a worker runs each generation once */
    int running;              /* workers still busy with this generation */
    int quit;
    int host_lost;            /* a host could not be rebuilt after running out of memory */
};

static void *worker_main(void *p) {
    rw_worker *w = p;
    rw_scorer *s = w->s;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->quit && s->generation == seen) pthread_cond_wait(&s->start, &s->mu);
        if (s->quit) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        seen = s->generation;
        pthread_mutex_unlock(&s->mu);
        int lost = 0;
        for (size_t i; (i = atomic_fetch_add(&s->next, 1)) < s->n;)
            if (rw_host_score(w->host, s->samples[i], &s->out[i]) != 0) lost = 1;
        pthread_mutex_lock(&s->mu);
        if (lost) s->host_lost = 1;
        if (--s->running == 0) pthread_cond_signal(&s->done);
        pthread_mutex_unlock(&s->mu);
    }
}

rw_scorer *rw_scorer_new(const rw_opts *o, rlvr_err *e) {
    int jobs = o->jobs > 0 ? o->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (jobs < 1) jobs = 1;
    rw_scorer *s = calloc(1, sizeof *s);
    if (!s || !(s->workers = calloc((size_t)jobs, sizeof *s->workers))) {
        free(s);
        err_set(e, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->start, NULL);
    pthread_cond_init(&s->done, NULL);
    /* Every state is built (and self-tested) here, before any thread starts, so a script
     * that does not load fails the constructor once. */
    for (int i = 0; i < jobs; i++) {
        s->workers[i].s = s;
        if (!(s->workers[i].host = rw_host_new(o, e))) {
            rw_scorer_free(s);
            return NULL;
        }
        s->n_workers = i + 1;
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            rw_host_free(s->workers[i].host);
            s->n_workers = i;
            rw_scorer_free(s);
            err_set(e, "cannot start reward thread %d", i + 1);
            return NULL;
        }
    }
    return s;
}

void rw_scorer_free(rw_scorer *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->start);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++) {
        pthread_join(s->workers[i].thread, NULL);
        rw_host_free(s->workers[i].host);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->start);
    pthread_cond_destroy(&s->done);
    free(s->workers);
    free(s);
}

int rw_scorer_jobs(const rw_scorer *s) { return s->n_workers; }

int rw_score_batch(rw_scorer *s, const cJSON *const *samples, size_t n, rw_result *out, rlvr_err *e) {
    memset(out, 0, n * sizeof *out);
    if (n == 0) return 0;
    pthread_mutex_lock(&s->mu);
    s->samples = samples;
    s->out = out;
    s->n = n;
    atomic_store(&s->next, 0);
    s->running = s->n_workers;
    s->generation++;
    pthread_cond_broadcast(&s->start);
    while (s->running > 0) pthread_cond_wait(&s->done, &s->mu);
    int lost = s->host_lost;
    pthread_mutex_unlock(&s->mu);
    if (lost) return err_set(e, "a reward script's Lua state could not be rebuilt after running out of memory");
    return 0;
}

size_t rw_scorer_fields(const rw_scorer *s, const char *const **names) {
    return rw_host_fields(s->workers[0].host, names);
}
