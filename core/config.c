/* config.c - the run configuration: defaults from config_schema.def, Lua config files
 * run in a luabox and checked key by key, `--set` overrides, cross-key rules, and the
 * two printers generated from the same schema (a resolved Lua config, docs/config.md).
 *
 * Loading and --set work on a copy and replace the caller's config only on success, so
 * a failed load leaves the previous values intact. */
#include "config.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "luabox.h"
#include "util.h"

/* Budgets of a config file's Lua state: a config builds one table, so these only stop
 * mistakes (an endless loop, a runaway table), never a real config. */
#define CFG_MAX_MEMORY ((size_t)256 << 20)
#define CFG_MAX_INSTRUCTIONS 200000000LL
#define CFG_MAX_SECONDS 10.0
#define CFG_MAX_PATH 256 /* longest dotted key path considered; longer is simply unknown */

/* ---- the schema ------------------------------------------------------------------ */

static const cfg_key cfg_keys[] = {
#define CFG_SECTION(path, doc) {path, CFG_T_SECTION, NULL, NULL, 0, 0, doc, 0},
#define CFG_STR(field, path, def, doc) {path, CFG_T_STR, "\"" def "\"", NULL, 0, 0, doc, offsetof(rlvr_config, field)},
#define CFG_ENUM(field, path, def, choices, doc) \
    {path, CFG_T_ENUM, "\"" def "\"", choices, 0, 0, doc, offsetof(rlvr_config, field)},
#define CFG_INT(field, path, def, lo, hi, doc) \
    {path, CFG_T_INT, #def, NULL, (double)(lo), (double)(hi), doc, offsetof(rlvr_config, field)},
#define CFG_NUM(field, path, def, lo, hi, doc) \
    {path, CFG_T_NUM, #def, NULL, (double)(lo), (double)(hi), doc, offsetof(rlvr_config, field)},
#define CFG_BOOL(field, path, def, doc) {path, CFG_T_BOOL, (def) ? "true" : "false", NULL, 0, 0, doc, offsetof(rlvr_config, field)},
#define CFG_STRS(field, path, doc) {path, CFG_T_STRS, NULL, NULL, 0, 0, doc, offsetof(rlvr_config, field)},
#include "config_schema.def"
};
#define CFG_N_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

const cfg_key *config_schema(size_t *n) {
    if (n) *n = CFG_N_KEYS;
    return cfg_keys;
}

static const cfg_key *cfg_find(const char *path) {
    for (size_t i = 0; i < CFG_N_KEYS; i++)
        if (strcmp(cfg_keys[i].path, path) == 0) return &cfg_keys[i];
    return NULL;
}

/* The last component of a dotted path: "temperature" for "rollout.temperature". */
static const char *cfg_leaf(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Whether `k` sits directly in the section `prefix` ("" is the top level). */
static int cfg_is_child(const cfg_key *k, const char *prefix) {
    size_t plen = strlen(prefix);
    if (plen == 0) return strchr(k->path, '.') == NULL;
    return strncmp(k->path, prefix, plen) == 0 && k->path[plen] == '.' && !strchr(k->path + plen + 1, '.');
}

static char **cfg_str_field(rlvr_config *c, const cfg_key *k) { return (char **)((char *)c + k->offset); }
static long long *cfg_int_field(rlvr_config *c, const cfg_key *k) { return (long long *)((char *)c + k->offset); }
static double *cfg_num_field(rlvr_config *c, const cfg_key *k) { return (double *)((char *)c + k->offset); }
static int *cfg_bool_field(rlvr_config *c, const cfg_key *k) { return (int *)((char *)c + k->offset); }
static cfg_strs *cfg_strs_field(rlvr_config *c, const cfg_key *k) { return (cfg_strs *)((char *)c + k->offset); }

static void cfg_strs_free(cfg_strs *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- numbers as text ------------------------------------------------------------- */

/* The shortest text that reads back as exactly `v` (integral values without exponent,
 * negative zero as "-0.0" so Lua keeps it a float). */
static void cfg_fmt_num(double v, char out[40]) {
    if (v == 0 && signbit(v)) {
        snprintf(out, 40, "-0.0");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, 40, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* ---- init / free / copy ---------------------------------------------------------- */

int config_init(rlvr_config *c, rlvr_err *e) {
    memset(c, 0, sizeof *c);
#define CFG_STR(field, path, def, doc) \
    if (!(c->field = util_strdup(def))) goto oom;
#define CFG_ENUM(field, path, def, choices, doc) \
    if (!(c->field = util_strdup(def))) goto oom;
#define CFG_INT(field, path, def, lo, hi, doc) c->field = (def);
#define CFG_NUM(field, path, def, lo, hi, doc) c->field = (def);
#define CFG_BOOL(field, path, def, doc) c->field = (def);
#include "config_schema.def"
    return 0;
oom:
    config_free(c);
    return err_set(e, "out of memory initializing the config");
}

void config_free(rlvr_config *c) {
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_T_STR || k->type == CFG_T_ENUM) free(*cfg_str_field(c, k));
        else if (k->type == CFG_T_STRS) cfg_strs_free(cfg_strs_field(c, k));
    }
    free(c->source_path);
    memset(c, 0, sizeof *c);
}

static int cfg_strs_copy(cfg_strs *dst, const cfg_strs *src) {
    dst->v = NULL;
    dst->n = 0;
    if (src->n == 0) return 0;
    if (!(dst->v = calloc((size_t)src->n, sizeof *dst->v))) return -1;
    for (int i = 0; i < src->n; i++) {
        if (!(dst->v[i] = util_strdup(src->v[i]))) {
            dst->n = i;
            cfg_strs_free(dst);
            return -1;
        }
    }
    dst->n = src->n;
    return 0;
}

int config_copy(rlvr_config *dst, const rlvr_config *src, rlvr_err *e) {
    /* Scalars come with the struct copy; every owned pointer is then replaced. */
    *dst = *src;
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_T_STR || k->type == CFG_T_ENUM) *cfg_str_field(dst, k) = NULL;
        else if (k->type == CFG_T_STRS) *cfg_strs_field(dst, k) = (cfg_strs){NULL, 0};
    }
    dst->source_path = NULL;
    rlvr_config *s = (rlvr_config *)src; /* the field accessors are shared; nothing is written */
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_T_STR || k->type == CFG_T_ENUM) {
            const char *v = *cfg_str_field(s, k);
            if (v && !(*cfg_str_field(dst, k) = util_strdup(v))) goto oom;
        } else if (k->type == CFG_T_STRS) {
            if (cfg_strs_copy(cfg_strs_field(dst, k), cfg_strs_field(s, k)) != 0) goto oom;
        }
    }
    if (src->source_path && !(dst->source_path = util_strdup(src->source_path))) goto oom;
    return 0;
oom:
    config_free(dst);
    return err_set(e, "out of memory copying the config");
}

