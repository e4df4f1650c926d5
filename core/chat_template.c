/* chat_template.c - chat templates: recognising the Jinja templates checkpoints ship and
 * rendering them exactly as transformers' apply_chat_template does, plus user templates
 * given as Lua functions.
 *
 * Recognition is by fingerprint: FNV-1a-64 of the template text with surrounding ASCII
 * whitespace removed. Each recognised family has a renderer below that follows its template
 * statement by statement (the template is quoted above it); tests/fixtures/tokenizer/chat.jsonl
 * holds transformers' renderings they must equal byte for byte. */
#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fingerprint(const char *s) {
    size_t n = strlen(s);
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h;
}

typedef int (*render_fn)(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                         rlvr_err *e);

static int is(const char *a, const char *b) {
    return a && strcmp(a, b) == 0;
}

/* Qwen2.5 (no tools):
 *   system header: messages[0] if it is a system message, else "You are a helpful assistant."
 *   each message: user, a later system, or assistant -> <|im_start|>ROLE\nCONTENT<|im_end|>\n;
 *   tool -> grouped into one user turn of <tool_response> blocks; other roles render nothing. */
static int render_qwen25(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                         rlvr_err *e) {
    (void)bos, (void)eos, (void)e;
    sb_puts(out, "<|im_start|>system\n");
    sb_puts(out, is(m[0].role, "system") ? m[0].content : "You are a helpful assistant.");
    sb_puts(out, "<|im_end|>\n");
    for (size_t i = 0; i < n; i++) {
        const char *r = m[i].role;
        if (is(r, "user") || (is(r, "system") && i > 0) || is(r, "assistant")) {
            sb_printf(out, "<|im_start|>%s\n", r);
            sb_puts(out, m[i].content);
            sb_puts(out, "<|im_end|>\n");
        } else if (is(r, "tool")) {
            if (i == 0 || !is(m[i - 1].role, "tool")) sb_puts(out, "<|im_start|>user");
            sb_puts(out, "\n<tool_response>\n");
            sb_puts(out, m[i].content);
            sb_puts(out, "\n</tool_response>");
            if (i + 1 == n || !is(m[i + 1].role, "tool")) sb_puts(out, "<|im_end|>\n");
        }
    }
    if (agp) sb_puts(out, "<|im_start|>assistant\n");
    return 0;
}

/* Python's str.isspace, which Jinja's `trim` filter (str.strip) uses. */
static int py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static size_t dec1(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80 || n < 2) return *cp = c, 1;
    if (c < 0xE0) return *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2;
    if (c < 0xF0 || n < 4) return n >= 3 ? (*cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3) : (*cp = c, 1);
    return *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu), 4;
}

void tok_py_strip(const char *s, size_t n, sbuf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, last_end = 0;
    int seen = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = dec1(u + i, n - i, &cp);
        if (!py_isspace(cp)) {
            if (!seen) a = i, seen = 1;
            last_end = i + l;
        }
        i += l;
    }
    if (seen) sb_putn(out, s + a, last_end - a);
}

static void put_trimmed(sbuf *out, const char *s) {
    tok_py_strip(s, strlen(s), out);
}

/* Llama-3:
 *   {% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] +
 *   '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}
 *   {% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
 *   {% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
 * (`| trim` binds to message['content'] only.) */
static int render_llama3(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                         rlvr_err *e) {
    (void)eos, (void)e;
    for (size_t i = 0; i < n; i++) {
        if (i == 0) sb_puts(out, bos);
        sb_puts(out, "<|start_header_id|>");
        sb_puts(out, m[i].role);
        sb_puts(out, "<|end_header_id|>\n\n");
        put_trimmed(out, m[i].content);
        sb_puts(out, "<|eot_id|>");
    }
    if (agp) sb_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* SmolLM2: ChatML with a default system prompt when the first message is not a system one. */
static int render_smollm2(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                          rlvr_err *e) {
    (void)bos, (void)eos, (void)e;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && !is(m[0].role, "system"))
            sb_puts(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                         "Face<|im_end|>\n");
        sb_printf(out, "<|im_start|>%s\n", m[i].role);
        sb_puts(out, m[i].content);
        sb_puts(out, "<|im_end|>\n");
    }
    if (agp) sb_puts(out, "<|im_start|>assistant\n");
    return 0;
}

