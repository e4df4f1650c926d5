/* tokenizer.h - Hugging Face tokenizer.json tokenizers (byte-level BPE as in GPT-2, Qwen2/2.5/3,
 * Llama-3 and SmolLM; SentencePiece-style BPE as in Llama-2/TinyLlama tokenizer.json files) and
 * the chat templates their checkpoints ship.
 *
 * Every prompt and every sample goes through here, and one differing id changes what the model
 * sees: the contract is "the same ids as HF `tokenizers`" (tests/reference/ holds the fixtures).
 * Text is UTF-8. Invalid UTF-8 given to tok_encode is read as Python's
 * bytes.decode('utf-8', errors='replace') reads it (each maximal invalid subpart becomes U+FFFD),
 * and decoded text is always valid UTF-8 (invalid byte runs become U+FFFD, as HF does).
 *
 * A loaded tokenizer is read-only except for its word cache, which tok_encode takes with a
 * try-lock: tok_encode may be called from several threads on one tokenizer at once. */
#ifndef RLVR_TOKENIZER_H
#define RLVR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "luabox.h"
#include "util.h"

typedef struct tok_tokenizer tok_tokenizer;

/* A growable list of token ids. Zero-initialise; free with tok_ids_free. */
typedef struct tok_ids {
    int32_t *ids;
    size_t n, cap;
} tok_ids;

void tok_ids_free(tok_ids *v);

/* Loads a tokenizer from `path`: a tokenizer.json file, or a model directory holding one
 * (tokenizer_config.json and chat_template.jinja beside it are read when present, for the
 * chat template and the bos/eos tokens). Unsupported model types, normalizers,
 * pre-tokenizers, decoders or post-processors are an error that names them.
 * Returns NULL and fills `e` on failure; free with tok_free. */
tok_tokenizer *tok_load(const char *path, rlvr_err *e);
void tok_free(tok_tokenizer *t);

/* Encodes text[0..len) and appends the ids to `out` (not cleared first). Added and special
 * tokens in the text are matched before BPE (as HF does). With `add_special`, the
 * post-processor's template (e.g. Llama-3's <|begin_of_text|>) is applied; without it no
 * BOS/EOS is added. Returns 0, or -1 with `e` filled (out of memory). */
int tok_encode(tok_tokenizer *t, const char *text, size_t len, int add_special, tok_ids *out, rlvr_err *e);

/* Decodes ids to text as HF `tokenizer.decode(ids, skip_special_tokens=...)` does. Returns a
 * NUL-terminated buffer the caller frees (its length in *out_len when not NULL); NULL with
 * `e` filled when an id is out of range or memory runs out. */
char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *out_len,
                 rlvr_err *e);

/* Streaming (incremental) decode, for text that appears while a sample is generated. Each
 * pushed id appends to `out` the text that is now final (possibly nothing); it never emits
 * half of a UTF-8 character. tok_stream_finish appends what is still held back (for a
 * sample that ends inside a character: U+FFFD). The concatenation of everything appended
 * equals tok_decode of all the ids. */
typedef struct tok_stream tok_stream;
tok_stream *tok_stream_new(const tok_tokenizer *t, int skip_special, rlvr_err *e);
int tok_stream_push(tok_stream *s, int32_t id, sbuf *out, rlvr_err *e);
int tok_stream_finish(tok_stream *s, sbuf *out, rlvr_err *e);
void tok_stream_free(tok_stream *s);

/* Vocabulary. tok_vocab_size is one more than the largest id (model vocab and added tokens). */
int32_t tok_vocab_size(const tok_tokenizer *t);
/* The token's string as written in tokenizer.json ("Ġthe", "▁the", "<|im_end|>"), or NULL. */
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id);
/* The id of a token string as written in tokenizer.json, or -1. */
int32_t tok_token_to_id(const tok_tokenizer *t, const char *token);
/* 1 if `id` is an added token marked special (skipped by skip_special_tokens). */
int tok_is_special(const tok_tokenizer *t, int32_t id);
/* The bos/eos tokens named by tokenizer_config.json (NULL / -1 when none). */
const char *tok_bos_token(const tok_tokenizer *t);
const char *tok_eos_token(const tok_tokenizer *t);
int32_t tok_eos_id(const tok_tokenizer *t);

/* Writes dir/tokenizer.json and dir/tokenizer_config.json (dir is created) of the byte-level
 * tokenizer for models initialized from scratch: GPT-2-style byte-level BPE with exactly the 256
 * byte tokens (id b is the byte b), no merges, an NFC normalizer (as Qwen2's, which transformers
 * imposes on qwen2/qwen3 models anyway), ByteLevel pre-tokenizer and decoder, and the
 * special tokens <|endoftext|> (256, also the pad token), <|im_start|> (257) and <|im_end|> (258,
 * the eos token); vocabulary size 259 (TOK_BYTE_VOCAB). Its chat template is plain ChatML
 * without a default system prompt (rendered by the Jinja subset as transformers renders it).
 * Each file is written atomically. Returns 0, or -1 with `e` filled. */
enum { TOK_BYTE_VOCAB = 259, TOK_BYTE_EOS = 258 };
int tok_write_byte_level(const char *dir, rlvr_err *e);

/* ---- chat templates ----
 * Checkpoints ship a Jinja chat_template. rlvr recognises the templates users meet (ChatML as
 * in Qwen2.5 with or without a system prompt, Llama-3, SmolLM2, Zephyr/TinyLlama, DeepSeek-R1)
 * and renders them byte-identical to transformers' apply_chat_template(...,
 * add_generation_prompt=...). Other templates go through a small Jinja subset (jinja.c: for, if,
 * set, namespace, the usual expressions, filters and string methods); one outside the subset is
 * an error that says how to supply it: a family name, or a Lua function (tok_chat_render_lua). */
typedef struct tok_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8 */
} tok_message;

/* The chat template read from tokenizer_config.json / chat_template.jinja, or NULL. */
const char *tok_chat_template_text(const tok_tokenizer *t);

/* The family whose template this text is (by fingerprint), or NULL. */
const char *tok_chat_family_of(const char *template_text);

/* The recognised family of the tokenizer's template ("qwen2.5", "llama3", "smollm2", "zephyr",
 * "deepseek-r1"), or NULL when there is no template or it is not recognised. */
const char *tok_chat_family(const tok_tokenizer *t);

/* Renders messages with the tokenizer's template (recognised family, else the Jinja subset).
 * Returns a NUL-terminated string the caller frees, or NULL with `e` filled (no template, a
 * template outside the subset or one that raises, a message the renderer refuses, OOM). */
char *tok_chat_render(const tok_tokenizer *t, const tok_message *msgs, size_t n, int add_generation_prompt,
                      rlvr_err *e);

/* Renders with a named family instead of the tokenizer's own template (for a template given
 * by name in the config). bos/eos may be NULL (then ""). */
char *tok_chat_render_family(const char *family, const char *bos_token, const char *eos_token,
                             const tok_message *msgs, size_t n, int add_generation_prompt, rlvr_err *e);

/* A user template as a Lua function: the function at stack index `fn_index` of the box's state
 * is called (under the box's memory and instruction budgets) as fn(messages, opts) with
 * messages = { {role=..., content=...}, ... } and opts = { add_generation_prompt = bool,
 * bos_token = str, eos_token = str } (from `t`; "" when t is NULL or has none); it must return
 * a string. The function stays on the stack. */
char *tok_chat_render_lua(luabox *box, int fn_index, const tok_tokenizer *t, const tok_message *msgs, size_t n,
                          int add_generation_prompt, rlvr_err *e);

#endif
