/* jinja.c - a small Jinja subset for chat templates, rendered as transformers renders them
 * (trim_blocks, lstrip_blocks, Undefined for missing keys). It is the fallback for templates
 * chat_template.c does not recognise: output, if/elif/else, for over lists (with loop.index0,
 * index, first, last, length, revindex0), set (names and namespace attributes), namespace(),
 * literals, + - ~ * comparisons, and/or/not, in, `is` tests (defined, undefined, none, string,
 * number, true, false), inline if-else, subscripts and slices, string methods (startswith,
 * endswith, split, strip, lstrip, rstrip, upper, lower, replace), dict get/items/keys, filters
 * (trim, length, count, upper, lower, first, last, join, default, string, list) and
 * raise_exception. Anything else is an error naming the construct.
 *
 * Values live in an arena freed after the render; nothing here outlives one call. */
#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena and values */

typedef struct jblock {
    struct jblock *next;
    size_t used, cap;
    char data[];
} jblock;

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_DICT, V_NS, V_FUNC } vtype;

typedef struct value value;
typedef struct kv kv;

struct value {
    vtype t;
    long long i;       /* BOOL, INT */
    const char *s;     /* STR (NUL-terminated, may hold no NUL inside) */
    size_t n;          /* STR length, LIST/DICT count */
    value **items;     /* LIST */
    kv *kvs;           /* DICT, NS (NS is mutable: grows in place) */
    size_t cap;        /* NS capacity */
    const char *name;  /* FUNC */
};

struct kv {
    const char *k;
    value *v;
};

typedef struct jctx {
    jblock *arena;
    const char *src;   /* the template */
    size_t pos, len;   /* lexer position */
    rlvr_err *e;
    int failed;
    /* variable scopes: a stack of (name, value) */
    kv *vars;
    size_t n_vars, cap_vars;
    sbuf *out;
    int depth;
} jctx;

static void *jalloc(jctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    jblock *b = c->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        jblock *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b, nb->used = 0, nb->cap = cap;
        c->arena = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

static int jfail(jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jfail(jctx *c, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = 1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* the line of the template where it happened */
    size_t line = 1;
    for (size_t i = 0; i < c->pos && i < c->len; i++) line += c->src[i] == '\n';
    err_set(c->e, "chat template line %zu: %s", line, msg);
    return -1;
}

static value UNDEF = {.t = V_UNDEF}, NONE = {.t = V_NONE};

static value *mk(jctx *c, vtype t) {
    value *v = jalloc(c, sizeof *v);
    if (!v) {
        jfail(c, "out of memory");
        return &UNDEF;
    }
    v->t = t;
    return v;
}

static value *mk_str(jctx *c, const char *s, size_t n) {
    value *v = mk(c, V_STR);
    if (c->failed) return v;
    char *p = jalloc(c, n + 1);
    if (!p) {
        jfail(c, "out of memory");
        return &UNDEF;
    }
    memcpy(p, s, n);
    v->s = p, v->n = n;
    return v;
}

static value *mk_int(jctx *c, long long i, vtype t) {
    value *v = mk(c, t);
    v->i = i;
    return v;
}

static int truthy(const value *v) {
    switch (v->t) {
    case V_UNDEF:
    case V_NONE: return 0;
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_STR:
    case V_LIST:
    case V_DICT: return v->n != 0;
    default: return 1;
    }
}

static value *dict_get(const value *d, const char *k) {
    if (d->t != V_DICT && d->t != V_NS) return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->kvs[i].k, k)) return d->kvs[i].v;
    return NULL;
}

static int vequal(const value *a, const value *b) {
    if ((a->t == V_INT || a->t == V_BOOL) && (b->t == V_INT || b->t == V_BOOL)) return a->i == b->i;
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_UNDEF:
    case V_NONE: return 1;
    case V_STR: return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
    case V_LIST:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!vequal(a->items[i], b->items[i])) return 0;
        return 1;
    default: return a == b;
    }
}

static void put_value(jctx *c, const value *v, sbuf *o) {
    switch (v->t) {
    case V_UNDEF: break;
    case V_NONE: sb_puts(o, "None"); break;
    case V_BOOL: sb_puts(o, v->i ? "True" : "False"); break;
    case V_INT: sb_printf(o, "%lld", v->i); break;
    case V_STR: sb_putn(o, v->s, v->n); break;
    default: jfail(c, "cannot print a list, dict or namespace (rlvr's Jinja subset has no repr)");
    }
}

/* ------------------------------------------------------------------ lexer (inside tags) */

static void skip_ws(jctx *c) {
    while (c->pos < c->len && (c->src[c->pos] == ' ' || c->src[c->pos] == '\t' || c->src[c->pos] == '\n' ||
                               c->src[c->pos] == '\r'))
        c->pos++;
}

static int at(jctx *c, const char *tok) {
    skip_ws(c);
    size_t n = strlen(tok);
    return c->len - c->pos >= n && memcmp(c->src + c->pos, tok, n) == 0;
}

static int is_ident_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* A keyword or name at the cursor equal to `w` (not a prefix of a longer name). */
static int at_word(jctx *c, const char *w) {
    if (!at(c, w)) return 0;
    size_t n = strlen(w);
    return c->pos + n >= c->len || !is_ident_char(c->src[c->pos + n]);
}

static int accept(jctx *c, const char *tok) {
    if (!at(c, tok)) return 0;
    c->pos += strlen(tok);
    return 1;
}

static int accept_word(jctx *c, const char *w) {
    if (!at_word(c, w)) return 0;
    c->pos += strlen(w);
    return 1;
}

