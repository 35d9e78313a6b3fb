/* gpu_exec.c — the CUDA backend (see gpu.h): setup (bind the capacity,
 * compile, place activations, caches and scratch, fill the launches'
 * arguments), a step's launches on its streams and as a CUDA graph, and
 * the outputs' fetches. The executor's state and the other files' parts
 * (the weights, the GEMM's form, the Chrome trace) are in
 * gpu_exec_internal.h. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include "runtime/gpu_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- host conversions ------------------------------------------------- */

static uint16_t to_f16(float f) { /* nearest even, via the float bits */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* f32 values -> dtype bytes (dst holds bytes_of(dt, n)). */
void gx_pack(IrDType dt, const float *src, int64_t n, void *dst) {
    for (int64_t i = 0; i < n; i++) switch (dt) {
        case IR_DT_F32: ((float *)dst)[i] = src[i]; break;
        case IR_DT_BF16: ((uint16_t *)dst)[i] = rt_bf16_encode(src[i]); break;
        case IR_DT_F16: ((uint16_t *)dst)[i] = to_f16(src[i]); break;
        case IR_DT_FP8E4M3: ((uint8_t *)dst)[i] = cpu_fp8_e4m3_encode(src[i]); break;
        case IR_DT_I32: ((int32_t *)dst)[i] = (int32_t)src[i]; break;
        case IR_DT_I64: ((int64_t *)dst)[i] = (int64_t)src[i]; break;
        default: IR_UNREACHABLE();
        }
}

static void unpack(IrDType dt, const void *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) switch (dt) {
        case IR_DT_F32: dst[i] = ((const float *)src)[i]; break;
        case IR_DT_BF16: dst[i] = rt_bf16_decode(((const uint16_t *)src)[i]); break;
        case IR_DT_F16: dst[i] = rt_f16_decode(((const uint16_t *)src)[i]); break;
        case IR_DT_FP8E4M3: dst[i] = cpu_fp8_e4m3_decode(((const uint8_t *)src)[i]); break;
        case IR_DT_I32: dst[i] = (float)((const int32_t *)src)[i]; break;
        case IR_DT_I64: dst[i] = (float)((const int64_t *)src)[i]; break;
        default: IR_UNREACHABLE();
        }
}

/* ---- setup ---------------------------------------------------------------- */

/* The symbol a dim is, when it is exactly one symbol; else -1. */
static int lone_sym(IrDim d) {
    int s = -1;
    if (d.coeff != 1) return -1;
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) {
        if (d.exp[i] == 0) continue;
        if (d.exp[i] != 1 || s >= 0) return -1;
        s = i;
    }
    return s;
}

/* Which symbols are batch, new positions and context; the sizes at capacity. */
static bool bind_capacity(GpuExec *x, const GpuOptions *o, int64_t *smax, DiagEngine *d) {
    const IrGraph *g = x->g;
    x->sym_b = x->sym_s = x->sym_t = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == IR_OP_INPUT && n->type.rank >= 1) {
            int b = lone_sym(n->type.dims[0]), s = n->type.rank >= 2 ? lone_sym(n->type.dims[1]) : -1;
            if (b >= 0) x->sym_b = b;
            if (s >= 0) x->sym_s = s;
        }
        if (n->op == IR_OP_KV_CACHE && n->type.rank >= 2) x->sym_t = lone_sym(n->type.dims[1]);
    }
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++) smax[s] = 1;
    if (x->sym_b >= 0) smax[x->sym_b] = o->max_batch;
    if (x->sym_s >= 0) smax[x->sym_s] = o->max_seq;
    if (x->sym_t >= 0) smax[x->sym_t] = o->max_ctx;
    bool mbsym[IR_MAX_DIM_SYMS] = {false};
    x->mb_parts = 1;
    for (int i = 0; i < g->nnodes; i++) { /* the micro-batch dim of the overlap pass: the batch over its parts */
        const IrNode *n = g->nodes[i];
        int m = n->op == IR_OP_SPLIT_BATCH && n->type.rank ? lone_sym(n->type.dims[0]) : -1;
        if (m < 0 || m == x->sym_b) continue;
        x->mb_parts = (int)ir_node_attr_int(n, "parts", 2);
        mbsym[m] = true;
        smax[m] = (o->max_batch + x->mb_parts - 1) / x->mb_parts;
    }
    if (x->sym_b >= 0 && x->mb_parts > 1) /* room for a batch padded to whole micro-batches */
        smax[x->sym_b] = x->max_b = (o->max_batch + x->mb_parts - 1) / x->mb_parts * x->mb_parts;
    for (int s = 0; s < g->ndims; s++)
        if (s != x->sym_b && s != x->sym_s && s != x->sym_t && !mbsym[s]) {
            /* a symbol no input binds (a micro-batch dim of the overlap pass) */
            for (int i = 0; i < g->nnodes; i++)
                for (int k = 0; k < g->nodes[i]->type.rank; k++)
                    if (g->nodes[i]->type.dims[k].exp[s]) {
                        diag_error(d, g->nodes[i]->loc,
                                   "the CUDA backend binds only batch, new positions, context and micro-batches; dim '%s' is bound "
                                   "by none of them",
                                   g->dim_names[s]);
                        return false;
                    }
        }
    return true;
}

/* Which kernels compute only functions of the weights: their values are
 * computed once and kept (x->konst): at load for the values held with
 * the weights (x->atload), else by the first run (a value of weights alone
 * that another value of its kernel's group is not). */
static void find_constant_kernels(GpuExec *x) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    bool *c = calloc((size_t)g->nnodes + 1, 1);
    ir_weights_only(g, c);
    x->konst = calloc((size_t)p->nkernels + 1, sizeof(bool));
    for (int k = 0; k < p->nkernels; k++) {
        bool all = p->kernels[k].nnodes > 0;
        for (int j = 0; j < p->kernels[k].nnodes; j++) all &= c[p->kernels[k].nodes[j]];
        x->konst[k] = all;
    }
    free(c);
}

/* For graphs with fresh_select: per node and kernel, whether a step of
 * each kind (0: nothing cached yet, 1: a cached context) uses it. From the
 * roots (outputs, cache appends, exchanges) back through the operands, of
 * a fresh_select only the one that kind takes; a kernel none of whose
 * nodes is used is not launched (a fused group that holds a used node
 * runs whole, its unused inlined values never called). */
static void find_step_kernels(GpuExec *x) {
    const IrGraph *g = x->g;
    bool any = false;
    for (int i = 0; i < g->nnodes; i++) any |= g->nodes[i]->op == IR_OP_FRESH_SELECT;
    if (!any) return;
    for (int f = 0; f < 2; f++) {
        bool *need = x->need[f] = calloc((size_t)g->nnodes + 1, 1);
        ir_step_needs(g, f, need);
        x->idle[f] = calloc((size_t)x->p->nkernels + 1, 1);
        for (int k = 0; k < x->p->nkernels; k++) {
            const CgKernel *ck = &x->p->kernels[k];
            bool used = ck->nnodes == 0;
            for (int j = 0; j < ck->nnodes; j++) used |= need[ck->nodes[j]];
            x->idle[f][k] = !used;
        }
    }
}

/* The kernels run in program order (the plan-memory pass put the ops in
 * the order codegen takes): what the plan's happens-before assumes. */
static bool kernels_in_program_order(const GpuExec *x, DiagEngine *d) {
    int prev = -1;
    for (int k = 0; k < x->p->nkernels; k++) {
        const CgKernel *ck = &x->p->kernels[k];
        int lo = ck->nodes[0], hi = ck->nodes[0];
        for (int j = 1; j < ck->nnodes; j++) lo = ck->nodes[j] < lo ? ck->nodes[j] : lo, hi = ck->nodes[j] > hi ? ck->nodes[j] : hi;
        if (lo <= prev) {
            diag_error(d, ck->loc, "the memory plan does not follow the kernel order (kernel %s runs ops before an earlier kernel's): run "
                       "plan-memory after fuse", ck->name);
            return false;
        }
        prev = hi;
    }
    return true;
}

/* Activation offsets: the plan-memory pass's (each node's mem), after
 * checking that they hold this run's values: the same values stored (the
 * pass asks the code generator which), each at its size for the capacity
 * and storage dtype, no two that overlap in use at once (ir_check_memory:
 * the schedule checker's test, on these sizes). Without a plan, or with
 * keep_all, each stored value has bytes of its own: nothing is reused. */
