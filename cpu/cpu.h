/* cpu.h — the CPU reference executor: interprets a verified IR graph in FP32
 * arithmetic on any machine. Every other backend is checked against it, and
 * it is checked against transformers' DeepseekV3ForCausalLM.
 *
 * All values are held as f32 whatever their declared dtype (integer tensors
 * hold exact integers, ids below 2^24): the reference it must match runs in
 * FP32. Casts to bf16/f16/fp8 are therefore not rounded (the value passes
 * unchanged); casts to an integer dtype round toward zero, as C and torch
 * convert. FP8 appears only through the explicit emulation option or the
 * explicit FP8 ops (act_scale, quantize, fp8_linear, ...), exactly as
 * DeepSeek-V3 quantizes. Each kv_cache node keeps its own persistent cache,
 * keyed by its `name` (unique in a graph), so a prefill followed by
 * one-token steps reproduces a full forward.
 *
 * Using it: cpu_exec_new(graph, weights, options) once; per step
 * cpu_exec_run(inputs) then cpu_exec_output(name) for each result;
 * cpu_exec_reset before an unrelated sequence; cpu_exec_free. */
#ifndef DSCC_CPU_H
#define DSCC_CPU_H

#include "ir/ir.h"

/* Fills dst (row-major f32, every element of `type`) with the checkpoint
 * tensor `name` (already resolved: no {e} left). Returns false after
 * reporting through d. */
typedef bool (*CpuWeightLoadFn)(void *ctx, const char *name, const IrType *type, float *dst, DiagEngine *d);

typedef struct {
    CpuWeightLoadFn load;
    void *ctx;
} CpuWeightSource;

/* Deterministic random weights: each tensor depends only on (seed, name).
 * Matrices (rank >= 2) are uniform in ±1/sqrt(last dim); vectors (norm
 * weights, biases) are 1 + uniform(±0.1). `seed` must outlive the source. */
CpuWeightSource cpu_random_weights(const uint64_t *seed);

/* Slice e (0 when unstacked) of weight node n, as executors hold it:
 * values, or E4M3 codes (as floats) for an fp8e4m3 weight, or the 128x128
 * block scales for a weight with `scales_of` (both computed from the
 * values the source gives, so codes and scales always agree). dst holds
 * one slice. False after reporting. */
bool cpu_weight_slice(const IrGraph *g, const IrNode *n, const CpuWeightSource *ws, int64_t e, float *dst, DiagEngine *d);

typedef struct {
    int threads;          /* 0 = number of online CPUs */
    /* Emulate DeepSeek FP8 in linear and expert_linear: activations per 1x128
     * tile, weights per 128x128 block (quantized once, at load), FP32
     * accumulation per 128-wide K block. As V3 runs, linears on f32
     * activations (the router) and the one producing an output (the LM
     * head) stay FP32. */
    bool fp8;
    int64_t max_elements; /* refuse weights (in all) or a value over this many f32s; 0 = 2^31 */
    bool keep_all;        /* keep every value after a run (for cpu_exec_value; memory grows to the whole graph) */
    /* Called after each node is computed, with its values (which the hook
     * may overwrite: the rest of the graph then computes from them). Lets
     * a test check another backend's kernel on exactly the inputs that
     * backend saw, op by op. NULL: none. */
    void (*after_node)(void *ctx, int id, float *values, int64_t n);
    void *hook_ctx;
} CpuOptions;

typedef struct CpuExec CpuExec;

/* Loads every weight (to f32; stacked weights slice by slice under their
 * resolved names) and prepares to run. The graph must be verified and must
 * outlive the executor. NULL after reporting. */
CpuExec *cpu_exec_new(const IrGraph *g, const CpuWeightSource *ws, const CpuOptions *opt, DiagEngine *d);
void cpu_exec_free(CpuExec *x);

typedef struct {
    const char *name;  /* graph input name */
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *data; /* row-major; ids as exact integers */
} CpuInput;

/* Runs one step: binds the symbolic dims from the inputs' shapes (and T =
 * cached length + new positions when the graph has a kv_cache), computes
 * every node, appends to the caches. False after reporting (a missing
 * input, a shape that does not fit, an id out of range); the caches are
 * then as they were before the call. */
bool cpu_exec_run(CpuExec *x, const CpuInput *inputs, int ninputs, DiagEngine *d);

/* An output of the last run (NULL if no such name); valid until the next run. */
const float *cpu_exec_output(const CpuExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]);
int64_t cpu_exec_cache_len(const CpuExec *x); /* positions cached so far */
/* The value of node `id` after the last run (with keep_all; else only
 * outputs and weights), or NULL. */
const float *cpu_exec_value(const CpuExec *x, int id, int64_t *numel);
void cpu_exec_reset(CpuExec *x);              /* empties every kv_cache */
/* Forgets the cached positions from `len` on (speculative decoding rolls
 * back rejected drafts); false, changing nothing, unless 0 <= len <= the
 * cached length. */
bool cpu_exec_truncate(CpuExec *x, int64_t len);

/* ---- FP8 E4M3 emulation (DeepSeek-V3 scheme) -------------------------- */

/* v rounded to the nearest E4M3 value (ties to even), saturating at ±448;
 * NaN stays NaN. */
float cpu_fp8_round(float v);
/* The E4M3 byte of cpu_fp8_round(v) (NaN -> S.1111.111), and back. */
uint8_t cpu_fp8_e4m3_encode(float v);
float cpu_fp8_e4m3_decode(uint8_t code);
/* y[m,o] = sum over K blocks of 128 of (qa·qb) * sa * sb, with a quantized
 * per 1x128 tile (sa = amax/448) and w per 128x128 block: x[M,K], w[O,K]. */
void cpu_fp8_linear(const float *x, const float *w, float *y, int64_t M, int64_t K, int64_t O);
/* The pieces: E4M3 codes (value / scale, rounded) and scales of x[M,K] per
 * 1 x block tile, of w[O,K] per 128x128 block (either output may be NULL),
 * and the GEMM on codes: y = sum over K blocks of (q.w) * qs * ws. */
void cpu_fp8_act_quant(const float *x, int64_t M, int64_t K, int64_t block, float *codes, float *scales);
void cpu_fp8_weight_quant(const float *w, int64_t O, int64_t K, float *codes, float *scales);
void cpu_fp8_gemm(const float *q, const float *qs, const float *w, const float *ws, float *y, int64_t M, int64_t K,
                  int64_t O);

#endif