static int expect(jctx *c, const char *tok) {
    if (accept(c, tok)) return 0;
    return jfail(c, "expected '%s' near '%.20s'", tok, c->src + c->pos);
}

static const char *ident(jctx *c) {
    skip_ws(c);
    size_t s = c->pos;
    if (s >= c->len || !(is_ident_char(c->src[s]) && !(c->src[s] >= '0' && c->src[s] <= '9'))) {
        jfail(c, "expected a name near '%.20s'", c->src + c->pos);
        return "";
    }
    while (c->pos < c->len && is_ident_char(c->src[c->pos])) c->pos++;
    value *v = mk_str(c, c->src + s, c->pos - s);
    return c->failed ? "" : v->s;
}

/* ------------------------------------------------------------------ expressions
 * Expressions are evaluated while they are parsed (`ev` = 1) or only parsed (`ev` = 0, for
 * branches not taken and loop bodies seen once); the parse is the same either way. */

static value *expr(jctx *c, int ev);

static value *lookup(jctx *c, const char *name) {
    for (size_t i = c->n_vars; i-- > 0;)
        if (!strcmp(c->vars[i].k, name)) return c->vars[i].v;
    return &UNDEF;
}

static int set_var(jctx *c, const char *name, value *v) {
    if (c->n_vars == c->cap_vars) {
        size_t cap = c->cap_vars ? c->cap_vars * 2 : 32;
        kv *g = realloc(c->vars, cap * sizeof *g);
        if (!g) return jfail(c, "out of memory");
        c->vars = g, c->cap_vars = cap;
    }
    c->vars[c->n_vars++] = (kv){name, v};
    return 0;
}

static value *string_literal(jctx *c) {
    char q = c->src[c->pos++];
    sbuf b;
    sb_init(&b);
    while (c->pos < c->len && c->src[c->pos] != q) {
        char ch = c->src[c->pos++];
        if (ch == '\\' && c->pos < c->len) {
            char esc = c->src[c->pos++];
            /* Jinja decodes literals with Python's unicode-escape */
            switch (esc) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'v': ch = '\v'; break;
            case 'a': ch = '\a'; break;
            case '\\': ch = '\\'; break;
            case '\'': ch = '\''; break;
            case '"': ch = '"'; break;
            case 'x':
            case 'u':
            case 'U': {
                int nd = esc == 'x' ? 2 : esc == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (int k = 0; k < nd; k++) {
                    char h = c->pos < c->len ? c->src[c->pos++] : 0;
                    int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (d < 0) {
                        sb_free(&b);
                        jfail(c, "bad \\%c escape in a string", esc);
                        return &UNDEF;
                    }
                    cp = cp * 16 + (uint32_t)d;
                }
                char u[4];
                size_t ul = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (ul == 1) u[0] = (char)cp;
                else if (ul == 2) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F));
                else if (ul == 3)
                    u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F));
                else
                    u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F));
                sb_putn(&b, u, ul);
                continue;
            }
            case '\n': continue; /* a backslash-newline joins lines */
            default: sb_putc(&b, '\\'); ch = esc; /* unknown escapes stay as written */
            }
        }
        sb_putc(&b, ch);
    }
    if (c->pos >= c->len) {
        sb_free(&b);
        jfail(c, "unterminated string");
        return &UNDEF;
    }
    c->pos++;
    value *v = mk_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return v;
}

static value *call_args(jctx *c, int ev, value **args, int max, int *n_args, const char *what) {
    *n_args = 0;
    if (accept(c, ")")) return NULL;
    do {
        skip_ws(c);
        /* keyword arguments (namespace(a=1)) are returned as (name, value) pairs in a dict */
        size_t save = c->pos;
        if (is_ident_char(c->src[c->pos])) {
            const char *k = ident(c);
            if (accept(c, "=") && !at(c, "=")) {
                value *v = expr(c, ev);
                if (*n_args >= max) return jfail(c, "too many arguments to %s", what), NULL;
                value *pair = mk(c, V_DICT);
                pair->kvs = jalloc(c, sizeof(kv));
                if (pair->kvs) pair->kvs[0] = (kv){k, v}, pair->n = 1, pair->name = "kw";
                args[(*n_args)++] = pair;
                continue;
            }
            c->pos = save;
        }
        if (*n_args >= max) return jfail(c, "too many arguments to %s", what), NULL;
        args[(*n_args)++] = expr(c, ev);
    } while (!c->failed && accept(c, ","));
    expect(c, ")");
    return NULL;
}