/* Zephyr (TinyLlama-Chat), rendered with trim_blocks/lstrip_blocks: each known role gives
 * "<|role|>\n" + content + eos_token + "\n"; after the last message, "<|assistant|>\n" when a
 * generation prompt is asked for. Other roles render nothing. */
static int render_zephyr(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                         rlvr_err *e) {
    (void)bos, (void)e;
    for (size_t i = 0; i < n; i++) {
        const char *r = m[i].role;
        if (is(r, "user") || is(r, "system") || is(r, "assistant")) {
            sb_printf(out, "<|%s|>\n", r);
            sb_puts(out, m[i].content);
            sb_puts(out, eos);
            sb_puts(out, "\n");
        }
        if (i + 1 == n && agp) sb_puts(out, "<|assistant|>\n");
    }
    return 0;
}

/* DeepSeek-R1: bos + the last system message's content, then <｜User｜>content for users and
 * <｜Assistant｜>content<｜end▁of▁sentence｜> for assistants with anything up to the last
 * </think> removed; <｜Assistant｜> as the generation prompt. Tool messages and tool calls
 * are not rendered by rlvr: they are refused with an error. */
static int render_deepseek_r1(const char *bos, const char *eos, const tok_message *m, size_t n, int agp, sbuf *out,
                              rlvr_err *e) {
    (void)eos;
    const char *system = "";
    for (size_t i = 0; i < n; i++) {
        if (is(m[i].role, "system")) system = m[i].content;
        else if (!is(m[i].role, "user") && !is(m[i].role, "assistant"))
            return err_set(e, "chat template deepseek-r1: message %zu has role '%s'; rlvr renders system, user and "
                              "assistant messages with it (give a Lua template for tool messages)", i + 1, m[i].role);
    }
    sb_puts(out, bos);
    sb_puts(out, system);
    for (size_t i = 0; i < n; i++) {
        if (is(m[i].role, "user")) {
            sb_puts(out, "<\xEF\xBD\x9CUser\xEF\xBD\x9C>");
            sb_puts(out, m[i].content);
        } else if (is(m[i].role, "assistant")) {
            const char *c = m[i].content, *p;
            while ((p = strstr(c, "</think>")) != NULL) c = p + 8; /* content.split('</think>')[-1] */
            sb_puts(out, "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");
            sb_puts(out, c);
            sb_puts(out, "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
        }
    }
    if (agp) sb_puts(out, "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");
    return 0;
}

static const struct family {
    const char *name;
    uint64_t fingerprint; /* of the template text shipped with the checkpoints */
    render_fn render;
} FAMILIES[] = {
    {"qwen2.5", 0x16bc91fc7006a16dull, render_qwen25},
    {"llama3", 0x0e60067a5537498eull, render_llama3},
    {"smollm2", 0x45ec583d4d25bc3aull, render_smollm2},
    {"zephyr", 0xcd8b49000db02c2cull, render_zephyr},
    {"deepseek-r1", 0x9c0722939a9b83ecull, render_deepseek_r1},
};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

static const struct family *family_by_name(const char *name) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (!strcmp(FAMILIES[i].name, name)) return &FAMILIES[i];
    return NULL;
}

const char *tok_chat_family_of(const char *template_text) {
    uint64_t h = fingerprint(template_text);
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (FAMILIES[i].fingerprint == h) return FAMILIES[i].name;
    return NULL;
}

const char *tok_chat_family(const tok_tokenizer *t) {
    const char *text = tok_chat_template_text(t);
    return text ? tok_chat_family_of(text) : NULL;
}