static bool take_plan(GpuExec *x, const int64_t *smax, bool keep_all, int64_t *abytes, DiagEngine *d) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    int nn = g->nnodes, bad = 0;
    int64_t *size = malloc(sizeof(int64_t) * (size_t)(nn + 1)), end = 0;
    bool plan = g->mem_planned && !keep_all;
    if (!g->mem_planned && !keep_all)
        diag_warning(d, (SrcLoc){0}, "the graph has no memory plan (run plan-memory last): every activation gets bytes of its own");
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        bool st = p->stored[i] && ir_op_has_result(n->op) && n->op != IR_OP_WEIGHT && n->op != IR_OP_KV_CACHE && !ir_wv_kept(x->wv[i]);
        size[i] = -1;
        if (st && !ir_value_bytes_as(n, p->dtype[i], smax, &size[i])) size[i] = INT64_MAX;
        bool held = p->stored[i] && ir_wv_kept(x->wv[i]); /* with the weights */
        if (plan && st != (n->mem >= 0) && bad++ < 4)
            diag_error(d, n->loc, "the memory plan %s node %d (%s), which the kernels %s", st ? "has no place for" : "places", i,
                       ir_op_name(n->op), st ? "store" : "do not store");
        else if (plan && held != (n->mem == IR_MEM_WEIGHTS) && bad++ < 4)
            diag_error(d, n->loc, "the memory plan %s node %d (%s) with the weights, which the kernels %s", held ? "does not hold" : "holds",
                       i, ir_op_name(n->op), held ? "store" : "do not store");
        x->aoff[i] = !st ? -1 : plan ? n->mem : end;
        if (st && !plan) end = size[i] == INT64_MAX || end > INT64_MAX - size[i] ? INT64_MAX : end + size[i];
    }
    if (plan && !bad && kernels_in_program_order(x, d)) {
        DiagEngine *q = diag_new(x->arena, NULL); /* the first few of what may be thousands */
        bad = ir_check_memory(g, size, q);
        int shown = 0;
        for (const Diag *e = diag_first(q); e && shown < 3; e = e->next)
            if (e->level == DIAG_ERROR) diag_error(d, e->loc, "%s", e->msg), shown++;
        if (bad > shown) diag_error(d, (SrcLoc){0}, "memory plan: %d more values overlap values in use", bad - shown);
        for (int i = 0; i < nn; i++)
            if (x->aoff[i] >= 0 && x->aoff[i] + size[i] > end) end = x->aoff[i] + size[i];
    } else if (plan)
        bad++;
    if (bad) {
        StrBuf dims;
        sb_init(&dims);
        for (int s = 0; s < g->ndims; s++) sb_printf(&dims, "%s%s=%lld", s ? ", " : "", g->dim_names[s], (long long)g->mem_dims[s]);
        diag_note(d, (SrcLoc){0},
                  "the graph's memory plan (for %s) does not hold this run (batch %lld, %lld new positions, context %lld, %s storage): "
                  "plan it for them, plan-memory{batch=%lld,seq=%lld,ctx=%lld,f32-storage=%d}",
                  dims.data, (long long)x->max_b, (long long)x->max_s, (long long)x->cap, x->f32 ? "f32" : "declared",
                  (long long)x->max_b, (long long)x->max_s, (long long)x->cap, x->f32 ? 1 : 0);
        sb_free(&dims);
    }
    free(size);
    *abytes = end;
    return !bad && end < INT64_MAX;
}

static RtDevPtr slot_ptr(GpuExec *x, const CgKernel *k, int s, const int64_t *scr_off) {
    const CgSlot *sl = &k->slots[s];
    if (sl->kind == CG_SLOT_SCRATCH) return x->scratch + (RtDevPtr)scr_off[s];
    const IrNode *n = x->g->nodes[sl->node];
    if (n->op == IR_OP_WEIGHT) return gx_weight_base(x, n);
    if (n->op == IR_OP_KV_CACHE) return x->kv[n->id].buf;
    if (x->home[n->id]) return gx_held_at(x, n->id); /* a value held with the weights */
    return x->aslab + (RtDevPtr)x->aoff[n->id];
}

/* Each kernel's stream (its ops', from the overlap pass; 0 when
 * unscheduled) and, per IR wait on an op of the other stream, the kernel
 * whose event it waits for. */
static bool setup_streams(GpuExec *x, DiagEngine *d) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    int *kof = malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) kof[i] = -1;
    x->kstream = calloc((size_t)p->nkernels + 1, sizeof(int));
    x->kwait = calloc((size_t)p->nkernels + 1, sizeof(int *));
    x->kev = calloc((size_t)p->nkernels + 1, sizeof(RtEvent *));
    bool ok = true;
    for (int k = 0; k < p->nkernels; k++)
        for (int j = 0; j < p->kernels[k].nnodes; j++) {
            const IrNode *n = g->nodes[p->kernels[k].nodes[j]];
            int st = n->stream < 0 ? 0 : n->stream;
            kof[n->id] = k;
            if (st >= RT_CUDA_STREAMS || (j > 0 && st != x->kstream[k])) {
                diag_error(d, n->loc, "%s is on stream %d: the CUDA backend runs streams 0 and 1, one per kernel", ir_op_name(n->op), n->stream);
                ok = false;
            }
            x->kstream[k] = st;
            x->two_streams |= st != 0;
        }
    for (int k = 0; k < p->nkernels && ok; k++) {
        int nw = 0;
        for (int j = 0; j < p->kernels[k].nnodes; j++) nw += g->nodes[p->kernels[k].nodes[j]]->nwaits;
        x->kwait[k] = arena_alloc(x->arena, sizeof(int) * (size_t)(nw + 1));
        nw = 0;
        for (int j = 0; j < p->kernels[k].nnodes; j++) {
            const IrNode *n = g->nodes[p->kernels[k].nodes[j]];
            for (int w = 0; w < n->nwaits; w++) {
                int kw = kof[n->waits[w]->id];
                if (kw < 0 || x->kstream[kw] == x->kstream[k]) continue; /* a weight, an input, or the same stream */
                x->kwait[k][nw++] = kw;
                if (!x->kev[kw] && !(x->kev[kw] = rt_cuda_event(x->cu, d))) ok = false;
            }
        }
        x->kwait[k][nw] = -1;
    }
    if (ok && x->two_streams && !(x->join = rt_cuda_event(x->cu, d))) ok = false;
    free(kof);
    return ok;
}

/* The routing (home idx) a dispatch or combine follows, and its expert count. */
static const IrNode *routing_of(const IrNode *n, int64_t *experts) {
    const IrNode *idx = NULL;
    for (int k = n->nops - 1; k >= 0 && !idx; k--)
        if (ir_dtype_is_int(n->ops[k]->type.dtype) && n->ops[k]->op != IR_OP_DISPATCH) idx = n->ops[k];
    const IrNode *r = idx;
    for (int hop = 0; r && r->op != IR_OP_GROUP_TOPK && r->op != IR_OP_TOPK && hop < 8 && r->nops; hop++) r = r->ops[0];
    *experts = r && (r->op == IR_OP_GROUP_TOPK || r->op == IR_OP_TOPK) ? r->ops[0]->type.dims[r->ops[0]->type.rank - 1].coeff : 0;
    return idx;
}

/* Under a GpuDist: the kernels that are a dispatch or combine (which the
 * exchanges replace), checked against the world layout; the micro-batch
 * of every node (for which rows of a routing are padding). */
static bool setup_ep(GpuExec *x, const int64_t *smax, DiagEngine *d) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    x->mb = malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        x->mb[i] = n->op == IR_OP_SPLIT_BATCH ? (int)ir_node_attr_int(n, "index", 0) : -1;
        for (int k = 0; k < n->nops && n->op != IR_OP_SPLIT_BATCH; k++)
            if (x->mb[n->ops[k]->id] > x->mb[i]) x->mb[i] = x->mb[n->ops[k]->id];
    }
    x->comm_node = malloc(sizeof(int) * (size_t)(p->nkernels + 1));
    for (int k = 0; k < p->nkernels; k++) {
        x->comm_node[k] = -1;
        const CgKernel *ck = &p->kernels[k];
        for (int j = 0; j < ck->nnodes; j++) {
            const IrNode *n = g->nodes[ck->nodes[j]];
            if (n->op != IR_OP_DISPATCH && n->op != IR_OP_COMBINE) continue;
            int64_t E = 0;
            const IrNode *idx = routing_of(n, &E);
            const char *why = ck->nnodes != 1 ? "it shares its kernel with other ops"
                              : !idx || E <= 0 || E % x->dist.size ? "its routing (a top-k over the experts' scores) is not found"
                              : idx->type.dtype != IR_DT_I32 ? "its expert ids are not i32"
                              : NULL;
            if (!why && n->op == IR_OP_DISPATCH &&
                ir_dim_eval(n->type.dims[0], smax) != x->dist.size * ir_dim_eval(idx->type.dims[0], smax))
                why = "its value does not have the world layout's W x N rows (node-limited-routing for this world)";
            if (!why && n->op == IR_OP_COMBINE && (n->nops < 3 || n->type.rank != 2 || p->dtype[n->id] != IR_DT_F32))
                why = "it is not combine(y, wd, idd, idx) : f32[N, O]";
            if (why) {
                diag_error(d, n->loc, "expert parallelism cannot run %s %%%d: %s", ir_op_name(n->op), n->id, why);
                return false;
            }
            x->comm_node[k] = n->id;
        }
    }
    return (x->ep = gpu_ep_new(x->cu, &x->dist, x->arena, d)) != NULL;
}

