/* runtime.h — host-side runtime pieces: Hugging Face checkpoints
 * (safetensors, single or sharded, FP8 with block scales) and NumPy .npy
 * files for tensors in and out of the CLI.
 *
 * Checkpoint files are mmapped, never copied whole: a tensor is a pointer
 * into the mapping plus its dtype and shape, converted to f32 only when a
 * consumer asks. Every header field is validated before anything points
 * into the data, and errors name the file and the tensor. */
#ifndef DSCC_RUNTIME_H
#define DSCC_RUNTIME_H

#include "ir/ir.h"
#include "runtime/cuda.h" /* the driver API, loaded at run time: part of this interface */
#include "runtime/dist.h" /* rank discovery and rendezvous: part of this interface */

/* ---- safetensors ---------------------------------------------------------- */

typedef enum {
    RT_BF16,    /* "BF16" */
    RT_F16,     /* "F16" */
    RT_F32,     /* "F32" */
    RT_F8_E4M3, /* "F8_E4M3" (OCP E4M3FN) */
    RT_I32,     /* "I32" */
    RT_I64,     /* "I64" */
} RtDType;

const char *rt_dtype_name(RtDType t);
int rt_dtype_size(RtDType t);

typedef struct {
    const char *name;
    RtDType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    const uint8_t *data; /* into the mapping */
    size_t nbytes;
} RtTensor;

typedef struct {
    const char *path;
    int ntensors;
    RtTensor *tensors; /* sorted by name */
    void *map;         /* mmap base, or NULL for memory parsed in place */
    size_t map_size;
} RtSafetensors;

/* Parses a safetensors image held in memory (not copied: tensors point into
 * data). NULL after reporting errors named after `path`. */
RtSafetensors *rt_safetensors_parse(Arena *a, DiagEngine *d, const char *path, const uint8_t *data, size_t size);
/* mmaps and parses a file; close with rt_safetensors_close. */
RtSafetensors *rt_safetensors_open(Arena *a, DiagEngine *d, const char *path);
void rt_safetensors_close(RtSafetensors *st);
const RtTensor *rt_safetensors_find(const RtSafetensors *st, const char *name);

/* Converts n elements of a tensor's raw data to f32 (ints exactly). */
void rt_convert_f32(RtDType t, const uint8_t *src, float *dst, int64_t n);
float rt_fp8_e4m3_decode(uint8_t b);
float rt_bf16_decode(uint16_t h);
uint16_t rt_bf16_encode(float f); /* nearest even; a NaN stays a (quiet) NaN */
float rt_f16_decode(uint16_t h);

/* ---- checkpoint directories ---------------------------------------------- */

typedef struct RtCheckpoint RtCheckpoint;

/* Opens DIR/model.safetensors or the shards of DIR/model.safetensors.index.json. */
RtCheckpoint *rt_checkpoint_open(Arena *a, DiagEngine *d, const char *dir);
void rt_checkpoint_close(RtCheckpoint *c);
/* DIR/config.json if it exists, else NULL. */
const char *rt_checkpoint_config_path(const RtCheckpoint *c);
int rt_checkpoint_count(const RtCheckpoint *c);
const RtTensor *rt_checkpoint_find(const RtCheckpoint *c, const char *name, const char **file);
/* Reads `name` as f32 into dst after checking its shape is `type`'s; an FP8
 * tensor is dequantized with its NAME_scale_inv 128x128 block scales. The
 * signature is that of cpu.h's CpuWeightLoadFn (ctx = the checkpoint). */
bool rt_checkpoint_read_f32(void *ckpt, const char *name, const IrType *type, float *dst, DiagEngine *d);

/* ---- .npy ------------------------------------------------------------------ */

typedef struct {
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    float *data; /* malloc'd; ints converted exactly (must fit 2^24) */
    bool was_int;
} RtArray;

/* Reads a C-order .npy (format 1.0 to 3.0) of int32, int64 or float32
 * (little-endian); the path must name a regular file. */
bool rt_npy_read(DiagEngine *d, const char *path, RtArray *out);
/* Writes a float32 .npy through file_write: a regular file atomically, a
 * symlink's target, a device or FIFO in place. */
bool rt_npy_write_f32(DiagEngine *d, const char *path, const float *data, int rank, const int64_t *shape);

#endif
