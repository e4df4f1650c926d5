/* token_ids.h - token id lists on the command line and in JSONL, for the commands that
 * take ids until the tokenizer lands (generate, score), and the model-loading options
 * they share. */
#ifndef RLVR_TOKEN_IDS_H
#define RLVR_TOKEN_IDS_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "err.h"

/* "1 2 3", "1,2,3" or "[1, 2, 3]" into a list the caller frees; every id in [0, vocab). */
int ids_parse_text(const char *s, int vocab, int **ids, int *n, rlvr_err *e);
/* A JSON array of integers in [0, vocab) (`what` names the field in messages). */
int ids_from_json(const cJSON *arr, int vocab, const char *what, int **ids, int *n, rlvr_err *e);
/* Writes [a, b, c] (ids) or [x, y] (floats, %.9g) to f. */
void ids_print(FILE *f, const int *ids, int n);
void floats_print(FILE *f, const float *v, int n);
/* --threads N (default: the online CPUs, at most 8) applied to the CPU reference. */
int threads_option(const cli_args *a, rlvr_err *e);

#endif