/* A distributed context that describes one world: its rank and size agree
 * with the communicator's and with nodes x gpus_per_node. */
static bool check_dist(const GpuDist *t, DiagEngine *d) {
    if (t->nodes < 1 || t->gpus_per_node < 1 || t->size != t->nodes * t->gpus_per_node || t->rank < 0 || t->rank >= t->size) {
        diag_error(d, (SrcLoc){0}, "expert parallelism: rank %d of %d ranks on %d node(s) x %d GPU(s) is not a valid world", t->rank,
                   t->size, t->nodes, t->gpus_per_node);
        return false;
    }
    if (t->size > 1 && (!t->comm || rt_nccl_comm_rank(t->comm) != t->rank || rt_nccl_comm_size(t->comm) != t->size)) {
        diag_error(d, (SrcLoc){0}, "expert parallelism: rank %d of %d needs a communicator of that rank and size", t->rank, t->size);
        return false;
    }
    return true;
}

static bool launch_kernel(GpuExec *x, int k, const int64_t *sym, StepSeq *q, const StepMode *m, DiagEngine *d);

/* Computes the values held with the weights (the load kernels, in program
 * order, on stream 0), then frees the weights only they read. */
static bool run_load_kernels(GpuExec *x, const int64_t *smax, DiagEngine *d) {
    StepMode m = {0};
    bool ok = true;
    rt_cuda_use_stream(x->cu, 0);
    for (int k = 0; k < x->p->nkernels && ok; k++) {
        if (x->atload[k] != 1) continue;
        memcpy(x->launch[k].args.sym, smax, sizeof x->launch[k].args.sym);
        x->launch[k].args.len = 0;
        ok = launch_kernel(x, k, smax, NULL, &m, d);
    }
    if (!ok || !rt_cuda_sync(x->cu, d)) return false;
    rt_cuda_free(x->cu, x->lslab);
    x->lslab = 0;
    return true;
}

GpuExec *gpu_exec_new(const IrGraph *g, const CpuWeightSource *ws, const GpuOptions *opt, DiagEngine *d) {
    GpuOptions o = *opt;
    if (o.max_batch < 1 || o.max_seq < 1) {
        diag_error(d, (SrcLoc){0}, "the CUDA backend needs a positive batch and sequence capacity");
        return NULL;
    }
    if (o.max_ctx < o.max_seq) o.max_ctx = o.max_seq;
    if (o.dist && !check_dist(o.dist, d)) return NULL;
    GpuExec *x = calloc(1, sizeof *x);
    x->g = g;
    x->arena = arena_new();
    x->diag = diag_new(x->arena, stderr);
    x->trace = o.tracer;
    x->trace_label = o.trace_label;
    x->keep_all = o.keep_all;
    x->graphs = o.graphs;
    x->f32 = o.f32_storage;
    if (o.dist && o.dist->size > 1) x->dist = *o.dist;
    if (o.tune) x->tune = *o.tune;
    x->sync_each = tune_on(x->tune.cuda_sync, false);
    if (o.trace && !x->trace && !(x->own_trace = (x->trace = rt_trace_open(o.trace, o.trace_steps, d)) != NULL)) {
        arena_free(x->arena);
        free(x);
        return NULL;
    }
    int nn = g->nnodes;
    x->woff = malloc(sizeof(int64_t) * (size_t)(nn + 1));
    x->elo = malloc(sizeof(int64_t) * (size_t)(nn + 1));
    x->ehi = malloc(sizeof(int64_t) * (size_t)(nn + 1));
    x->aoff = malloc(sizeof(int64_t) * (size_t)(nn + 1));
    x->wv = calloc((size_t)nn + 1, 1);
    x->home = calloc((size_t)nn + 1, 1);
    x->kv = calloc((size_t)nn + 1, sizeof(KvBuf));
    x->out = calloc((size_t)nn + 1, sizeof(float *));
    for (int i = 0; i < nn; i++) x->woff[i] = x->aoff[i] = -1;
    x->cap = o.max_ctx;
    x->max_b = o.max_batch;
    x->max_s = o.max_seq;
    int64_t smax[IR_MAX_DIM_SYMS];
    if (!bind_capacity(x, &o, smax, d)) goto fail;
    CgGenOptions go = {.f32_storage = o.f32_storage, .tune = &x->tune};
    if (!(x->p = cg_generate(x->arena, d, g, &go))) goto fail;
    if (!(x->cu = rt_cuda_open(d, o.device))) goto fail;
    x->pdl = tune_on(x->tune.pdl, true) && rt_cuda_has_pdl(x->cu); /* on by default: proven on an H100 (BENCHMARKS.md) */
    if (rt_cuda_sm(x->cu) < 90) {
        diag_error(d, (SrcLoc){0}, "%s: the CUDA backend generates sm_90a code and needs a Hopper GPU (sm_90)",
                   rt_cuda_device_name(x->cu));
        goto fail;
    }
    /* compile (parallel, cached) and load every distinct module */
    const CgProgram *p = x->p;
    CgBinary *bins = calloc((size_t)p->nmodules + 1, sizeof(CgBinary));
    CgOptions co = {0};
    int fails = cg_compile(x->arena, d, p->modules, p->nmodules, &co, bins);
    RtModule **mods = arena_alloc(x->arena, sizeof(RtModule *) * (size_t)(p->nmodules + 1));
    for (int m = 0; m < p->nmodules && !fails; m++)
        if (!(mods[m] = rt_cuda_module(x->cu, d, bins[m].data, p->modules[m].name))) fails++;
    for (int m = 0; m < p->nmodules; m++) cg_binary_free(&bins[m]);
    free(bins);
    if (fails) goto fail;
    /* memory: weights, activations, caches, scratch */
    find_constant_kernels(x);
    find_step_kernels(x);
    if (!gx_find_load_kernels(x, d) || !setup_streams(x, d) || (x->dist.size > 1 && !setup_ep(x, smax, d))) goto fail;
    int64_t abytes = 0, sbytes = 0;
    if (!take_plan(x, smax, o.keep_all, &abytes, d)) goto fail;
    x->abytes = abytes;
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_KV_CACHE) continue;
        x->kv[i].per = numel_at(&n->type, smax) / (smax[x->sym_b >= 0 ? x->sym_b : 0] * x->cap);
        size_t kb = (size_t)bytes_of(x->p->dtype[i], x->max_b * x->cap * x->kv[i].per);
        if (!rt_cuda_alloc(x->cu, d, kb, &x->kv[i].buf)) {
            diag_note(d, n->loc, "for the KV cache '%s' (%lld rows x %lld positions)", ir_node_attr_str(n, "name", "?"),
                      (long long)x->max_b, (long long)x->cap);
            goto fail;
        }
    }
    for (int k = 0; k < p->nkernels; k++)
        for (int s2 = 0; s2 < p->kernels[k].nslots; s2++) {
            const CgSlot *sl = &p->kernels[k].slots[s2];
            const IrNode *n = g->nodes[sl->node];
            if (sl->kind == CG_SLOT_VALUE && n->op != IR_OP_WEIGHT && n->op != IR_OP_KV_CACHE && x->aoff[n->id] < 0 &&
                !(ir_wv_kept(x->wv[n->id]) && p->stored[n->id])) {
                diag_error(d, n->loc, "internal: kernel %s reads %%%d (%s), which has no place in memory", p->kernels[k].name, n->id,
                           ir_op_name(n->op));
                goto fail;
            }
        }
    x->launch = calloc((size_t)p->nkernels + 1, sizeof(Launch));
    int64_t *scr = malloc(sizeof(int64_t) * CG_MAX_SLOTS);
    for (int k = 0; k < p->nkernels; k++) {
        int64_t at = 0;
        for (int s = 0; s < p->kernels[k].nslots; s++)
            if (p->kernels[k].slots[s].kind == CG_SLOT_SCRATCH) at += align256(4 * ir_dim_eval(p->kernels[k].slots[s].count, smax));
        if (at > sbytes) sbytes = at;
    }
    sbytes = align256(sbytes);
    /* one scratch area per stream: kernels of the two may run at once */
    if (!rt_cuda_alloc(x->cu, d, (size_t)abytes, &x->aslab) || !rt_cuda_alloc(x->cu, d, (size_t)(x->two_streams ? 2 * sbytes : sbytes), &x->scratch) ||
        !rt_cuda_alloc(x->cu, d, 256, &x->err)) {
        diag_note(d, (SrcLoc){0}, "activations need %.2f GiB at batch %lld x %lld positions", (double)abytes / (1 << 30),
                  (long long)o.max_batch, (long long)o.max_seq);
        free(scr);
        goto fail;
    }
    if (!gx_place_experts(x, d) || !gx_load_weights(x, ws, d)) { /* before the arguments: they point into the weight slab */
        free(scr);
        goto fail;
    }
    RtKernel **fncache = arena_alloc(x->arena, sizeof(RtKernel *) * (size_t)(p->nmodules * 64 + 1));
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        Launch *l = &x->launch[k];
        l->template_node = ck->nodes[ck->nnodes - 1];
        for (int j = 0; j < ck->nnodes; j++)
            if (!ir_op_fusible(g->nodes[ck->nodes[j]]->op)) l->template_node = ck->nodes[j];
        l->fn = arena_alloc(x->arena, sizeof(RtKernel *) * (size_t)(ck->nphases + 1));
        for (int ph = 0; ph < ck->nphases && ph < 64; ph++) {
            RtKernel **c = &fncache[ck->module * 64 + ph];
            if (!*c && !(*c = rt_cuda_function(x->cu, d, mods[ck->module], ck->phases[ph].fn))) {
                free(scr);
                goto fail;
            }
            l->fn[ph] = *c;
        }
        int64_t at = x->kstream[k] ? sbytes : 0;
        for (int s = 0; s < ck->nslots; s++)
            if (ck->slots[s].kind == CG_SLOT_SCRATCH) {
                scr[s] = at;
                at += align256(4 * ir_dim_eval(ck->slots[s].count, smax));
            }
        for (int s = 0; s < ck->nslots; s++) l->args.t[s] = slot_ptr(x, ck, s, scr);
        l->args.cap = x->cap;
        l->args.err = x->err;
        l->args.tag = k;
    }
    free(scr);
    if (!gx_setup_tma(x, smax, d)) goto fail;
    bool any_lib = false;
    for (int k = 0; k < p->nkernels; k++) any_lib |= p->kernels[k].lib.kind != CG_LIB_NONE;
    x->no_blas_why = !any_lib ? "no GEMM of this graph has a cuBLASLt form" : o.no_blas ? "the generated kernels were asked for" : NULL;
    if (any_lib && !o.no_blas && !(x->blas = rt_blas_open(x->cu, d, &x->tune, &x->no_blas_why)) && diag_error_count(d)) goto fail;
    if (!(x->step[0] = rt_cuda_event(x->cu, d)) || !(x->step[1] = rt_cuda_event(x->cu, d))) goto fail;
    x->nvtx = gpu_trace_ranges(g, p, x->arena);
    if (x->trace || o.profile) {
        x->kms = calloc((size_t)p->nkernels + 1, sizeof(double));
        x->ev = calloc((size_t)p->nkernels + 1, sizeof(RtEvent *));
        for (int k = 0; k <= p->nkernels; k++)
            if (!(x->ev[k] = rt_cuda_event(x->cu, d))) goto fail;
        x->profile_on = o.profile;
    }
    if (!run_load_kernels(x, smax, d)) goto fail;
    return x;