const char *config_diff(const rlvr_config *a, const rlvr_config *b) {
    rlvr_config *x = (rlvr_config *)a, *y = (rlvr_config *)b; /* read only */
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        switch (k->type) {
        case CFG_T_SECTION: break;
        case CFG_T_STR:
        case CFG_T_ENUM: {
            const char *p = *cfg_str_field(x, k), *q = *cfg_str_field(y, k);
            if ((p == NULL) != (q == NULL) || (p && strcmp(p, q) != 0)) return k->path;
            break;
        }
        case CFG_T_INT:
            if (*cfg_int_field(x, k) != *cfg_int_field(y, k)) return k->path;
            break;
        case CFG_T_NUM:
            /* Bitwise: -0.0 and 0.0 differ in what they print. */
            if (memcmp(cfg_num_field(x, k), cfg_num_field(y, k), sizeof(double)) != 0) return k->path;
            break;
        case CFG_T_BOOL:
            if (*cfg_bool_field(x, k) != *cfg_bool_field(y, k)) return k->path;
            break;
        case CFG_T_STRS: {
            const cfg_strs *p = cfg_strs_field(x, k), *q = cfg_strs_field(y, k);
            if (p->n != q->n) return k->path;
            for (int j = 0; j < p->n; j++)
                if (strcmp(p->v[j], q->v[j]) != 0) return k->path;
            break;
        }
        }
    }
    return NULL;
}

/* ---- finding the line of a key in the config's text ------------------------------ */

/* Tables do not remember where their keys were written, so the line is recovered from
 * the source: a small Lua lexer (comments and strings skipped) finds `key =` or
 * `["key"] =`, preferring one inside table constructors nested under the key's
 * sections (`rollout = { temperature = ... }`), else the first `key =` anywhere. */

typedef struct cfg_tok {
    char kind; /* 'i' name, 's' string, 'n' number, '=' assignment, 'o' any other operator */
    char op;   /* for 'o': the character ('{', '}', '[', ']', ',', ';', '.', ...) */
    const char *s;
    size_t n;
    int line;
} cfg_tok;

static int cfg_long_bracket(const char *p, const char *end) {
    if (p >= end || *p != '[') return -1;
    int level = 0;
    p++;
    while (p < end && *p == '=') level++, p++;
    return p < end && *p == '[' ? level : -1;
}

/* Skips a long bracket starting at p (level known); returns the position after it. */
static const char *cfg_skip_long(const char *p, const char *end, int level, int *line) {
    p += level + 2;
    while (p < end) {
        if (*p == '\n') (*line)++;
        if (*p == ']') {
            const char *q = p + 1;
            int l = 0;
            while (q < end && *q == '=') l++, q++;
            if (l == level && q < end && *q == ']') return q + 1;
        }
        p++;
    }
    return end;
}

static int cfg_is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int cfg_is_name_char(char c) { return cfg_is_name_start(c) || (c >= '0' && c <= '9'); }

static cfg_tok *cfg_lex(const char *src, size_t *n_out) {
    size_t cap = 256, n = 0;
    cfg_tok *t = malloc(cap * sizeof *t);
    if (!t) return NULL;
    const char *p = src, *end = src + strlen(src);
    int line = 1;
    while (p < end) {
        char c = *p;
        if (c == '\n') {
            line++, p++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            p++;
            continue;
        }
        if (n + 1 >= cap) {
            cfg_tok *g = realloc(t, 2 * cap * sizeof *t);
            if (!g) {
                free(t);
                return NULL;
            }
            t = g, cap *= 2;
        }
        cfg_tok tok = {'o', c, p, 1, line};
        if (c == '-' && p + 1 < end && p[1] == '-') {
            p += 2;
            int level = cfg_long_bracket(p, end);
            if (level >= 0) p = cfg_skip_long(p, end, level, &line);
            else
                while (p < end && *p != '\n') p++;
            continue;
        }
        int level = cfg_long_bracket(p, end);
        if (level >= 0) {
            tok.kind = 's';
            tok.s = p + level + 2;
            p = cfg_skip_long(p, end, level, &line);
            tok.n = 0; /* a key written as [[name]] is too odd to look for */
        } else if (c == '"' || c == '\'') {
            p++;
            tok.kind = 's';
            tok.s = p;
            while (p < end && *p != c && *p != '\n') {
                if (*p == '\\' && p + 1 < end) {
                    if (p[1] == '\n') line++;
                    p += 2;
                } else {
                    p++;
                }
            }
            tok.n = (size_t)(p - tok.s);
            if (p < end && *p == c) p++;
        } else if (cfg_is_name_start(c)) {
            tok.kind = 'i';
            while (p < end && cfg_is_name_char(*p)) p++;
            tok.n = (size_t)(p - tok.s);
        } else if ((c >= '0' && c <= '9') || (c == '.' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
            tok.kind = 'n';
            while (p < end && (cfg_is_name_char(*p) || *p == '.' ||
                               ((*p == '+' || *p == '-') && strchr("eEpP", p[-1]))))
                p++;
            tok.n = (size_t)(p - tok.s);
        } else if (c == '=' && !(p + 1 < end && p[1] == '=')) {
            tok.kind = '=';
            p++;
        } else {
            /* Two-character operators as one token, so "==" is never an assignment. */
            if (p + 1 < end && strchr("=~<>:./", c) && (p[1] == '=' || p[1] == c)) p++;
            p++;
        }
        t[n++] = tok;
    }
    *n_out = n;
    return t;
}

static int cfg_tok_is(const cfg_tok *t, const char *s, size_t n) { return t->n == n && memcmp(t->s, s, n) == 0; }

/* 0 when the key cannot be found. */
static int cfg_find_line(const char *src, const char *path) {
    if (!src) return 0;
    const char *comps[16];
    size_t lens[16];
    int nc = 0;
    for (const char *p = path; nc < 16;) {
        const char *dot = strchr(p, '.');
        comps[nc] = p;
        lens[nc++] = dot ? (size_t)(dot - p) : strlen(p);
        if (!dot) break;
        p = dot + 1;
    }
    const char *leaf = comps[nc - 1];
    size_t leaf_n = lens[nc - 1];
    size_t n;
    cfg_tok *t = cfg_lex(src, &n);
    if (!t) return 0;
    enum { MAXD = 128 };
    const cfg_tok *stack[MAXD]; /* the key that opened each enclosing table, or NULL */
    int depth = 0, first_any = 0, found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        const cfg_tok *k = &t[i];
        if (k->kind == 'o' && k->op == '{') {
            const cfg_tok *opener = NULL;
            if (i >= 2 && t[i - 1].kind == '=') {
                if (t[i - 2].kind == 'i') opener = &t[i - 2];
                else if (i >= 4 && t[i - 2].kind == 'o' && t[i - 2].op == ']' && t[i - 3].kind == 's')
                    opener = &t[i - 3];
            }
            if (depth < MAXD) stack[depth] = opener;
            depth++;
            continue;
        }
        if (k->kind == 'o' && k->op == '}') {
            if (depth > 0) depth--;
            continue;
        }
        int is_key = 0;
        if (k->kind == 'i' && cfg_tok_is(k, leaf, leaf_n) && i + 1 < n && t[i + 1].kind == '=') is_key = 1;
        if (k->kind == 'o' && k->op == '[' && i + 3 < n && t[i + 1].kind == 's' && cfg_tok_is(&t[i + 1], leaf, leaf_n) &&
            t[i + 2].kind == 'o' && t[i + 2].op == ']' && t[i + 3].kind == '=')
            is_key = 1;
        if (!is_key) continue;
        if (!first_any) first_any = k->line;
        /* In a constructor: the previous token opens it or separates fields. */
        int in_ctor = i > 0 && t[i - 1].kind == 'o' && strchr("{,;", t[i - 1].op);
        if (!in_ctor || depth > MAXD || depth < nc - 1) continue;
        int match = 1;
        for (int j = 0; j < nc - 1 && match; j++) {
            const cfg_tok *o = stack[depth - (nc - 1) + j];
            match = o && cfg_tok_is(o, comps[j], lens[j]);
        }
        if (match) found = k->line;
    }
    free(t);
    return found ? found : first_any;
}

