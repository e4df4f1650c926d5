/* dataset.h - the prompt rows a run trains and evaluates on.
 *
 * Rows come from a JSONL file (one object per line, with a prompt field and an answer
 * field whose names the config gives) or from a task generator. Every row keeps all
 * its fields, because reward scripts may read any of them (tests, entry_point, ...). */
#ifndef RLVR_DATASET_H
#define RLVR_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "arith.h"
#include "err.h"

typedef struct ds_row {
    int64_t id;     /* 0-based position in the dataset: samples.prompt_id */
    long line;      /* line in the source file (0 for generated rows) */
    char *prompt;   /* the prompt text */
    char *answer;   /* the reference answer as text (numbers rendered), or NULL if absent */
    cJSON *fields;  /* the whole row */
} ds_row;

typedef struct dataset {
    ds_row *rows;
    size_t n;
    char source[512]; /* the path, or "arith(seed=1, split=train)" */
} dataset;

/* Loads a JSONL file. Every line must be an object with a string `prompt_key` field;
 * `answer_key` must be present unless it is NULL or empty. Any bad line is an error
 * naming the file and line (a training set with a silently dropped row is a different
 * training set). Empty files are an error too. */
int ds_load_jsonl(dataset *d, const char *path, const char *prompt_key, const char *answer_key, rlvr_err *e);

/* Generates n arithmetic problems. split 0 is training and 1 held-out: held-out rows
 * come from their own stream, and any whose expression also appears in `exclude` (the
 * training set, may be NULL) is skipped, so the two never overlap. Rows have fields
 * prompt, answer, solution and expr. */
int ds_generate_arith(dataset *d, const arith_params *p, uint64_t seed, int split, size_t n, const dataset *exclude,
                      rlvr_err *e);

/* Writes the dataset as JSONL (one row's fields per line). */
int ds_write_jsonl(const dataset *d, const char *path, rlvr_err *e);

void ds_free(dataset *d);

#endif