static value *str_method(jctx *c, value *s, const char *m, value **a, int na) {
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (na != 1 || a[0]->t != V_STR) return jfail(c, "%s needs one string", m), &UNDEF;
        int ok = a[0]->n <= s->n &&
                 memcmp(m[0] == 's' ? s->s : s->s + s->n - a[0]->n, a[0]->s, a[0]->n) == 0;
        return mk_int(c, ok, V_BOOL);
    }
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        if (na > 1 || (na == 1 && a[0]->t != V_STR)) return jfail(c, "%s takes one string", m), &UNDEF;
        if (na == 0 && m[0] == 's') { /* whitespace: Python's str.strip */
            sbuf b;
            sb_init(&b);
            tok_py_strip(s->s, s->n, &b);
            value *v = mk_str(c, b.s ? b.s : "", b.len);
            sb_free(&b);
            return v;
        }
        const char *set = na ? a[0]->s : " \t\n\r\x0b\x0c";
        size_t i = 0, j = s->n;
        if (m[0] != 'r')
            while (i < j && strchr(set, s->s[i]) && s->s[i]) i++;
        if (m[0] != 'l')
            while (j > i && strchr(set, s->s[j - 1]) && s->s[j - 1]) j--;
        return mk_str(c, s->s + i, j - i);
    }
    if (!strcmp(m, "upper") || !strcmp(m, "lower")) {
        value *v = mk_str(c, s->s, s->n);
        if (c->failed) return v;
        char *p = (char *)v->s;
        for (size_t i = 0; i < v->n; i++)
            if (m[0] == 'u' && p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 32);
            else if (m[0] == 'l' && p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] + 32);
        return v;
    }
    if (!strcmp(m, "split")) {
        if (na != 1 || a[0]->t != V_STR || a[0]->n == 0)
            return jfail(c, "split needs a non-empty separator (rlvr's Jinja subset)"), &UNDEF;
        value *l = mk(c, V_LIST);
        size_t cap = 1;
        for (const char *p = s->s; (p = strstr(p, a[0]->s)) != NULL; p += a[0]->n) cap++;
        l->items = jalloc(c, cap * sizeof(value *));
        if (!l->items) return jfail(c, "out of memory"), &UNDEF;
        const char *start = s->s, *p;
        while ((p = strstr(start, a[0]->s)) != NULL) {
            l->items[l->n++] = mk_str(c, start, (size_t)(p - start));
            start = p + a[0]->n;
        }
        l->items[l->n++] = mk_str(c, start, (size_t)(s->s + s->n - start));
        return l;
    }
    if (!strcmp(m, "replace")) {
        if (na != 2 || a[0]->t != V_STR || a[1]->t != V_STR || a[0]->n == 0)
            return jfail(c, "replace needs two strings"), &UNDEF;
        sbuf b;
        sb_init(&b);
        const char *start = s->s, *p;
        while ((p = strstr(start, a[0]->s)) != NULL) {
            sb_putn(&b, start, (size_t)(p - start));
            sb_putn(&b, a[1]->s, a[1]->n);
            start = p + a[0]->n;
        }
        sb_puts(&b, start);
        value *v = mk_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
        return v;
    }
    return jfail(c, "string method '%s' is not in rlvr's Jinja subset", m), &UNDEF;
}

static value *apply_filter(jctx *c, value *v, const char *f, value **a, int na) {
    if (!strcmp(f, "trim")) {
        if (v->t != V_STR) return jfail(c, "trim of a non-string"), &UNDEF;
        return str_method(c, v, "strip", a, 0);
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        if (v->t != V_STR && v->t != V_LIST && v->t != V_DICT) return jfail(c, "length of a non-sequence"), &UNDEF;
        if (v->t == V_STR) { /* characters, not bytes */
            long long n = 0;
            for (size_t i = 0; i < v->n; i++) n += ((unsigned char)v->s[i] & 0xC0) != 0x80;
            return mk_int(c, n, V_INT);
        }
        return mk_int(c, (long long)v->n, V_INT);
    }
    if (!strcmp(f, "upper") || !strcmp(f, "lower")) {
        if (v->t != V_STR) return jfail(c, "%s of a non-string", f), &UNDEF;
        return str_method(c, v, f, a, 0);
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        if (v->t != V_LIST) return jfail(c, "%s of a non-list", f), &UNDEF;
        if (!v->n) return &UNDEF;
        return v->items[f[0] == 'f' ? 0 : v->n - 1];
    }
    if (!strcmp(f, "default")) {
        if (na < 1) return jfail(c, "default needs a value"), &UNDEF;
        return v->t == V_UNDEF || (na > 1 && truthy(a[1]) && !truthy(v)) ? a[0] : v;
    }
    if (!strcmp(f, "string")) {
        sbuf b;
        sb_init(&b);
        put_value(c, v, &b);
        value *r = mk_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
        return r;
    }
    if (!strcmp(f, "join")) {
        if (v->t != V_LIST) return jfail(c, "join of a non-list"), &UNDEF;
        sbuf b;
        sb_init(&b);
        for (size_t i = 0; i < v->n; i++) {
            if (i && na) sb_putn(&b, a[0]->s ? a[0]->s : "", a[0]->n);
            put_value(c, v->items[i], &b);
        }
        value *r = mk_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
        return r;
    }
    if (!strcmp(f, "list")) {
        if (v->t == V_LIST) return v;
        return jfail(c, "list of a non-list"), &UNDEF;
    }
    return jfail(c, "filter '%s' is not in rlvr's Jinja subset", f), &UNDEF;
}

static value *test(jctx *c, value *v, const char *t) {
    int r;
    if (!strcmp(t, "defined")) r = v->t != V_UNDEF;
    else if (!strcmp(t, "undefined")) r = v->t == V_UNDEF;
    else if (!strcmp(t, "none")) r = v->t == V_NONE;
    else if (!strcmp(t, "string")) r = v->t == V_STR;
    else if (!strcmp(t, "number") || !strcmp(t, "integer")) r = v->t == V_INT;
    else if (!strcmp(t, "true")) r = v->t == V_BOOL && v->i;
    else if (!strcmp(t, "false")) r = v->t == V_BOOL && !v->i;
    else if (!strcmp(t, "mapping")) r = v->t == V_DICT;
    else if (!strcmp(t, "sequence") || !strcmp(t, "iterable")) r = v->t == V_LIST || v->t == V_STR || v->t == V_DICT;
    else return jfail(c, "test '%s' is not in rlvr's Jinja subset", t), &UNDEF;
    return mk_int(c, r, V_BOOL);
}

