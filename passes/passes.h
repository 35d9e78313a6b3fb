/* passes.h — the pass manager and the passes. One pass per file, one
 * signature, registered in one table (manager.c) with its name, summary
 * and options; a pipeline is a string:
 *
 *   dce,fp8-quant{act-tile=128,weight-block=128},cse,fuse,plan-memory{batch=1,seq=4096}
 *
 * Passes keep no static mutable state. They rewrite the graph in place
 * (ir_rewrite_*) and report through PassCtx: what they changed goes to the
 * report text the driver prints (--pass-report), problems to the
 * DiagEngine. The verifier runs after every pass in debug builds and with
 * --verify-each. */
#ifndef DSCC_PASSES_H
#define DSCC_PASSES_H

#include "ir/ir.h"

typedef enum {
    PASS_UNCHANGED, /* the graph is as it was */
    PASS_CHANGED,   /* the graph was rewritten */
    PASS_FAILED,    /* an error was reported; the graph may be partly rewritten */
} PassResult;

typedef struct PassCtx PassCtx;
typedef PassResult (*PassFn)(PassCtx *ctx, IrGraph *g);

typedef struct {
    const char *name;    /* as in pipelines: fp8-quant */
    const char *summary; /* one line for --help and docs */
    const char *options; /* name=default,... (ints unless quoted in the default) */
    PassFn run;
} PassInfo;

extern const PassInfo pass_table[];
extern const int pass_count;
const PassInfo *pass_lookup(const char *name);

/* What a pass sees while it runs. */
DiagEngine *pass_diag(PassCtx *c);
/* The DSCC_* switches of the run (PassRunOptions.tune; NULL: the defaults):
 * plan-memory lays out what codegen stores, which some of them change. */
const DsccTune *pass_tune(PassCtx *c);
int64_t pass_opt_int(PassCtx *c, const char *name);
const char *pass_opt_str(PassCtx *c, const char *name);
void pass_report(PassCtx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PASS_MAX_STEPS 32
#define PASS_MAX_OPTS 8

typedef struct {
    const PassInfo *pass;
    int nopts;
    const char *keys[PASS_MAX_OPTS], *vals[PASS_MAX_OPTS];
} PassStep;

typedef struct {
    int n;
    PassStep steps[PASS_MAX_STEPS];
} PassPipeline;

/* The pipeline `dscc compile` and `dscc run` use by default: the preset
 * "default" with fp8 and every other option at its default. */
const char *pass_default_pipeline(void);

/* What a preset pipeline is built for. Zero fields keep the passes'
 * own defaults. */
typedef struct {
    bool fp8;                  /* run fp8-quant (DeepSeek-V3's FP8 GEMMs) */
    int nodes, gpus_per_node;  /* node-limited-routing's topology; 0: one GPU */
    int microbatches;          /* microbatch-overlap into this many parts; 0: no overlap */
    int64_t batch, seq;        /* plan-memory's batch and new tokens; 0: its defaults */
    int64_t ctx;               /* ... its context (cached + new positions); 0: seq */
    bool f32_storage;          /* ... for a CUDA run storing bf16/f16 values as f32 (--storage f32) */
} PassPreset;

/* The named pipelines every tool, test and benchmark uses:
 *   "default"  shape-infer, fold-constants, dce, [fp8-quant,] cse, dce,
 *              [merge-linears,] node-limited-routing, [microbatch-overlap,] fuse, plan-memory
 *   "kernels"  the same without plan-memory (for code generation alone)
 * Returns the pipeline string (arena-allocated), or NULL for an unknown name. */
const char *pass_preset(Arena *a, const char *name, const PassPreset *o);
/* Parses a pipeline string; unknown passes or options are errors. */
bool pass_pipeline_parse(Arena *a, DiagEngine *d, const char *text, PassPipeline *out);

typedef struct {
    bool print_after_all, print_after_change, verify_each, time;
    const char *print_before, *print_after; /* pass names, or NULL */
    const char *dump_dir;                   /* one numbered file per pass, or NULL */
    FILE *print_to;                         /* where --print-* go (stderr by default) */
    StrBuf *report;                         /* pass reports, or NULL to drop them */
    const DsccTune *tune;                   /* the DSCC_* switches codegen will see (CgGenOptions.tune), or NULL */
} PassRunOptions;

/* Runs the pipeline; false if a pass failed or the verifier found errors. */
bool pass_pipeline_run(const PassPipeline *p, IrGraph *g, const PassRunOptions *o, DiagEngine *d);

/* The passes. */
PassResult pass_dce(PassCtx *c, IrGraph *g);
PassResult pass_cse(PassCtx *c, IrGraph *g);
PassResult pass_fp8_quant(PassCtx *c, IrGraph *g);
PassResult pass_fuse(PassCtx *c, IrGraph *g);
PassResult pass_merge_linears(PassCtx *c, IrGraph *g);
PassResult pass_plan_memory(PassCtx *c, IrGraph *g);
PassResult pass_routing(PassCtx *c, IrGraph *g);
PassResult pass_overlap(PassCtx *c, IrGraph *g);
PassResult pass_shape_infer(PassCtx *c, IrGraph *g);
PassResult pass_fold_constants(PassCtx *c, IrGraph *g);

/* ---- expert-parallel traffic: node-limited-routing's exact prediction ---- */

typedef struct {
    int nodes, gpus_per_node; /* W = nodes x gpus_per_node ranks, rank = node * gpus_per_node + local */
    int64_t experts;          /* E, placed contiguously: expert e on rank e / (E / W) */
    int k;                    /* slots per token */
} PassEpWorld;

/* Bytes one rank SENDS for one MoE layer (DeepEP's two-hop scheme). A
 * token of rank s = (node a, local l) whose experts use nodes n1..nm:
 * dispatch: s sends one copy to (ni, l) per remote node ni (inter); in
 * every used node (a too) the landing rank (ni, l) forwards one copy to
 * each other rank of the node holding one of its experts (intra). combine,
 * the reverse: each such rank sends one partial sum to the landing rank
 * (intra), each remote landing rank one partial sum to s (inter). Copies to
 * a rank itself are free. Rows: see pass_routing_row_bytes. */
typedef struct {
    int64_t dispatch_inter, dispatch_intra;
    int64_t combine_inter, combine_intra;
} PassEpTraffic;

/* Row bytes of the MoE layer of `combine` (a combine node of g):
 * dispatch_row = the sum, over g's dispatches along the same idx, of a row
 * of their operand (payload, scales, ids, weights) in its stored dtype;
 * combine_row = a row of y's trailing axes (one partial sum) in y's stored
 * dtype (bf16, or f32 with f32_storage). False when a row is symbolic. */
bool pass_routing_row_bytes(const IrGraph *g, const IrNode *combine, bool f32_storage, int64_t *dispatch_row, int64_t *combine_row);

/* sent[W]: what each rank sends, given every rank's routing: idx[r] holds
 * ntok[r] x k expert ids (as floats, the executors' values). False after
 * reporting an invalid world or an id outside 0..E-1. */
bool pass_routing_traffic(DiagEngine *d, const PassEpWorld *w, const int64_t *ntok, const float *const *idx, int64_t dispatch_row,
                          int64_t combine_row, PassEpTraffic *sent);

#endif
