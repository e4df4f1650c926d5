/* dataset.c - loading JSONL rows and generating arithmetic rows. */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "util.h"

static int push_row(dataset *d, size_t *cap, ds_row row) {
    if (d->n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        ds_row *r = realloc(d->rows, c * sizeof *r);
        if (!r) return -1;
        d->rows = r;
        *cap = c;
    }
    row.id = (int64_t)d->n;
    d->rows[d->n++] = row;
    return 0;
}

static void free_row(ds_row *r) {
    free(r->prompt);
    free(r->answer);
    cJSON_Delete(r->fields);
}

void ds_free(dataset *d) {
    for (size_t i = 0; i < d->n; i++) free_row(&d->rows[i]);
    free(d->rows);
    memset(d, 0, sizeof *d);
}

int ds_load_jsonl(dataset *d, const char *path, const char *prompt_key, const char *answer_key, rlvr_err *e) {
    memset(d, 0, sizeof *d);
    snprintf(d->source, sizeof d->source, "%s", path);
    jsonl_reader r;
    if (jsonl_open(&r, path, e)) return -1;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        cJSON *obj;
        jsonl_status st = jsonl_next(&r, &obj, e);
        if (st == JSONL_EOF) break;
        if (st != JSONL_OK) {
            rc = -1;
            break;
        }
        ds_row row = {.line = r.line, .fields = obj};
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, prompt_key);
        const cJSON *a = answer_key && *answer_key ? cJSON_GetObjectItemCaseSensitive(obj, answer_key) : NULL;
        if (!p) rc = err_set(e, "%s:%ld: row has no '%s' field (data.prompt_key)", path, r.line, prompt_key);
        else if (!cJSON_IsString(p))
            rc = err_set(e, "%s:%ld: field '%s' must be a string", path, r.line, prompt_key);
        else if (answer_key && *answer_key && (!a || cJSON_IsNull(a)))
            rc = err_set(e, "%s:%ld: row has no '%s' field (data.answer_key)", path, r.line, answer_key);
        if (rc) {
            cJSON_Delete(obj);
            break;
        }
        row.prompt = util_strdup(p->valuestring);
        row.answer = a ? jsonl_value_text(a) : NULL;
        if (!row.prompt || (a && !row.answer) || push_row(d, &cap, row)) {
            free_row(&row);
            rc = err_set(e, "%s:%ld: out of memory", path, r.line);
            break;
        }
    }
    jsonl_close(&r);
    if (rc == 0 && d->n == 0) rc = err_set(e, "%s: no rows (the file is empty)", path);
    if (rc) ds_free(d);
    return rc;
}

static int arith_row(ds_row *row, const arith_problem *p) {
    memset(row, 0, sizeof *row);
    row->fields = cJSON_CreateObject();
    if (!row->fields || !cJSON_AddStringToObject(row->fields, "prompt", p->prompt) ||
        !cJSON_AddStringToObject(row->fields, "answer", p->answer) ||
        !cJSON_AddStringToObject(row->fields, "solution", p->solution) ||
        !cJSON_AddStringToObject(row->fields, "expr", p->expr))
        return -1;
    row->prompt = util_strdup(p->prompt);
    row->answer = util_strdup(p->answer);
    return row->prompt && row->answer ? 0 : -1;
}

/* Open-addressing set of expression strings, to keep held-out rows out of training. */
typedef struct str_set {
    const char **slots;
    size_t cap;
} str_set;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int set_has(const str_set *s, const char *k) {
    if (!s->cap) return 0;
    for (size_t i = hash_str(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i]) return 0;
        if (strcmp(s->slots[i], k) == 0) return 1;
    }
}

static int set_build(str_set *s, const dataset *d) {
    s->cap = 16;
    while (s->cap < d->n * 2 + 16) s->cap *= 2;
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) return -1;
    for (size_t r = 0; r < d->n; r++) {
        const char *k = jsonl_get_string(d->rows[r].fields, "expr");
        if (!k) continue;
        size_t i = hash_str(k) & (s->cap - 1);
        while (s->slots[i] && strcmp(s->slots[i], k) != 0) i = (i + 1) & (s->cap - 1);
        s->slots[i] = k;
    }
    return 0;
}

int ds_generate_arith(dataset *d, const arith_params *p, uint64_t seed, int split, size_t n, const dataset *exclude,
                      rlvr_err *e) {
    memset(d, 0, sizeof *d);
    if (arith_check(p, e)) return -1;
    snprintf(d->source, sizeof d->source, "arith(seed=%llu, split=%s)", (unsigned long long)seed,
             split ? "eval" : "train");
    str_set seen = {0};
    if (exclude && set_build(&seen, exclude)) return err_set(e, "out of memory");
    size_t cap = 0;
    int rc = 0;
    /* Small problem spaces can run out of fresh problems; give up after many misses. */
    uint64_t misses = 0, max_misses = 1000 + 100 * (uint64_t)n;
    for (uint64_t index = 0; d->n < n; index++) {
        arith_problem prob;
        arith_generate(p, seed, (uint64_t)split, index, &prob);
        if (set_has(&seen, prob.expr)) {
            if (++misses > max_misses) {
                rc = err_set(e, "data.arith: only %zu of %zu held-out problems are distinct from training; "
                                "widen data.arith (more digits or terms)", d->n, n);
                break;
            }
            continue;
        }
        ds_row row;
        if (arith_row(&row, &prob) || push_row(d, &cap, row)) {
            free_row(&row);
            rc = err_set(e, "out of memory generating problems");
            break;
        }
    }
    free(seen.slots);
    if (rc) ds_free(d);
    return rc;
}

int ds_write_jsonl(const dataset *d, const char *path, rlvr_err *e) {
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) return err_errno(e, path);
    int rc = 0;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        char *line = cJSON_PrintUnformatted(d->rows[i].fields);
        if (!line) rc = err_set(e, "%s: out of memory", path);
        else if (fprintf(f, "%s\n", line) < 0) rc = err_errno(e, path);
        free(line);
    }
    if (f != stdout && fclose(f) != 0 && rc == 0) rc = err_errno(e, path);
    return rc;
}