/* ---- messages -------------------------------------------------------------------- */

/* Where a value came from, for messages: a file (with its text, for lines) or a --set. */
typedef struct cfg_ctx {
    rlvr_config *c;
    const char *file;       /* config file path, or NULL */
    const char *src;        /* its text */
    const char *assignment; /* the --set argument, or NULL */
    rlvr_err *e;
    int failed;
} cfg_ctx;

/* Sets the error "<file>:<line>: <message>" (line of `path` when found) or
 * "--set <assignment>: <message>". Returns -1. */
static int cfg_fail(cfg_ctx *x, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfg_fail(cfg_ctx *x, const char *path, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->failed = 1;
    if (x->assignment) return err_set(x->e, "--set %s: %s", x->assignment, msg);
    int line = path ? cfg_find_line(x->src, path) : 0;
    if (line > 0) return err_set(x->e, "%s:%d: %s", x->file, line, msg);
    return err_set(x->e, "%s: %s", x->file, msg);
}

/* A "did you mean" for an unknown dotted `path`: a close key of the same section, a
 * close full path (a typo in a section name), or a key of that name (or close) in
 * another section. Returns the full path or NULL. */
static const char *cfg_suggest_key(const char *path) {
    const char *cands[CFG_N_KEYS];
    const char *full[CFG_N_KEYS];
    size_t n = 0;
    char prefix[CFG_MAX_PATH];
    const char *leaf = cfg_leaf(path);
    size_t plen = (size_t)(leaf - path);
    if (plen > 0) plen--; /* the dot */
    if (plen >= sizeof prefix) plen = sizeof prefix - 1;
    memcpy(prefix, path, plen);
    prefix[plen] = 0;

    for (size_t i = 0; i < CFG_N_KEYS; i++)
        if (cfg_is_child(&cfg_keys[i], prefix)) {
            cands[n] = cfg_leaf(cfg_keys[i].path);
            full[n++] = cfg_keys[i].path;
        }
    const char *hit = util_suggest(leaf, cands, n);
    for (size_t i = 0; hit && i < n; i++)
        if (cands[i] == hit) return full[i];

    for (size_t i = 0; i < CFG_N_KEYS; i++) full[i] = cfg_keys[i].path;
    hit = util_suggest(path, full, CFG_N_KEYS);
    if (hit) return hit;

    for (size_t i = 0; i < CFG_N_KEYS; i++) cands[i] = cfg_leaf(cfg_keys[i].path);
    hit = util_suggest(leaf, cands, CFG_N_KEYS);
    for (size_t i = 0; hit && i < CFG_N_KEYS; i++)
        if (cands[i] == hit) return cfg_keys[i].path;
    return NULL;
}

static int cfg_fail_unknown(cfg_ctx *x, const char *path) {
    const char *hint = cfg_suggest_key(path);
    if (hint) return cfg_fail(x, path, "unknown key '%s' (did you mean '%s'?)", path, hint);
    return cfg_fail(x, path, "unknown key '%s'", path);
}

/* ---- checking and storing one value ---------------------------------------------- */

static int cfg_check_bounds(cfg_ctx *x, const cfg_key *k, double v) {
    if (v >= k->lo && v <= k->hi) return 0;
    char sv[40], lo[40], hi[40];
    cfg_fmt_num(v, sv);
    cfg_fmt_num(k->lo, lo);
    cfg_fmt_num(k->hi, hi);
    return cfg_fail(x, k->path, "key '%s': %s is out of range [%s, %s]", k->path, sv, lo, hi);
}

static int cfg_put_num(cfg_ctx *x, const cfg_key *k, double v) {
    if (!isfinite(v)) {
        char sv[40];
        snprintf(sv, sizeof sv, "%g", v);
        return cfg_fail(x, k->path, "key '%s': expected a finite number, got %s", k->path, sv);
    }
    if (cfg_check_bounds(x, k, v)) return -1;
    *cfg_num_field(x->c, k) = v;
    return 0;
}

/* An integer given as a float (3.0, 1e3) is accepted when it is integral. */
static int cfg_put_int_num(cfg_ctx *x, const cfg_key *k, double v) {
    if (!isfinite(v) || v != floor(v)) {
        char sv[40];
        if (isfinite(v)) cfg_fmt_num(v, sv);
        else snprintf(sv, sizeof sv, "%g", v);
        return cfg_fail(x, k->path, "key '%s': expected an integer, got %s", k->path, sv);
    }
    if (cfg_check_bounds(x, k, v)) return -1; /* bounds fit in long long, so the cast is safe */
    *cfg_int_field(x->c, k) = (long long)v;
    return 0;
}

static int cfg_put_int(cfg_ctx *x, const cfg_key *k, long long v) {
    if (cfg_check_bounds(x, k, (double)v)) return -1;
    /* The double comparison can round at the edge of 2^53; compare exactly too. */
    if (v < (long long)k->lo || v > (long long)k->hi) {
        char lo[40], hi[40];
        cfg_fmt_num(k->lo, lo);
        cfg_fmt_num(k->hi, hi);
        return cfg_fail(x, k->path, "key '%s': %lld is out of range [%s, %s]", k->path, v, lo, hi);
    }
    *cfg_int_field(x->c, k) = v;
    return 0;
}

/* Presets: the objective of a known recipe, as the keys it sets. They set the loss,
 * not the scale (batch, group size and lengths stay the user's). Sources:
 *   grpo     DeepSeekMath (Shao et al. 2024): group-std advantages, per-sequence token
 *            mean, clip 0.2, k3 KL in the loss with beta 0.04, lr 1e-6
 *   dr_grpo  Dr. GRPO (Liu et al. 2025): no std, token sums over a constant length, no KL
 *   dapo     DAPO (Yu et al. 2025): token-level mean, clip-higher 0.2/0.28, no KL, dynamic
 *            sampling, overlong filtering
 *   trl      TRL GRPOTrainer defaults (>= 0.22): loss_type "dapo" (token mean over the
 *            batch), advantages / (std + 1e-4), epsilon 0.2, beta 0, lr 1e-6
 *   verl     verl's GRPO recipe: token-mean, clip 0.2 with dual clip c = 3, low_var_kl
 *            (k3) in the loss with 0.001, lr 1e-6 */
static const struct cfg_preset {
    const char *name;
    const char *recipe; /* for docs/config.md */
    const char *const *sets;
} cfg_presets[] = {
    {"grpo", "DeepSeekMath GRPO: group-std advantages, per-sequence token mean, k3 KL in the loss",
     (const char *const[]){"algo.advantage=grpo", "algo.adv_eps=1e-6", "algo.loss_agg=seq_mean_token_mean",
                                   "algo.clip_low=0.2", "algo.clip_high=0.2", "algo.clip_c=0", "algo.kl_coef=0.04",
                                   "algo.kl_estimator=k3", "algo.kl_in_reward=false", "algo.dynamic_sampling=false",
                                   "algo.mask_truncated=false", "learning_rate=1e-6", NULL}},
    {"dr_grpo", "Dr. GRPO: no std normalization, token sums over a constant length",
     (const char *const[]){"algo.advantage=dr_grpo", "algo.loss_agg=seq_mean_token_sum_norm",
                                      "algo.clip_low=0.2", "algo.clip_high=0.2", "algo.clip_c=0", "algo.kl_coef=0",
                                      "algo.dynamic_sampling=false", "algo.mask_truncated=false", "learning_rate=1e-6",
                                      NULL}},
    {"dapo", "DAPO: token-level loss, clip-higher, dynamic sampling, overlong filtering",
     (const char *const[]){"algo.advantage=grpo", "algo.adv_eps=1e-6", "algo.loss_agg=token_mean",
                                   "algo.clip_low=0.2", "algo.clip_high=0.28", "algo.clip_c=0", "algo.kl_coef=0",
                                   "algo.dynamic_sampling=true", "algo.mask_truncated=true", "learning_rate=1e-6",
                                   NULL}},
    {"trl", "TRL GRPOTrainer defaults (>= 0.22, loss_type \"dapo\")",
     (const char *const[]){"algo.advantage=grpo", "algo.adv_eps=1e-4", "algo.loss_agg=token_mean",
                                  "algo.clip_low=0.2", "algo.clip_high=0.2", "algo.clip_c=0", "algo.kl_coef=0",
                                  "algo.kl_estimator=k3", "algo.dynamic_sampling=false", "algo.mask_truncated=false",
                                  "learning_rate=1e-6", NULL}},
    {"verl", "verl GRPO recipe: dual clip, low_var_kl (k3) loss",
     (const char *const[]){"algo.advantage=grpo", "algo.adv_eps=1e-6", "algo.loss_agg=token_mean",
                                   "algo.clip_low=0.2", "algo.clip_high=0.2", "algo.clip_c=3", "algo.kl_coef=0.001",
                                   "algo.kl_estimator=k3", "algo.kl_in_reward=false", "algo.entropy_coef=0",
                                   "algo.dynamic_sampling=false", "algo.mask_truncated=false", "learning_rate=1e-6",
                                   NULL}},
};

/* Applies preset `name` to x->c ("none" sets nothing). The table is ours: a failure is
 * a bug, reported like any error so it cannot pass silently. */
static int cfg_apply_preset(cfg_ctx *x, const char *name) {
    for (size_t i = 0; i < sizeof cfg_presets / sizeof cfg_presets[0]; i++) {
        if (strcmp(cfg_presets[i].name, name) != 0) continue;
        for (const char *const *set = cfg_presets[i].sets; *set; set++)
            if (config_set(x->c, *set, x->e) != 0) {
                x->failed = 1;
                return err_prefix(x->e, "preset '%s'", name);
            }
    }
    return 0;
}

static int cfg_put_str(cfg_ctx *x, const cfg_key *k, const char *s, size_t len) {
    if (strlen(s) != len) return cfg_fail(x, k->path, "key '%s': the string contains a NUL byte", k->path);
    if (k->type == CFG_T_ENUM) {
        /* choices is "a|b|c": match s against each part. */
        const char *parts[32];
        char buf[512];
        size_t np = 0;
        snprintf(buf, sizeof buf, "%s", k->choices);
        for (char *p = buf; np < 32;) {
            parts[np++] = p;
            char *bar = strchr(p, '|');
            if (!bar) break;
            *bar = 0;
            p = bar + 1;
        }
        int ok = 0;
        for (size_t i = 0; i < np && !ok; i++) ok = strcmp(parts[i], s) == 0;
        if (!ok) {
            const char *hint = util_suggest(s, parts, np);
            if (hint)
                return cfg_fail(x, k->path, "key '%s': expected one of %s, got '%s' (did you mean '%s'?)", k->path,
                                k->choices, s, hint);
            return cfg_fail(x, k->path, "key '%s': expected one of %s, got '%s'", k->path, k->choices, s);
        }
    }
    char *copy = util_strdup(s);
    if (!copy) return cfg_fail(x, NULL, "out of memory");
    char **f = cfg_str_field(x->c, k);
    free(*f);
    *f = copy;
    /* A preset sets its keys where it is given: `preset` comes first in the schema, so
     * keys written beside it in a file (applied after it, in schema order) win. */
    if (strcmp(k->path, "preset") == 0) return cfg_apply_preset(x, copy);
    return 0;
}

static int cfg_put_bool(cfg_ctx *x, const cfg_key *k, int v) {
    *cfg_bool_field(x->c, k) = v != 0;
    return 0;
}

/* Takes ownership of `l`. */
static void cfg_put_strs(cfg_ctx *x, const cfg_key *k, cfg_strs *l) {
    cfg_strs *f = cfg_strs_field(x->c, k);
    cfg_strs_free(f);
    *f = *l;
    l->v = NULL;
    l->n = 0;
}

/* ---- from Lua values ------------------------------------------------------------- */

static const char *cfg_lua_type_desc(lua_State *L, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return "a boolean";
    case LUA_TNUMBER: return "a number";
    case LUA_TSTRING: return "a string";
    case LUA_TTABLE: return "a table";
    case LUA_TFUNCTION: return "a function";
    case LUA_TTHREAD: return "a coroutine";
    default: return "a userdata";
    }
}

