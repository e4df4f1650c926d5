/* tokenizer_bytes.c - the byte-level tokenizer of models initialized from scratch: 256 byte
 * tokens (id b is the byte b), no merges, and three ChatML special tokens, written as a
 * Hugging Face tokenizer directory that rlvr and transformers both load. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* Plain ChatML with no default system prompt: a from-scratch byte model pays one id per byte,
 * and Qwen2.5's template would put "You are a helpful assistant." (and its header) before
 * every prompt. rlvr renders it through the Jinja subset; transformers renders it the same
 * (tests/reference/check_byte_tokenizer.py). */
#define BYTE_CHAT_TEMPLATE                                                                                   \
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "      \
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"    \
    "{% endif %}"

static const char *const SPECIALS[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}; /* ids 256, 257, 258 */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
 * themselves; the other 68 bytes, in increasing order, take U+0100, U+0101, ... Writes the
 * UTF-8 of byte b's character to out (NUL-terminated, at most 3 bytes). */
static void byte_char(int b, char out[4]) {
    unsigned cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp = (unsigned)b;
    else {
        unsigned k = 0; /* how many non-printable bytes come before b */
        for (int c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

/* The JSON is built with a sticky failure flag (`ok`): cJSON's Add functions return NULL when an
 * allocation fails and do nothing when given a NULL container, so one check at the end tells
 * whether the tree is complete (never write half a tokenizer). */
static cJSON *add(cJSON *parent, const char *key, cJSON *item, int *ok) {
    int added = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!item || !added) {
        if (!added) cJSON_Delete(item);
        *ok = 0;
        return NULL;
    }
    return item;
}

static void add_bool(cJSON *o, const char *key, int v, int *ok) {
    add(o, key, cJSON_CreateBool(v), ok);
}
static void add_str(cJSON *o, const char *key, const char *v, int *ok) {
    add(o, key, cJSON_CreateString(v), ok);
}
static void add_null(cJSON *o, const char *key, int *ok) {
    add(o, key, cJSON_CreateNull(), ok);
}
static void add_num(cJSON *o, const char *key, double v, int *ok) {
    add(o, key, cJSON_CreateNumber(v), ok);
}

/* {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": ..., "use_regex": true} */
static void byte_level(cJSON *parent, const char *key, int trim_offsets, int *ok) {
    cJSON *o = add(parent, key, cJSON_CreateObject(), ok);
    add_str(o, "type", "ByteLevel", ok);
    add_bool(o, "add_prefix_space", 0, ok);
    add_bool(o, "trim_offsets", trim_offsets, ok);
    add_bool(o, "use_regex", 1, ok);
}

/* One added-token entry; `with_id` for tokenizer.json's list (tokenizer_config.json keys by id). */
static void added_token(cJSON *parent, const char *key, int id, const char *content, int with_id, int *ok) {
    cJSON *o = add(parent, key, cJSON_CreateObject(), ok);
    if (with_id) add_num(o, "id", id, ok);
    add_str(o, "content", content, ok);
    add_bool(o, "single_word", 0, ok);
    add_bool(o, "lstrip", 0, ok);
    add_bool(o, "rstrip", 0, ok);
    add_bool(o, "normalized", 0, ok);
    add_bool(o, "special", 1, ok);
}

static cJSON *tokenizer_json(int *ok) {
    cJSON *root = cJSON_CreateObject();
    if (!root) *ok = 0;
    add_str(root, "version", "1.0", ok);
    add_null(root, "truncation", ok);
    add_null(root, "padding", ok);
    cJSON *added = add(root, "added_tokens", cJSON_CreateArray(), ok);
    for (int i = 0; i < 3; i++) added_token(added, NULL, 256 + i, SPECIALS[i], 1, ok);
    /* NFC, as Qwen2's tokenizer: transformers 5 loads a qwen2/qwen3 model directory's tokenizer
     * as Qwen2Tokenizer, which imposes NFC whatever tokenizer.json says; with NFC here every
     * reader (rlvr, tokenizers, AutoTokenizer for any architecture) gives the same ids. */
    cJSON *norm = add(root, "normalizer", cJSON_CreateObject(), ok);
    add_str(norm, "type", "NFC", ok);
    byte_level(root, "pre_tokenizer", 1, ok);
    byte_level(root, "post_processor", 0, ok);
    byte_level(root, "decoder", 1, ok);
    cJSON *model = add(root, "model", cJSON_CreateObject(), ok);
    add_str(model, "type", "BPE", ok);
    add_null(model, "dropout", ok);
    add_null(model, "unk_token", ok);
    add_null(model, "continuing_subword_prefix", ok);
    add_null(model, "end_of_word_suffix", ok);
    add_bool(model, "fuse_unk", 0, ok);
    add_bool(model, "byte_fallback", 0, ok);
    add_bool(model, "ignore_merges", 0, ok);
    cJSON *vocab = add(model, "vocab", cJSON_CreateObject(), ok);
    for (int b = 0; b < 256; b++) {
        char ch[4];
        byte_char(b, ch);
        add_num(vocab, ch, b, ok);
    }
    add(model, "merges", cJSON_CreateArray(), ok);
    return root;
}

static cJSON *tokenizer_config_json(int *ok) {
    cJSON *root = cJSON_CreateObject();
    if (!root) *ok = 0;
    add_bool(root, "add_prefix_space", 0, ok);
    cJSON *dec = add(root, "added_tokens_decoder", cJSON_CreateObject(), ok);
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", 256 + i);
        added_token(dec, key, 256 + i, SPECIALS[i], 0, ok);
    }
    cJSON *extra = add(root, "additional_special_tokens", cJSON_CreateArray(), ok);
    add_str(extra, NULL, SPECIALS[1], ok);
    add_str(extra, NULL, SPECIALS[2], ok);
    add_null(root, "bos_token", ok);
    add_str(root, "chat_template", BYTE_CHAT_TEMPLATE, ok);
    add_bool(root, "clean_up_tokenization_spaces", 0, ok);
    add_str(root, "eos_token", SPECIALS[2], ok);
    add_str(root, "errors", "replace", ok);
    add_str(root, "pad_token", SPECIALS[0], ok);
    add_str(root, "tokenizer_class", "PreTrainedTokenizerFast", ok);
    add_null(root, "unk_token", ok);
    return root;
}

/* Prints `root` (freed here; `ok` says whether it was built whole) and writes it atomically
 * to dir/name. */
static int write_json(const char *dir, const char *name, cJSON *root, int ok, rlvr_err *e) {
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    char *path = util_path_join(dir, name);
    int rc;
    if (!text || !path) rc = err_set(e, "out of memory");
    else rc = util_write_file_atomic(path, text, strlen(text), e);
    free(text);
    free(path);
    return rc;
}

int tok_write_byte_level(const char *dir, rlvr_err *e) {
    if (util_mkdir_p(dir, e) != 0) return -1;
    int ok = 1;
    cJSON *tj = tokenizer_json(&ok);
    if (write_json(dir, "tokenizer.json", tj, ok, e) != 0) return -1;
    ok = 1;
    cJSON *cfg = tokenizer_config_json(&ok);
    return write_json(dir, "tokenizer_config.json", cfg, ok, e);
}
