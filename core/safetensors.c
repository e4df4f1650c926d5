/* safetensors.c - a hardened safetensors reader (mmap + full validation) and an atomic
 * writer. The header is untrusted input: every number is checked as an integer in range
 * before it is used, and no byte outside the mapping is ever read. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_N_DTYPES] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},     [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},
    [ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4},   [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_N_DTYPES ? DTYPES[d].name : "?"; }
size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_N_DTYPES ? DTYPES[d].size : 0; }

/* ---- fp16 / bf16 ---------------------------------------------------------------- */

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float st_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1);                                               /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00; /* rounds to infinity */
    if (a < 6.103515625e-05f) {              /* subnormal: units of 2^-24, nearest even */
        return sign | (uint16_t)nearbyintf(a * 16777216.0f);
    }
    uint32_t au = f32_to_bits(a);
    uint32_t exp = (au >> 23) - 112, mant = au & 0x7fffff;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* carries into the exponent correctly */
    return sign | (uint16_t)h;
}

/* ---- parsing ------------------------------------------------------------------------ */

/* A JSON number that is an integer in [0, 2^53]. */
static int json_index(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_dtype(const char *s, st_dtype *d) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *d = (st_dtype)i;
            return 0;
        }
    return -1;
}

typedef struct span {
    uint64_t begin, end;
    size_t index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int parse_entry(st_tensor *t, const cJSON *item, const char *name, uint64_t data_size, span *sp,
                       rlvr_err *e) {
    const char *key = item->string;
    if (!cJSON_IsObject(item)) return err_set(e, "%s: tensor '%s': expected an object", name, key);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return err_set(e, "%s: tensor '%s': missing or non-string 'dtype'", name, key);
    if (parse_dtype(dt->valuestring, &t->dtype) != 0)
        return err_set(e, "%s: tensor '%s': unknown dtype '%.32s'", name, key, dt->valuestring);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return err_set(e, "%s: tensor '%s': 'data_offsets' must be [begin, end]", name, key);
    uint64_t b, en;
    if (json_index(cJSON_GetArrayItem(offs, 0), &b) != 0 || json_index(cJSON_GetArrayItem(offs, 1), &en) != 0)
        return err_set(e, "%s: tensor '%s': data_offsets are not non-negative integers", name, key);
    if (b > en) return err_set(e, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", name, key,
                               (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return err_set(e, "%s: tensor '%s' ends at data byte %llu but the file has %llu data bytes (truncated?)", name,
                       key, (unsigned long long)en, (unsigned long long)data_size);
    if (!cJSON_IsArray(shape)) return err_set(e, "%s: tensor '%s': missing or non-array 'shape'", name, key);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS) return err_set(e, "%s: tensor '%s': %d dimensions (at most %d)", name, key, nd, ST_MAX_DIMS);
    t->ndim = nd;
    /* numel * element size must fit in the data block; checked step by step so that no
     * product overflows (each factor is bounded by the data size first). */
    uint64_t numel = 1;
    int zero = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t dim;
        if (json_index(cJSON_GetArrayItem(shape, i), &dim) != 0)
            return err_set(e, "%s: tensor '%s': shape[%d] is not a non-negative integer", name, key, i);
        t->shape[i] = (int64_t)dim;
        if (dim == 0) zero = 1;
    }
    if (zero) numel = 0;
    else {
        for (int i = 0; i < nd; i++) {
            uint64_t dim = (uint64_t)t->shape[i];
            if (dim > data_size || numel > data_size / dim)
                return err_set(e, "%s: tensor '%s': shape is larger than the file's %llu data bytes", name, key,
                               (unsigned long long)data_size);
            numel *= dim;
        }
    }
    size_t esz = DTYPES[t->dtype].size;
    if (numel > data_size / esz)
        return err_set(e, "%s: tensor '%s': shape is larger than the file's %llu data bytes", name, key,
                       (unsigned long long)data_size);
    uint64_t nbytes = numel * esz;
    if (en - b != nbytes)
        return err_set(e, "%s: tensor '%s': %s shape needs %llu bytes but data_offsets span %llu", name, key,
                       DTYPES[t->dtype].name, (unsigned long long)nbytes, (unsigned long long)(en - b));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    sp->begin = b;
    sp->end = en;
    return 0;
}

int st_parse(st_file *f, const void *buf, size_t size, const char *name, rlvr_err *e) {
    memset(f, 0, sizeof *f);
    const uint8_t *p = buf;
    if (size < 8) return err_set(e, "%s: %zu bytes is too short for a safetensors file (8-byte header length)", name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen < 2) return err_set(e, "%s: header length %llu is too small", name, (unsigned long long)hlen);
    if (hlen > ST_MAX_HEADER)
        return err_set(e, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors file?)", name,
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > size - 8)
        return err_set(e, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)", name,
                       (unsigned long long)hlen, size);
    const char *hdr = (const char *)p + 8;
    if (hdr[0] != '{') return err_set(e, "%s: header does not start with '{'", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) return err_set(e, "%s: header is not valid JSON (near byte %ld)", name, end ? (long)(end - hdr) + 8 : 8L);
    for (const char *q = end; q && q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r' && *q != '\0') {
            cJSON_Delete(root);
            return err_set(e, "%s: header has bytes after its JSON object (byte %ld)", name, (long)(q - hdr) + 8);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(e, "%s: header is not a JSON object", name);
    }
    uint64_t data_size = size - 8 - hlen;
    size_t n = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    span *spans = calloc(n ? n : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        free(spans);
        cJSON_Delete(root);
        st_close(f);
        return err_set(e, "%s: out of memory", name);
    }
    int rc = 0;
    size_t i = 0;
    for (const cJSON *it = root->child; it && rc == 0; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it) && !cJSON_IsNull(it)) rc = err_set(e, "%s: '__metadata__' is not an object", name);
            continue;
        }
        if (it->string[0] == '\0') {
            rc = err_set(e, "%s: a tensor has an empty name", name);
            break;
        }
        st_tensor *t = &f->tensors[i];
        rc = parse_entry(t, it, name, data_size, &spans[i], e);
        if (rc == 0) {
            t->name = util_strdup(it->string);
            if (!t->name) rc = err_set(e, "%s: out of memory", name);
            t->data = p + 8 + hlen + spans[i].begin;
            spans[i].index = i;
            i++;
            f->n = i;
        }
    }
    cJSON_Delete(root);
    if (rc == 0) {
        /* No two tensors may share bytes, and no name may appear twice. Empty tensors
         * take no bytes and cannot overlap anything. */
        qsort(spans, n, sizeof *spans, span_cmp);
        uint64_t reach = 0;
        const char *reach_name = NULL;
        for (size_t k = 0; k < n && rc == 0; k++) {
            if (spans[k].begin == spans[k].end) continue;
            if (reach_name && spans[k].begin < reach)
                rc = err_set(e, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu)", name, reach_name,
                             f->tensors[spans[k].index].name, (unsigned long long)spans[k].begin,
                             (unsigned long long)reach);
            reach = spans[k].end;
            reach_name = f->tensors[spans[k].index].name;
        }
        const char **names = rc == 0 ? malloc((n ? n : 1) * sizeof *names) : NULL;
        if (rc == 0 && !names) rc = err_set(e, "%s: out of memory", name);
        if (names) {
            for (size_t k = 0; k < n; k++) names[k] = f->tensors[k].name;
            qsort(names, n, sizeof *names, name_cmp);
            for (size_t k = 1; k < n && rc == 0; k++)
                if (strcmp(names[k - 1], names[k]) == 0)
                    rc = err_set(e, "%s: tensor '%s' appears twice in the header", name, names[k]);
            free(names);
        }
    }
    free(spans);
    if (rc != 0) {
        st_close(f);
        return -1;
    }
    f->size = size;
    return 0;
}

