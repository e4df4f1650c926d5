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

/* {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": ..., "use_regex": true} */
static cJSON *byte_level(int trim_offsets) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", 1);
    return o;
}

/* One added-token entry; `with_id` for tokenizer.json's list (tokenizer_config.json keys by id). */
static cJSON *added_token(int id, const char *content, int with_id) {
    cJSON *o = cJSON_CreateObject();
    if (with_id) cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static cJSON *tokenizer_json(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(added, added_token(256 + i, SPECIALS[i], 1));
    /* NFC, as Qwen2's tokenizer: transformers 5 loads a qwen2/qwen3 model directory's tokenizer
     * as Qwen2Tokenizer, which imposes NFC whatever tokenizer.json says; with NFC here every
     * reader (rlvr, tokenizers, AutoTokenizer for any architecture) gives the same ids. */
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "NFC");
    cJSON_AddItemToObject(root, "pre_tokenizer", byte_level(1));
    cJSON_AddItemToObject(root, "post_processor", byte_level(0));
    cJSON_AddItemToObject(root, "decoder", byte_level(1));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char ch[4];
        byte_char(b, ch);
        cJSON_AddNumberToObject(vocab, ch, b);
    }
    cJSON_AddArrayToObject(model, "merges");
    return root;
}

static cJSON *tokenizer_config_json(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "add_prefix_space", 0);
    cJSON *dec = cJSON_AddObjectToObject(root, "added_tokens_decoder");
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", 256 + i);
        cJSON_AddItemToObject(dec, key, added_token(256 + i, SPECIALS[i], 0));
    }
    cJSON *extra = cJSON_AddArrayToObject(root, "additional_special_tokens");
    cJSON_AddItemToArray(extra, cJSON_CreateString(SPECIALS[1]));
    cJSON_AddItemToArray(extra, cJSON_CreateString(SPECIALS[2]));
    cJSON_AddNullToObject(root, "bos_token");
    cJSON_AddStringToObject(root, "chat_template", BYTE_CHAT_TEMPLATE);
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", 0);
    cJSON_AddStringToObject(root, "eos_token", SPECIALS[2]);
    cJSON_AddStringToObject(root, "errors", "replace");
    cJSON_AddStringToObject(root, "pad_token", SPECIALS[0]);
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    cJSON_AddNullToObject(root, "unk_token");
    return root;
}

/* Prints `root` (freed here) and writes it atomically to dir/name. */
static int write_json(const char *dir, const char *name, cJSON *root, rlvr_err *e) {
    char *text = root ? cJSON_Print(root) : NULL;
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
    if (write_json(dir, "tokenizer.json", tokenizer_json(), e) != 0) return -1;
    return write_json(dir, "tokenizer_config.json", tokenizer_config_json(), e);
}