fail:
    gpu_exec_free(x);
    return NULL;
}

void gpu_exec_free(GpuExec *x) {
    if (!x) return;
    if (x->own_trace) rt_trace_close(x->trace, x->diag);
    if (x->cu) {
        if (x->ev)
            for (int k = 0; k <= x->p->nkernels; k++) rt_cuda_event_free(x->cu, x->ev[k]);
        rt_blas_close(x->blas);
        rt_gemm_table_free(x->gtable);
        rt_cuda_free(x->cu, x->tmaps);
        rt_dev_sampler_free(x->sampler);
        for (int k = 0; x->kev && k < x->p->nkernels; k++) rt_cuda_event_free(x->cu, x->kev[k]);
        rt_cuda_event_free(x->cu, x->join);
        gpu_ep_free(x->ep);
        rt_cuda_event_free(x->cu, x->step[0]);
        rt_cuda_event_free(x->cu, x->step[1]);
        rt_cuda_graph_free(x->cu, x->graph);
        for (int i = 0; i < GRAPH_CACHE; i++) rt_cuda_graph_free(x->cu, x->gcache[i].graph);
        rt_cuda_host_free(x->cu, x->staging);
        rt_cuda_free(x->cu, x->wslab);
        rt_cuda_free(x->cu, x->lslab);
        rt_cuda_free(x->cu, x->aslab);
        rt_cuda_free(x->cu, x->scratch);
        rt_cuda_free(x->cu, x->err);
        rt_cuda_free(x->cu, x->flush);
        for (int i = 0; i < x->g->nnodes; i++) rt_cuda_free(x->cu, x->kv[i].buf);
        rt_cuda_close(x->cu);
    }
    for (int i = 0; x->out && i < x->g->nnodes; i++) free(x->out[i]);
    free(x->out);
    free(x->val);
    free(x->ev);
    free(x->kms);
    free(x->konst);
    free(x->atload);
    free(x->wv);
    free(x->home);
    for (int f = 0; f < 2; f++) free(x->idle[f]), free(x->need[f]);
    free(x->kstream);
    free(x->kwait);
    free(x->kev);
    for (int i = 0; i < GRAPH_CACHE; i++) free(x->gcache[i].seq);
    free(x->comm_node);
    free(x->mb);
    free(x->launch);
    free(x->woff);
    free(x->elo);
    free(x->ehi);
    free(x->aoff);
    free(x->kv);
    arena_free(x->arena);
    free(x);
}

const char *gpu_exec_device(const GpuExec *x) { return rt_cuda_device_name(x->cu); }
int64_t gpu_exec_weight_bytes(const GpuExec *x) { return x->wbytes; }
int64_t gpu_exec_activation_bytes(const GpuExec *x) { return x->abytes; }
int64_t gpu_exec_offset(const GpuExec *x, int id) {
    if (id < 0 || id >= x->g->nnodes) return -1;
    return x->home[id] && x->g->nodes[id]->op != IR_OP_WEIGHT ? IR_MEM_WEIGHTS : x->aoff[id];
}

void gpu_exec_comm_bytes(const GpuExec *x, GpuCommBytes *last, GpuCommBytes *total) {
    if (last) *last = x->comm_last;
    if (total) *total = x->comm_total;
}
int64_t gpu_exec_cache_len(const GpuExec *x) { return x->len; }
void gpu_exec_reset(GpuExec *x) { x->len = 0; }
bool gpu_exec_truncate(GpuExec *x, int64_t len) {
    if (len < 0 || len > x->len) return false;
    x->len = len; /* each cache row's positions are fixed slots: later runs overwrite from len on */
    return true;
}
double gpu_exec_last_ms(const GpuExec *x) { return x->last_ms; }
int gpu_exec_last_launches(const GpuExec *x) { return x->launches; }
int gpu_exec_last_pdl_launches(const GpuExec *x) { return x->pdl_launches; }
bool gpu_exec_pdl(const GpuExec *x) { return x->pdl; }

/* ---- running ------------------------------------------------------------ */

static bool bind_inputs(GpuExec *x, const CpuInput *in, int nin, int64_t *sym, DiagEngine *d) {
    const IrGraph *g = x->g;
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++) sym[s] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_INPUT) continue;
        const char *name = ir_node_attr_str(n, "name", "");
        const CpuInput *v = NULL;
        for (int k = 0; k < nin && !v; k++)
            if (strcmp(in[k].name, name) == 0) v = &in[k];
        if (!v) {
            diag_error(d, n->loc, "input '%s' was not given", name);
            return false;
        }
        if (v->rank != n->type.rank) {
            diag_error(d, n->loc, "input '%s' has rank %d, the graph expects %d", name, v->rank, n->type.rank);
            return false;
        }
        for (int k = 0; k < v->rank; k++) {
            int s = lone_sym(n->type.dims[k]);
            if (s >= 0 && (sym[s] < 0 || sym[s] == v->dims[k])) sym[s] = v->dims[k];
            else if (s >= 0 || !ir_dim_is_const(n->type.dims[k]) || n->type.dims[k].coeff != v->dims[k]) {
                diag_error(d, n->loc, "input '%s': dim %d is %lld, which does not fit its type", name, k, (long long)v->dims[k]);
                return false;
            }
        }
    }
    if (x->sym_t >= 0) sym[x->sym_t] = x->len + (x->sym_s >= 0 ? sym[x->sym_s] : 1);
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
        if (sym[s] < 0) sym[s] = 1;
    for (int i = 0; i < g->nnodes; i++) { /* micro-batches: equal parts of the batch */
        const IrNode *n = g->nodes[i];
        int m = n->op == IR_OP_SPLIT_BATCH && n->type.rank ? lone_sym(n->type.dims[0]) : -1;
        if (m < 0) continue;
        int64_t whole = ir_dim_eval(n->ops[0]->type.dims[0], sym), parts = ir_node_attr_int(n, "parts", 2);
        if (whole % parts) {
            diag_error(d, n->loc, "a batch of %lld does not split into %lld equal micro-batches", (long long)whole, (long long)parts);
            return false;
        }
        sym[m] = whole / parts;
    }
    int64_t B = x->sym_b >= 0 ? sym[x->sym_b] : 1, S = x->sym_s >= 0 ? sym[x->sym_s] : 1;
    if (B > x->max_b || S > x->max_s) {
        diag_error(d, (SrcLoc){0}, "a step of %lld x %lld positions exceeds the capacity the GPU executor was made for (%lld x %lld)",
                   (long long)B, (long long)S, (long long)x->max_b, (long long)x->max_s);
        return false;
    }
    if (x->sym_t >= 0 && sym[x->sym_t] > x->cap) {
        diag_error(d, (SrcLoc){0}, "context of %lld positions exceeds the KV cache capacity of %lld", (long long)sym[x->sym_t],
                   (long long)x->cap);
        return false;
    }
    if (x->sym_t >= 0 && x->len > 0 && B != x->cache_batch) {
        diag_error(d, (SrcLoc){0}, "batch %lld differs from the %lld rows already in the KV cache (reset first)", (long long)B,
                   (long long)x->cache_batch);
        return false;
    }
    return true;
}