/* A Lua number as text without converting it in place (lua_tostring on a table key would
 * break lua_next). */
static void cfg_lua_num_text(lua_State *L, int idx, char out[40]) {
    if (lua_isinteger(L, idx)) snprintf(out, 40, "%lld", (long long)lua_tointeger(L, idx));
    else if (isfinite(lua_tonumber(L, idx))) cfg_fmt_num(lua_tonumber(L, idx), out);
    else snprintf(out, 40, "%g", lua_tonumber(L, idx));
}

/* A string given where a number is expected earns a hint when it holds one. */
static const char *cfg_quoted_number_hint(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TSTRING) return "";
    const char *s = lua_tostring(L, idx);
    char *end;
    errno = 0;
    strtod(s, &end);
    return (*s && *end == 0 && end != s) ? " (write numbers without quotes)" : "";
}

static int cfg_lua_list(cfg_ctx *x, lua_State *L, int idx, const cfg_key *k) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        return cfg_fail(x, k->path, "key '%s': expected a list of strings, got %s", k->path, cfg_lua_type_desc(L, idx));
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    /* Every key must be one of 1..n: a list, not a record or a list with holes. */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= n;
        if (!ok) {
            char kt[64];
            if (lua_type(L, -2) == LUA_TSTRING) snprintf(kt, sizeof kt, "key '%.40s'", lua_tostring(L, -2));
            else if (lua_type(L, -2) == LUA_TNUMBER) {
                char num[40];
                cfg_lua_num_text(L, -2, num);
                snprintf(kt, sizeof kt, "key %s", num);
            } else
                snprintf(kt, sizeof kt, "%s key", cfg_lua_type_desc(L, -2));
            lua_pop(L, 2);
            return cfg_fail(x, k->path, "key '%s': expected a list of strings, got a table with %s", k->path, kt);
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            long long i = (long long)lua_tointeger(L, -2);
            const char *got = cfg_lua_type_desc(L, -1);
            lua_pop(L, 2);
            return cfg_fail(x, k->path, "key '%s': item %lld: expected a string, got %s", k->path, i, got);
        }
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len) {
            long long i = (long long)lua_tointeger(L, -2);
            lua_pop(L, 2);
            return cfg_fail(x, k->path, "key '%s': item %lld contains a NUL byte", k->path, i);
        }
        lua_pop(L, 1);
    }
    if (n > INT32_MAX) return cfg_fail(x, k->path, "key '%s': the list is too long", k->path);
    cfg_strs l = {NULL, 0};
    if (n > 0 && !(l.v = calloc((size_t)n, sizeof *l.v))) return cfg_fail(x, NULL, "out of memory");
    /* lua_rawgeti and lua_tostring on strings do not allocate, so nothing raises while
     * `l` is held. */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        l.v[i - 1] = util_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!l.v[i - 1]) {
            l.n = (int)i - 1;
            cfg_strs_free(&l);
            return cfg_fail(x, NULL, "out of memory");
        }
        l.n = (int)i;
    }
    cfg_put_strs(x, k, &l);
    return 0;
}

