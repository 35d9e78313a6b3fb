/* gpu_trace.c — kernel figures for the CUDA backend's trace and NVTX
 * ranges (see gpu_trace.h). */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_trace.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool is_member(const CgKernel *ck, int id) {
    for (int i = 0; i < ck->nnodes; i++)
        if (ck->nodes[i] == id) return true;
    return false;
}

/* A member other than `self` that takes node id as an operand (NULL: none); *op its index. */
static const IrNode *reader(const IrGraph *g, const CgKernel *ck, int id, int self, int *op) {
    for (int i = 0; i < ck->nnodes; i++) {
        const IrNode *m = g->nodes[ck->nodes[i]];
        for (int k = 0; k < m->nops && m->id != self; k++)
            if (m->ops[k]->id == id) {
                *op = k;
                return m;
            }
    }
    return NULL;
}

static double whole_bytes(const IrNode *n, const int64_t *sym, int bits) {
    double e = 1;
    for (int r = 0; r < n->type.rank; r++) e *= (double)ir_dim_eval(n->type.dims[r], sym);
    return e * bits / 8;
}

static cJSON *shape_json(const IrType *t, const int64_t *sym) {
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < t->rank; r++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ir_dim_eval(t->dims[r], sym)));
    return a;
}

/* One value the kernel reads, for its args. */
static void add_read(cJSON *reads, const IrNode *n, const CgProgram *p, const int64_t *sym, double bytes) {
    cJSON *r = cJSON_CreateObject();
    char what[48];
    snprintf(what, sizeof what, "%%%d %s", n->id, ir_op_name(n->op));
    cJSON_AddStringToObject(r, "node", what);
    const char *name = n->op == IR_OP_WEIGHT || n->op == IR_OP_INPUT || n->op == IR_OP_KV_CACHE ? ir_node_attr_str(n, "name", NULL) : NULL;
    if (name) cJSON_AddStringToObject(r, "name", name);
    cJSON_AddItemToObject(r, "shape", shape_json(&n->type, sym));
    cJSON_AddStringToObject(r, "dtype", ir_dtype_name(p->dtype[n->id]));
    cJSON_AddNumberToObject(r, "bytes", bytes);
    cJSON_AddItemToArray(reads, r);
}

/* gpu_trace_cost, listing each value read in `reads` when given. */
static void cost(const IrGraph *g, const CgProgram *p, int k, const int64_t *sym, GpuKernelCost *c, cJSON *reads) {
    const CgKernel *ck = &p->kernels[k];
    memset(c, 0, sizeof *c);
    for (int i = 0; i < ck->nnodes; i++) c->flops += ir_stats_node_flops(g->nodes[ck->nodes[i]], sym);
    for (int s = 0; s < ck->nslots; s++) {
        const CgSlot *sl = &ck->slots[s];
        bool seen = sl->kind != CG_SLOT_VALUE;
        for (int t = 0; t < s && !seen; t++) seen = ck->slots[t].kind == CG_SLOT_VALUE && ck->slots[t].node == sl->node;
        if (seen) continue;
        const IrNode *n = g->nodes[sl->node];
        int bits = ir_dtype_bits(p->dtype[n->id]), op = 0;
        const IrNode *r = reader(g, ck, n->id, n->id, &op);
        if (is_member(ck, n->id)) {
            if (p->stored[n->id] && ir_op_has_result(n->op)) c->bytes_written += ir_stats_node_bytes(n, -1, sym, bits);
            if (n->op != IR_OP_KV_CACHE || !r) continue; /* made here; a cache's earlier positions are read too */
        }
        double b = r ? ir_stats_node_bytes(r, op, sym, bits) : whole_bytes(n, sym, bits);
        c->bytes_read += b;
        if (reads) add_read(reads, n, p, sym, b);
    }
}

void gpu_trace_cost(const IrGraph *g, const CgProgram *p, int k, const int64_t *sym, GpuKernelCost *c) {
    cost(g, p, k, sym, c, NULL);
}

cJSON *gpu_trace_kernel_args(const IrGraph *g, const CgProgram *p, int k, const int64_t *sym, double dur_us) {
    const CgKernel *ck = &p->kernels[k];
    cJSON *a = cJSON_CreateObject(), *ops = cJSON_AddArrayToObject(a, "ops");
    for (int i = 0; i < ck->nnodes; i++) cJSON_AddItemToArray(ops, cJSON_CreateString(ir_op_name(g->nodes[ck->nodes[i]]->op)));
    if (ck->nnodes > 0) {
        int last = ck->nodes[ck->nnodes - 1];
        cJSON_AddItemToObject(a, "shape", shape_json(&g->nodes[last]->type, sym));
        cJSON_AddStringToObject(a, "dtype", ir_dtype_name(p->dtype[last]));
    }
    cJSON_AddNumberToObject(a, "phases", ck->nphases);
    cJSON_AddStringToObject(a, "lib", ck->lib.kind == CG_LIB_NONE ? "none" : "cuBLASLt form");
    char loc[300];
    snprintf(loc, sizeof loc, "%s:%d", ck->loc.file ? ck->loc.file : "", ck->loc.line);
    cJSON_AddStringToObject(a, "loc", loc);
    GpuKernelCost c;
    cJSON *reads = cJSON_CreateArray();
    cost(g, p, k, sym, &c, reads);
    cJSON_AddNumberToObject(a, "flops", c.flops);
    cJSON_AddNumberToObject(a, "bytes", c.bytes_read + c.bytes_written);
    cJSON_AddNumberToObject(a, "bytes_read", c.bytes_read);
    cJSON_AddNumberToObject(a, "bytes_written", c.bytes_written);
    if (dur_us > 0) {
        cJSON_AddNumberToObject(a, "GB/s", (c.bytes_read + c.bytes_written) / dur_us / 1e3);
        cJSON_AddNumberToObject(a, "TFLOPS", c.flops / dur_us / 1e6);
    }
    cJSON_AddItemToObject(a, "reads", reads);
    return a;
}

/* A weight's name up to its first all-digit component, or its first component. */
static const char *range_of(const char *name, Arena *a) {
    size_t first = strcspn(name, ".");
    for (const char *c = name; *c;) {
        size_t len = strcspn(c, ".");
        bool digits = len > 0;
        for (size_t i = 0; i < len && digits; i++) digits = isdigit((unsigned char)c[i]);
        if (digits) return arena_strndup(a, name, (size_t)(c - name) + len);
        c += len + (c[len] == '.');
    }
    return arena_strndup(a, name, first);
}

const char **gpu_trace_ranges(const IrGraph *g, const CgProgram *p, Arena *a) {
    const char **r = arena_alloc(a, sizeof(char *) * (size_t)(p->nkernels + 1));
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        for (int s = 0; s < ck->nslots && !r[k]; s++) {
            const IrNode *n = g->nodes[ck->slots[s].node];
            if (ck->slots[s].kind == CG_SLOT_VALUE && n->op == IR_OP_WEIGHT) r[k] = range_of(ir_node_attr_str(n, "name", "weight"), a);
        }
    }
    return r;
}
#endif