static bool upload_inputs(GpuExec *x, const CpuInput *in, int nin, const int64_t *sym, DiagEngine *d) {
    const IrGraph *g = x->g;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_INPUT || x->aoff[i] < 0) continue;
        const CpuInput *v = NULL;
        for (int k = 0; k < nin && !v; k++)
            if (strcmp(in[k].name, ir_node_attr_str(n, "name", "")) == 0) v = &in[k];
        int64_t ne = numel_at(&n->type, sym);
        IrDType dt = x->p->dtype[i];
        void *buf = malloc((size_t)bytes_of(dt, ne) + 8);
        gx_pack(dt, v->data, ne, buf);
        bool ok = rt_cuda_upload(x->cu, d, x->aslab + (RtDevPtr)x->aoff[i], buf, (size_t)bytes_of(dt, ne));
        free(buf);
        if (!ok) return false;
    }
    return true;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Under a GpuDist every rank runs the same number of rows (the world
 * layout's blocks have one size): the ranks agree on the largest local
 * batch, rounded up to whole micro-batches, and each pads its batch-row
 * inputs with zero rows up to it (token 0: a valid id), which are never
 * sent to an expert (their routing counts as padding) and never in an
 * output. On one process, a batch that does not split into the overlap
 * pass's equal micro-batches (a batch of 1, an odd one) is padded the
 * same way. out[] gets malloc'd copies of the padded inputs. */
static bool pad_rows(GpuExec *x, const CpuInput *in, int nin, CpuInput *out, float **bufs, DiagEngine *d) {
    const IrGraph *g = x->g;
    int64_t B = -1, Bmax = 0;
    bool *rows = calloc((size_t)nin + 1, 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_INPUT || !n->type.rank || x->sym_b < 0 || lone_sym(n->type.dims[0]) != x->sym_b) continue;
        for (int k = 0; k < nin; k++)
            if (strcmp(in[k].name, ir_node_attr_str(n, "name", "")) == 0 && in[k].rank >= 1) {
                rows[k] = true;
                if (B < 0) B = in[k].dims[0];
            }
    }
    x->b_real = B < 0 ? 1 : B;
    bool ok = x->ep ? gpu_ep_agree_max(x->ep, d, x->b_real, &Bmax) : (Bmax = x->b_real, true);
    int64_t parts = x->mb_parts, Bpad = (Bmax + parts - 1) / parts * parts;
    if (Bpad < parts) Bpad = parts;
    if (ok && x->ep && B >= 0 && Bpad > x->max_b) {
        diag_error(d, (SrcLoc){0}, "rank %d: the ranks' batches need %lld rows each, over the %lld this executor was made for "
                   "(make it for the largest local batch)", x->dist.rank, (long long)Bpad, (long long)x->max_b);
        ok = false;
    }
    for (int k = 0; k < nin; k++) {
        out[k] = in[k];
        bufs[k] = NULL;
        if (!ok || !rows[k] || in[k].dims[0] == Bpad) continue;
        int64_t per = 1;
        for (int j = 1; j < in[k].rank; j++) per *= in[k].dims[j];
        if (!(bufs[k] = calloc((size_t)(Bpad * per + 1), sizeof(float)))) {
            diag_error(d, (SrcLoc){0}, "out of host memory padding input '%s'", in[k].name);
            ok = false;
            continue;
        }
        if (in[k].dims[0] > 0) memcpy(bufs[k], in[k].data, sizeof(float) * (size_t)(in[k].dims[0] * per));
        out[k].data = bufs[k];
        out[k].dims[0] = Bpad;
    }
    free(rows);
    return ok;
}

static bool run_step(GpuExec *x, const CpuInput *in, int nin, DiagEngine *d);

bool gpu_exec_run(GpuExec *x, const CpuInput *in, int nin, DiagEngine *d) {
    x->padded = x->ep || x->mb_parts > 1;
    if (!x->padded) return run_step(x, in, nin, d);
    CpuInput *padded = malloc(sizeof(CpuInput) * (size_t)(nin + 1));
    float **bufs = calloc((size_t)nin + 1, sizeof(float *));
    if (x->ep) gpu_ep_reset_bytes(x->ep);
    bool ok = pad_rows(x, in, nin, padded, bufs, d) && run_step(x, padded, nin, d);
    if (x->ep) gpu_ep_bytes(x->ep, &x->comm_last);
    x->comm_total.dispatch_inter += x->comm_last.dispatch_inter;
    x->comm_total.dispatch_intra += x->comm_last.dispatch_intra;
    x->comm_total.combine_inter += x->comm_last.combine_inter;
    x->comm_total.combine_intra += x->comm_last.combine_intra;
    for (int k = 0; k < nin; k++) free(bufs[k]);
    free(bufs);
    free(padded);
    return ok;
}

/* Dispatch or combine node `id` over NCCL (on the communication stream). */
static bool run_comm(GpuExec *x, int id, const int64_t *sym, DiagEngine *d) {
    const IrGraph *g = x->g;
    const IrNode *n = g->nodes[id];
    int64_t E = 0;
    const IrNode *idx = routing_of(n, &E);
    int64_t N = ir_dim_eval(idx->type.dims[0], sym), K = ir_dim_eval(idx->type.dims[1], sym);
    char what[64];
    snprintf(what, sizeof what, "%s %%%d", ir_op_name(n->op), id);
    if (n->op == IR_OP_DISPATCH) {
        int64_t S = x->sym_s >= 0 ? sym[x->sym_s] : 1, Bmb = N / S, m = x->mb[idx->id] < 0 ? 0 : x->mb[idx->id];
        int64_t real = x->b_real - m * Bmb;
        real = (real < 0 ? 0 : real > Bmb ? Bmb : real) * S;
        const IrNode *v = n->ops[0];
        GpuEpDispatch op = {.plan = idx->id, .step = x->runs, .x = x->aslab + (RtDevPtr)x->aoff[v->id], .idx = x->aslab + (RtDevPtr)x->aoff[idx->id],
                            .out = x->aslab + (RtDevPtr)x->aoff[id], .N = N, .K = K, .real = real, .experts = E, .is_idx = v == idx, .what = what};
        op.row_bytes = bytes_of(x->p->dtype[v->id], numel_at(&v->type, sym) / (N ? N : 1));
        return gpu_ep_dispatch(x->ep, d, &op);
    }
    const IrNode *y = NULL, *wd = NULL;
    for (int k = 0; k < n->nops; k++) { /* combine(y, wd, idd, idx): roles by type */
        const IrNode *o = n->ops[k];
        if (o->type.rank == 3) y = o;
        else if (o != idx && !ir_dtype_is_int(o->type.dtype)) wd = o;
    }
    IrDType ydt = y ? x->p->dtype[y->id] : IR_DT_F32;
    if (!y || !wd || (ydt != IR_DT_F32 && ydt != IR_DT_BF16) || x->p->dtype[wd->id] != IR_DT_F32) {
        diag_error(d, n->loc, "%s: expert parallelism combines bf16 or f32 expert outputs with f32 weights", what);
        return false;
    }
    GpuEpCombine op = {.plan = idx->id, .step = x->runs, .y = x->aslab + (RtDevPtr)x->aoff[y->id], .wd = x->aslab + (RtDevPtr)x->aoff[wd->id],
                       .out = x->aslab + (RtDevPtr)x->aoff[id], .N = N, .K = K, .O = ir_dim_eval(n->type.dims[1], sym),
                       .ydt = ydt == IR_DT_F32 ? GPU_EP_F32 : GPU_EP_BF16, .what = what};
    return gpu_ep_combine(x->ep, d, &op);
}

/* ---- one step's launches, and its CUDA graph ---------------------------- */

/* A step's launches in order; grids and arguments follow from the dims. */
static bool seq_add(StepSeq *q, int k, int ph, int64_t grid, void *node) {
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 128;
        StepLaunch *v = realloc(q->v, sizeof(StepLaunch) * (size_t)cap);
        if (!v) return false;
        q->v = v, q->cap = cap;
    }
    q->v[q->n++] = (StepLaunch){k, ph, grid, node};
    return true;
}

/* The threads a block of kernel k's phase ph runs (256 unless the phase says). */
static unsigned phase_threads(const GpuExec *x, int k, int ph) {
    return !x->p->kernels[k].phases[ph].threads ? 256u : (unsigned)x->p->kernels[k].phases[ph].threads;
}