static int cfg_lua_table(cfg_ctx *x, lua_State *L, int idx, const char *prefix);

/* Checks the value at idx against key k and stores it. */
static int cfg_lua_value(cfg_ctx *x, lua_State *L, int idx, const cfg_key *k) {
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    switch (k->type) {
    case CFG_T_SECTION:
        if (t != LUA_TTABLE)
            return cfg_fail(x, k->path, "key '%s': expected a table, got %s", k->path, cfg_lua_type_desc(L, idx));
        return cfg_lua_table(x, L, idx, k->path);
    case CFG_T_STR:
    case CFG_T_ENUM: {
        if (t != LUA_TSTRING)
            return cfg_fail(x, k->path, "key '%s': expected a string, got %s", k->path, cfg_lua_type_desc(L, idx));
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return cfg_put_str(x, k, s, len);
    }
    case CFG_T_INT:
        if (t != LUA_TNUMBER)
            return cfg_fail(x, k->path, "key '%s': expected an integer, got %s%s", k->path, cfg_lua_type_desc(L, idx),
                            cfg_quoted_number_hint(L, idx));
        if (lua_isinteger(L, idx)) return cfg_put_int(x, k, (long long)lua_tointeger(L, idx));
        return cfg_put_int_num(x, k, lua_tonumber(L, idx));
    case CFG_T_NUM:
        if (t != LUA_TNUMBER)
            return cfg_fail(x, k->path, "key '%s': expected a number, got %s%s", k->path, cfg_lua_type_desc(L, idx),
                            cfg_quoted_number_hint(L, idx));
        return cfg_put_num(x, k, lua_tonumber(L, idx));
    case CFG_T_BOOL:
        if (t != LUA_TBOOLEAN)
            return cfg_fail(x, k->path, "key '%s': expected a boolean (true or false), got %s", k->path,
                            cfg_lua_type_desc(L, idx));
        return cfg_put_bool(x, k, lua_toboolean(L, idx));
    case CFG_T_STRS: return cfg_lua_list(x, L, idx, k);
    }
    return 0;
}

/* Walks the table at idx, the section `prefix` ("" at the top). Tables are read raw:
 * no metamethod of the config runs here. */
static int cfg_lua_table(cfg_ctx *x, lua_State *L, int idx, const char *prefix) {
    idx = lua_absindex(L, idx);
    /* First every key: all must be names of this section. Of several unknown keys the
     * alphabetically first is reported, so the message does not depend on hash order. */
    const char *unknown = NULL;
    char path[CFG_MAX_PATH];
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            char what[64];
            if (lua_type(L, -2) == LUA_TNUMBER) {
                char num[40];
                cfg_lua_num_text(L, -2, num);
                snprintf(what, sizeof what, "a number key %s", num);
            } else if (lua_type(L, -2) == LUA_TBOOLEAN) {
                snprintf(what, sizeof what, "a boolean key %s", lua_toboolean(L, -2) ? "true" : "false");
            } else {
                snprintf(what, sizeof what, "%s key", cfg_lua_type_desc(L, -2));
            }
            lua_pop(L, 2);
            if (*prefix) return cfg_fail(x, NULL, "keys must be names, got %s in '%s'", what, prefix);
            return cfg_fail(x, NULL, "keys must be names, got %s in the returned table", what);
        }
        const char *name = lua_tostring(L, -2);
        int fits = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name) < (int)sizeof path;
        if ((!fits || !cfg_find(path)) && (!unknown || strcmp(name, unknown) < 0)) unknown = name;
        lua_pop(L, 1);
    }
    if (unknown) {
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", unknown);
        return cfg_fail_unknown(x, path);
    }
    /* Then the values, in schema order. */
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (!cfg_is_child(k, prefix)) continue;
        lua_pushstring(L, cfg_leaf(k->path));
        if (lua_rawget(L, idx) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        int r = cfg_lua_value(x, L, -1, k);
        lua_pop(L, 1);
        if (r) return -1;
    }
    return 0;
}

/* lua_CFunction wrappers so that an allocation failure inside the Lua API becomes an
 * error status instead of a panic. Arguments: the ctx, then the value. */
static int cfg_walk_protected(lua_State *L) {
    cfg_ctx *x = lua_touserdata(L, 1);
    cfg_lua_table(x, L, 2, "");
    return 0;
}

static int cfg_list_protected(lua_State *L) {
    cfg_ctx *x = lua_touserdata(L, 1);
    const cfg_key *k = lua_touserdata(L, 2);
    cfg_lua_list(x, L, 3, k);
    return 0;
}

/* ---- loading a file -------------------------------------------------------------- */

/* Whether msg already starts with a position ("<chunk>:<line>:"), as Lua's messages do. */
static int cfg_has_position(const char *msg) {
    const char *colon = strchr(msg, ':');
    while (colon) {
        const char *p = colon + 1;
        if (*p >= '0' && *p <= '9') {
            while (*p >= '0' && *p <= '9') p++;
            if (*p == ':') return 1;
        }
        if (memchr(msg, ' ', (size_t)(colon - msg))) return 0;
        colon = strchr(colon + 1, ':');
    }
    return 0;
}