int st_open(st_file *f, const char *path, rlvr_err *e) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_errno(e, path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        err_errno(e, path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            err_errno(e, path);
            close(fd);
            return -1;
        }
    }
    close(fd);
    if (st_parse(f, map ? map : (const void *)"", size, path, e) != 0) {
        if (map) munmap(map, size);
        return -1;
    }
    f->map = map;
    f->path = util_strdup(path);
    if (!f->path) {
        st_close(f);
        return err_set(e, "%s: out of memory", path);
    }
    return 0;
}

void st_close(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

int st_to_f32(const st_tensor *t, float *out, rlvr_err *e) {
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case ST_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case ST_F64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case ST_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = st_bf16_to_f32(h);
            break;
        }
        case ST_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = st_f16_to_f32(h);
            break;
        }
        default: return err_set(e, "tensor '%s': dtype %s is not a floating-point type this reader converts (F32, F16, BF16, F64)", t->name, DTYPES[t->dtype].name);
        }
    }
    return 0;
}

int st_to_i64(const st_tensor *t, int64_t *out, rlvr_err *e) {
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case ST_I64: memcpy(&out[i], p + 8 * i, 8); break;
        case ST_I32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = v;
            break;
        }
        case ST_I16: {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            out[i] = v;
            break;
        }
        case ST_I8: out[i] = (int8_t)p[i]; break;
        case ST_U8: out[i] = p[i]; break;
        default: return err_set(e, "tensor '%s': dtype %s is not an integer type this reader converts", t->name, DTYPES[t->dtype].name);
        }
    }
    return 0;
}

/* ---- sets of shards ------------------------------------------------------------------- */