/* Whether kernel k's phase ph is launched programmatically in this run: its entry waits (CgPhase.pdl), and the
 * kernel waits for nothing on the other stream (an event's dependency stays a full one). */
static bool launch_pdl(const GpuExec *x, int k, int ph) {
    return x->pdl_now && x->p->kernels[k].phases[ph].pdl && x->kwait[k][0] < 0;
}

/* Appends one launch of kernel k (phase ph) to q and, unless dry, enqueues it; while capturing, with the graph node
 * it made. */
static bool emit(GpuExec *x, StepSeq *q, int k, int ph, int64_t grid, const StepMode *m, DiagEngine *d) {
    Launch *l = &x->launch[k];
    bool ok = true;
    if (!m->dry) {
        void *args[] = {&l->args};
        bool pdl = launch_pdl(x, k, ph);
        ok = (pdl ? rt_cuda_launch_pdl : rt_cuda_launch_async)(x->cu, d, l->fn[ph], (unsigned)grid, phase_threads(x, k, ph),
                                                              (size_t)x->p->kernels[k].phases[ph].smem, args);
        if (ok && x->sync_each) ok = rt_cuda_sync(x->cu, d);
        x->launches++;
        x->pdl_launches += pdl;
    }
    if (ok && q && !seq_add(q, k, ph, grid, m->capture ? rt_cuda_capture_last(x->cu) : NULL)) {
        diag_error(d, (SrcLoc){0}, "out of host memory recording a step's launches");
        ok = false;
    }
    return ok;
}

/* Kernel k's launches at dims sym (none for a constant kernel after the first run). */
static bool launch_kernel(GpuExec *x, int k, const int64_t *sym, StepSeq *q, const StepMode *m, DiagEngine *d) {
    const CgKernel *ck = &x->p->kernels[k];
    int skip = -1, span = ck->lib.span > 1 ? ck->lib.span : 1; /* the template's phases when the library ran it */
    /* cuBLASLt where the GEMM table (or, without an entry, its having an algorithm) says; else the TMA GEMM
     * instead of the tile's phases where the table (or, without an entry, M >= 256) says */
    const RtBlasPlan *lplan = ck->lib.kind != CG_LIB_NONE ? gx_lib_plan(x, k, sym) : NULL;
    int tph = gx_tma_phase(x, k);
    bool tma = gx_use_tma(x, k, tph, sym) && (x->tma_all || !lplan); /* DSCC_GEMM_TMA=all: the TMA GEMM wherever it can */
    if (tma) lplan = NULL;
    bool ok = true;
    for (int ph = 0; ph < ck->nphases && ok; ph++) {
        if (tma && ph > tph && ph <= tph + ck->phases[tph].tma->span) continue;
        const RtBlasPlan *plan = ph == ck->lib.phase ? lplan : NULL;
        if (plan) {
            if (!m->dry) ok = gx_run_lib(x, k, plan, sym, d);
            if (ok && !m->dry && x->sync_each) ok = rt_cuda_sync(x->cu, d);
            if (ok && q && !seq_add(q, k, GL_LIB, ir_dim_eval(ck->lib.M, sym), NULL)) {
                diag_error(d, (SrcLoc){0}, "out of host memory recording a step's launches");
                ok = false;
            }
            if (!m->dry) x->launches++, x->lib_calls++;
            skip = ph;
        }
        if ((skip >= 0 && ph >= skip && ph < skip + span) || !ok) continue;
        if (ph == tph && !tma) continue; /* after the library's turn: its call may begin at the TMA phase */
        const CgPhase *f = &ck->phases[ph];
        int64_t items = cg_phase_items(f, sym);
        if (items <= 0 || (f->cmin > 0 && x->len > 0 && ir_dim_eval(f->a, sym) <= f->cmin)) continue; /* cmin: codegen/gen.h */
        int64_t grid = f->mode == CG_LAUNCH_ELEM ? ceil_div(items, 256) : f->mode == CG_LAUNCH_WARP ? ceil_div(items, 8) : items;
        if (f->tma && grid > rt_cuda_sms(x->cu)) grid = rt_cuda_sms(x->cu) / 2 * 2; /* persistent: a block an SM walks the tiles (clusters of 2) */
        if (f->tmaps && f->rule != CG_ITEMS_MLA_DECODE && grid > rt_cuda_sms(x->cu)) /* expert_tma.cuh: persistent, a block */
            grid = rt_cuda_sms(x->cu); /* an SM (MLA's decode phase, maps over its cache, has a block a tile and split) */
        if (grid > 2147483647LL) {
            diag_error(d, ck->loc, "kernel %s: %lld blocks exceed the grid limit", ck->name, (long long)grid);
            return false;
        }
        ok = emit(x, q, k, ph, grid, m, d);
        if (ok && f->tma && !m->dry) x->tma_calls++;
        if (!ok) diag_note(d, ck->loc, "in kernel %s, phase %d (%lld items)", ck->name, ph, (long long)items);
    }
    return ok;
}

/* Every kernel of the step, on its stream, after its waits. */
static bool launch_step(GpuExec *x, const int64_t *sym, StepSeq *q, const StepMode *m, RtEvent **ev, DiagEngine *d) {
    bool ok = true;
    const char *range = NULL; /* the open NVTX range of kernels (a layer's) */
    for (int k = 0; k < x->p->nkernels && ok; k++) {
        Launch *l = &x->launch[k];
        memcpy(l->args.sym, sym, sizeof l->args.sym);
        l->args.len = x->len;
        if (!m->dry && x->nvtx[k] && (!range || strcmp(range, x->nvtx[k]) != 0)) {
            if (range) rt_nvtx_pop();
            rt_nvtx_push(range = x->nvtx[k]);
        }
        if (!m->dry) {
            rt_cuda_use_stream(x->cu, x->kstream[k]);
            for (int w = 0; x->kwait[k][w] >= 0 && ok; w++) ok = rt_cuda_stream_wait(x->cu, d, x->kstream[k], x->kev[x->kwait[k][w]]);
            if (ev) rt_cuda_event_record(x->cu, d, ev[k]);
        }
        if (not_launched(x, k)) continue; /* functions of the weights, where the first run left them; or unused by this step */
        if (x->comm_node && x->comm_node[k] >= 0) {
            ok = ok && !m->dry && run_comm(x, x->comm_node[k], sym, d);
        } else ok = ok && launch_kernel(x, k, sym, q, m, d);
        if (ok && !m->dry && x->kev[k]) ok = rt_cuda_event_record(x->cu, d, x->kev[k]);
    }
    if (range) rt_nvtx_pop();
    if (!m->dry) rt_cuda_use_stream(x->cu, 0);
    return ok;
}

/* Same launches (kernel, phase, cuBLASLt shape); grids may differ. */
static bool seq_same(const StepLaunch *a, int na, const StepLaunch *b, int nb) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i].k != b[i].k || a[i].ph != b[i].ph || (a[i].ph == GL_LIB && a[i].grid != b[i].grid)) return false;
    return true;
}

/* The cached graph for this step's launches q and dims key, if every
 * launch whose arguments or grid changed can be updated in place. */
static GraphEntry *graph_find(GpuExec *x, const int64_t *key, const StepSeq *q) {
    for (int i = 0; i < GRAPH_CACHE; i++) {
        GraphEntry *e = &x->gcache[i];
        if (!e->graph || memcmp(e->key, key, sizeof e->key) != 0 || !seq_same(e->seq, e->n, q->v, q->n)) continue;
        bool fits = true;
        for (int j = 0; j < e->n && fits; j++)
            fits = e->seq[j].ph == GL_LIB || e->seq[j].node || (e->len == x->len && e->seq[j].grid == q->v[j].grid);
        if (fits) return e;
    }
    return NULL;
}

/* Gives e's kernel nodes this step's arguments (the cache length and the
 * context dim change every decode step) and grids. */
static bool graph_update(GpuExec *x, GraphEntry *e, const StepSeq *q, DiagEngine *d) {
    for (int j = 0; j < e->n; j++) {
        StepLaunch *s = &e->seq[j];
        if (s->ph == GL_LIB || (e->len == x->len && s->grid == q->v[j].grid)) continue;
        Launch *l = &x->launch[s->k];
        void *args[] = {&l->args};
        if (!rt_cuda_graph_set_kernel(x->cu, d, e->graph, s->node, l->fn[s->ph], (unsigned)q->v[j].grid, phase_threads(x, s->k, s->ph),
                                      (size_t)x->p->kernels[s->k].phases[s->ph].smem, args))
            return false;
        s->grid = q->v[j].grid;
        x->gstats.node_updates++;
    }
    e->len = x->len;
    return true;
}

