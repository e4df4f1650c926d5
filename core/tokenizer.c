/* tokenizer.c - tokenizer.json loading, encoding (added tokens, normalizers, pre-tokenizers,
 * BPE) and decoding, following HF `tokenizers` step for step so the ids are identical.
 *
 * The encode pipeline is HF's: split the raw text on non-normalized added tokens; normalize
 * each remaining piece and split it on normalized added tokens; pre-tokenize (a chain of
 * splitters, run recursively so no piece list is ever materialised); BPE each word. For
 * byte-level tokenizers the vocabulary is keyed by raw bytes (each "Ġ"-style character
 * mapped back to its byte at load time), so words go from bytes to ids with no character
 * mapping on the hot path. Chat templates live in chat_template.c. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------ hashing and maps */

static uint64_t hash_bytes(const void *p, size_t n) {
    /* A small multiply-xorshift hash over 8-byte blocks: keys are short (words, tokens). */
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8, n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)s[i] << (8 * i);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return h;
}

/* Open-addressing map from byte strings (not owned: they live in the tokenizer's arena) to ids. */
typedef struct sm_ent {
    const char *key;
    uint32_t len;
    int32_t id;
    uint32_t h32; /* the hash's high half: most mismatches end here, without memcmp */
} sm_ent;

typedef struct strmap {
    sm_ent *ents;
    size_t mask, n;
} strmap;

static int sm_init(strmap *m, size_t n_expected) {
    size_t cap = 16;
    while (cap < n_expected * 2) cap <<= 1;
    m->ents = calloc(cap, sizeof *m->ents);
    m->mask = cap - 1;
    m->n = 0;
    return m->ents ? 0 : -1;
}

static int32_t sm_get(const strmap *m, const char *k, size_t n) {
    if (!m->ents) return -1;
    uint64_t h = hash_bytes(k, n);
    uint32_t h32 = (uint32_t)(h >> 32);
    size_t i = h & m->mask;
    for (;;) {
        const sm_ent *e = &m->ents[i];
        if (!e->key) return -1;
        if (e->h32 == h32 && e->len == n && memcmp(e->key, k, n) == 0) return e->id;
        i = (i + 1) & m->mask;
    }
}

/* Inserts or overwrites (a later duplicate wins, as in a JSON object read into a HashMap). */
static void sm_put(strmap *m, const char *k, size_t n, int32_t id) {
    uint64_t h = hash_bytes(k, n);
    size_t i = h & m->mask;
    for (;;) {
        sm_ent *e = &m->ents[i];
        if (!e->key) {
            e->key = k, e->len = (uint32_t)n, e->id = id, e->h32 = (uint32_t)(h >> 32);
            m->n++;
            return;
        }
        if (e->len == n && memcmp(e->key, k, n) == 0) {
            e->id = id;
            return;
        }
        i = (i + 1) & m->mask;
    }
}

/* Merges: (left id, right id) -> (rank, merged id). */
typedef struct mg_ent {
    uint64_t key; /* (left << 32 | right) + 1, so 0 means empty */
    int32_t rank, new_id;
} mg_ent;

typedef struct mergemap {
    mg_ent *ents;
    size_t mask;
} mergemap;

static inline size_t mg_slot(uint64_t key, size_t mask) {
    /* splitmix64's finalizer: both ids must reach the low bits the mask keeps */
    key ^= key >> 30;
    key *= 0xBF58476D1CE4E5B9ull;
    key ^= key >> 27;
    key *= 0x94D049BB133111EBull;
    key ^= key >> 31;
    return (size_t)key & mask;
}

static inline const mg_ent *mg_get(const mergemap *m, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = mg_slot(key, m->mask);
    for (;;) {
        const mg_ent *e = &m->ents[i];
        if (e->key == key) return e;
        if (e->key == 0) return NULL;
        i = (i + 1) & m->mask;
    }
}

