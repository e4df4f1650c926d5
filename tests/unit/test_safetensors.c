/* test_safetensors.c - the safetensors reader on valid, corrupt, truncated and
 * adversarial files (every one must fail with a message naming the problem, never crash;
 * the suite runs under ASan), sharded sets, the writer's round trip, and the fuzzer's
 * crashers kept in tests/fixtures/safetensors/. */
#include "testing.h"

#include <dirent.h>
#include <math.h>

#include "safetensors.h"
#include "util.h"

/* A safetensors image from a header text and `data_len` data bytes (value i & 0xff). */
static uint8_t *image(const char *header, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    uint8_t *b = malloc(*size + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)i;
    return b;
}

static void expect_error(const char *header, size_t data_len, const char *needle) {
    size_t size;
    uint8_t *b = image(header, data_len, &size);
    st_file f;
    rlvr_err e = {{0}};
    int rc = st_parse(&f, b, size, "x.safetensors", &e);
    if (rc != -1) fail_msg("accepted: %s", header);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
    assert_non_null(strstr(e.msg, "x.safetensors"));
    free(b);
}

static void test_valid_file(void **state) {
    (void)state;
    size_t size;
    uint8_t *b = image("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                       "\"data_offsets\":[0,16]},\"h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[22,22]}}   ",
                       22, &size);
    st_file f;
    rlvr_err e;
    assert_int_equal(st_parse(&f, b, size, "x", &e), 0);
    assert_int_equal(f.n, 3);
    const st_tensor *w = st_find(&f, "w");
    assert_non_null(w);
    assert_int_equal(w->numel, 4);
    assert_int_equal(w->shape[1], 2);
    assert_int_equal(st_find(&f, "z")->numel, 0);
    assert_null(st_find(&f, "nope"));
    float out[4];
    assert_int_equal(st_to_f32(w, out, &e), 0);
    int64_t ints[4];
    assert_int_equal(st_to_i64(w, ints, &e), -1);
    assert_non_null(strstr(e.msg, "not an integer type"));
    st_close(&f);
    free(b);
}

static void test_corrupt_headers(void **state) {
    (void)state;
    /* the 8-byte length itself */
    st_file f;
    rlvr_err e;
    assert_int_equal(st_parse(&f, "\x01\x02", 2, "x.safetensors", &e), -1);
    assert_non_null(strstr(e.msg, "too short"));
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    assert_int_equal(st_parse(&f, huge, sizeof huge, "x.safetensors", &e), -1);
    assert_non_null(strstr(e.msg, "exceeds"));
    uint8_t past[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(st_parse(&f, past, sizeof past, "x.safetensors", &e), -1);
    assert_non_null(strstr(e.msg, "runs past the end"));
    /* JSON */
    expect_error("{\"w\": ", 0, "not valid JSON");
    expect_error("[1, 2]", 0, "does not start with '{'");
    expect_error("{} x", 0, "bytes after its JSON object");
    expect_error("{\"w\": 3}", 0, "tensor 'w': expected an object");
    expect_error("{\"\": {\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "empty name");
    expect_error("{\"__metadata__\": 5}", 0, "'__metadata__' is not an object");
    /* dtype and shape */
    expect_error("{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'F33'");
    expect_error("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "non-string 'dtype'");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "non-array 'shape'");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0] is not a non-negative integer");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0] is not");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions");
    /* a shape whose element count overflows 64 bits is "larger than the file", not a wrap-around */
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                 "shape is larger than the file");
    expect_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, "shape is larger than the file");
    /* offsets */
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "ends at data byte 8 but the file has 4");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "needs 8 bytes but data_offsets span 4");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "end before they begin");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8, "must be [begin, end]");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, "not non-negative integers");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e300,1e300]}}", 8, "not non-negative integers");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 12, "tensors 'a' and 'b' overlap");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, "tensor 'a' appears twice");
}