/* Captures the step into a free entry (else the least recently used one). */
static GraphEntry *graph_capture(GpuExec *x, const int64_t *sym, const int64_t *key, const StepSeq *q, DiagEngine *d) {
    GraphEntry *e = &x->gcache[0];
    for (int i = 1; i < GRAPH_CACHE && e->graph; i++)
        if (!x->gcache[i].graph || x->gcache[i].used < e->used) e = &x->gcache[i];
    rt_cuda_graph_free(x->cu, e->graph);
    free(e->seq);
    memset(e, 0, sizeof *e);
    StepSeq c = {0};
    StepMode m = {.capture = true};
    if (!rt_cuda_capture_begin(x->cu, d)) return NULL;
    bool ok = launch_step(x, sym, &c, &m, NULL, d);
    bool ended = rt_cuda_capture_end(x->cu, d, &e->graph); /* end the capture even after a failed launch */
    if (ok && ended && !seq_same(c.v, c.n, q->v, q->n)) {
        diag_error(d, (SrcLoc){0}, "internal: a step's captured launches differ from its plan");
        ok = false;
    }
    if (!ok || !ended) {
        rt_cuda_graph_free(x->cu, e->graph);
        e->graph = NULL;
        free(c.v);
        return NULL;
    }
    memcpy(e->key, key, sizeof e->key);
    e->seq = c.v, e->n = c.n, e->len = x->len;
    x->gstats.captures++;
    return e;
}

/* The step as a CUDA graph: the cached one of its shape with its kernel
 * nodes updated, or a new capture; step[0] is recorded just before the
 * graph's launch, so the step's time is the graph's alone. Without the
 * driver calls that update nodes, each step is captured again. */
static bool run_graph(GpuExec *x, const int64_t *sym, DiagEngine *d) {
    if (!rt_cuda_graph_nodes(x->cu)) {
        StepMode m = {0};
        if (!rt_cuda_capture_begin(x->cu, d)) return false;
        bool ok = launch_step(x, sym, NULL, &m, NULL, d);
        bool ended = rt_cuda_capture_end(x->cu, d, &x->graph); /* end the capture even after a failed launch */
        ok = ok && ended;
        x->gstats.captures += ok;
        return ok && rt_cuda_event_record(x->cu, d, x->step[0]) && rt_cuda_graph_launch(x->cu, d, x->graph);
    }
    StepSeq q = {0};
    StepMode dry = {.dry = true};
    int64_t key[IR_MAX_DIM_SYMS];
    memcpy(key, sym, sizeof key);
    if (x->sym_t >= 0) key[x->sym_t] = 0; /* the context length: an argument of the nodes, updated */
    bool ok = launch_step(x, sym, &q, &dry, NULL, d);
    GraphEntry *e = ok ? graph_find(x, key, &q) : NULL;
    if (e) {
        ok = graph_update(x, e, &q, d);
        x->gstats.replays++;
    } else if (ok) ok = (e = graph_capture(x, sym, key, &q, d)) != NULL;
    if (ok) {
        e->used = ++x->gclock;
        x->launches = q.n;
        x->lib_calls = x->tma_calls = x->pdl_launches = 0;
        for (int j = 0; j < q.n; j++) {
            x->lib_calls += q.v[j].ph == GL_LIB;
            x->pdl_launches += q.v[j].ph >= 0 && launch_pdl(x, q.v[j].k, q.v[j].ph);
            x->tma_calls += q.v[j].ph >= 0 && x->p->kernels[q.v[j].k].phases[q.v[j].ph].tma;
        }
    }
    free(q.v);
    return ok && rt_cuda_event_record(x->cu, d, x->step[0]) && rt_cuda_graph_launch(x->cu, d, e->graph);
}

static bool run_step(GpuExec *x, const CpuInput *in, int nin, DiagEngine *d) {
    int64_t sym[IR_MAX_DIM_SYMS];
    if (!bind_inputs(x, in, nin, sym, d) || !upload_inputs(x, in, nin, sym, d)) return false;
    if (!rt_cuda_memset0(x->cu, d, x->err, 8)) return false;
    const CgProgram *p = x->p;
    x->launches = 0;
    x->lib_calls = x->tma_calls = x->pdl_launches = 0;
    char name[96];
    gx_step_name(x, name, sizeof name);
    bool decode = x->sym_t >= 0 && x->len > 0, traced = x->trace && x->ev && rt_trace_begin_step(x->trace);
    double t0_us = 0;
    /* per-kernel events and DSCC_CUDA_SYNC need the launches one by one */
    RtEvent **ev = x->profile_on || traced ? x->ev : NULL;
    /* No graph with two streams or exchanges: the exchanges plan on the
     * host from the step's routing (idx copied back, counts exchanged), so
     * a step cannot be recorded once and replayed. */
    bool graph = x->graphs && !ev && !x->sync_each && !x->two_streams && !x->ep, ok;
    x->pdl_now = x->pdl && !ev && !x->sync_each; /* kernels timed one by one: each runs alone */
    rt_nvtx_push(name);
    if (graph) ok = run_graph(x, sym, d);
    else {
        StepMode m = {0};
        if (traced) t0_us = rt_trace_now_us(x->trace);
        ok = rt_cuda_event_record(x->cu, d, x->step[0]);
        if (ok && x->two_streams) ok = rt_cuda_stream_wait(x->cu, d, 1, x->step[0]);
        ok = ok && launch_step(x, sym, NULL, &m, ev, d);
        if (x->two_streams) { /* the step ends when both streams are done */
            rt_cuda_use_stream(x->cu, 1);
            bool j = rt_cuda_event_record(x->cu, d, x->join);
            rt_cuda_use_stream(x->cu, 0);
            ok = ok && j && rt_cuda_stream_wait(x->cu, d, 0, x->join);
        }
    }
    if (ev) rt_cuda_event_record(x->cu, d, ev[p->nkernels]);
    float ms = 0;
    ok = ok && rt_cuda_event_record(x->cu, d, x->step[1]);
    rt_nvtx_pop();
    ok = ok && rt_cuda_event_ms(x->cu, d, x->step[0], x->step[1], &ms);
    x->last_ms = ms;
    int32_t err[2] = {0, 0};
    if (ok && !rt_cuda_download(x->cu, d, err, x->err, 8)) ok = false;
    if (ok && err[0] > 0) {
        const IrNode *n = x->g->nodes[x->launch[err[0] - 1].template_node];
        if (n->op == IR_OP_EMBEDDING)
            diag_error(d, n->loc, "embedding: token id %d is outside the vocabulary 0..%lld", err[1], (long long)n->ops[0]->type.dims[0].coeff - 1);
        else diag_error(d, n->loc, "%s: index %d is out of range", ir_op_name(n->op), err[1]);
        ok = false;
    }
    if (!ok) return false;
    if (ev)
        for (int k = 0; k < p->nkernels; k++) {
            float t = 0;
            rt_cuda_event_ms(x->cu, d, ev[k], ev[k + 1], &t);
            x->kms[k] = t;
        }
    if (traced) gx_write_trace(x, sym, name, t0_us, d);
    x->decodes += decode;
    x->cache_batch = x->sym_b >= 0 ? sym[x->sym_b] : 1;
    x->last_kind = x->len == 0 ? 0 : 1;
    if (x->sym_t >= 0) x->len += x->sym_s >= 0 ? sym[x->sym_s] : 1;
    memcpy(x->sym, sym, sizeof sym);
    x->runs++;
    for (int i = 0; i < x->g->nnodes; i++) { /* outputs are fetched when asked for */
        free(x->out[i]);
        x->out[i] = NULL;
    }
    return true;
}

/* Kernel k alone, as the last run launched it (its arguments are still
 * those of that run): the launches are listed first, so between the two
 * events there are only the launch calls; the flush before each
 * repetition is outside them. */
bool gpu_exec_time_kernel(GpuExec *x, int k, int reps, int64_t flush, double *ms, DiagEngine *d) {
    if (!x->runs || k < 0 || k >= x->p->nkernels || (x->comm_node && x->comm_node[k] >= 0) || x->two_streams || x->atload[k]) {
        diag_error(d, (SrcLoc){0},
                   "gpu_exec_time_kernel: kernel %d cannot be timed alone (after a run, one stream, no exchange, not one that ran at load)", k);
        return false;
    }
    if (flush > x->flush_bytes) {
        rt_cuda_free(x->cu, x->flush);
        x->flush = 0, x->flush_bytes = 0;
        if (!rt_cuda_alloc(x->cu, d, (size_t)flush, &x->flush)) return false;
        x->flush_bytes = flush;
    }
    StepSeq q = {0};
    StepMode dry = {.dry = true};
    Launch *l = &x->launch[k];
    bool ok = launch_kernel(x, k, l->args.sym, &q, &dry, d); /* at the last run's arguments, which it leaves as they are */
    const RtBlasPlan *plan = gx_lib_plan(x, k, l->args.sym);
    void *args[] = {&l->args};
    rt_cuda_use_stream(x->cu, 0);
    for (int r = 0; r < reps && ok; r++) {
        ok = (flush <= 0 || rt_cuda_memset0(x->cu, d, x->flush, (size_t)flush)) && rt_cuda_event_record(x->cu, d, x->step[0]);
        for (int j = 0; j < q.n && ok; j++) {
            const StepLaunch *s = &q.v[j];
            if (s->ph == GL_LIB) ok = gx_run_lib(x, k, plan, l->args.sym, d);
            else ok = rt_cuda_launch_async(x->cu, d, l->fn[s->ph], (unsigned)s->grid, phase_threads(x, k, s->ph), (size_t)x->p->kernels[k].phases[s->ph].smem, args);
        }
        float t = 0;
        ok = ok && rt_cuda_event_record(x->cu, d, x->step[1]) && rt_cuda_event_ms(x->cu, d, x->step[0], x->step[1], &t);
        ms[r] = t;
    }
    free(q.v);
    return ok;
}