/* Returns 1 if the pair was already present (HF keeps the first rank). */
static int mg_put(mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = mg_slot(key, m->mask);
    for (;;) {
        mg_ent *e = &m->ents[i];
        if (e->key == key) return 1;
        if (e->key == 0) {
            e->key = key, e->rank = rank, e->new_id = new_id;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
}

/* ------------------------------------------------------------------ arena */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

static char *arena_alloc(arena_block **head, size_t n) {
    arena_block *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b, nb->used = 0, nb->cap = cap;
        *head = nb;
        b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_dup(arena_block **head, const char *s, size_t n) {
    char *p = arena_alloc(head, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ------------------------------------------------------------------ UTF-8 helpers */

/* sb_putn for pieces that may be empty and unallocated (s == NULL, n == 0). */
static inline void put_n(sbuf *b, const char *s, size_t n) {
    sb_putn(b, s ? s : "", n);
}

/* Decodes one code point at s[0..n); returns its length, or 0 if invalid (input here is
 * always valid: tok_encode sanitises first). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    if (c < 0xE0 && n >= 2) return *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2;
    if (c < 0xF0 && n >= 3) return *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3;
    if (n >= 4)
        return *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu), 4;
    return 0;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void tok_utf8_lossy(const char *str, size_t n, sbuf *out) {
    /* Each maximal subpart of an ill-formed sequence becomes one U+FFFD (Unicode 3.9 "best
     * practice", which Python's errors='replace' and Rust's from_utf8_lossy both follow). */
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else need = 0;
        size_t k = 0;
        if (need) {
            while (k < need && i + 1 + k < n) {
                unsigned d = s[i + 1 + k];
                unsigned l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
                if (d < l || d > h) break;
                k++;
            }
            if (k == need) {
                i += 1 + need;
                continue;
            }
        }
        put_n(out, str + run, i - run);
        put_n(out, "\xEF\xBF\xBD", 3);
        i += 1 + k;
        run = i;
    }
    put_n(out, str + run, n - run);
}

/* Rust's char::is_whitespace (Unicode White_Space), used by lstrip/rstrip of added tokens. */
static int is_unicode_ws(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Rust regex's Unicode \w, which HF's single_word check uses: Alphabetic (letters, letter
 * numbers, and the Other_Alphabetic circled/squared letters), marks, decimal digits, connector
 * punctuation and the join controls. */
static int is_word_char(uint32_t c) {
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC: return 1;
    default:
        return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
               (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
    }
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes
 * to U+0100 upward in byte order. */
static void byte_level_table(uint32_t byte_to_cp[256]) {
    uint32_t extra = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) byte_to_cp[b] = (uint32_t)b;
        else byte_to_cp[b] = 256 + extra++;
    }
}

/* ------------------------------------------------------------------ the tokenizer */

enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWERCASE, NORM_PREPEND, NORM_REPLACE };

typedef struct normalizer {
    int type;
    char *a, *b; /* Prepend: a = text; Replace: a = pattern, b = content */
} normalizer;

enum { PT_SPLIT, PT_BYTELEVEL, PT_METASPACE };
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

typedef struct pretok {
    int type;
    pcre2_code *re; /* Split, ByteLevel with use_regex */
    int behavior, invert;
    int add_prefix_space; /* ByteLevel */
    char repl[8];         /* Metaspace replacement (UTF-8) */
    size_t repl_len;
    int prepend_scheme, split;
} pretok;

enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };

typedef struct decoder_step {
    int type;
    char *a, *b;          /* Replace: pattern, content; Strip: a = the char (UTF-8) */
    int start, stop;      /* Strip */
    int prepend_scheme;   /* Metaspace */
    char repl[8];
    size_t repl_len;
} decoder_step;

typedef struct added_token {
    const char *content;
    size_t len;
    int32_t id;
    int special, normalized, lstrip, rstrip, single_word;
} added_token;

/* Added-token matcher for one pass: tokens bucketed by first byte, longest first. */
typedef struct added_set {
    uint8_t first[256];
    int32_t *by_first[256]; /* indices into t->added, longest first, -1 terminated */
} added_set;

#define CACHE_SLOTS (1u << 15)
#define CACHE_KEY 38
#define CACHE_IDS 20
typedef struct cache_ent {
    uint64_t h;
    uint8_t klen, nids;
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} cache_ent;

struct tok_tokenizer {
    arena_block *arena;
    int32_t n_vocab;      /* max id + 1 */
    const char **tok_str; /* [n_vocab] the token as written in tokenizer.json (NULL for holes) */
    uint32_t *tok_len;
    uint8_t *tok_flags; /* [n_vocab] TOKF_* */
    strmap by_str;      /* model vocab: token string -> id */
    strmap by_raw;      /* byte-level: raw bytes -> id (the key ignore_merges and the cache use) */
    strmap added_by_str;
    mergemap merges;

    int byte_level;        /* a ByteLevel pre-tokenizer is present: words are raw bytes */
    int32_t byte_id[256];  /* byte-level: the id of each byte's character; -1 if absent */
    int32_t fallback_id[256]; /* byte_fallback: the id of "<0xNN>"; -1 if absent */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;

    added_token *added;
    size_t n_added;
    added_set added_raw, added_norm; /* non-normalized / normalized tokens */

    normalizer *norms;
    size_t n_norms;
    pretok *pretoks;
    size_t n_pretoks;
    decoder_step *decs;
    size_t n_decs;

    int32_t *post_single; /* TemplateProcessing "single": ids, with -1 standing for the sequence */
    size_t n_post_single;

    char *bos_token, *eos_token, *chat_template;

    cache_ent *cache;
    pthread_mutex_t cache_lock;
};

enum { TOKF_ADDED = 1, TOKF_SPECIAL = 2 };

/* ------------------------------------------------------------------ loading */

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static int jint(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

static char *xstrdup(const char *s) {
    return s ? util_strdup(s) : NULL;
}

/* Compiles a tokenizer regex with full Unicode classes. Oniguruma (HF's engine) counts
 * U+0085 as \s; PCRE2 10.42's \s under UCP does not, so \s gains it explicitly. */
static pcre2_code *compile_regex(const char *pat, int literal, rlvr_err *e) {
    sbuf p;
    sb_init(&p);
    if (literal) sb_puts(&p, pat);
    else {
        int in_class = 0;
        for (const char *c = pat; *c; c++) {
            if (*c == '\\' && c[1]) {
                if (c[1] == 's') sb_puts(&p, in_class ? "\\s\\x{85}" : "[\\s\\x{85}]");
                else if (c[1] == 'S' && !in_class) sb_puts(&p, "[^\\s\\x{85}]");
                else put_n(&p, c, 2);
                c++;
                continue;
            }
            if (*c == '[' && !in_class) {
                in_class = 1;
                sb_putc(&p, *c);
                if (c[1] == '^') sb_putc(&p, *++c);
                if (c[1] == ']') sb_putc(&p, *++c);
                continue;
            }
            if (*c == ']' && in_class) in_class = 0;
            sb_putc(&p, *c);
        }
    }
    if (p.oom) {
        sb_free(&p);
        err_set(e, "out of memory");
        return NULL;
    }
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p.s, p.len, opts, &errcode, &erroff, NULL);
    sb_free(&p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        err_set(e, "pre-tokenizer regex '%s': %s at offset %zu", pat, (char *)msg, (size_t)erroff);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return re;
}

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int prepend_scheme_of(const cJSON *o) {
    const char *ps = jstr(o, "prepend_scheme");
    if (ps) return !strcmp(ps, "first") ? PREPEND_FIRST : !strcmp(ps, "never") ? PREPEND_NEVER : PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
}

static int set_repl(const cJSON *o, char repl[8], size_t *len, rlvr_err *e) {
    const char *r = jstr(o, "replacement");
    if (!r) r = "\xE2\x96\x81";
    size_t n = strlen(r);
    if (n == 0 || n > 4) return err_set(e, "Metaspace replacement '%s' is not one character", r);
    memcpy(repl, r, n);
    *len = n;
    return 0;
}

static int load_pretok(tok_tokenizer *t, const cJSON *o, rlvr_err *e) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = jstr(o, "type");
    if (!type) return err_set(e, "pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) if (load_pretok(t, it, e) != 0) return -1;
        return 0;
    }
    pretok *grown = realloc(t->pretoks, (t->n_pretoks + 1) * sizeof *grown);
    if (!grown) return err_set(e, "out of memory");
    t->pretoks = grown;
    pretok *p = &t->pretoks[t->n_pretoks];
    memset(p, 0, sizeof *p);
    if (!strcmp(type, "ByteLevel")) {
        p->type = PT_BYTELEVEL;
        p->add_prefix_space = jbool(o, "add_prefix_space", 1);
        if (jbool(o, "use_regex", 1) && !(p->re = compile_regex(GPT2_PATTERN, 0, e))) return -1;
        t->byte_level = 1;
    } else if (!strcmp(type, "Split")) {
        p->type = PT_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        if (!rx && !lit) return err_set(e, "Split pre-tokenizer without a Regex or String pattern");
        if (!(p->re = compile_regex(rx ? rx : lit, rx == NULL, e))) return -1;
        const char *beh = jstr(o, "behavior");
        if (!beh || !strcmp(beh, "Isolated")) p->behavior = SPLIT_ISOLATED;
        else if (!strcmp(beh, "Removed")) p->behavior = SPLIT_REMOVED;
        else if (!strcmp(beh, "MergedWithPrevious")) p->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) p->behavior = SPLIT_MERGED_NEXT;
        else {
            pcre2_code_free(p->re);
            return err_set(e, "Split pre-tokenizer behavior '%s' is not supported (Isolated, Removed, "
                              "MergedWithPrevious, MergedWithNext are)", beh);
        }
        p->invert = jbool(o, "invert", 0);
    } else if (!strcmp(type, "Metaspace")) {
        p->type = PT_METASPACE;
        if (set_repl(o, p->repl, &p->repl_len, e) != 0) return -1;
        p->prepend_scheme = prepend_scheme_of(o);
        p->split = jbool(o, "split", 1);
    } else {
        return err_set(e, "pre-tokenizer type '%s' is not supported (rlvr reads ByteLevel, Split, Metaspace "
                          "and Sequence of them)", type);
    }
    t->n_pretoks++;
    return 0;
}

static int load_normalizer(tok_tokenizer *t, const cJSON *o, rlvr_err *e) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = jstr(o, "type");
    if (!type) return err_set(e, "normalizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "normalizers")) {
            if (load_normalizer(t, it, e) != 0) return -1;
        }
        return 0;
    }
    normalizer n = {0};
    if (!strcmp(type, "NFC")) n.type = NORM_NFC;
    else if (!strcmp(type, "NFD")) n.type = NORM_NFD;
    else if (!strcmp(type, "NFKC")) n.type = NORM_NFKC;
    else if (!strcmp(type, "NFKD")) n.type = NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) n.type = NORM_LOWERCASE;
    else if (!strcmp(type, "Prepend")) {
        n.type = NORM_PREPEND;
        if (!(n.a = xstrdup(jstr(o, "prepend")))) return err_set(e, "Prepend normalizer without 'prepend'");
    } else if (!strcmp(type, "Replace")) {
        n.type = NORM_REPLACE;
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
        const char *content = jstr(o, "content");
        if (!pat || !*pat || !content)
            return err_set(e, "Replace normalizer: only a non-empty String pattern is supported");
        n.a = xstrdup(pat), n.b = xstrdup(content);
    } else {
        return err_set(e, "normalizer type '%s' is not supported (rlvr reads NFC, NFD, NFKC, NFKD, Lowercase, "
                          "Prepend, Replace and Sequence of them)", type);
    }
    normalizer *grown = realloc(t->norms, (t->n_norms + 1) * sizeof *grown);
    if (!grown) {
        free(n.a), free(n.b);
        return err_set(e, "out of memory");
    }
    t->norms = grown;
    t->norms[t->n_norms++] = n;
    return 0;
}