static char *write_bytes(const char *dir, const char *name, const void *data, size_t n) {
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

/* A real file cut short at every length: each prefix fails cleanly. */
static void test_truncated_files(void **state) {
    (void)state;
    char *dir = test_tmpdir("st_trunc");
    float data[6] = {1, 2, 3, 4, 5, 6};
    st_write_tensor t[2] = {{"a", data, 2, {2, 2}}, {"b", data + 4, 1, {2}}};
    char *path = malloc(1100);
    snprintf(path, 1100, "%s/full.safetensors", dir);
    rlvr_err e;
    assert_int_equal(st_write(path, t, 2, ST_F32, &e), 0);
    size_t len;
    char *full = util_read_file(path, &len, &e);
    assert_non_null(full);
    for (size_t n = 0; n < len; n++) {
        char *p = write_bytes(dir, "cut.safetensors", full, n);
        st_file f;
        assert_int_equal(st_open(&f, p, &e), -1);
        assert_non_null(strstr(e.msg, "cut.safetensors"));
        free(p);
    }
    st_file f;
    assert_int_equal(st_open(&f, path, &e), 0);
    st_close(&f);
    assert_int_equal(st_open(&f, dir, &e), -1); /* a directory */
    assert_non_null(strstr(e.msg, "not a regular file"));
    free(full);
    free(path);
    free(dir);
}

static void test_write_round_trip(void **state) {
    (void)state;
    char *dir = test_tmpdir("st_rt");
    float data[5] = {1.0f, -2.5f, 3.14159f, 1e-8f, 65504.0f};
    char path[1100];
    rlvr_err e;
    const st_dtype dts[3] = {ST_F32, ST_BF16, ST_F16};
    for (int k = 0; k < 3; k++) {
        st_write_tensor t = {"model.x.weight", data, 1, {5}};
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, st_dtype_name(dts[k]));
        assert_int_equal(st_write(path, &t, 1, dts[k], &e), 0);
        st_file f;
        assert_int_equal(st_open(&f, path, &e), 0);
        const st_tensor *r = st_find(&f, "model.x.weight");
        assert_int_equal(r->dtype, dts[k]);
        float out[5];
        assert_int_equal(st_to_f32(r, out, &e), 0);
        for (int i = 0; i < 5; i++) {
            float tol = dts[k] == ST_F32 ? 0.0f : dts[k] == ST_BF16 ? fabsf(data[i]) / 128 : fabsf(data[i]) / 1024 + 6e-8f;
            assert_true(fabsf(out[i] - data[i]) <= tol);
        }
        st_close(&f);
    }
    assert_int_equal(st_write(path, NULL, 0, ST_I64, &e), -1);
    /* conversions at the edges */
    assert_true(st_f16_to_f32(st_f32_to_f16(65520.0f)) == INFINITY);
    assert_true(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    assert_int_equal(st_f32_to_bf16(1.00390625f), 0x3f80); /* a tie rounds to even */
    free(dir);
}

/* Sharded sets: the index, its shards, and hostile indexes. */
static void test_sharded_sets(void **state) {
    (void)state;
    char *dir = test_tmpdir("st_shard");
    float data[4] = {1, 2, 3, 4};
    st_write_tensor a = {"a", data, 1, {2}}, b = {"b", data + 2, 1, {2}};
    char path[1100];
    rlvr_err e;
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    assert_int_equal(st_write(path, &a, 1, ST_F32, &e), 0);
    snprintf(path, sizeof path, "%s/s2.safetensors", dir);
    assert_int_equal(st_write(path, &b, 1, ST_BF16, &e), 0);
    free(test_write(dir, "model.safetensors.index.json",
                    "{\"metadata\": {}, \"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}"));
    st_set s;
    assert_int_equal(st_set_open(&s, dir, &e), 0);
    assert_int_equal(s.n_files, 2);
    const char *file;
    const st_tensor *t = st_set_find(&s, "b", &file);
    assert_non_null(t);
    assert_non_null(strstr(file, "s2.safetensors"));
    st_set_close(&s);
    free(test_write(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}"));
    assert_int_equal(st_set_open(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "must be a plain file name"));
    free(test_write(dir, "model.safetensors.index.json", "{\"weight_map\": {\"c\": \"s1.safetensors\"}}"));
    assert_int_equal(st_set_open(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "tensor 'c' is listed in s1.safetensors but not found there"));
    free(test_write(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": \"missing.safetensors\"}}"));
    assert_int_equal(st_set_open(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "missing.safetensors"));
    free(test_write(dir, "model.safetensors.index.json", "{\"weights\": 1}"));
    assert_int_equal(st_set_open(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "no 'weight_map' object"));
    char *empty = test_tmpdir("st_empty");
    assert_int_equal(st_set_open(&s, empty, &e), -1);
    assert_non_null(strstr(e.msg, "no model.safetensors"));
    free(empty);
    free(dir);
}

/* Every file under tests/fixtures/safetensors/ (the fuzzer's seed and the crashers it
 * found, named crash-*) parses or fails cleanly; crashers must fail. */
static void test_fuzz_regressions(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/safetensors", getenv("RLVR_SOURCE_DIR"));
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        if (ent->d_name[0] == '.') continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        st_file f;
        rlvr_err e;
        int rc = st_open(&f, path, &e);
        if (strncmp(ent->d_name, "crash-", 6) == 0 || strncmp(ent->d_name, "bad-", 4) == 0) {
            if (rc == 0) fail_msg("%s: accepted", ent->d_name);
        } else if (rc != 0) fail_msg("%s", e.msg);
        if (rc == 0) st_close(&f);
        n++;
    }
    closedir(d);
    assert_true(n >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),     cmocka_unit_test(test_corrupt_headers),
        cmocka_unit_test(test_truncated_files), cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_sharded_sets),   cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