int config_load_file(rlvr_config *c, const char *path, rlvr_err *e) {
    size_t len;
    char *src = util_read_file(path, &len, e);
    if (!src) return -1;
    char *dir = util_dirname(path);
    char *chunkname = malloc(strlen(path) + 2);
    luabox *box = NULL;
    rlvr_config tmp;
    int have_tmp = 0, rc = -1;
    if (!dir || !chunkname) {
        err_set(e, "%s: out of memory", path);
        goto done;
    }
    snprintf(chunkname, strlen(path) + 2, "@%s", path);
    luabox_opts o = {CFG_MAX_MEMORY, CFG_MAX_INSTRUCTIONS, CFG_MAX_SECONDS, dir};
    if (!(box = luabox_new(&o, e))) {
        err_prefix(e, "%s", path);
        goto done;
    }
    if (luabox_load(box, src, len, chunkname, e) != 0) goto done; /* "path:3: ... near ..." */
    if (luabox_pcall(box, 0, 1, e) != 0) {
        if (!cfg_has_position(e->msg)) err_prefix(e, "%s", path);
        goto done;
    }
    lua_State *L = luabox_state(box);
    if (lua_type(L, -1) != LUA_TTABLE) {
        err_set(e, "%s: must return a table, got %s", path, cfg_lua_type_desc(L, -1));
        goto done;
    }
    if (config_copy(&tmp, c, e) != 0) goto done;
    have_tmp = 1;
    cfg_ctx x = {&tmp, path, src, NULL, e, 0};
    lua_pushcfunction(L, cfg_walk_protected);
    lua_pushlightuserdata(L, &x);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        err_set(e, "%s: out of memory checking the config", path);
        lua_pop(L, 1);
        goto done;
    }
    if (x.failed) goto done;
    char *sp = util_strdup(path);
    if (!sp) {
        err_set(e, "%s: out of memory", path);
        goto done;
    }
    free(tmp.source_path);
    tmp.source_path = sp;
    config_free(c);
    *c = tmp;
    have_tmp = 0;
    rc = 0;
done:
    if (have_tmp) config_free(&tmp);
    luabox_free(box);
    free(chunkname);
    free(dir);
    free(src);
    return rc;
}

/* ---- --set ----------------------------------------------------------------------- */

/* A list value: a Lua table constructor, evaluated in a small fresh sandbox (so `{...}`
 * can hold any string a config file can), or comma-separated words. */
static int cfg_set_list(cfg_ctx *x, const cfg_key *k, const char *value) {
    const char *p = value;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '{') {
        luabox_opts o = {(size_t)16 << 20, 1000000, 1.0, NULL};
        luabox *box = luabox_new(&o, x->e);
        if (!box) return cfg_fail(x, NULL, "%s", x->e->msg);
        sbuf code;
        sb_init(&code);
        sb_puts(&code, "return ");
        sb_puts(&code, value);
        int rc = -1;
        if (code.oom) {
            cfg_fail(x, NULL, "out of memory");
        } else if (luabox_load(box, code.s, code.len, "=--set", x->e) != 0 || luabox_pcall(box, 0, 1, x->e) != 0) {
            char lua_msg[1024];
            snprintf(lua_msg, sizeof lua_msg, "%s", x->e->msg);
            cfg_fail(x, NULL, "key '%s': not a Lua list: %s", k->path, lua_msg);
        } else {
            lua_State *L = luabox_state(box);
            lua_pushcfunction(L, cfg_list_protected);
            lua_pushlightuserdata(L, x);
            lua_pushlightuserdata(L, (void *)k);
            lua_pushvalue(L, -4);
            if (lua_pcall(L, 3, 0, 0) != LUA_OK) cfg_fail(x, NULL, "out of memory");
            else rc = x->failed ? -1 : 0;
        }
        sb_free(&code);
        luabox_free(box);
        return rc;
    }
    /* Comma-separated: each item trimmed of spaces; "" is the empty list. */
    cfg_strs l = {NULL, 0};
    size_t cap = 0;
    if (*p) {
        for (const char *s = value;;) {
            const char *comma = strchr(s, ',');
            const char *end = comma ? comma : s + strlen(s);
            while (s < end && (*s == ' ' || *s == '\t')) s++;
            const char *t = end;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
            if (t == s) {
                int item = l.n + 1;
                cfg_strs_free(&l);
                return cfg_fail(x, NULL,
                                "key '%s': item %d is empty (for strings with commas or spaces use a Lua list, "
                                "e.g. {\"a, b\"})",
                                k->path, item);
            }
            if ((size_t)l.n == cap) {
                cap = cap ? 2 * cap : 4;
                char **v = realloc(l.v, cap * sizeof *v);
                if (!v) {
                    cfg_strs_free(&l);
                    return cfg_fail(x, NULL, "out of memory");
                }
                l.v = v;
            }
            if (!(l.v[l.n] = malloc((size_t)(t - s) + 1))) {
                cfg_strs_free(&l);
                return cfg_fail(x, NULL, "out of memory");
            }
            memcpy(l.v[l.n], s, (size_t)(t - s));
            l.v[l.n++][t - s] = 0;
            if (!comma) break;
            s = comma + 1;
        }
    }
    cfg_put_strs(x, k, &l);
    return 0;
}

int config_set(rlvr_config *c, const char *assignment, rlvr_err *e) {
    cfg_ctx x = {c, NULL, NULL, assignment, e, 0};
    const char *eq = strchr(assignment, '=');
    if (!eq) return cfg_fail(&x, NULL, "expected key=value (e.g. rollout.temperature=0.7)");
    char path[CFG_MAX_PATH];
    const char *ks = assignment, *ke = eq;
    while (ks < ke && (*ks == ' ' || *ks == '\t')) ks++;
    while (ke > ks && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
    if (ke == ks) return cfg_fail(&x, NULL, "expected key=value, the key is empty");
    if ((size_t)(ke - ks) >= sizeof path) return cfg_fail(&x, NULL, "the key is too long");
    memcpy(path, ks, (size_t)(ke - ks));
    path[ke - ks] = 0;
    const char *value = eq + 1;
    const cfg_key *k = cfg_find(path);
    if (!k) return cfg_fail_unknown(&x, path);

    switch (k->type) {
    case CFG_T_SECTION: {
        const char *example = NULL;
        for (size_t i = 0; i < CFG_N_KEYS && !example; i++)
            if (cfg_is_child(&cfg_keys[i], path) && cfg_keys[i].type != CFG_T_SECTION) example = cfg_keys[i].path;
        return cfg_fail(&x, NULL, "'%s' is a section, not a key; set one of its keys (e.g. %s=...)", path,
                        example ? example : "<section>.<key>");
    }
    case CFG_T_STR:
    case CFG_T_ENUM: return cfg_put_str(&x, k, value, strlen(value));
    case CFG_T_NUM: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || end == value)
            return cfg_fail(&x, NULL, "key '%s': expected a number, got '%s'", path, value);
        return cfg_put_num(&x, k, v);
    }
    case CFG_T_INT: {
        /* Decimal integers exactly; also an integral number in any notation strtod reads
         * (1e3), for symmetry with config files, where 1e3 is accepted too. */
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (*value && !*end && end != value && errno == 0) return cfg_put_int(&x, k, v);
        errno = 0;
        double d = strtod(value, &end);
        if (!*value || *end || end == value)
            return cfg_fail(&x, NULL, "key '%s': expected an integer, got '%s'", path, value);
        return cfg_put_int_num(&x, k, d);
    }
    case CFG_T_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(value, yes[i]) == 0) return cfg_put_bool(&x, k, 1);
            if (strcasecmp(value, no[i]) == 0) return cfg_put_bool(&x, k, 0);
        }
        return cfg_fail(&x, NULL, "key '%s': expected a boolean (true/false, yes/no, 1/0), got '%s'", path, value);
    }
    case CFG_T_STRS: return cfg_set_list(&x, k, value);
    }
    return 0;
}