static value *primary(jctx *c, int ev) {
    skip_ws(c);
    if (c->pos >= c->len) return jfail(c, "unexpected end of template"), &UNDEF;
    char ch = c->src[c->pos];
    if (ch == '\'' || ch == '"') return string_literal(c);
    if (ch >= '0' && ch <= '9') {
        long long n = 0;
        while (c->pos < c->len && c->src[c->pos] >= '0' && c->src[c->pos] <= '9')
            if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, c->src[c->pos++] - '0', &n))
                return jfail(c, "integer literal too large"), &UNDEF;
        if (c->pos < c->len && c->src[c->pos] == '.') return jfail(c, "floats are not in rlvr's Jinja subset"), &UNDEF;
        return mk_int(c, n, V_INT);
    }
    if (accept(c, "(")) {
        value *v = expr(c, ev);
        expect(c, ")");
        return v;
    }
    if (accept(c, "[")) {
        value *l = mk(c, V_LIST);
        value *tmp[64];
        size_t n = 0;
        if (!accept(c, "]")) {
            do {
                if (n == 64) return jfail(c, "list literal longer than 64"), &UNDEF;
                tmp[n++] = expr(c, ev);
            } while (!c->failed && accept(c, ","));
            expect(c, "]");
        }
        l->items = jalloc(c, (n + 1) * sizeof(value *));
        if (l->items) memcpy(l->items, tmp, n * sizeof(value *)), l->n = n;
        return l;
    }
    if (ch == '{') return jfail(c, "dict literals are not in rlvr's Jinja subset"), &UNDEF;
    const char *name = ident(c);
    if (c->failed) return &UNDEF;
    if (!strcmp(name, "true") || !strcmp(name, "True")) return mk_int(c, 1, V_BOOL);
    if (!strcmp(name, "false") || !strcmp(name, "False")) return mk_int(c, 0, V_BOOL);
    if (!strcmp(name, "none") || !strcmp(name, "None")) return &NONE;
    if (!strcmp(name, "namespace") || !strcmp(name, "raise_exception")) {
        if (!at(c, "(")) return jfail(c, "%s must be called", name), &UNDEF;
        value *f = mk(c, V_FUNC);
        f->name = name;
        return f;
    }
    return ev ? lookup(c, name) : &UNDEF;
}

static value *postfix(jctx *c, int ev) {
    value *v = primary(c, ev);
    while (!c->failed) {
        if (accept(c, ".")) {
            const char *name = ident(c);
            if (at(c, "(")) { /* method call */
                c->pos++;
                value *args[4];
                int na;
                call_args(c, ev, args, 4, &na, name);
                if (!ev || c->failed) {
                    v = &UNDEF;
                    continue;
                }
                if (v->t == V_STR) v = str_method(c, v, name, args, na);
                else if (v->t == V_DICT && !strcmp(name, "get")) {
                    if (na < 1 || args[0]->t != V_STR) return jfail(c, "get needs a key"), &UNDEF;
                    value *r = dict_get(v, args[0]->s);
                    v = r ? r : na > 1 ? args[1] : &NONE;
                } else if (v->t == V_DICT && (!strcmp(name, "items") || !strcmp(name, "keys"))) {
                    value *l = mk(c, V_LIST);
                    l->items = jalloc(c, (v->n + 1) * sizeof(value *));
                    for (size_t i = 0; l->items && i < v->n; i++) {
                        value *k = mk_str(c, v->kvs[i].k, strlen(v->kvs[i].k));
                        if (name[0] == 'k') l->items[i] = k;
                        else {
                            value *pair = mk(c, V_LIST);
                            pair->items = jalloc(c, 2 * sizeof(value *));
                            if (pair->items) pair->items[0] = k, pair->items[1] = v->kvs[i].v, pair->n = 2;
                            l->items[i] = pair;
                        }
                    }
                    l->n = v->n;
                    v = l;
                } else return jfail(c, "method '%s' is not in rlvr's Jinja subset", name), &UNDEF;
                continue;
            }
            if (!ev) continue;
            if (v->t == V_UNDEF) return jfail(c, "'%s' of an undefined value", name), &UNDEF;
            value *r = dict_get(v, name);
            v = r ? r : &UNDEF;
        } else if (accept(c, "[")) {
            value *idx = NULL, *hi = NULL;
            int slice = 0, has_lo = 0, has_hi = 0;
            long long step = 1;
            if (!at(c, ":")) idx = expr(c, ev), has_lo = 1;
            if (accept(c, ":")) {
                slice = 1;
                if (!at(c, "]") && !at(c, ":")) hi = expr(c, ev), has_hi = 1;
                if (accept(c, ":")) {
                    value *s = expr(c, ev);
                    step = s->t == V_INT ? s->i : 1;
                    if (ev && (s->t != V_INT || (s->i != 1 && s->i != -1)))
                        return jfail(c, "slice steps other than 1 and -1 are not in rlvr's Jinja subset"), &UNDEF;
                }
            }
            expect(c, "]");
            if (!ev || c->failed) {
                v = &UNDEF;
                continue;
            }
            if (slice) {
                if (v->t != V_LIST && v->t != V_STR) return jfail(c, "slice of a non-sequence"), &UNDEF;
                long long n = (long long)v->n, lo = 0, up = n;
                if (has_lo) lo = idx->i < 0 ? idx->i + n : idx->i;
                if (has_hi) up = hi->i < 0 ? hi->i + n : hi->i;
                if (lo < 0) lo = 0;
                if (up > n) up = n;
                if (up < lo) up = lo;
                if (step == -1) {
                    if (has_lo || has_hi) return jfail(c, "only [::-1] reverses in rlvr's Jinja subset"), &UNDEF;
                    if (v->t == V_STR) return jfail(c, "reversing a string is not in rlvr's Jinja subset"), &UNDEF;
                    value *l = mk(c, V_LIST);
                    l->items = jalloc(c, (v->n + 1) * sizeof(value *));
                    for (size_t i = 0; l->items && i < v->n; i++) l->items[i] = v->items[v->n - 1 - i];
                    l->n = v->n;
                    v = l;
                } else if (v->t == V_STR) v = mk_str(c, v->s + lo, (size_t)(up - lo));
                else {
                    value *l = mk(c, V_LIST);
                    l->items = jalloc(c, ((size_t)(up - lo) + 1) * sizeof(value *));
                    for (long long i = lo; l->items && i < up; i++) l->items[i - lo] = v->items[i];
                    l->n = (size_t)(up - lo);
                    v = l;
                }
                continue;
            }
            if (v->t == V_LIST && idx->t == V_INT) {
                long long i = idx->i < 0 ? idx->i + (long long)v->n : idx->i;
                v = i >= 0 && i < (long long)v->n ? v->items[i] : &UNDEF;
            } else if ((v->t == V_DICT || v->t == V_NS) && idx->t == V_STR) {
                value *r = dict_get(v, idx->s);
                v = r ? r : &UNDEF;
            } else if (v->t == V_UNDEF) {
                return jfail(c, "subscript of an undefined value"), &UNDEF;
            } else v = &UNDEF;
        } else if (at(c, "(")) {
            c->pos++;
            value *args[32];
            int na;
            call_args(c, ev, args, 32, &na, "a call");
            if (!ev || c->failed) continue;
            if (v->t != V_FUNC) return jfail(c, "call of something that is not a function"), &UNDEF;
            if (!strcmp(v->name, "raise_exception")) {
                return jfail(c, "the template raised an exception: %s", na && args[0]->t == V_STR ? args[0]->s : "?"),
                       &UNDEF;
            }
            value *ns = mk(c, V_NS); /* namespace(k=v, ...) */
            ns->cap = (size_t)na + 16;
            ns->kvs = jalloc(c, ns->cap * sizeof(kv));
            for (int i = 0; ns->kvs && i < na; i++) {
                if (args[i]->t != V_DICT || !args[i]->name) return jfail(c, "namespace takes keyword arguments"), &UNDEF;
                ns->kvs[ns->n++] = args[i]->kvs[0];
            }
            v = ns;
        } else if (accept(c, "|")) {
            const char *f = ident(c);
            value *args[4];
            int na = 0;
            if (accept(c, "(")) call_args(c, ev, args, 4, &na, f);
            if (ev && !c->failed) v = apply_filter(c, v, f, args, na);
        } else if (at_word(c, "is")) {
            accept_word(c, "is");
            int neg = accept_word(c, "not");
            const char *t = ident(c);
            if (ev && !c->failed) {
                v = test(c, v, t);
                if (neg) v = mk_int(c, !v->i, V_BOOL);
            }
        } else break;
    }
    return v;
}

