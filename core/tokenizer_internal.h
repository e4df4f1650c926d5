/* tokenizer_internal.h - what tokenizer.c shares with chat_template.c (not public). */
#ifndef RLVR_TOKENIZER_INTERNAL_H
#define RLVR_TOKENIZER_INTERNAL_H

#include <stddef.h>

#include "tokenizer.h"
#include "util.h"

/* Appends s[0..n) to `out` with each maximal ill-formed UTF-8 subpart replaced by U+FFFD. */
void tok_utf8_lossy(const char *s, size_t n, sbuf *out);


/* Appends s[0..n) without the leading and trailing whitespace Python's str.strip removes. */
void tok_py_strip(const char *s, size_t n, sbuf *out);

/* Renders a chat template with rlvr's Jinja subset (jinja.c). NULL with `e` filled when the
 * template uses something outside the subset or raises. bos/eos may be NULL (undefined). */
char *tok_jinja_render(const char *tmpl, const char *bos, const char *eos, const tok_message *msgs, size_t n,
                       int add_generation_prompt, rlvr_err *e);

#endif