static int load_decoder(tok_tokenizer *t, const cJSON *o, rlvr_err *e) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = jstr(o, "type");
    if (!type) return err_set(e, "decoder without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "decoders")) {
            if (load_decoder(t, it, e) != 0) return -1;
        }
        return 0;
    }
    decoder_step d = {0};
    if (!strcmp(type, "ByteLevel")) d.type = DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d.type = DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d.type = DEC_FUSE;
    else if (!strcmp(type, "Replace")) {
        d.type = DEC_REPLACE;
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
        const char *content = jstr(o, "content");
        if (!pat || !*pat || !content) return err_set(e, "Replace decoder: only a non-empty String pattern is supported");
        d.a = xstrdup(pat), d.b = xstrdup(content);
    } else if (!strcmp(type, "Strip")) {
        d.type = DEC_STRIP;
        const char *c = jstr(o, "content");
        if (!c || !*c) return err_set(e, "Strip decoder without content");
        d.a = xstrdup(c);
        d.start = jint(o, "start", 0), d.stop = jint(o, "stop", 0);
    } else if (!strcmp(type, "Metaspace")) {
        d.type = DEC_METASPACE;
        if (set_repl(o, d.repl, &d.repl_len, e) != 0) return -1;
        d.prepend_scheme = prepend_scheme_of(o);
    } else {
        return err_set(e, "decoder type '%s' is not supported (rlvr reads ByteLevel, ByteFallback, Fuse, Replace, "
                          "Strip, Metaspace and Sequence of them)", type);
    }
    decoder_step *grown = realloc(t->decs, (t->n_decs + 1) * sizeof *grown);
    if (!grown) {
        free(d.a), free(d.b);
        return err_set(e, "out of memory");
    }
    t->decs = grown;
    t->decs[t->n_decs++] = d;
    return 0;
}

static int load_post(tok_tokenizer *t, const cJSON *o, rlvr_err *e) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = jstr(o, "type");
    if (!type) return err_set(e, "post_processor without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "processors")) {
            if (load_post(t, it, e) != 0) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0; /* only moves offsets; ids are unchanged */
    if (strcmp(type, "TemplateProcessing") != 0)
        return err_set(e, "post_processor type '%s' is not supported (rlvr reads TemplateProcessing, ByteLevel and "
                          "Sequence of them)", type);
    if (t->post_single) return err_set(e, "post_processor: more than one TemplateProcessing");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    size_t cap = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) cap += 1;
    cJSON_ArrayForEach(it, specials) cap += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(it, "ids"));
    t->post_single = calloc(cap + 1, sizeof *t->post_single);
    if (!t->post_single) return err_set(e, "out of memory");
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            t->post_single[t->n_post_single++] = -1;
        } else if (sp) {
            const char *name = jstr(sp, "id");
            const cJSON *entry = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            if (!entry) return err_set(e, "TemplateProcessing: special token '%s' not in special_tokens", name ? name : "?");
            const cJSON *id;
            cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(entry, "ids")) {
                if (!cJSON_IsNumber(id)) return err_set(e, "TemplateProcessing: '%s' has a non-numeric id", name);
                t->post_single[t->n_post_single++] = (int32_t)id->valueint;
            }
        } else {
            return err_set(e, "TemplateProcessing: an item is neither SpecialToken nor Sequence");
        }
    }
    return 0;
}


static int build_added_set(tok_tokenizer *t, added_set *s, int normalized, rlvr_err *e) {
    size_t counts[256] = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].normalized != normalized || t->added[i].len == 0) continue;
        counts[(unsigned char)t->added[i].content[0]]++;
    }
    for (int b = 0; b < 256; b++) {
        if (!counts[b]) continue;
        s->first[b] = 1;
        s->by_first[b] = malloc((counts[b] + 1) * sizeof(int32_t));
        if (!s->by_first[b]) return err_set(e, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < t->n_added; i++) {
            const added_token *a = &t->added[i];
            if (a->normalized != normalized || a->len == 0 || (unsigned char)a->content[0] != b) continue;
            /* insertion by length, longest first: leftmost-longest matching takes the first hit */
            size_t j = k++;
            while (j > 0 && t->added[s->by_first[b][j - 1]].len < a->len) {
                s->by_first[b][j] = s->by_first[b][j - 1];
                j--;
            }
            s->by_first[b][j] = (int32_t)i;
        }
        s->by_first[b][k] = -1;
    }
    return 0;
}

static int grow_vocab(tok_tokenizer *t, int32_t n, rlvr_err *e) {
    if (n <= t->n_vocab) return 0;
    const char **s = realloc(t->tok_str, (size_t)n * sizeof *s);
    if (s) t->tok_str = s;
    uint32_t *l = realloc(t->tok_len, (size_t)n * sizeof *l);
    if (l) t->tok_len = l;
    uint8_t *f = realloc(t->tok_flags, (size_t)n);
    if (f) t->tok_flags = f;
    if (!s || !l || !f) return err_set(e, "out of memory");
    for (int32_t i = t->n_vocab; i < n; i++) t->tok_str[i] = NULL, t->tok_len[i] = 0, t->tok_flags[i] = 0;
    t->n_vocab = n;
    return 0;
}

/* Converts a byte-level token string ("Ġthe") to its raw bytes; -1 if a character is not one
 * of the 256 byte characters (such a token can never come out of byte-level BPE). */
static long byte_level_to_raw(const int32_t *cp_to_byte, const char *s, size_t n, char *out) {
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l || cp >= 324 || cp_to_byte[cp] < 0) return -1;
        out[k++] = (char)cp_to_byte[cp];
        i += l;
    }
    return (long)k;
}

static int load_model(tok_tokenizer *t, const cJSON *model, rlvr_err *e) {
    const char *type = jstr(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (type && strcmp(type, "BPE") != 0)
        return err_set(e, "model type '%s' is not supported (rlvr reads BPE models)", type);
    if (!type && !cJSON_IsArray(merges))
        return err_set(e, "model has no type and no merges: only BPE models are supported");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return err_set(e, "BPE model without vocab or merges");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return err_set(e, "BPE dropout is not supported");
    const char *csp = jstr(model, "continuing_subword_prefix"), *eows = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eows && *eows))
        return err_set(e, "BPE continuing_subword_prefix/end_of_word_suffix are not supported");
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);

    int n = cJSON_GetArraySize(vocab);
    if (sm_init(&t->by_str, (size_t)n) != 0) return err_set(e, "out of memory");
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 16777216.0)
            return err_set(e, "vocab entry '%s' has no valid id", it->string);
        if (it->valueint > max_id) max_id = it->valueint;
    }
    if (grow_vocab(t, max_id + 1, e) != 0) return -1;
    cJSON_ArrayForEach(it, vocab) {
        size_t len = strlen(it->string);
        char *s = arena_dup(&t->arena, it->string, len);
        if (!s) return err_set(e, "out of memory");
        t->tok_str[it->valueint] = s;
        t->tok_len[it->valueint] = (uint32_t)len;
        sm_put(&t->by_str, s, len, it->valueint);
    }

    /* byte-level keys and the per-byte ids */
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1, t->fallback_id[b] = -1;
    if (t->byte_level) {
        uint32_t b2c[256];
        int32_t c2b[324];
        byte_level_table(b2c);
        for (int i = 0; i < 324; i++) c2b[i] = -1;
        for (int b = 0; b < 256; b++) c2b[b2c[b]] = b;
        if (sm_init(&t->by_raw, (size_t)n) != 0) return err_set(e, "out of memory");
        for (int32_t id = 0; id <= max_id; id++) {
            if (!t->tok_str[id]) continue;
            char *raw = arena_alloc(&t->arena, t->tok_len[id] + 1);
            if (!raw) return err_set(e, "out of memory");
            long rl = byte_level_to_raw(c2b, t->tok_str[id], t->tok_len[id], raw);
            if (rl < 0) continue;
            sm_put(&t->by_raw, raw, (size_t)rl, id);
            if (rl == 1) t->byte_id[(unsigned char)raw[0]] = id;
        }
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->fallback_id[b] = sm_get(&t->by_str, name, 6);
    }
    const char *unk = jstr(model, "unk_token");
    t->unk_id = unk ? sm_get(&t->by_str, unk, strlen(unk)) : -1;

    /* merges: "a b" strings (older files) or ["a", "b"] pairs */
    int n_merges = cJSON_GetArraySize(merges);
    size_t cap = 16;
    while (cap < (size_t)n_merges * 2 + 2) cap <<= 1;
    t->merges.ents = calloc(cap, sizeof *t->merges.ents);
    if (!t->merges.ents) return err_set(e, "out of memory");
    t->merges.mask = cap - 1;
    char *joined = NULL;
    size_t joined_cap = 0;
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(joined);
                return err_set(e, "merge %d '%s' is not two tokens separated by one space", rank, it->valuestring);
            }
            a = it->valuestring, la = (size_t)(sp - a), b = sp + 1, lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring, la = strlen(a), b = it->child->next->valuestring, lb = strlen(b);
        } else {
            free(joined);
            return err_set(e, "merge %d is neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        if (la + lb > joined_cap) {
            joined_cap = (la + lb) * 2 + 16;
            char *g = realloc(joined, joined_cap);
            if (!g) {
                free(joined);
                return err_set(e, "out of memory");
            }
            joined = g;
        }
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb);
        int32_t ia = sm_get(&t->by_str, a, la), ib = sm_get(&t->by_str, b, lb);
        int32_t ij = sm_get(&t->by_str, joined, la + lb);
        if (ia >= 0 && ib >= 0 && ij < 0) { /* GPT-2's "ĠCla ude": can never yield a token; skipped */
            rank++;
            continue;
        }
        if (ia < 0 || ib < 0) {
            int r = err_set(e, "merge %d ('%.*s' '%.*s'): a part is not in the vocab", rank, (int)la, a, (int)lb,
                            b);
            free(joined);
            return r;
        }
        mg_put(&t->merges, ia, ib, rank, ij);
        rank++;
    }
    free(joined);
    return 0;
}

