/* run_text.h — the text side of `dscc run`: the precision a checkpoint's
 * config.json declares, a prompt through the tokenizer and chat template,
 * sampling of the next token on the host, text streamed without splitting
 * a UTF-8 character or printing a stop string, and the JSON result. */
#ifndef DSCC_RUN_TEXT_H
#define DSCC_RUN_TEXT_H

#include "runtime/sample.h"
#include "runtime/tokenizer.h"
#include "support/support.h"

#include <stdio.h>

/* Whether config.json at path declares FP8 weights
 * (quantization_config.quant_method = "fp8"): 1 yes, 0 no, -1 after
 * reporting an unreadable or malformed file. */
int run_config_fp8(Arena *a, DiagEngine *d, const char *path);

/* The ids of a prompt: the chat template rendered for one user message
 * with the generation prompt, or (raw) the text as is. */
bool run_prompt_ids(DiagEngine *d, const RtTokenizer *t, const char *text, bool raw, int32_t **ids, size_t *n);

/* Host-side sampling: temperature 0 is greedy (argmax); else top-k (0: all),
 * then top-p (1: all) over the softmax of logits / temperature. */
typedef struct {
    double temperature, top_p;
    long top_k;
    uint64_t seed;  /* as given: the device sampler's (runtime/sample.h) */
    uint64_t draws; /* tokens drawn so far: the device sampler's step */
    uint64_t state; /* xorshift64* */
    float *prob;    /* scratch of V */
    int32_t *idx;
    int64_t cap;
} RunSampler;

void run_sampler_init(RunSampler *s, double temperature, double top_p, long top_k, uint64_t seed, uint64_t stream);
void run_sampler_free(RunSampler *s);
/* The next token; -1 when out of memory. */
int64_t run_sample(RunSampler *s, const float *logits, int64_t V);
/* What the device sampler draws from for s (the same distribution). */
RtSampling run_sampling(const RunSampler *s);

/* Generated text: pieces are appended, and what is safe to show (whole
 * characters, no part of a possible stop string) goes to out as it comes. */
typedef struct {
    StrBuf text;
    size_t shown;
    const char *stop; /* NULL or "" for none */
    bool stopped;     /* the stop string appeared: text ends before it */
    FILE *out;        /* NULL: nothing streamed */
} RunStream;

void run_stream_init(RunStream *s, const char *stop, FILE *out);
void run_stream_add(RunStream *s, const char *piece, size_t len);
void run_stream_finish(RunStream *s); /* shows the rest */
void run_stream_free(RunStream *s);

/* Bytes of s[0..n) that end on a complete UTF-8 character. */
size_t run_utf8_complete(const char *s, size_t n);

/* s with each invalid UTF-8 sequence replaced by U+FFFD (as `tokenizers`
 * decodes); malloc'd, NULL when out of memory. */
char *run_utf8_valid(const char *s);

typedef struct {
    double load_s, compile_s, ttft_s, prefill_tps, decode_tps;
    int64_t prefill_tokens, decode_tokens;
    double prefill_s, decode_s; /* over every turn of --chat */
} RunTimings;

/* One JSON object on out: prompt_ids, output_ids, text, stop_reason, timings. */
bool run_print_json(FILE *out, const int32_t *prompt, size_t np, const int32_t *gen, size_t ng, const char *text,
                    const char *stop_reason, const RunTimings *t);

#endif