int st_set_open(st_set *s, const char *dir, rlvr_err *e) {
    memset(s, 0, sizeof *s);
    char *index_path = util_path_join(dir, "model.safetensors.index.json");
    if (!index_path) return err_set(e, "out of memory");
    if (!util_is_file(index_path)) {
        free(index_path);
        char *path = util_path_join(dir, "model.safetensors");
        if (!path) return err_set(e, "out of memory");
        s->files = calloc(1, sizeof *s->files);
        if (!s->files) {
            free(path);
            return err_set(e, "out of memory");
        }
        if (!util_is_file(path)) {
            err_set(e, "%s: no model.safetensors or model.safetensors.index.json in the model directory", dir);
            free(path);
            st_set_close(s);
            return -1;
        }
        int rc = st_open(&s->files[0], path, e);
        free(path);
        if (rc != 0) {
            st_set_close(s);
            return -1;
        }
        s->n_files = 1;
        return 0;
    }
    char *text = util_read_file(index_path, NULL, e);
    if (!text) {
        free(index_path);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        err_set(e, "%s: %s", index_path, root ? "no 'weight_map' object" : "not valid JSON");
        cJSON_Delete(root);
        free(index_path);
        return -1;
    }
    /* The distinct shard names, in first-seen order. */
    int n_entries = cJSON_GetArraySize(map), rc = 0;
    const char **names = calloc((size_t)n_entries + 1, sizeof *names);
    s->files = calloc((size_t)n_entries + 1, sizeof *s->files);
    if (!names || !s->files) rc = err_set(e, "out of memory");
    size_t n_names = 0;
    for (const cJSON *it = map->child; it && rc == 0; it = it->next) {
        if (!cJSON_IsString(it)) {
            rc = err_set(e, "%s: weight_map['%s'] is not a file name", index_path, it->string);
            break;
        }
        const char *shard = it->valuestring;
        if (!*shard || strchr(shard, '/') || strcmp(shard, "..") == 0 || strcmp(shard, ".") == 0) {
            rc = err_set(e, "%s: shard name '%s' must be a plain file name in the model directory", index_path, shard);
            break;
        }
        size_t k = 0;
        while (k < n_names && strcmp(names[k], shard) != 0) k++;
        if (k == n_names) names[n_names++] = shard;
    }
    for (size_t k = 0; k < n_names && rc == 0; k++) {
        char *path = util_path_join(dir, names[k]);
        if (!path) rc = err_set(e, "out of memory");
        else {
            rc = st_open(&s->files[k], path, e);
            if (rc == 0) s->n_files = k + 1;
            free(path);
        }
    }
    /* Every tensor the index names must be in the shard it names. */
    for (const cJSON *it = map->child; it && rc == 0; it = it->next) {
        size_t k = 0;
        while (k < n_names && strcmp(names[k], it->valuestring) != 0) k++;
        if (!st_find(&s->files[k], it->string))
            rc = err_set(e, "%s: tensor '%s' is listed in %s but not found there", index_path, it->string,
                         it->valuestring);
    }
    free(names);
    cJSON_Delete(root);
    free(index_path);
    if (rc != 0) {
        st_set_close(s);
        return -1;
    }
    return 0;
}

void st_set_close(st_set *s) {
    for (size_t i = 0; i < s->n_files; i++) st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const st_tensor *st_set_find(const st_set *s, const char *name, const char **file_path) {
    for (size_t i = 0; i < s->n_files; i++) {
        const st_tensor *t = st_find(&s->files[i], name);
        if (t) {
            if (file_path) *file_path = s->files[i].path;
            return t;
        }
    }
    return NULL;
}

/* ---- writing ------------------------------------------------------------------------------ */

int st_write(const char *path, const st_write_tensor *tensors, size_t n, st_dtype dtype, rlvr_err *e) {
    if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
        return err_set(e, "%s: cannot write dtype %s (F32, BF16 or F16)", path, st_dtype_name(dtype));
    size_t esz = DTYPES[dtype].size;
    sbuf h;
    sb_init(&h);
    sb_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        sb_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, DTYPES[dtype].name);
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + numel * esz);
        offset += numel * esz;
    }
    sb_putc(&h, '}');
    while ((h.len + 8) % 8 != 0) sb_putc(&h, ' '); /* keeps the data block 8-byte aligned */
    if (h.oom) {
        sb_free(&h);
        return err_set(e, "%s: out of memory", path);
    }
    size_t total = 8 + h.len + offset;
    uint8_t *buf = malloc(total);
    if (!buf) {
        sb_free(&h);
        return err_set(e, "%s: out of memory (%zu bytes)", path, total);
    }
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, h.s, h.len);
    uint8_t *d = buf + 8 + h.len;
    for (size_t i = 0; i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        for (size_t j = 0; j < numel; j++) {
            if (dtype == ST_F32) memcpy(d, &t->data[j], 4);
            else {
                uint16_t v = dtype == ST_BF16 ? st_f32_to_bf16(t->data[j]) : st_f32_to_f16(t->data[j]);
                memcpy(d, &v, 2);
            }
            d += esz;
        }
    }
    sb_free(&h);
    int rc = util_write_file_atomic(path, buf, total, e);
    free(buf);
    return rc;
}