static int load_added(tok_tokenizer *t, const cJSON *list, rlvr_err *e) {
    int n = cJSON_GetArraySize(list);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added || sm_init(&t->added_by_str, (size_t)n + 1) != 0) return err_set(e, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        const char *content = jstr(it, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0)
            return err_set(e, "added_tokens: an entry without content or a valid id");
        added_token *a = &t->added[t->n_added++];
        a->len = strlen(content);
        if (!(a->content = arena_dup(&t->arena, content, a->len))) return err_set(e, "out of memory");
        a->id = id->valueint;
        a->special = jbool(it, "special", 0);
        a->normalized = jbool(it, "normalized", !a->special);
        a->lstrip = jbool(it, "lstrip", 0);
        a->rstrip = jbool(it, "rstrip", 0);
        a->single_word = jbool(it, "single_word", 0);
        if (grow_vocab(t, a->id + 1, e) != 0) return -1;
        t->tok_str[a->id] = a->content;
        t->tok_len[a->id] = (uint32_t)a->len;
        t->tok_flags[a->id] |= TOKF_ADDED | (a->special ? TOKF_SPECIAL : 0);
        sm_put(&t->added_by_str, a->content, a->len, a->id);
    }
    /* With no normalizer, "normalized" tokens see the same text; matching them in the first
     * pass is then identical and saves the second. */
    if (t->n_norms == 0)
        for (size_t i = 0; i < t->n_added; i++) t->added[i].normalized = 0;
    if (build_added_set(t, &t->added_raw, 0, e) != 0 || build_added_set(t, &t->added_norm, 1, e) != 0) return -1;
    return 0;
}

static char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return util_strdup(v->valuestring);
    if (cJSON_IsObject(v) && jstr(v, "content")) return util_strdup(jstr(v, "content"));
    return NULL;
}

static int load_config(tok_tokenizer *t, const char *dir, rlvr_err *e) {
    char *path = util_path_join(dir, "tokenizer_config.json");
    if (!path) return err_set(e, "out of memory");
    if (util_is_file(path)) {
        char *text = util_read_file(path, NULL, e);
        if (!text) {
            free(path);
            return -1;
        }
        cJSON *cfg = cJSON_Parse(text);
        free(text);
        if (!cfg) {
            err_set(e, "%s: not valid JSON", path);
            free(path);
            return -1;
        }
        t->bos_token = config_token(cfg, "bos_token");
        t->eos_token = config_token(cfg, "eos_token");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) t->chat_template = util_strdup(ct->valuestring);
        else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}, ...] */
            const cJSON *it;
            cJSON_ArrayForEach(it, ct) {
                const char *name = jstr(it, "name");
                if (name && !strcmp(name, "default") && jstr(it, "template"))
                    t->chat_template = util_strdup(jstr(it, "template"));
            }
        }
        cJSON_Delete(cfg);
    }
    free(path);
    /* transformers reads chat_template.jinja beside it and prefers it */
    path = util_path_join(dir, "chat_template.jinja");
    if (!path) return err_set(e, "out of memory");
    if (util_is_file(path)) {
        char *text = util_read_file(path, NULL, e);
        if (!text) {
            free(path);
            return -1;
        }
        free(t->chat_template);
        t->chat_template = text;
    }
    free(path);
    return 0;
}

tok_tokenizer *tok_load(const char *path, rlvr_err *e) {
    char *file = util_is_dir(path) ? util_path_join(path, "tokenizer.json") : util_strdup(path);
    char *dir = util_is_dir(path) ? util_strdup(path) : util_dirname(path);
    tok_tokenizer *t = calloc(1, sizeof *t);
    char *text = NULL;
    cJSON *root = NULL;
    if (!file || !dir || !t) {
        err_set(e, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&t->cache_lock, NULL);
    text = util_read_file(file, NULL, e);
    if (!text) goto fail;
    root = cJSON_Parse(text);
    free(text);
    text = NULL;
    if (!root || !cJSON_IsObject(root)) {
        err_set(e, "%s: not a valid tokenizer.json (JSON does not parse)", file);
        goto fail;
    }
    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), e) != 0 ||
        load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), e) != 0 ||
        load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), e) != 0 ||
        load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), e) != 0 ||
        load_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), e) != 0 ||
        load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), e) != 0) {
        err_prefix(e, "%s", file);
        goto fail;
    }
    cJSON_Delete(root);
    root = NULL;
    if (load_config(t, dir, e) != 0) goto fail;
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    if (!t->cache) {
        err_set(e, "out of memory");
        goto fail;
    }
    free(file);
    free(dir);
    return t;
fail:
    cJSON_Delete(root);
    free(text);
    free(file);
    free(dir);
    tok_free(t);
    return NULL;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    while (t->arena) {
        arena_block *next = t->arena->next;
        free(t->arena);
        t->arena = next;
    }
    free(t->tok_str);
    free(t->tok_len);
    free(t->tok_flags);
    free(t->by_str.ents);
    free(t->by_raw.ents);
    free(t->added_by_str.ents);
    free(t->merges.ents);
    free(t->added);
    for (int b = 0; b < 256; b++) free(t->added_raw.by_first[b]), free(t->added_norm.by_first[b]);
    for (size_t i = 0; i < t->n_norms; i++) free(t->norms[i].a), free(t->norms[i].b);
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) pcre2_code_free(t->pretoks[i].re);
    free(t->pretoks);
    for (size_t i = 0; i < t->n_decs; i++) free(t->decs[i].a), free(t->decs[i].b);
    free(t->decs);
    free(t->post_single);
    free(t->bos_token);
    free(t->eos_token);
    free(t->chat_template);
    free(t->cache);
    pthread_mutex_destroy(&t->cache_lock);
    free(t);
}

/* ------------------------------------------------------------------ encoding */

/* Per-call scratch: encode allocates these once per call and grows them rarely. */
typedef struct enc_ctx {
    tok_tokenizer *t;
    tok_ids *out;
    int use_cache, oom;
    pcre2_match_data *md[8]; /* one per pre-tokenizer level */
    int32_t *sym_id, *sym_prev, *sym_next, *ranks;
    size_t sym_cap;
    struct heap_ent { int32_t rank, pos, new_id; } *heap;
    size_t heap_cap;
} enc_ctx;

