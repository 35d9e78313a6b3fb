/* fuzz_exec.h — shared by the harnesses that reach the CPU executor: runs a
 * verified graph through `dscc run`'s default pipeline and then on the CPU
 * with seeded random weights, a few positions and an element cap, so that
 * a graph too big for a fuzzer is refused by the executor (a located
 * error), never allocated. Header-only, like fuzz_util.h. */
#ifndef DSCC_FUZZ_EXEC_H
#define DSCC_FUZZ_EXEC_H

#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "passes/passes.h"

#define FZ_MAX_ELEMENTS ((int64_t)1 << 21) /* f32 values: 8 MiB of weights, and per value */
#define FZ_SEQ 2                           /* every symbolic dim of an input is bound to this */

/* `dscc run`'s default pipeline, planned for batch 1 and FZ_SEQ positions.
 * False when a pass reported an error (a valid outcome for a fuzzed graph). */
static inline bool fz_default_passes(Arena *a, DiagEngine *d, IrGraph *g) {
    PassPipeline p;
    const char *text = "shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing,fuse,"
                       "plan-memory{batch=1,seq=2}";
    if (!pass_pipeline_parse(a, d, text, &p)) abort(); /* the pipeline itself is ours: must parse */
    PassRunOptions ro = {0};
    return pass_pipeline_run(&p, g, &ro, d);
}

/* Whether the graph's weights (symbolic dims taken as FZ_SEQ) fit the cap:
 * a harness skips the passes of a graph the executor would refuse anyway
 * (the full-size V3 model takes seconds through them under ASan). */
static inline bool fz_weights_fit(const IrGraph *g) {
    int64_t total = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_WEIGHT) continue;
        int64_t numel = 1; /* a stacked weight's type has its leading axis */
        for (int k = 0; k < n->type.rank; k++) {
            IrDim dim = n->type.dims[k];
            int64_t v = ir_dim_is_const(dim) ? dim.coeff : FZ_SEQ;
            if (v < 0 || __builtin_mul_overflow(numel, v, &numel) || numel > FZ_MAX_ELEMENTS) return false;
        }
        if ((total += numel) > FZ_MAX_ELEMENTS) return false;
    }
    return true;
}

/* Builds one input per graph input: constant dims as declared, symbolic ones
 * FZ_SEQ; integer inputs (token ids, positions) hold 0, 1, ..., floats small
 * values. Returns the count, or -1 when an input is too big to make. */
static inline int fz_make_inputs(const IrGraph *g, CpuInput *in, float **bufs, int max) {
    int n = 0;
    for (int i = 0; i < g->nnodes && n < max; i++) {
        const IrNode *node = g->nodes[i];
        if (node->op != IR_OP_INPUT) continue;
        CpuInput *c = &in[n];
        c->name = ir_node_attr_str(node, "name", "");
        c->rank = node->type.rank;
        int64_t numel = 1;
        for (int k = 0; k < c->rank; k++) {
            IrDim dim = node->type.dims[k];
            c->dims[k] = ir_dim_is_const(dim) ? dim.coeff : FZ_SEQ;
            if (c->dims[k] > FZ_MAX_ELEMENTS || (numel *= c->dims[k]) > FZ_MAX_ELEMENTS) return -1;
        }
        float *buf = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
        for (int64_t e = 0; e < numel; e++)
            buf[e] = ir_dtype_is_int(node->type.dtype) ? (float)(e % FZ_SEQ) : 0.25f * (float)(e % 7) - 0.75f;
        c->data = bufs[n] = buf;
        n++;
    }
    return n;
}

/* Two steps (a prefill, then the same shapes again: a kv_cache appends),
 * reading every output after each. Errors are fine; crashes are not. */
static inline void fz_run_cpu(const IrGraph *g, DiagEngine *d) {
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuOptions co = {.threads = 1, .max_elements = FZ_MAX_ELEMENTS};
    CpuExec *x = cpu_exec_new(g, &ws, &co, d);
    if (!x) return;
    enum { MAX_IN = 16 };
    CpuInput in[MAX_IN];
    float *bufs[MAX_IN] = {0};
    int nin = fz_make_inputs(g, in, bufs, MAX_IN);
    for (int step = 0; nin >= 0 && step < 2; step++) {
        if (!cpu_exec_run(x, in, nin, d)) break;
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *node = g->nodes[i];
            if (node->op != IR_OP_OUTPUT) continue;
            int rank;
            int64_t dims[IR_MAX_RANK];
            const float *v = cpu_exec_output(x, ir_node_attr_str(node, "name", ""), &rank, dims);
            if (!v) abort(); /* a run that succeeded has every output */
            int64_t numel = 1;
            for (int k = 0; k < rank; k++) numel *= dims[k];
            volatile float sink = 0;
            for (int64_t e = 0; e < numel; e++) sink += v[e]; /* ASan: the whole value exists */
            (void)sink;
        }
    }
    for (int i = 0; i < MAX_IN; i++) free(bufs[i]);
    cpu_exec_free(x);
}

#endif
