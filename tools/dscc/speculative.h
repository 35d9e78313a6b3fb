/* speculative.h — `dscc run --speculative mtp`: greedy or sampled
 * generation with DeepSeek-V3's multi-token-prediction module as the draft
 * model (see speculative.c). Private to the dscc driver. */
#ifndef DSCC_SPECULATIVE_H
#define DSCC_SPECULATIVE_H

#include "runtime/runtime.h"
#include "runtime/tokenizer.h"
#include "tools/dscc/driver.h"

typedef struct {
    const char *model;      /* the DSL file */
    ModelOpts mo;           /* --config / --set as given; the two step graphs add their own */
    PassOpts *po;           /* --passes etc., applied to both graphs */
    const char *weights;    /* checkpoint directory; NULL: seeded random weights */
    uint64_t seed;          /* --random-weights */
    const char *tokens;     /* the prompt ids, .npy [B, P]; or NULL with `prompt` */
    const RtArray *prompt;  /* --prompt: its ids [1, P] (with tk), else NULL */
    const RtTokenizer *tk;  /* --prompt: text out; eos and `stop` end generation */
    const char *tokenizer;  /* its directory, for errors */
    const char *stop;       /* --stop, or NULL */
    bool json;              /* --output-format json (with --prompt) */
    bool fp8, cuda, f32_storage;
    long device, threads;
    long generate;          /* new tokens per row (>= 1) */
    bool speculative;       /* false: plain decoding (sampled with --temperature) */
    double temperature;     /* 0: greedy */
    uint64_t sample_seed;   /* --seed of the sampler */
    const char *trace;      /* --trace (CUDA): both graphs' steps, "verify N" and "draft N" (NULL: none) */
    int trace_steps;        /* --trace-steps (< 1: the default) */
} SpecArgs;

/* Runs the whole command; returns its exit code. */
int spec_run_mtp(const SpecArgs *s);

#endif