static int ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *g = realloc(v->ids, cap * sizeof *g);
        if (!g) return -1;
        v->ids = g, v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

void tok_ids_free(tok_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static int ensure_syms(enc_ctx *c, size_t n) {
    if (n <= c->sym_cap) return 0;
    size_t cap = n * 2;
    int32_t *a = realloc(c->sym_id, cap * sizeof *a);
    if (a) c->sym_id = a;
    int32_t *b = realloc(c->sym_prev, cap * sizeof *b);
    if (b) c->sym_prev = b;
    int32_t *d = realloc(c->sym_next, cap * sizeof *d);
    if (d) c->sym_next = d;
    int32_t *r = realloc(c->ranks, cap * sizeof *r);
    if (r) c->ranks = r;
    struct heap_ent *h = realloc(c->heap, cap * 2 * sizeof *h);
    if (h) c->heap = h, c->heap_cap = cap * 2;
    if (!a || !b || !d || !r || !h) return -1;
    c->sym_cap = cap;
    return 0;
}

static inline int heap_less(const struct heap_ent *x, const struct heap_ent *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(struct heap_ent *h, size_t *n, struct heap_ent v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&v, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static struct heap_ent heap_pop(struct heap_ent *h, size_t *n) {
    struct heap_ent top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct heap_ent *best = &last;
        if (l < *n && heap_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && heap_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

/* Merges c->sym_id[0..n) in place (HF's Word::merge_all: always the lowest-rank pair, the
 * leftmost on ties); returns the new count. Short words keep a rank per adjacent pair and
 * scan it; long words use a heap with lazy deletion, so no word costs O(n^2) lookups. */
static size_t bpe_merge(enc_ctx *c, size_t n) {
    const mergemap *mm = &c->t->merges;
    int32_t *id = c->sym_id;
    if (n < 2) return n;
    if (n <= 48) {
        int32_t *rank = c->ranks, *nid = c->sym_prev; /* sym_prev reused as the merged ids */
        for (size_t i = 0; i + 1 < n; i++) {
            const mg_ent *m = mg_get(mm, id[i], id[i + 1]);
            rank[i] = m ? m->rank : INT32_MAX;
            nid[i] = m ? m->new_id : -1;
        }
        while (n > 1) {
            size_t best = 0;
            for (size_t i = 1; i + 1 < n; i++)
                if (rank[i] < rank[best]) best = i;
            if (rank[best] == INT32_MAX) break;
            id[best] = nid[best];
            memmove(id + best + 1, id + best + 2, (n - best - 2) * sizeof *id);
            memmove(rank + best, rank + best + 1, (n - best - 2) * sizeof *rank);
            memmove(nid + best, nid + best + 1, (n - best - 2) * sizeof *nid);
            n--;
            if (best > 0) {
                const mg_ent *m = mg_get(mm, id[best - 1], id[best]);
                rank[best - 1] = m ? m->rank : INT32_MAX;
                nid[best - 1] = m ? m->new_id : -1;
            }
            if (best + 1 < n) {
                const mg_ent *m = mg_get(mm, id[best], id[best + 1]);
                rank[best] = m ? m->rank : INT32_MAX;
                nid[best] = m ? m->new_id : -1;
            }
        }
        return n;
    }
    int32_t *prev = c->sym_prev, *next = c->sym_next;
    struct heap_ent *h = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const mg_ent *m = mg_get(mm, id[i], id[i + 1]);
        if (m) heap_push(h, &hn, (struct heap_ent){m->rank, (int32_t)i, m->new_id});
    }
    /* Every merge removes one symbol and pushes at most two pairs, so the heap never holds
     * more than 3n entries; heap_cap is 2 * sym_cap >= 4n. */
    while (hn) {
        struct heap_ent top = heap_pop(h, &hn);
        int32_t p = top.pos;
        if (id[p] < 0 || next[p] < 0) continue; /* removed, or the pair's right side is gone */
        int32_t q = next[p];
        const mg_ent *m = mg_get(mm, id[p], id[q]);
        if (!m || m->new_id != top.new_id) continue; /* stale: the pair changed since the push */
        id[p] = top.new_id;
        id[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) {
            const mg_ent *ml = mg_get(mm, id[prev[p]], id[p]);
            if (ml) heap_push(h, &hn, (struct heap_ent){ml->rank, prev[p], ml->new_id});
        }
        if (next[p] >= 0) {
            const mg_ent *mr = mg_get(mm, id[p], id[next[p]]);
            if (mr) heap_push(h, &hn, (struct heap_ent){mr->rank, p, mr->new_id});
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) id[k++] = id[i];
    return k;
}

/* The model step: one pre-tokenized word to ids appended to c->out. */
static void model_word(enc_ctx *c, const char *w, size_t n) {
    tok_tokenizer *t = c->t;
    if (n == 0 || c->oom) return;
    uint64_t h = 0;
    cache_ent *ce = NULL;
    if (c->use_cache && n <= CACHE_KEY) {
        h = hash_bytes(w, n);
        ce = &t->cache[h & (CACHE_SLOTS - 1)];
        if (ce->h == h && ce->klen == n && memcmp(ce->key, w, n) == 0) {
            for (size_t i = 0; i < ce->nids; i++)
                if (ids_push(c->out, ce->ids[i]) != 0) c->oom = 1;
            return;
        }
    }
    if (t->ignore_merges) { /* a word that is a token is that token (Llama-3) */
        int32_t id = sm_get(t->byte_level ? &t->by_raw : &t->by_str, w, n);
        if (id >= 0) {
            if (ids_push(c->out, id) != 0) c->oom = 1;
            if (ce) {
                ce->h = h, ce->klen = (uint8_t)n, ce->nids = 1;
                memcpy(ce->key, w, n);
                ce->ids[0] = id;
            }
            return;
        }
    }
    if (ensure_syms(c, n + 1) != 0) {
        c->oom = 1;
        return;
    }
    /* initial symbols: bytes (byte-level) or characters, with byte fallback and unk */
    size_t ns = 0;
    int32_t pending_unk = 0; /* fuse_unk: one unk for a run of unknown characters */
    for (size_t i = 0; i < n;) {
        size_t l = 1;
        int32_t id;
        if (t->byte_level) id = t->byte_id[(unsigned char)w[i]];
        else {
            uint32_t cp;
            l = utf8_decode((const unsigned char *)w + i, n - i, &cp);
            if (!l) l = 1;
            id = sm_get(&t->by_str, w + i, l);
        }
        if (id >= 0) {
            if (pending_unk) c->sym_id[ns++] = t->unk_id, pending_unk = 0;
            c->sym_id[ns++] = id;
        } else {
            int done = 0;
            if (t->byte_fallback) {
                int all = 1;
                for (size_t k = 0; k < l; k++) all &= t->fallback_id[(unsigned char)w[i + k]] >= 0;
                if (all) {
                    if (pending_unk) c->sym_id[ns++] = t->unk_id, pending_unk = 0;
                    for (size_t k = 0; k < l; k++) c->sym_id[ns++] = t->fallback_id[(unsigned char)w[i + k]];
                    done = 1;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (t->fuse_unk) pending_unk = 1;
                else c->sym_id[ns++] = t->unk_id;
            }
        }
        i += l;
    }
    if (pending_unk) c->sym_id[ns++] = t->unk_id;
    ns = bpe_merge(c, ns);
    for (size_t i = 0; i < ns; i++)
        if (ids_push(c->out, c->sym_id[i]) != 0) c->oom = 1;
    if (ce && ns <= CACHE_IDS) {
        ce->h = h, ce->klen = (uint8_t)n, ce->nids = (uint8_t)ns;
        memcpy(ce->key, w, n);
        memcpy(ce->ids, c->sym_id, ns * sizeof(int32_t));
    }
}

static void pretok_run(enc_ctx *c, size_t step, const char *s, size_t n, int first);

/* Splits s by a regex into match/gap segments and passes pieces per `behavior` on. */
static void split_run(enc_ctx *c, size_t step, const pretok *p, const char *s, size_t n, int first) {
    pcre2_match_data *md = c->md[step];
    size_t pos = 0, piece_start = 0; /* piece_start: MergedWithNext's open piece */
    size_t off = 0;
    int has_jit = 1;
    for (;;) {
        int rc = has_jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL)
                         : PCRE2_ERROR_JIT_BADOPTION;
        if (rc == PCRE2_ERROR_JIT_BADOPTION) {
            has_jit = 0;
            rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        }
        size_t ms = n, me = n;
        if (rc > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0], me = ov[1];
            if (me == ms) { /* an empty match splits nothing: step over one character */
                if (ms >= n) ms = me = n;
                else {
                    uint32_t cp;
                    size_t l = utf8_decode((const unsigned char *)s + ms, n - ms, &cp);
                    off = ms + (l ? l : 1);
                    continue;
                }
            }
        }
        /* gap [pos, ms) then match [ms, me); with invert the roles swap */
        for (int part = 0; part < 2; part++) {
            size_t a = part == 0 ? pos : ms, b = part == 0 ? ms : me;
            if (a == b) continue;
            int is_match = (part == 1) != (p->invert != 0);
            switch (p->behavior) {
            case SPLIT_ISOLATED: pretok_run(c, step + 1, s + a, b - a, first && a == 0); break;
            case SPLIT_REMOVED:
                if (!is_match) pretok_run(c, step + 1, s + a, b - a, first && a == 0);
                break;
            case SPLIT_MERGED_PREV:
                if (is_match) {
                    pretok_run(c, step + 1, s + piece_start, b - piece_start, first && piece_start == 0);
                    piece_start = b;
                }
                break;
            case SPLIT_MERGED_NEXT:
                if (is_match && a > piece_start) {
                    pretok_run(c, step + 1, s + piece_start, a - piece_start, first && piece_start == 0);
                    piece_start = a;
                }
                break;
            }
        }
        if (rc <= 0 || me >= n) break;
        pos = off = me;
    }
    if ((p->behavior == SPLIT_MERGED_PREV || p->behavior == SPLIT_MERGED_NEXT) && piece_start < n)
        pretok_run(c, step + 1, s + piece_start, n - piece_start, first && piece_start == 0);
}

static void pretok_run(enc_ctx *c, size_t step, const char *s, size_t n, int first) {
    if (n == 0 || c->oom) return;
    if (step == c->t->n_pretoks) {
        model_word(c, s, n);
        return;
    }
    const pretok *p = &c->t->pretoks[step];
    if (p->type == PT_SPLIT) {
        split_run(c, step, p, s, n, first);
        return;
    }
    if (p->type == PT_BYTELEVEL) {
        char *owned = NULL;
        if (p->add_prefix_space && s[0] != ' ') {
            if (!(owned = malloc(n + 1))) {
                c->oom = 1;
                return;
            }
            owned[0] = ' ';
            memcpy(owned + 1, s, n);
            s = owned, n++;
        }
        if (p->re) {
            pretok pp = *p;
            pp.behavior = SPLIT_ISOLATED, pp.invert = 0;
            split_run(c, step, &pp, s, n, first);
        } else pretok_run(c, step + 1, s, n, first);
        free(owned);
        return;
    }
    /* Metaspace: spaces become the replacement, one is prepended, then split before each */
    sbuf b;
    sb_init(&b);
    int prepend = p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && first);
    if (prepend && !(n >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) && s[0] != ' ')
        put_n(&b, p->repl, p->repl_len);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') put_n(&b, p->repl, p->repl_len);
        else sb_putc(&b, s[i]);
    }
    if (b.oom) {
        c->oom = 1;
        sb_free(&b);
        return;
    }
    if (!p->split) pretok_run(c, step + 1, b.s, b.len, first);
    else {
        size_t start = 0;
        for (size_t i = 0; i + p->repl_len <= b.len; i++) {
            if (i > start && memcmp(b.s + i, p->repl, p->repl_len) == 0) {
                pretok_run(c, step + 1, b.s + start, i - start, first && start == 0);
                start = i;
            }
        }
        pretok_run(c, step + 1, b.s + start, b.len - start, first && start == 0);
    }
    sb_free(&b);
}

/* Applies the normalizers to s[0..n); returns a malloc'd string (its length in *out_n), or
 * NULL on OOM. */
static char *normalize(const tok_tokenizer *t, const char *s, size_t n, size_t *out_n) {
    char *cur = malloc(n + 1);
    if (!cur) return NULL;
    memcpy(cur, s, n);
    cur[n] = 0;
    size_t len = n;
    for (size_t k = 0; k < t->n_norms && cur; k++) {
        const normalizer *nm = &t->norms[k];
        char *next = NULL;
        size_t next_len = 0;
        switch (nm->type) {
        case NORM_NFC:
        case NORM_NFD:
        case NORM_NFKC:
        case NORM_NFKD:
        case NORM_LOWERCASE: {
            int ascii = 1;
            for (size_t i = 0; i < len && ascii; i++) ascii = (unsigned char)cur[i] < 0x80;
            if (ascii && nm->type != NORM_LOWERCASE) continue; /* ASCII is already in every form */
            utf8proc_option_t o = nm->type == NORM_NFC    ? UTF8PROC_STABLE | UTF8PROC_COMPOSE
                                  : nm->type == NORM_NFD  ? UTF8PROC_STABLE | UTF8PROC_DECOMPOSE
                                  : nm->type == NORM_NFKC ? UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT
                                  : nm->type == NORM_NFKD ? UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT
                                                          : UTF8PROC_CASEFOLD;
            if (nm->type == NORM_LOWERCASE) {
                /* per-character lowercase, as HF's char::to_lowercase (no final-sigma rule) */
                sbuf b;
                sb_init(&b);
                for (size_t i = 0; i < len;) {
                    uint32_t cp;
                    size_t l = utf8_decode((const unsigned char *)cur + i, len - i, &cp);
                    if (!l) l = 1, cp = 0xFFFD;
                    char u[4];
                    if (cp == 0x130) put_n(&b, "i\xCC\x87", 3); /* İ: the one multi-character lowercase */
                    else put_n(&b, u, utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u));
                    i += l;
                }
                next_len = b.len;
                next = sb_take(&b);
                break;
            }
            utf8proc_uint8_t *r = NULL;
            utf8proc_ssize_t rl = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)len, &r, o);
            if (rl < 0) continue; /* cannot happen for sanitised input; keep the text as is */
            next = (char *)r, next_len = (size_t)rl;
            break;
        }
        case NORM_PREPEND: {
            if (len == 0) continue;
            size_t pl = strlen(nm->a);
            next = malloc(pl + len + 1);
            if (next) {
                memcpy(next, nm->a, pl);
                memcpy(next + pl, cur, len + 1);
                next_len = pl + len;
            }
            break;
        }
        case NORM_REPLACE: {
            sbuf b;
            sb_init(&b);
            size_t pl = strlen(nm->a);
            for (size_t i = 0; i < len;) {
                if (i + pl <= len && memcmp(cur + i, nm->a, pl) == 0) {
                    sb_puts(&b, nm->b);
                    i += pl;
                } else sb_putc(&b, cur[i++]);
            }
            next_len = b.len;
            next = sb_take(&b);
            if (!next && !b.oom) next = util_strdup("");
            break;
        }
        }
        free(cur);
        cur = next;
        len = next_len;
    }
    *out_n = len;
    return cur;
}