static value *unary(jctx *c, int ev) {
    if (accept(c, "-")) {
        value *v = unary(c, ev);
        if (!ev) return v;
        long long r;
        if (v->t != V_INT) return jfail(c, "negative of a non-number"), &UNDEF;
        if (__builtin_sub_overflow(0LL, v->i, &r)) return jfail(c, "integer overflow"), &UNDEF;
        return mk_int(c, r, V_INT);
    }
    return postfix(c, ev);
}

static value *mul(jctx *c, int ev) {
    value *v = unary(c, ev);
    while (!c->failed && (at(c, "*") || (at(c, "%") && !at(c, "%}")) || (at(c, "/") && !at(c, "//")) || at(c, "//"))) {
        char op = c->src[c->pos];
        int floordiv = at(c, "//");
        c->pos += floordiv ? 2 : 1;
        value *r = unary(c, ev);
        if (!ev) continue;
        if (v->t != V_INT || r->t != V_INT) return jfail(c, "arithmetic on non-numbers"), &UNDEF;
        long long prod;
        if (op == '*') {
            if (__builtin_mul_overflow(v->i, r->i, &prod)) return jfail(c, "integer overflow"), &UNDEF;
            v = mk_int(c, prod, V_INT);
        } else if (r->i == 0) return jfail(c, "division by zero"), &UNDEF;
        else if (r->i == -1) /* x % -1 is 0; x // -1 is -x, which overflows only for the minimum */
            v = op == '%' ? mk_int(c, 0, V_INT)
                          : (v->i == (-9223372036854775807LL - 1) ? (jfail(c, "integer overflow"), &UNDEF)
                                                                 : mk_int(c, -v->i, V_INT));
        else if (op == '%') { /* Python's sign rule; m + r cannot overflow: their signs differ */
            long long m = v->i % r->i;
            v = mk_int(c, m != 0 && ((m < 0) != (r->i < 0)) ? m + r->i : m, V_INT);
        }
        else if (floordiv) v = mk_int(c, v->i / r->i - ((v->i % r->i != 0) && ((v->i < 0) != (r->i < 0))), V_INT);
        else return jfail(c, "true division is not in rlvr's Jinja subset"), &UNDEF;
    }
    return v;
}

static value *concat(jctx *c, int ev) {
    value *v = mul(c, ev);
    while (!c->failed && accept(c, "~")) {
        value *r = mul(c, ev);
        if (!ev) continue;
        sbuf b;
        sb_init(&b);
        put_value(c, v, &b);
        put_value(c, r, &b);
        v = mk_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
    }
    return v;
}

