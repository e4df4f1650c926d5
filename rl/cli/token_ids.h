/* token_ids.h - what the model commands (generate, score) share: token id lists on the
 * command line and in JSONL, the tokenizer that turns their text into ids, JSON strings,
 * and the --threads option. */
#ifndef RLVR_TOKEN_IDS_H
#define RLVR_TOKEN_IDS_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "err.h"
#include "tokenizer.h"
#include "util.h"

/* "1 2 3", "1,2,3" or "[1, 2, 3]" into a list the caller frees; every id in [0, vocab). */
int ids_parse_text(const char *s, int vocab, int **ids, int *n, rlvr_err *e);
/* A JSON array of integers in [0, vocab) (`what` names the field in messages). */
int ids_from_json(const cJSON *arr, int vocab, const char *what, int **ids, int *n, rlvr_err *e);
/* Writes [a, b, c] (ids) or [x, y] (floats, %.9g) to f. */
void ids_print(FILE *f, const int *ids, int n);
void floats_print(FILE *f, const float *v, int n);
/* The tokenizer of a model command: --tokenizer PATH when given, else the model directory
 * `model_dir` when it holds tokenizer.json. Returns 0 with *t set (NULL when there is none),
 * or -1 with `e` filled when the tokenizer does not load. */
int cli_tokenizer(const cli_args *a, const char *model_dir, tok_tokenizer **t, rlvr_err *e);
/* Fills `e` with "WHAT is text but there is no tokenizer.json in DIR: pass --tokenizer PATH or
 * give token ids (IDS_HINT)"; returns -1. */
int no_tokenizer_error(rlvr_err *e, const char *what, const char *model_dir, const char *ids_hint);
/* Encodes text (with the post-processor's special tokens when `add_special`) into a list the
 * caller frees; every id must be in [0, vocab) (a tokenizer larger than the model is an error). */
int text_to_ids(tok_tokenizer *t, const char *text, int add_special, int vocab, int **ids, int *n, rlvr_err *e);
/* Renders a JSON "messages" array ([{"role", "content"}, ...]) with the chat template and the
 * generation prompt, and encodes it without added special tokens (as transformers'
 * apply_chat_template(tokenize=True)); as text_to_ids otherwise. */
int messages_to_ids(tok_tokenizer *t, const cJSON *messages, int vocab, int **ids, int *n, rlvr_err *e);
/* Appends s[0..n) (valid UTF-8) as a JSON string; U+0000 is written as \u0000 (cJSON's
 * printer would cut the text there). */
void json_put_string(sbuf *b, const char *s, size_t n);
/* 1 when a raw JSON line holds an escaped U+0000, which cJSON's parser would silently cut a
 * string at (so text holding it must be refused). */
int json_has_nul_escape(const char *line);
/* --threads N (default: the online CPUs, at most 8) applied to the CPU reference. */
int threads_option(const cli_args *a, rlvr_err *e);

#endif