/* Finds the leftmost-longest added token of `set` in s[from..n); returns its index in
 * t->added and the matched span (after lstrip/rstrip/single_word) or -1. */
static long find_added(const tok_tokenizer *t, const added_set *set, const char *s, size_t n, size_t from,
                       size_t floor, size_t *ms, size_t *me) {
    for (size_t i = from; i < n; i++) {
        if (!set->first[(unsigned char)s[i]]) continue;
        for (const int32_t *k = set->by_first[(unsigned char)s[i]]; *k >= 0; k++) {
            const added_token *a = &t->added[*k];
            if (a->len > n - i || (a->len > 1 && a->content[1] != s[i + 1]) || memcmp(s + i, a->content, a->len) != 0)
                continue;
            size_t start = i, stop = i + a->len;
            if (a->single_word) {
                /* a word character touching either end rejects the match */
                uint32_t cp;
                int before = 0, after = 0;
                if (start > 0) {
                    size_t j = start - 1;
                    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                    if (utf8_decode((const unsigned char *)s + j, n - j, &cp)) before = is_word_char(cp);
                }
                if (stop < n && utf8_decode((const unsigned char *)s + stop, n - stop, &cp)) after = is_word_char(cp);
                if (before || after) continue;
            }
            if (a->lstrip) {
                while (start > floor) {
                    size_t j = start - 1;
                    while (j > floor && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                    uint32_t cp;
                    if (!utf8_decode((const unsigned char *)s + j, n - j, &cp) || !is_unicode_ws(cp)) break;
                    start = j;
                }
            }
            if (a->rstrip) {
                while (stop < n) {
                    uint32_t cp;
                    size_t l = utf8_decode((const unsigned char *)s + stop, n - stop, &cp);
                    if (!l || !is_unicode_ws(cp)) break;
                    stop += l;
                }
            }
            *ms = start, *me = stop;
            return *k;
        }
    }
    return -1;
}

static void encode_normalized_piece(enc_ctx *c, const char *s, size_t n, int first) {
    const tok_tokenizer *t = c->t;
    size_t pos = 0;
    for (;;) {
        size_t ms, me;
        long k = find_added(t, &t->added_norm, s, n, pos, pos, &ms, &me);
        size_t end = k >= 0 ? ms : n;
        if (end > pos) pretok_run(c, 0, s + pos, end - pos, first && pos == 0);
        if (k < 0) break;
        if (ids_push(c->out, t->added[k].id) != 0) c->oom = 1;
        pos = me;
    }
}

static void encode_raw_piece(enc_ctx *c, const char *s, size_t n, int first) {
    if (n == 0) return;
    if (c->t->n_norms == 0) {
        encode_normalized_piece(c, s, n, first);
        return;
    }
    size_t nn;
    char *norm = normalize(c->t, s, n, &nn);
    if (!norm) {
        c->oom = 1;
        return;
    }
    encode_normalized_piece(c, norm, nn, first);
    free(norm);
}

int tok_encode(tok_tokenizer *t, const char *text, size_t len, int add_special, tok_ids *out, rlvr_err *e) {
    enc_ctx c = {.t = t, .out = out};
    char *clean = NULL;
    if (util_utf8_invalid_at(text, len) >= 0) {
        sbuf b;
        sb_init(&b);
        tok_utf8_lossy(text, len, &b);
        len = b.len;
        if (!(clean = sb_take(&b))) return err_set(e, "out of memory");
        text = clean;
    }
    for (size_t i = 0; i < t->n_pretoks && i < 8; i++) {
        if (t->pretoks[i].re && !(c.md[i] = pcre2_match_data_create_from_pattern(t->pretoks[i].re, NULL))) c.oom = 1;
    }
    if (t->n_pretoks > 8) {
        free(clean);
        return err_set(e, "more than 8 pre-tokenizers");
    }
    c.use_cache = pthread_mutex_trylock(&t->cache_lock) == 0;
    size_t post_at = 0;
    if (add_special) /* the template's items before the sequence */
        for (; post_at < t->n_post_single && t->post_single[post_at] >= 0; post_at++)
            if (ids_push(out, t->post_single[post_at]) != 0) c.oom = 1;
    size_t pos = 0;
    while (!c.oom) {
        size_t ms, me;
        long k = find_added(t, &t->added_raw, text, len, pos, pos, &ms, &me);
        size_t end = k >= 0 ? ms : len;
        if (end > pos) encode_raw_piece(&c, text + pos, end - pos, pos == 0);
        if (k < 0) break;
        if (ids_push(out, t->added[k].id) != 0) c.oom = 1;
        pos = me;
    }
    if (add_special && post_at < t->n_post_single)
        for (post_at++; post_at < t->n_post_single; post_at++)
            if (ids_push(out, t->post_single[post_at]) != 0) c.oom = 1;
    if (c.use_cache) pthread_mutex_unlock(&t->cache_lock);
    for (size_t i = 0; i < 8; i++) pcre2_match_data_free(c.md[i]);
    free(c.sym_id), free(c.sym_prev), free(c.sym_next), free(c.ranks), free(c.heap);
    free(clean);
    if (c.oom) return err_set(e, "out of memory while encoding");
    return 0;
}

/* ------------------------------------------------------------------ decoding */

typedef struct piece_list {
    sbuf *p;
    size_t n, cap;
} piece_list;

static sbuf *pl_add(piece_list *l) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sbuf *g = realloc(l->p, cap * sizeof *g);
        if (!g) return NULL;
        l->p = g, l->cap = cap;
    }
    sbuf *b = &l->p[l->n++];
    sb_init(b);
    return b;
}