static int check_messages(const tok_message *msgs, size_t n, rlvr_err *e) {
    if (n == 0) return err_set(e, "chat template: no messages");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return err_set(e, "chat template: message %zu has no %s", i + 1, msgs[i].role ? "content" : "role");
    return 0;
}

char *tok_chat_render_family(const char *family, const char *bos_token, const char *eos_token,
                             const tok_message *msgs, size_t n, int add_generation_prompt, rlvr_err *e) {
    const struct family *f = family_by_name(family);
    if (!f) {
        err_set(e, "chat template family '%s' is not known (rlvr renders qwen2.5, llama3, smollm2, zephyr, "
                   "deepseek-r1)", family);
        return NULL;
    }
    if (check_messages(msgs, n, e) != 0) return NULL;
    sbuf out;
    sb_init(&out);
    if (f->render(bos_token ? bos_token : "", eos_token ? eos_token : "", msgs, n, add_generation_prompt, &out, e) != 0) {
        sb_free(&out);
        return NULL;
    }
    if (!out.s) sb_puts(&out, "");
    char *s = sb_take(&out);
    if (!s) err_set(e, "out of memory");
    return s;
}

char *tok_chat_render(const tok_tokenizer *t, const tok_message *msgs, size_t n, int add_generation_prompt,
                      rlvr_err *e) {
    const char *text = tok_chat_template_text(t);
    if (!text) {
        err_set(e, "the tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja); name a "
                   "family (qwen2.5, llama3, smollm2, zephyr, deepseek-r1) or give the template as a Lua "
                   "function(messages, opts) that returns the prompt");
        return NULL;
    }
    const char *fam = tok_chat_family_of(text);
    if (!fam) {
        if (check_messages(msgs, n, e) != 0) return NULL;
        char *s = tok_jinja_render(text, tok_bos_token(t), tok_eos_token(t), msgs, n, add_generation_prompt, e);
        if (!s)
            err_prefix(e, "the tokenizer's chat_template is not one rlvr recognises (fingerprint %016llx) and rlvr's "
                          "Jinja subset cannot render it; name a family (qwen2.5, llama3, smollm2, zephyr, "
                          "deepseek-r1) if it renders the same, or give the template as a Lua function(messages, "
                          "opts) that returns the prompt",
                       (unsigned long long)fingerprint(text));
        return s;
    }
    return tok_chat_render_family(fam, tok_bos_token(t), tok_eos_token(t), msgs, n, add_generation_prompt, e);
}

char *tok_chat_render_lua(luabox *box, int fn_index, const tok_tokenizer *t, const tok_message *msgs, size_t n,
                          int add_generation_prompt, rlvr_err *e) {
    if (check_messages(msgs, n, e) != 0) return NULL;
    lua_State *L = luabox_state(box);
    int fn = lua_absindex(L, fn_index);
    if (!lua_isfunction(L, fn)) {
        err_set(e, "chat template: expected a Lua function(messages, opts), got a %s", luaL_typename(L, fn));
        return NULL;
    }
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) {
        err_set(e, "chat template: Lua stack overflow");
        return NULL;
    }
    lua_pushvalue(L, fn);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, msgs[i].role);
        lua_setfield(L, -2, "role");
        lua_pushstring(L, msgs[i].content);
        lua_setfield(L, -2, "content");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, add_generation_prompt);
    lua_setfield(L, -2, "add_generation_prompt");
    lua_pushstring(L, t && tok_bos_token(t) ? tok_bos_token(t) : "");
    lua_setfield(L, -2, "bos_token");
    lua_pushstring(L, t && tok_eos_token(t) ? tok_eos_token(t) : "");
    lua_setfield(L, -2, "eos_token");
    if (luabox_pcall(box, 2, 1, e) != 0) {
        err_prefix(e, "chat template function");
        lua_settop(L, top);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        err_set(e, "chat template function returned a %s, not a string", luaL_typename(L, -1));
        lua_settop(L, top);
        return NULL;
    }
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = 0;
    } else err_set(e, "out of memory");
    lua_settop(L, top);
    return copy;
}
