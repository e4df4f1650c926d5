/* tokenizer_internal.h - what tokenizer.c shares with chat_template.c (not public). */
#ifndef RLVR_TOKENIZER_INTERNAL_H
#define RLVR_TOKENIZER_INTERNAL_H

#include <stddef.h>

#include "tokenizer.h"
#include "util.h"

/* Appends s[0..n) to `out` with each maximal ill-formed UTF-8 subpart replaced by U+FFFD. */
void tok_utf8_lossy(const char *s, size_t n, sbuf *out);

/* The chat template read from tokenizer_config.json / chat_template.jinja, or NULL. */
const char *tok_chat_template_text(const tok_tokenizer *t);

#endif