int gpu_exec_kernels(const GpuExec *x) { return x->p->nkernels; }
const char *gpu_exec_kernel_name(const GpuExec *x, int k) { return x->p->kernels[k].name; }
double gpu_exec_kernel_ms(const GpuExec *x, int k) { return x->kms ? x->kms[k] : 0.0; }
bool gpu_exec_node_used(const GpuExec *x, int id) { return !x->need[0] || x->need[x->last_kind][id]; }
bool gpu_exec_kernel_ran(const GpuExec *x, int k) {
    if (x->atload[k] || (x->konst[k] && x->runs > 1)) return false;
    return !(x->idle[0] && !x->konst[k] && x->idle[x->last_kind][k]);
}
const int64_t *gpu_exec_dims(const GpuExec *x) { return x->sym; }
void gpu_exec_set_profile(GpuExec *x, bool on) { x->profile_on = on && x->ev; }
void gpu_exec_set_graphs(GpuExec *x, bool on) { x->graphs = on; }

void gpu_exec_graph_stats(const GpuExec *x, GpuGraphStats *s) {
    *s = x->gstats;
    s->cached = 0;
    for (int i = 0; i < GRAPH_CACHE; i++) s->cached += x->gcache[i].graph != NULL;
}

int gpu_exec_kernel_node(const GpuExec *x, int k) {
    int t = x->launch[k].template_node;
    return ir_op_fusible(x->g->nodes[t]->op) ? -1 : t;
}

/* A cache's rows [B, len, per] out of its [B, capacity, per] buffer, as f32 (malloc'd). */
static float *fetch_cache(GpuExec *x, const IrNode *n, int64_t *numel) {
    IrDType dt = x->p->dtype[n->id];
    int64_t per = x->kv[n->id].per, B = x->cache_batch, T = x->len;
    size_t row = (size_t)bytes_of(dt, T * per);
    float *v = malloc(sizeof(float) * (size_t)(B * T * per + 1));
    void *tmp = malloc(row + 8);
    bool ok = v && tmp;
    for (int64_t b = 0; b < B && ok; b++) {
        ok = rt_cuda_download(x->cu, x->diag, tmp, x->kv[n->id].buf + (RtDevPtr)bytes_of(dt, b * x->cap * per), row);
        if (ok) unpack(dt, tmp, T * per, v + b * T * per);
    }
    free(tmp);
    if (!ok) {
        free(v);
        return NULL;
    }
    *numel = B * T * per;
    return v;
}

/* Scales stored K-block-major (CgProgram.kblock: [nkb][M]) back to the
 * value's [M][nkb], in place. False when out of host memory. */
static bool unblock_scales(const IrNode *n, int64_t ne, float *v) {
    int64_t nkb = n->type.dims[n->type.rank - 1].coeff, M = nkb > 0 ? ne / nkb : 0;
    float *t = malloc(sizeof(float) * (size_t)(ne + 1));
    if (!t) return false;
    for (int64_t kb = 0; kb < nkb; kb++)
        for (int64_t m = 0; m < M; m++) t[m * nkb + kb] = v[kb * M + m];
    memcpy(v, t, sizeof(float) * (size_t)ne);
    free(t);
    return true;
}

/* The stored value of node n after the last run, as f32 (malloc'd). */
static float *fetch(GpuExec *x, const IrNode *n, int64_t *numel) {
    if (n->op == IR_OP_KV_CACHE) return fetch_cache(x, n, numel);
    int64_t ne = numel_at(&n->type, x->sym);
    RtDevPtr at;
    if (n->op == IR_OP_WEIGHT && x->ehi[n->id] - x->elo[n->id] != (ir_node_attr_str(n, "stack", NULL) ? n->type.dims[0].coeff : 1))
        return NULL; /* another rank holds some of its experts */
    if (x->home[n->id]) { /* a weight, or a value held with them */
        if (!(at = gx_held_at(x, n->id))) return NULL; /* a weight freed after load */
    } else if (n->op == IR_OP_WEIGHT || x->aoff[n->id] < 0) return NULL;
    else at = x->aslab + (RtDevPtr)x->aoff[n->id];
    size_t nb = (size_t)bytes_of(x->p->dtype[n->id], ne);
    if (nb > x->staging_bytes) { /* page-locked staging: the copy runs at full PCIe speed */
        rt_cuda_host_free(x->cu, x->staging);
        x->staging_bytes = 0;
        if (!(x->staging = rt_cuda_host_alloc(x->cu, x->diag, nb))) return NULL;
        x->staging_bytes = nb;
    }
    float *v = malloc(sizeof(float) * (size_t)(ne + 1));
    if (!v || !rt_cuda_download(x->cu, x->diag, x->staging, at, nb)) {
        free(v);
        return NULL;
    }
    unpack(x->p->dtype[n->id], x->staging, ne, v);
    if (x->p->kblock[n->id] && !unblock_scales(n, ne, v)) {
        free(v);
        return NULL;
    }
    *numel = ne;
    return v;
}

const float *gpu_exec_output(GpuExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]) {
    if (!x->runs) return NULL;
    for (int i = 0; i < x->g->nnodes; i++) {
        const IrNode *n = x->g->nodes[i];
        if (n->op != IR_OP_OUTPUT || strcmp(ir_node_attr_str(n, "name", ""), name) != 0) continue;
        const IrNode *v = n->ops[0];
        int64_t ne;
        if (!x->out[v->id]) x->out[v->id] = fetch(x, v, &ne);
        int64_t sym[IR_MAX_DIM_SYMS]; /* padding rows (a GpuDist) are not in an output: it is the real rows' prefix */
        memcpy(sym, x->sym, sizeof sym);
        if (x->padded && x->sym_b >= 0) sym[x->sym_b] = x->b_real;
        *rank = v->type.rank;
        for (int k = 0; k < v->type.rank; k++) dims[k] = ir_dim_eval(v->type.dims[k], sym);
        return x->out[v->id];
    }
    return NULL;
}

bool gpu_exec_sample(GpuExec *x, const char *name, const RtSampling *sp, uint64_t row0, uint64_t step, int32_t *ids, int64_t *rows,
                     DiagEngine *d) {
    const IrNode *v = NULL;
    for (int i = 0; i < x->g->nnodes && !v; i++) {
        const IrNode *n = x->g->nodes[i];
        if (n->op == IR_OP_OUTPUT && strcmp(ir_node_attr_str(n, "name", ""), name) == 0) v = n->ops[0];
    }
    if (!x->runs || !v || v->type.rank != 3 || x->p->dtype[v->id] != IR_DT_F32 || x->aoff[v->id] < 0) {
        diag_error(d, (SrcLoc){0}, "the device sampler needs an output '%s' of f32 [B, S, vocab] after a run", name);
        return false;
    }
    int64_t S = ir_dim_eval(v->type.dims[1], x->sym), V = ir_dim_eval(v->type.dims[2], x->sym);
    *rows = x->padded ? x->b_real : ir_dim_eval(v->type.dims[0], x->sym); /* the padding rows are not sampled */
    if (!x->sampler && !(x->sampler = rt_dev_sampler_new(x->cu, 0, d))) return false;
    rt_cuda_use_stream(x->cu, 0);
    RtDevPtr last = x->aslab + (RtDevPtr)x->aoff[v->id] + (RtDevPtr)(sizeof(float) * (size_t)((S - 1) * V));
    return rt_dev_sample(x->sampler, last, *rows, S * V, V, sp, row0, step, ids, d);
}

const float *gpu_exec_value(GpuExec *x, int id, int64_t *numel) {
    free(x->val);
    const IrNode *n = id >= 0 && id < x->g->nnodes ? x->g->nodes[id] : NULL;
    bool intact = n && (x->keep_all || n->op == IR_OP_TOPK || n->op == IR_OP_GROUP_TOPK) && (!x->need[0] || x->need[x->last_kind][id]);
    if (intact && x->p->unw_above && x->p->unw_above[id] > 0 && ir_dim_eval(x->p->unw_a[id], x->sym) > x->p->unw_above[id])
        intact = false; /* not written this step (gate and up under the experts' fused epilogue) */
    x->val = intact && x->runs ? fetch(x, n, numel) : NULL;
    return x->val;
}
#endif