static value *add(jctx *c, int ev) {
    value *v = concat(c, ev);
    while (!c->failed && (at(c, "+") || (at(c, "-") && !at(c, "-%}") && !at(c, "-}}")))) {
        char op = c->src[c->pos++];
        value *r = concat(c, ev);
        if (!ev) continue;
        if (op == '+' && v->t == V_STR && r->t == V_STR) {
            value *s = mk_str(c, v->s, v->n + r->n);
            if (!c->failed) memcpy((char *)s->s + v->n, r->s, r->n), ((char *)s->s)[v->n + r->n] = 0;
            v = s;
        } else if (op == '+' && v->t == V_LIST && r->t == V_LIST) {
            value *l = mk(c, V_LIST);
            l->items = jalloc(c, (v->n + r->n + 1) * sizeof(value *));
            if (l->items) {
                memcpy(l->items, v->items, v->n * sizeof(value *));
                memcpy(l->items + v->n, r->items, r->n * sizeof(value *));
                l->n = v->n + r->n;
            }
            v = l;
        } else if ((v->t == V_INT || v->t == V_BOOL) && (r->t == V_INT || r->t == V_BOOL)) {
            long long sum;
            if (op == '+' ? __builtin_add_overflow(v->i, r->i, &sum) : __builtin_sub_overflow(v->i, r->i, &sum))
                return jfail(c, "integer overflow"), &UNDEF;
            v = mk_int(c, sum, V_INT);
        } else {
            return jfail(c, "'%c' on mismatched values (an undefined variable?)", op), &UNDEF;
        }
    }
    return v;
}

static int contains(jctx *c, value *hay, value *needle) {
    if (hay->t == V_STR) {
        if (needle->t != V_STR) return jfail(c, "'in' a string needs a string"), 0;
        return strstr(hay->s, needle->s) != NULL;
    }
    if (hay->t == V_LIST) {
        for (size_t i = 0; i < hay->n; i++)
            if (vequal(hay->items[i], needle)) return 1;
        return 0;
    }
    if (hay->t == V_DICT || hay->t == V_NS) return needle->t == V_STR && dict_get(hay, needle->s) != NULL;
    if (hay->t == V_UNDEF) return jfail(c, "'in' an undefined value"), 0;
    return jfail(c, "'in' a value that is not a container"), 0;
}

static value *compare(jctx *c, int ev) {
    value *v = add(c, ev);
    for (;;) {
        if (c->failed) return v;
        const char *ops[] = {"==", "!=", "<=", ">=", "<", ">"};
        int op = -1;
        for (int i = 0; i < 6; i++)
            if (at(c, ops[i])) {
                op = i;
                c->pos += strlen(ops[i]);
                break;
            }
        int in = 0, not_in = 0;
        if (op < 0) {
            size_t save = c->pos;
            if (accept_word(c, "not")) {
                if (accept_word(c, "in")) not_in = 1;
                else c->pos = save;
            } else if (accept_word(c, "in")) in = 1;
            if (!in && !not_in) return v;
        }
        value *r = add(c, ev);
        if (!ev) continue;
        int res;
        if (in || not_in) res = contains(c, r, v) != not_in;
        else if (op == 0) res = vequal(v, r);
        else if (op == 1) res = !vequal(v, r);
        else {
            int cmp;
            if (v->t == V_INT && r->t == V_INT) cmp = v->i < r->i ? -1 : v->i > r->i;
            else if (v->t == V_STR && r->t == V_STR) cmp = strcmp(v->s, r->s);
            else return jfail(c, "ordering of mismatched values"), &UNDEF;
            res = op == 2 ? cmp <= 0 : op == 3 ? cmp >= 0 : op == 4 ? cmp < 0 : cmp > 0;
        }
        v = mk_int(c, res, V_BOOL);
    }
}

static value *not_expr(jctx *c, int ev) {
    if (accept_word(c, "not")) {
        value *v = not_expr(c, ev);
        return ev ? mk_int(c, !truthy(v), V_BOOL) : v;
    }
    return compare(c, ev);
}

/* and/or return one of their operands, as Python's do; the right side is only evaluated
 * when it decides the result. */
static value *and_expr(jctx *c, int ev) {
    value *v = not_expr(c, ev);
    while (!c->failed && accept_word(c, "and")) {
        int need = ev && truthy(v);
        value *r = not_expr(c, need);
        if (need) v = r;
    }
    return v;
}

static value *or_expr(jctx *c, int ev) {
    value *v = and_expr(c, ev);
    while (!c->failed && accept_word(c, "or")) {
        int need = ev && !truthy(v);
        value *r = and_expr(c, need);
        if (need) v = r;
    }
    return v;
}

static value *expr(jctx *c, int ev) {
    if (++c->depth > 200) return jfail(c, "expression nested too deeply"), &UNDEF;
    value *v = or_expr(c, ev);
    if (!c->failed && accept_word(c, "if")) {
        value *cond = or_expr(c, ev);
        int take = ev && truthy(cond);
        value *alt = &UNDEF;
        if (accept_word(c, "else")) alt = expr(c, ev && !take);
        if (ev) v = take ? v : alt;
    }
    c->depth--;
    return v;
}

/* ------------------------------------------------------------------ statements */

/* Text and tags. `ev` = 0 parses without output or effects. Stops at a block tag whose
 * keyword is one of `stops` (the cursor is left at its "{%"), or at the end. Returns the
 * index of the stop keyword met, -1 at the end, -2 on error. */
static int body(jctx *c, int ev, const char *const *stops, int n_stops);

static int is_hspace(char ch) {
    return ch == ' ' || ch == '\t';
}

/* Where a text run ends: the next "{{", "{%" or "{#". */
static size_t next_tag(jctx *c, size_t from) {
    for (size_t i = from; i + 1 < c->len; i++)
        if (c->src[i] == '{' && (c->src[i + 1] == '{' || c->src[i + 1] == '%' || c->src[i + 1] == '#')) return i;
    return c->len;
}

/* Emits the text c->src[a..b) that precedes the tag at b, with whitespace control: "{%-",
 * "{{-", "{#-" strip all whitespace before the tag; with lstrip_blocks, spaces and tabs between
 * the start of a line and a block or comment tag go (unless the tag is "{%+"). */