/* ---- rules across keys ----------------------------------------------------------- */

/* A run name becomes a directory under output_dir: one path component of plain
 * characters, so no name can reach outside it ("../x", "a/b") or be hard to type. */
static int check_run_name(const char *name, rlvr_err *e) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0) return err_set(e, "name is empty: a run needs a name (it names the run's directory)");
    if (n > 100) return err_set(e, "name is %zu characters long; use at most 100", n);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return err_set(e, "name = \"%s\": not a usable directory name", name);
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.'))
            return err_set(e, "name = \"%.100s\": use only letters, digits, '-', '_' and '.' (it names the run's directory)",
                           name);
    }
    return 0;
}

int config_check(const rlvr_config *c, rlvr_err *e) {
    if (check_run_name(c->name, e) != 0) return -1;
    if (strcmp(c->rollout_device, "cuda") == 0 && strcmp(c->device, "cuda") != 0)
        return err_set(e, "rollout.device = \"cuda\" needs device = \"cuda\" (the rollout engine reads the policy's "
                          "GPU weights), got device = \"%s\"",
                       c->device);
    if (c->model_init_kv_heads <= 0 || c->model_init_heads % c->model_init_kv_heads != 0)
        return err_set(e,
                       "model.init.kv_heads = %lld must divide model.init.heads = %lld (each key/value head is "
                       "shared by the same number of query heads)",
                       c->model_init_kv_heads, c->model_init_heads);
    if (c->model_init_hidden % c->model_init_heads != 0)
        return err_set(e, "model.init.hidden = %lld must be a multiple of model.init.heads = %lld", c->model_init_hidden,
                       c->model_init_heads);
    if ((c->model_init_hidden / c->model_init_heads) % 2 != 0)
        return err_set(e,
                       "model.init.hidden / model.init.heads = %lld / %lld = %lld must be even (rotary position "
                       "embeddings rotate pairs of dimensions)",
                       c->model_init_hidden, c->model_init_heads, c->model_init_hidden / c->model_init_heads);
    if (c->data_arith_min_digits > c->data_arith_max_digits)
        return err_set(e, "data.arith.min_digits = %lld is more than data.arith.max_digits = %lld",
                       c->data_arith_min_digits, c->data_arith_max_digits);
    if (!c->data_arith_ops || !*c->data_arith_ops)
        return err_set(e, "data.arith.ops is empty: give at least one of +, -, *");
    for (const char *p = c->data_arith_ops; *p; p++)
        if (*p != '+' && *p != '-' && *p != '*')
            return err_set(e, "data.arith.ops = \"%s\": '%c' is not an operator; use any of +, -, *",
                           c->data_arith_ops, *p);
    if (c->algo_clip_c != 0 && !(c->algo_clip_c > 1))
        return err_set(e, "algo.clip_c = %g: must be 0 (dual-clip off) or greater than 1", c->algo_clip_c);
    const char *adv = c->algo_advantage ? c->algo_advantage : "";
    const char *needs_group = strcmp(adv, "grpo") == 0 ? "GRPO"
                              : strcmp(adv, "dr_grpo") == 0 ? "Dr. GRPO"
                              : strcmp(adv, "rloo") == 0    ? "RLOO"
                                                            : NULL;
    if (needs_group && c->rollout_group_size < 2)
        return err_set(e, "rollout.group_size = %lld: %s needs at least 2 samples per prompt to compare (algo.advantage = %s)",
                       c->rollout_group_size, needs_group, adv);
    if (c->algo_dynamic_sampling && c->rollout_group_size < 2)
        return err_set(e,
                       "rollout.group_size = %lld: algo.dynamic_sampling drops groups whose rewards are all equal, "
                       "which a group of 1 always is",
                       c->rollout_group_size);
    if (strcmp(adv, "gae") != 0 && ((c->critic_path && *c->critic_path) || c->critic_warmup_steps > 0))
        return err_set(e, "%s is set, but only algo.advantage = \"gae\" (PPO with a critic) has a critic; "
                          "algo.advantage = \"%s\"",
                       c->critic_path && *c->critic_path ? "critic.path" : "critic.warmup_steps", adv);
    if (c->steps > 0 && c->warmup_steps > c->steps)
        return err_set(e, "warmup_steps = %lld is more than steps = %lld", c->warmup_steps, c->steps);
    long long batch = c->rollout_prompts_per_step * c->rollout_group_size;
    if (c->algo_minibatch_size > batch)
        return err_set(e,
                       "algo.minibatch_size = %lld is larger than the batch (rollout.prompts_per_step x "
                       "rollout.group_size = %lld)",
                       c->algo_minibatch_size, batch);
    return 0;
}

/* ---- printing -------------------------------------------------------------------- */

static int cfg_is_lua_name(const char *s) {
    static const char *const reserved[] = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                                           "function", "goto", "if", "in", "local", "nil", "not", "or",
                                           "repeat", "return", "then", "true", "until", "while"};
    if (!cfg_is_name_start(*s)) return 0;
    for (const char *p = s; *p; p++)
        if (!cfg_is_name_char(*p)) return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(s, reserved[i]) == 0) return 0;
    return 1;
}

/* A value as a Lua literal. */
static void cfg_put_value(sbuf *b, const rlvr_config *c, const cfg_key *k) {
    rlvr_config *r = (rlvr_config *)c; /* read only */
    char num[40];
    switch (k->type) {
    case CFG_T_SECTION: break;
    case CFG_T_STR:
    case CFG_T_ENUM: {
        const char *s = *cfg_str_field(r, k);
        if (!s) s = "";
        sb_put_lua_string(b, s, strlen(s));
        break;
    }
    case CFG_T_INT: sb_printf(b, "%lld", *cfg_int_field(r, k)); break;
    case CFG_T_NUM:
        cfg_fmt_num(*cfg_num_field(r, k), num);
        sb_puts(b, num);
        break;
    case CFG_T_BOOL: sb_puts(b, *cfg_bool_field(r, k) ? "true" : "false"); break;
    case CFG_T_STRS: {
        const cfg_strs *l = cfg_strs_field(r, k);
        sb_putc(b, '{');
        for (int i = 0; i < l->n; i++) {
            sb_puts(b, i ? ", " : "");
            sb_put_lua_string(b, l->v[i], strlen(l->v[i]));
        }
        sb_putc(b, '}');
        break;
    }
    }
}

static void cfg_lua_section(sbuf *b, const rlvr_config *c, const char *prefix, int indent) {
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (!cfg_is_child(k, prefix)) continue;
        const char *name = cfg_leaf(k->path);
        sb_printf(b, "%*s-- %s\n%*s", indent, "", k->doc, indent, "");
        if (cfg_is_lua_name(name)) {
            sb_puts(b, name);
        } else {
            sb_putc(b, '[');
            sb_put_lua_string(b, name, strlen(name));
            sb_putc(b, ']');
        }
        sb_puts(b, " = ");
        if (k->type == CFG_T_SECTION) {
            sb_puts(b, "{\n");
            cfg_lua_section(b, c, k->path, indent + 2);
            sb_printf(b, "%*s},\n", indent, "");
        } else {
            cfg_put_value(b, c, k);
            sb_puts(b, ",\n");
        }
    }
}