static void pl_free(piece_list *l) {
    for (size_t i = 0; i < l->n; i++) sb_free(&l->p[i]);
    free(l->p);
    l->p = NULL;
    l->n = l->cap = 0;
}

static int byte_token_value(const sbuf *s) {
    if (s->len != 6 || memcmp(s->s, "<0x", 3) != 0 || s->s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = s->s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* One decoder step over the piece list (HF's decode_chain). Returns -1 on OOM. */
static int decode_step(const decoder_step *d, piece_list *in, piece_list *out) {
    int oom = 0;
    switch (d->type) {
    case DEC_BYTELEVEL: {
        int32_t c2b[324]; /* built per call: cheap, and no shared state between decoding threads */
        uint32_t b2c[256];
        byte_level_table(b2c);
        for (int i = 0; i < 324; i++) c2b[i] = -1;
        for (int b = 0; b < 256; b++) c2b[b2c[b]] = b;
        sbuf raw;
        sb_init(&raw);
        char *tmp = NULL;
        size_t tmp_cap = 0;
        for (size_t i = 0; i < in->n; i++) {
            const sbuf *s = &in->p[i];
            if (s->len + 1 > tmp_cap) {
                tmp_cap = s->len * 2 + 16;
                char *g = realloc(tmp, tmp_cap);
                if (!g) {
                    oom = 1;
                    break;
                }
                tmp = g;
            }
            long rl = byte_level_to_raw(c2b, s->s ? s->s : "", s->len, tmp);
            if (rl >= 0) put_n(&raw, tmp, (size_t)rl);
            else put_n(&raw, s->s, s->len); /* a token with non-byte characters passes as is */
        }
        free(tmp);
        sbuf *o = pl_add(out);
        if (!o) oom = 1;
        else tok_utf8_lossy(raw.s ? raw.s : "", raw.len, o), oom |= o->oom;
        oom |= raw.oom;
        sb_free(&raw);
        break;
    }
    case DEC_REPLACE: {
        size_t pl = strlen(d->a);
        for (size_t i = 0; i < in->n; i++) {
            sbuf *o = pl_add(out);
            if (!o) return -1;
            const sbuf *s = &in->p[i];
            for (size_t k = 0; k < s->len;) {
                if (k + pl <= s->len && memcmp(s->s + k, d->a, pl) == 0) sb_puts(o, d->b), k += pl;
                else sb_putc(o, s->s[k++]);
            }
            oom |= o->oom;
        }
        break;
    }
    case DEC_BYTEFALLBACK: {
        char bytes[1024];
        size_t nb = 0;
        for (size_t i = 0; i <= in->n; i++) {
            int v = i < in->n ? byte_token_value(&in->p[i]) : -1;
            if (v >= 0 && nb < sizeof bytes) {
                bytes[nb++] = (char)v;
                continue;
            }
            if (nb) {
                if (util_utf8_invalid_at(bytes, nb) < 0) {
                    sbuf *o = pl_add(out);
                    if (!o) return -1;
                    put_n(o, bytes, nb);
                } else {
                    for (size_t k = 0; k < nb; k++) {
                        sbuf *o = pl_add(out);
                        if (!o) return -1;
                        sb_puts(o, "\xEF\xBF\xBD");
                    }
                }
                nb = 0;
            }
            if (v >= 0) { /* the run filled the buffer: start a new run with this byte */
                bytes[nb++] = (char)v;
                continue;
            }
            if (i < in->n) {
                sbuf *o = pl_add(out);
                if (!o) return -1;
                put_n(o, in->p[i].s, in->p[i].len);
            }
        }
        break;
    }
    case DEC_FUSE: {
        sbuf *o = pl_add(out);
        if (!o) return -1;
        for (size_t i = 0; i < in->n; i++) put_n(o, in->p[i].s, in->p[i].len);
        oom |= o->oom;
        break;
    }
    case DEC_STRIP: {
        size_t cl = strlen(d->a);
        for (size_t i = 0; i < in->n; i++) {
            const char *src = in->p[i].s ? in->p[i].s : ""; /* an empty piece may be unallocated */
            size_t a = 0, b = in->p[i].len;
            for (int k = 0; k < d->start && a + cl <= b && memcmp(src + a, d->a, cl) == 0; k++) a += cl;
            for (int k = 0; k < d->stop && b >= a + cl && memcmp(src + b - cl, d->a, cl) == 0; k++) b -= cl;
            sbuf *o = pl_add(out);
            if (!o) return -1;
            put_n(o, src + a, b - a);
        }
        break;
    }
    case DEC_METASPACE: {
        for (size_t i = 0; i < in->n; i++) {
            const sbuf *s = &in->p[i];
            sbuf *o = pl_add(out);
            if (!o) return -1;
            for (size_t k = 0; k < s->len;) {
                if (k + d->repl_len <= s->len && memcmp(s->s + k, d->repl, d->repl_len) == 0) {
                    sb_putc(o, ' ');
                    k += d->repl_len;
                } else sb_putc(o, s->s[k++]);
            }
            if (i == 0 && d->prepend_scheme != PREPEND_NEVER && o->len && o->s[0] == ' ') {
                memmove(o->s, o->s + 1, o->len);
                o->len--;
            }
        }
        break;
    }
    }
    for (size_t i = 0; i < out->n; i++) oom |= out->p[i].oom;
    return oom ? -1 : 0;
}

char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *out_len,
                 rlvr_err *e) {
    piece_list a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->tok_str[ids[i]]) {
            pl_free(&a);
            err_set(e, "token id %ld is not in the vocabulary (size %ld)", (long)ids[i], (long)t->n_vocab);
            return NULL;
        }
        if (skip_special && (t->tok_flags[ids[i]] & TOKF_SPECIAL)) continue;
        sbuf *s = pl_add(&a);
        if (!s) goto oom;
        put_n(s, t->tok_str[ids[i]], t->tok_len[ids[i]]);
    }
    for (size_t k = 0; k < t->n_decs; k++) {
        if (decode_step(&t->decs[k], &a, &b) != 0) goto oom;
        pl_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    sbuf joined;
    sb_init(&joined);
    for (size_t i = 0; i < a.n; i++) put_n(&joined, a.p[i].s, a.p[i].len);
    pl_free(&a);
    /* with no decoder (or one that keeps bytes) the result may still be ill-formed */
    sbuf out;
    sb_init(&out);
    tok_utf8_lossy(joined.s ? joined.s : "", joined.len, &out);
    sb_free(&joined);
    if (out.oom) {
        sb_free(&out);
        err_set(e, "out of memory");
        return NULL;
    }
    if (!out.s) put_n(&out, "", 0);
    if (out.oom || !out.s) {
        sb_free(&out);
        err_set(e, "out of memory");
        return NULL;
    }
    if (out_len) *out_len = out.len;
    return sb_take(&out);
oom:
    pl_free(&a);
    pl_free(&b);
    err_set(e, "out of memory");
    return NULL;
}

/* ------------------------------------------------------------------ streaming decode */

/* HF's DecodeStream: decode a small window of ids, emit what extends the window's previous
 * text unless it ends in U+FFFD (an unfinished character), then slide the window. Context
 * tokens stay in the window so decoders that look at neighbours (Strip, Metaspace) agree
 * with a full decode. */
struct tok_stream {
    const tok_tokenizer *t;
    int skip_special;
    tok_ids ids;
    char *prefix;
    size_t prefix_len, prefix_index;
};

tok_stream *tok_stream_new(const tok_tokenizer *t, int skip_special, rlvr_err *e) {
    tok_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = util_strdup(""))) {
        free(s);
        err_set(e, "out of memory");
        return NULL;
    }
    s->t = t, s->skip_special = skip_special;
    return s;
}