static void emit_text(jctx *c, int ev, size_t a, size_t b) {
    if (!ev || a >= b) return;
    size_t end = b;
    int tag = b + 1 < c->len, minus = tag && b + 2 < c->len && c->src[b + 2] == '-';
    int block = tag && (c->src[b + 1] == '%' || c->src[b + 1] == '#') && !(b + 2 < c->len && c->src[b + 2] == '+');
    if (minus) {
        while (end > a && (is_hspace(c->src[end - 1]) || c->src[end - 1] == '\n' || c->src[end - 1] == '\r')) end--;
    } else if (block) {
        size_t k = end;
        while (k > a && is_hspace(c->src[k - 1])) k--;
        if (k > a ? c->src[k - 1] == '\n' : (a == 0 || c->src[a - 1] == '\n')) end = k;
    }
    sb_putn(c->out, c->src + a, end - a);
}

/* After a tag's closing: "-%}" / "-}}" strip the following whitespace; a block's "%}" eats
 * one newline (trim_blocks). */
static void after_tag(jctx *c, int minus, int block) {
    if (minus) {
        while (c->pos < c->len && (is_hspace(c->src[c->pos]) || c->src[c->pos] == '\n' || c->src[c->pos] == '\r'))
            c->pos++;
    } else if (block && c->pos < c->len && c->src[c->pos] == '\n') c->pos++;
}

static int close_tag(jctx *c, const char *close) {
    skip_ws(c);
    int minus = 0;
    if (c->pos < c->len && c->src[c->pos] == '-') minus = 1, c->pos++;
    if (!accept(c, close)) return jfail(c, "expected '%s' near '%.20s'", close, c->src + c->pos), -1;
    after_tag(c, minus, close[0] == '%');
    return 0;
}

/* The keyword of the block tag at c->pos ("{%" ...), without consuming it. */
static int block_keyword(jctx *c, char *kw, size_t cap) {
    size_t p = c->pos + 2;
    if (p < c->len && (c->src[p] == '-' || c->src[p] == '+')) p++;
    while (p < c->len && is_hspace(c->src[p])) p++;
    size_t k = 0;
    while (p < c->len && is_ident_char(c->src[p]) && k + 1 < cap) kw[k++] = c->src[p++];
    kw[k] = 0;
    return 0;
}

static void open_block(jctx *c) {
    c->pos += 2;
    if (c->pos < c->len && (c->src[c->pos] == '-' || c->src[c->pos] == '+')) c->pos++;
}

static int stmt_for(jctx *c, int ev) {
    const char *var = ident(c), *var2 = NULL;
    if (accept(c, ",")) var2 = ident(c);
    if (!accept_word(c, "in")) return jfail(c, "expected 'in' in for");
    value *seq = expr(c, ev);
    if (at_word(c, "if") || at_word(c, "recursive")) return jfail(c, "for-if and recursive loops are not in rlvr's Jinja subset");
    if (close_tag(c, "%}") != 0) return -1;
    static const char *const stops[] = {"endfor", "else"};
    size_t body_start = c->pos;
    if (ev && seq->t != V_LIST && seq->t != V_UNDEF) {
        if (seq->t == V_DICT) return jfail(c, "iterating a dict: use .items()");
        return jfail(c, "for over something that is not a list");
    }
    size_t n = ev && seq->t == V_LIST ? seq->n : 0;
    int r = 0;
    for (size_t i = 0; i < n && !c->failed; i++) {
        c->pos = body_start;
        size_t saved_vars = c->n_vars;
        value *loop = mk(c, V_DICT);
        loop->kvs = jalloc(c, 8 * sizeof(kv));
        if (!loop->kvs) return jfail(c, "out of memory");
        loop->kvs[0] = (kv){"index0", mk_int(c, (long long)i, V_INT)};
        loop->kvs[1] = (kv){"index", mk_int(c, (long long)i + 1, V_INT)};
        loop->kvs[2] = (kv){"first", mk_int(c, i == 0, V_BOOL)};
        loop->kvs[3] = (kv){"last", mk_int(c, i + 1 == n, V_BOOL)};
        loop->kvs[4] = (kv){"length", mk_int(c, (long long)n, V_INT)};
        loop->kvs[5] = (kv){"revindex0", mk_int(c, (long long)(n - 1 - i), V_INT)};
        loop->kvs[6] = (kv){"revindex", mk_int(c, (long long)(n - i), V_INT)};
        loop->n = 7;
        set_var(c, "loop", loop);
        value *item = seq->items[i];
        if (var2) {
            if (item->t != V_LIST || item->n != 2) return jfail(c, "unpacking a non-pair");
            set_var(c, var, item->items[0]);
            set_var(c, var2, item->items[1]);
        } else set_var(c, var, item);
        r = body(c, 1, stops, 1);
        /* sets inside a loop body are local to the iteration (Jinja scoping) */
        c->n_vars = saved_vars;
        if (r == -2) return -1;
        if (r != 0) return jfail(c, "for without endfor");
    }
    c->pos = body_start;
    if (n == 0) { /* parse the body once without effects, then an optional else */
        r = body(c, 0, stops, 2);
        if (r == -2) return -1;
        if (r == 1) {
            open_block(c);
            accept_word(c, "else");
            if (close_tag(c, "%}") != 0) return -1;
            r = body(c, ev, stops, 1);
            if (r == -2) return -1;
        }
    } else {
        r = body(c, 0, stops, 2);
        if (r == 1) {
            open_block(c);
            accept_word(c, "else");
            if (close_tag(c, "%}") != 0) return -1;
            r = body(c, 0, stops, 1);
        }
    }
    if (r != 0) return jfail(c, "for without endfor");
    open_block(c);
    accept_word(c, "endfor");
    return close_tag(c, "%}");
}