char *config_to_lua(const rlvr_config *c) {
    sbuf b;
    sb_init(&b);
    sb_puts(&b, "-- The resolved rlvr run config: every key, defaults included.\n"
                "-- It loads back as a config file (rlvr train <this file>).\n"
                "return {\n");
    cfg_lua_section(&b, c, "", 2);
    sb_puts(&b, "}\n");
    return sb_take(&b);
}

/* Markdown table cells: a '|' would end the cell. */
static void cfg_md_cell(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') sb_puts(b, "\\|");
        else sb_putc(b, *s);
    }
}

static void cfg_md_type(sbuf *b, const cfg_key *k) {
    char lo[40], hi[40];
    switch (k->type) {
    case CFG_T_SECTION: sb_puts(b, "table"); break;
    case CFG_T_STR: sb_puts(b, "string"); break;
    case CFG_T_ENUM: {
        sb_puts(b, "one of ");
        const char *p = k->choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            sb_putc(b, '`');
            sb_putn(b, p, n);
            sb_putc(b, '`');
            if (!bar) break;
            sb_puts(b, ", ");
            p = bar + 1;
        }
        break;
    }
    case CFG_T_INT:
    case CFG_T_NUM:
        cfg_fmt_num(k->lo, lo);
        cfg_fmt_num(k->hi, hi);
        sb_printf(b, "%s in [%s, %s]", k->type == CFG_T_INT ? "integer" : "number", lo, hi);
        break;
    case CFG_T_BOOL: sb_puts(b, "boolean"); break;
    case CFG_T_STRS: sb_puts(b, "list of strings"); break;
    }
}

static void cfg_md_section(sbuf *b, const rlvr_config *defaults, const char *prefix) {
    sb_puts(b, "| key | type | default | description |\n|---|---|---|---|\n");
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (!cfg_is_child(k, prefix) || k->type == CFG_T_SECTION) continue;
        sb_printf(b, "| `%s` | ", k->path);
        cfg_md_type(b, k);
        sb_puts(b, " | `");
        sbuf v;
        sb_init(&v);
        cfg_put_value(&v, defaults, k);
        if (v.oom) b->oom = 1;
        else cfg_md_cell(b, v.s);
        sb_free(&v);
        sb_puts(b, "` | ");
        cfg_md_cell(b, k->doc);
        sb_puts(b, " |\n");
    }
}

char *config_doc_markdown(void) {
    rlvr_config d;
    if (config_init(&d, NULL) != 0) return NULL;
    sbuf b;
    sb_init(&b);
    sb_puts(&b,
            "# Run configuration\n"
            "\n"
            "<!-- Generated from core/config_schema.def by `rlvr --config-doc`; do not edit by hand.\n"
            "     Regenerate: build, then `build/tests/gen_config_doc > docs/config.md`. -->\n"
            "\n"
            "A run is configured by a Lua file that returns a table. Keys you leave out keep the\n"
            "defaults listed below, which together are rlvr's embedded default run (CPU, a tiny\n"
            "model initialized from scratch, synthetic arithmetic problems).\n"
            "\n"
            "```lua\n"
            "-- configs/arith.lua\n"
            "return {\n"
            "  name = \"arith-small\",\n"
            "  steps = 500,\n"
            "  learning_rate = 2e-5,\n"
            "  rollout = { group_size = 8, temperature = 0.9 },\n"
            "  algo = { advantage = \"grpo\", kl_coef = 0.001 },\n"
            "}\n"
            "```\n"
            "\n"
            "The file is plain Lua, so it can compute values and share parts. `require \"name\"`\n"
            "loads `name.lua` from the config's own folder (`require \"presets.base\"` loads\n"
            "`presets/base.lua`), then rlvr's own modules. `rlvr.config` has `merge`, which\n"
            "deep-merges tables (later ones win; lists are replaced whole):\n"
            "\n"
            "```lua\n"
            "local cfg = require \"rlvr.config\"\n"
            "local base = require \"base\"            -- base.lua beside this file\n"
            "return cfg.merge(base, { rollout = { temperature = 0.7 } })\n"
            "```\n"
            "\n"
            "Configs run in a restricted Lua: the `string`, `table`, `math` and `utf8` libraries and\n"
            "the safe base functions are there; `io`, `os`, `debug`, `package`, `dofile`,\n"
            "`loadfile` and `print` are not, `load` accepts only source text, and a config must\n"
            "finish within 10 seconds and 256 MiB.\n"
            "\n"
            "Every key is checked: an unknown key is an error with a suggestion\n"
            "(`config.lua:7: unknown key 'lerning_rate' (did you mean 'learning_rate'?)`), as is\n"
            "a value of the wrong type or out of range. Rules across keys are checked too (e.g.\n"
            "`model.init.kv_heads` divides `model.init.heads`; GRPO, Dr. GRPO and RLOO need\n"
            "`rollout.group_size` of at least 2).\n"
            "\n"
            "## Overrides and dry runs\n"
            "\n"
            "`--set key=value` overrides one key after the file is loaded; give it once per key.\n"
            "Values are read as the key's type: numbers and integers strictly (an integer may be\n"
            "written `1e3`), booleans as `true`/`false` (also `yes`/`no`, `1`/`0`), strings\n"
            "verbatim, lists as a Lua table constructor or comma-separated words.\n"
            "\n"
            "```sh\n"
            "rlvr train configs/arith.lua --set learning_rate=5e-6 --set rollout.temperature=0.7\n"
            "rlvr train --set device=cuda --set rollout.stop='{\"\\n\\n\", \"</answer>\"}'\n"
            "rlvr train configs/arith.lua --set rollout.stop=END,STOP --dry-run\n"
            "```\n"
            "\n"
            "`--dry-run` loads and checks the config, prints the fully resolved config (every\n"
            "key, as a Lua file that loads back into the same run) and exits without training.\n");
    sb_puts(&b, "\n## Top-level keys\n\n");
    cfg_md_section(&b, &d, "");
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (k->type != CFG_T_SECTION) continue;
        sb_printf(&b, "\n## `%s`\n\n%s\n\n", k->path, k->doc);
        cfg_md_section(&b, &d, k->path);
    }
    sb_puts(&b, "\n## Presets\n\n"
                "`preset = \"NAME\"` sets the objective of a known recipe: the keys below, where the\n"
                "preset is given. Keys written beside it in the same file override it (the preset\n"
                "applies first, whatever the table order); a later `--set preset=...` replaces them.\n"
                "Batch size, group size and lengths stay yours.\n\n"
                "| preset | recipe | sets |\n|---|---|---|\n");
    for (size_t i = 0; i < sizeof cfg_presets / sizeof cfg_presets[0]; i++) {
        sb_printf(&b, "| `%s` | %s | ", cfg_presets[i].name, cfg_presets[i].recipe);
        for (const char *const *set = cfg_presets[i].sets; *set; set++)
            sb_printf(&b, "%s`%s`", set == cfg_presets[i].sets ? "" : ", ", *set);
        sb_puts(&b, " |\n");
    }
    config_free(&d);
    return sb_take(&b);
}