void tok_stream_free(tok_stream *s) {
    if (!s) return;
    tok_ids_free(&s->ids);
    free(s->prefix);
    free(s);
}

int tok_stream_push(tok_stream *s, int32_t id, sbuf *out, rlvr_err *e) {
    if (id < 0 || id >= s->t->n_vocab || !s->t->tok_str[id])
        return err_set(e, "token id %ld is not in the vocabulary (size %ld)", (long)id, (long)s->t->n_vocab);
    if (ids_push(&s->ids, id) != 0) return err_set(e, "out of memory");
    size_t len;
    char *text = tok_decode(s->t, s->ids.ids, s->ids.n, s->skip_special, &len, e);
    if (!text) return -1;
    int unfinished = len >= 3 && memcmp(text + len - 3, "\xEF\xBF\xBD", 3) == 0;
    if (len > s->prefix_len && !unfinished && memcmp(text, s->prefix, s->prefix_len) == 0) {
        put_n(out, text + s->prefix_len, len - s->prefix_len);
        size_t new_prefix_index = s->ids.n - s->prefix_index;
        memmove(s->ids.ids, s->ids.ids + s->prefix_index, new_prefix_index * sizeof(int32_t));
        s->ids.n = new_prefix_index;
        free(text);
        free(s->prefix);
        s->prefix = tok_decode(s->t, s->ids.ids, s->ids.n, s->skip_special, &s->prefix_len, e);
        if (!s->prefix) return -1;
        s->prefix_index = new_prefix_index;
    } else {
        free(text);
    }
    return out->oom ? err_set(e, "out of memory") : 0;
}

int tok_stream_finish(tok_stream *s, sbuf *out, rlvr_err *e) {
    size_t len;
    char *text = tok_decode(s->t, s->ids.ids, s->ids.n, s->skip_special, &len, e);
    if (!text) return -1;
    /* The window's text starts with the prefix except when a decoder rewrote it; emit the
     * part past the common start (HF would raise InvalidPrefix there). */
    size_t common = 0;
    while (common < s->prefix_len && common < len && text[common] == s->prefix[common]) common++;
    if (len > common) put_n(out, text + common, len - common);
    free(text);
    s->ids.n = 0;
    s->prefix_index = 0;
    free(s->prefix);
    s->prefix = util_strdup("");
    s->prefix_len = 0;
    if (!s->prefix) return err_set(e, "out of memory");
    return out->oom ? err_set(e, "out of memory") : 0;
}

/* ------------------------------------------------------------------ vocabulary */

int32_t tok_vocab_size(const tok_tokenizer *t) {
    return t->n_vocab;
}

const char *tok_id_to_token(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->tok_str[id] : NULL;
}

int32_t tok_token_to_id(const tok_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    int32_t id = sm_get(&t->added_by_str, token, n);
    return id >= 0 ? id : sm_get(&t->by_str, token, n);
}

int tok_is_special(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tok_flags[id] & TOKF_SPECIAL);
}

const char *tok_bos_token(const tok_tokenizer *t) {
    return t->bos_token;
}

const char *tok_eos_token(const tok_tokenizer *t) {
    return t->eos_token;
}

int32_t tok_eos_id(const tok_tokenizer *t) {
    return t->eos_token ? tok_token_to_id(t, t->eos_token) : -1;
}

const char *tok_chat_template_text(const tok_tokenizer *t) {
    return t->chat_template;
}
