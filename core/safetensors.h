/* safetensors.h - reading and writing Hugging Face safetensors files.
 *
 * Format: 8 bytes little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data block; offsets are relative to the data block. The reader memory-maps
 * the file and trusts nothing: header length, JSON, dtypes, shapes, offsets (within the
 * file, matching the shape, not overlapping) are all checked before a tensor is handed
 * out, and every error names the file and the tensor. */
#ifndef RLVR_SAFETENSORS_H
#define RLVR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_F8_E4M3, ST_F8_E5M2, ST_N_DTYPES
} st_dtype;

#define ST_MAX_DIMS 8
/* Headers above this are refused (real ones are a few hundred KB for thousands of tensors). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* into the mapping; not aligned in general */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    char *path;
    void *map; /* the whole file, read-only; NULL for a parsed memory buffer */
    size_t size;
    st_tensor *tensors; /* [n], in file order */
    size_t n;
} st_file;

/* Name ("F32") and element size of a dtype. */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Opens and validates `path`. On failure returns -1 with a message naming the file. */
int st_open(st_file *f, const char *path, rlvr_err *e);
/* Validates a safetensors image in memory (buf must outlive f); `name` is used in messages.
 * This is what st_open calls after mapping the file, and what the fuzzer drives. */
int st_parse(st_file *f, const void *buf, size_t size, const char *name, rlvr_err *e);
void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);

/* Converts a floating-point tensor (F32, F16, BF16, F64) to fp32; out has t->numel floats. */
int st_to_f32(const st_tensor *t, float *out, rlvr_err *e);
/* Converts an integer tensor (I64, I32, I16, I8, U8) to int64; out has t->numel values. */
int st_to_i64(const st_tensor *t, int64_t *out, rlvr_err *e);

/* A model's tensors, from one model.safetensors or from the shards that
 * model.safetensors.index.json names. */
typedef struct st_set {
    st_file *files;
    size_t n_files;
} st_set;

/* Opens DIR/model.safetensors.index.json (and its shards) when present, else DIR/model.safetensors. */
int st_set_open(st_set *s, const char *dir, rlvr_err *e);
void st_set_close(st_set *s);
/* The tensor named `name` in any file of the set, or NULL. */
const st_tensor *st_set_find(const st_set *s, const char *name, const char **file_path);

/* One tensor to write: fp32 data, stored as `dtype` (F32, BF16 or F16; rounded to nearest even). */
typedef struct st_write_tensor {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} st_write_tensor;

/* Writes the tensors to `path` atomically (temporary file, fsync, rename). */
int st_write(const char *path, const st_write_tensor *tensors, size_t n, st_dtype dtype, rlvr_err *e);

/* fp16/bf16 conversions used by the reader and writer. */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
uint16_t st_f32_to_f16(float f);

#endif