static int stmt_if(jctx *c, int ev) {
    static const char *const stops[] = {"endif", "elif", "else"};
    int taken = 0;
    value *cond = expr(c, ev);
    if (close_tag(c, "%}") != 0) return -1;
    int run = ev && truthy(cond);
    taken = run;
    for (;;) {
        int r = body(c, run, stops, 3);
        if (r < 0) return r == -2 ? -1 : jfail(c, "if without endif");
        open_block(c);
        if (r == 0) {
            accept_word(c, "endif");
            return close_tag(c, "%}");
        }
        if (r == 1) {
            accept_word(c, "elif");
            cond = expr(c, ev && !taken);
            if (close_tag(c, "%}") != 0) return -1;
            run = ev && !taken && truthy(cond);
        } else {
            accept_word(c, "else");
            if (close_tag(c, "%}") != 0) return -1;
            run = ev && !taken;
        }
        taken |= run;
    }
}

static int stmt_set(jctx *c, int ev) {
    const char *name = ident(c);
    const char *attr = NULL;
    if (accept(c, ".")) attr = ident(c);
    if (!accept(c, "=")) return jfail(c, "block set ({%% set x %%}...{%% endset %%}) is not in rlvr's Jinja subset");
    value *v = expr(c, ev);
    if (close_tag(c, "%}") != 0) return -1;
    if (!ev || c->failed) return c->failed ? -1 : 0;
    if (!attr) return set_var(c, name, v);
    value *ns = lookup(c, name);
    if (ns->t != V_NS) return jfail(c, "'%s.%s = ...' needs a namespace", name, attr);
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->kvs[i].k, attr)) return ns->kvs[i].v = v, 0;
    if (ns->n == ns->cap) {
        kv *g = jalloc(c, ns->cap * 2 * sizeof(kv));
        if (!g) return jfail(c, "out of memory");
        memcpy(g, ns->kvs, ns->n * sizeof(kv));
        ns->kvs = g, ns->cap *= 2;
    }
    ns->kvs[ns->n++] = (kv){attr, v};
    return 0;
}

static int body(jctx *c, int ev, const char *const *stops, int n_stops) {
    while (c->pos < c->len && !c->failed) {
        size_t t = next_tag(c, c->pos);
        emit_text(c, ev, c->pos, t);
        c->pos = t;
        if (t >= c->len) break;
        char kind = c->src[t + 1];
        if (kind == '#') {
            const char *end = strstr(c->src + t, "#}");
            if (!end) return jfail(c, "unterminated comment"), -2;
            c->pos = (size_t)(end - c->src) + 2;
            after_tag(c, end > c->src && end[-1] == '-', 1);
            continue;
        }
        if (kind == '{') {
            c->pos += 2;
            if (c->pos < c->len && c->src[c->pos] == '-') c->pos++;
            value *v = expr(c, ev);
            if (c->failed || close_tag(c, "}}") != 0) return -2;
            if (ev) put_value(c, v, c->out);
            continue;
        }
        char kw[32];
        block_keyword(c, kw, sizeof kw);
        for (int i = 0; i < n_stops; i++)
            if (!strcmp(kw, stops[i])) return i;
        open_block(c);
        if (accept_word(c, "for")) {
            if (stmt_for(c, ev) != 0) return -2;
        } else if (accept_word(c, "if")) {
            if (stmt_if(c, ev) != 0) return -2;
        } else if (accept_word(c, "set")) {
            if (stmt_set(c, ev) != 0) return -2;
        } else {
            return jfail(c, "'{%% %s %%}' is not in rlvr's Jinja subset", kw), -2;
        }
    }
    return c->failed ? -2 : -1;
}

/* ------------------------------------------------------------------ entry point */

char *tok_jinja_render(const char *tmpl, const char *bos, const char *eos, const tok_message *msgs, size_t n,
                       int add_generation_prompt, rlvr_err *e) {
    jctx c = {.src = tmpl, .len = strlen(tmpl), .e = e};
    sbuf out;
    sb_init(&out);
    c.out = &out;
    value *list = mk(&c, V_LIST);
    list->items = jalloc(&c, (n + 1) * sizeof(value *));
    for (size_t i = 0; list->items && i < n && !c.failed; i++) {
        value *m = mk(&c, V_DICT);
        m->kvs = jalloc(&c, 2 * sizeof(kv));
        if (!m->kvs) break;
        m->kvs[0] = (kv){"role", mk_str(&c, msgs[i].role, strlen(msgs[i].role))};
        m->kvs[1] = (kv){"content", mk_str(&c, msgs[i].content, strlen(msgs[i].content))};
        m->n = 2;
        list->items[list->n++] = m;
    }
    set_var(&c, "messages", list);
    set_var(&c, "add_generation_prompt", mk_int(&c, add_generation_prompt != 0, V_BOOL));
    if (bos) set_var(&c, "bos_token", mk_str(&c, bos, strlen(bos)));
    if (eos) set_var(&c, "eos_token", mk_str(&c, eos, strlen(eos)));
    int r = c.failed ? -2 : body(&c, 1, NULL, 0);
    while (c.arena) {
        jblock *next = c.arena->next;
        free(c.arena);
        c.arena = next;
    }
    free(c.vars);
    if (r == -2 || c.failed) {
        sb_free(&out);
        return NULL;
    }
    if (!out.s) sb_puts(&out, "");
    char *s = sb_take(&out);
    if (!s) err_set(e, "out of memory");
    return s;
}
