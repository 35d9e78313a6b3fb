/* exec.c — runs a graph node by node on the CPU.
 *
 * Weights are loaded once, as f32, when the executor is made. Each run binds
 * the symbolic dims from the input shapes (T from the cache length), then
 * computes the nodes in program order into fresh buffers, freeing each value
 * after its last use so peak memory stays near the widest layer rather than
 * the whole graph. Caches persist between runs: that is what makes
 * prefill-then-decode equal to one full forward. A run that fails part way
 * truncates every cache back to its length before the run, so the caller
 * can fix the input and retry the step. */
#include "cpu/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    float *buf;      /* [B, cap, per_token] */
    int64_t B, len, cap, per_token;
} Cache;

struct CpuExec {
    const IrGraph *g;
    Ten *val;        /* per node id: current value (weights persist) */
    int *last_use;   /* per node id: index of the last node reading it */
    bool *fp8_node;  /* per node id */
    Fp8Weight *fp8_w; /* per node id of a weight an FP8 linear reads */
    bool *keep;      /* per node id: feeds an output, kept after the run */
    Cache *cache;    /* per node id, for kv_cache nodes */
    int64_t cache_len;
    int threads;
    int64_t max_elements;
    void (*after_node)(void *ctx, int id, float *values, int64_t n);
    void *hook_ctx;
};

/* The element count of node n's value (sym NULL: a weight's constant
 * shape), when it is within the executor's limit; else false after a
 * located error naming the value. */
static bool numel_within(const CpuExec *x, const IrNode *n, const int64_t *sym, int64_t *numel, DiagEngine *d) {
    if (ir_type_numel_at(&n->type, sym, numel) && *numel <= x->max_elements) return true;
    StrBuf sb;
    sb_init(&sb);
    ir_type_print(x->g, &n->type, &sb);
    const char *name = ir_node_attr_str(n, "name", NULL);
    char count[32] = "more than 2^63";
    if (*numel != INT64_MAX) snprintf(count, sizeof count, "%lld", (long long)*numel);
    diag_error(d, n->loc, "%s%s%s%s %s holds %s elements, over the CPU executor's limit of %lld", ir_op_name(n->op),
               name ? " '" : "", name ? name : "", name ? "'" : "", sb.data, count, (long long)x->max_elements);
    sb_free(&sb);
    return false;
}

/* Replaces "{var}" in pattern with the decimal e. */
static char *stack_name(const char *pattern, const char *var, int64_t e) {
    char key[64];
    snprintf(key, sizeof key, "{%s}", var);
    const char *at = strstr(pattern, key);
    size_t n = strlen(pattern) + 32;
    char *s = malloc(n);
    if (!at) snprintf(s, n, "%s", pattern);
    else snprintf(s, n, "%.*s%lld%s", (int)(at - pattern), pattern, (long long)e, at + strlen(key));
    return s;
}

/* The weight node named `name` (its pattern), or NULL. */
static const IrNode *find_weight(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT && strcmp(ir_node_attr_str(g->nodes[i], "name", ""), name) == 0)
            return g->nodes[i];
    return NULL;
}

static IrType slice_type(const IrNode *n) {
    IrType t = n->type;
    if (ir_node_attr_str(n, "stack", NULL)) {
        t.rank--;
        memmove(t.dims, t.dims + 1, sizeof(IrDim) * (size_t)t.rank);
    }
    return t;
}

/* One (unstacked) tensor of weight node n, named `name`, into dst. FP8
 * weights are loaded as values and turned into E4M3 codes per 128x128
 * block; a `scales_of` weight is those blocks' scales, computed from the
 * same values, so codes and scales always agree (and reproduce an FP8
 * checkpoint's own, since requantizing dequantized blocks is exact). */
static bool load_slice(const IrGraph *g, const IrNode *n, const CpuWeightSource *ws, const char *name, int64_t e, float *dst,
                       DiagEngine *d);

bool cpu_weight_slice(const IrGraph *g, const IrNode *n, const CpuWeightSource *ws, int64_t e, float *dst, DiagEngine *d) {
    const char *var = ir_node_attr_str(n, "stack", NULL);
    char *name = var ? stack_name(ir_node_attr_str(n, "name", "?"), var, e) : strdup(ir_node_attr_str(n, "name", "?"));
    bool ok = name && load_slice(g, n, ws, name, e, dst, d);
    free(name);
    return ok;
}

/* A NaN or an infinity in a weight makes every value computed from it a
 * non-number: an error naming the tensor, found here while loading, where
 * both executors take their weights. */
static bool check_finite(const IrNode *n, const char *name, const IrType *t, const float *v, DiagEngine *d) {
    int64_t count;
    if (!ir_type_numel_at(t, NULL, &count)) return false;
    float acc = 0; /* x - x is 0 for every finite x, NaN otherwise: one pass the compiler vectorizes */
    for (int64_t i = 0; i < count; i++) acc += v[i] - v[i];
    if (acc == 0) return true;
    int64_t i = 0;
    while (i < count && isfinite(v[i])) i++;
    diag_error(d, n->loc, "weight tensor '%s' holds %s at element %lld of %lld", name,
               isnan(v[i]) ? "a NaN" : v[i] > 0 ? "+inf" : "-inf", (long long)i, (long long)count);
    return false;
}

static bool load_slice(const IrGraph *g, const IrNode *n, const CpuWeightSource *ws, const char *name, int64_t e, float *dst,
                       DiagEngine *d) {
    const char *base = ir_node_attr_str(n, "scales_of", NULL);
    IrType t = slice_type(n);
    if (!base && t.dtype != IR_DT_FP8E4M3) return ws->load(ws->ctx, name, &t, dst, d) && check_finite(n, name, &t, dst, d);
    const IrNode *bn = base ? find_weight(g, base) : n;
    if (!bn) {
        diag_error(d, n->loc, "weight %s: no weight named '%s' to take scales of", name, base);
        return false;
    }
    IrType bt = slice_type(bn);
    bt.dtype = IR_DT_BF16;
    int64_t O = bt.dims[0].coeff, K = bt.dims[1].coeff;
    const char *var = ir_node_attr_str(bn, "stack", NULL);
    char *bname = var ? stack_name(ir_node_attr_str(bn, "name", ""), var, e) : strdup(ir_node_attr_str(bn, "name", ""));
    float *vals = malloc(sizeof(float) * (size_t)(O * K));
    bool ok = vals && ws->load(ws->ctx, bname, &bt, vals, d) && check_finite(bn, bname, &bt, vals, d);
    if (ok) cpu_fp8_weight_quant(vals, O, K, base ? NULL : dst, base ? dst : NULL);
    free(vals);
    free(bname);
    return ok;
}

static bool load_weight(CpuExec *x, const IrNode *n, const CpuWeightSource *ws, DiagEngine *d) {
    Ten *t = &x->val[n->id];
    t->rank = n->type.rank;
    for (int i = 0; i < t->rank; i++) t->d[i] = n->type.dims[i].coeff;
    if (!numel_within(x, n, NULL, &t->n, d)) return false;
    t->p = malloc(sizeof(float) * (size_t)(t->n ? t->n : 1));
    if (!t->p) {
        diag_error(d, n->loc, "out of host memory loading %s (%lld values)", ir_node_attr_str(n, "name", "?"), (long long)t->n);
        return false;
    }
    const char *name = ir_node_attr_str(n, "name", "?");
    const char *var = ir_node_attr_str(n, "stack", NULL);
    if (!var) return load_slice(x->g, n, ws, name, 0, t->p, d);
    int64_t count = t->d[0], per = t->n / (count ? count : 1);
    for (int64_t e = 0; e < count; e++) {
        char *nm = stack_name(name, var, e);
        bool ok = load_slice(x->g, n, ws, nm, e, t->p + e * per, d);
        free(nm);
        if (!ok) return false;
    }
    return true;
}

/* The FP8 emulation covers linears on low-precision activations, the way
 * DeepSeek-V3 runs: f32 linears (the router) and the linear that makes an
 * output (the LM head, maybe behind a cast or reshape) stay in FP32, and
 * so, as fp8-quant leaves them, do linears of a value of weights (MLA's
 * naive form on kv_b_proj's halves) and of a weight an op other than a
 * linear reads too. */
static void mark_fp8(CpuExec *x) {
    const IrGraph *g = x->g;
    bool *head = calloc((size_t)g->nnodes + 1, 1), *shared = calloc((size_t)g->nnodes + 1, 1);
    ir_mark_output_producers(g, head);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bool lin = n->op == IR_OP_LINEAR || n->op == IR_OP_EXPERT_LINEAR;
        for (int k = 0; k < n->nops; k++)
            if (n->ops[k]->op == IR_OP_WEIGHT && !(lin && k == 1)) shared[n->ops[k]->id] = true;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if ((n->op == IR_OP_LINEAR || n->op == IR_OP_EXPERT_LINEAR) && !head[i] && n->ops[0]->type.dtype != IR_DT_F32 &&
            n->ops[1]->op == IR_OP_WEIGHT && !shared[n->ops[1]->id])
            x->fp8_node[i] = true;
    }
    free(head);
    free(shared);
}

/* Quantizes, once, each weight an FP8-emulated linear reads directly:
 * per [O,K] slice (one per expert when stacked), 128x128 blocks. */
static bool prepare_fp8_weights(CpuExec *x, DiagEngine *d) {
    const IrGraph *g = x->g;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *w = g->nodes[i]->nops > 1 ? g->nodes[i]->ops[1] : NULL;
        if (!x->fp8_node[i] || w->op != IR_OP_WEIGHT || x->fp8_w[w->id].codes) continue;
        const Ten *t = &x->val[w->id];
        int64_t O = t->d[t->rank - 2], K = t->d[t->rank - 1], E = t->n / (O * K > 0 ? O * K : 1);
        int64_t nsc = ((O + 127) / 128) * ((K + 127) / 128);
        Fp8Weight *q = &x->fp8_w[w->id];
        q->codes = malloc(sizeof(float) * (size_t)(t->n + 1));
        q->scales = malloc(sizeof(float) * (size_t)(E * nsc + 1));
        if (!q->codes || !q->scales) {
            diag_error(d, w->loc, "out of host memory quantizing %s to FP8 (%lld bytes)", ir_node_attr_str(w, "name", "?"),
                       (long long)t->n * 4);
            return false;
        }
        for (int64_t e = 0; e < E; e++) cpu_fp8_weight_quant(t->p + e * O * K, O, K, q->codes + e * O * K, q->scales + e * nsc);
    }
    return true;
}

/* Each kv_cache must name its own cache: two appends to one cache per step
 * would interleave positions. */
static bool check_cache_names(const IrGraph *g, DiagEngine *d) {
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i]->op != IR_OP_KV_CACHE) continue;
        const char *name = ir_node_attr_str(g->nodes[i], "name", "");
        for (int j = 0; j < i; j++)
            if (g->nodes[j]->op == IR_OP_KV_CACHE && strcmp(ir_node_attr_str(g->nodes[j], "name", ""), name) == 0) {
                diag_error(d, g->nodes[i]->loc, "kv_cache '%s' is appended to twice in one graph", name);
                return false;
            }
    }
    return true;
}

CpuExec *cpu_exec_new(const IrGraph *g, const CpuWeightSource *ws, const CpuOptions *opt, DiagEngine *d) {
    CpuOptions o = opt ? *opt : (CpuOptions){0};
    if (!check_cache_names(g, d)) return NULL;
    CpuExec *x = calloc(1, sizeof *x);
    size_t nn = (size_t)g->nnodes + 1;
    if (!x) return NULL;
    x->g = g;
    x->val = calloc(nn, sizeof(Ten));
    x->last_use = calloc(nn, sizeof(int));
    x->fp8_node = calloc(nn, sizeof(bool));
    x->fp8_w = calloc(nn, sizeof(Fp8Weight));
    x->keep = calloc(nn, sizeof(bool));
    x->cache = calloc(nn, sizeof(Cache));
    if (!x->val || !x->last_use || !x->fp8_node || !x->fp8_w || !x->keep || !x->cache) {
        diag_error(d, (SrcLoc){0}, "out of host memory for the CPU executor of %d nodes", g->nnodes);
        cpu_exec_free(x);
        return NULL;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    x->threads = o.threads > 0 ? o.threads : cpus > 0 ? (int)cpus : 1;
    x->max_elements = o.max_elements > 0 ? o.max_elements : (int64_t)1 << 31;
    x->after_node = o.after_node;
    x->hook_ctx = o.hook_ctx;
    int64_t total = 0, one;
    bool sized = true;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        for (int k = 0; k < n->nops; k++) x->last_use[n->ops[k]->id] = i;
        if (n->op == IR_OP_OUTPUT || o.keep_all) x->keep[n->op == IR_OP_OUTPUT ? n->ops[0]->id : i] = true;
        if (n->op == IR_OP_WEIGHT && sized) sized = ir_type_numel_at(&n->type, NULL, &one) && size_add(total, one, &total);
    }
    if (!sized || total > x->max_elements) {
        char count[32] = "more than 2^63";
        if (sized) snprintf(count, sizeof count, "%lld", (long long)total);
        diag_error(d, (SrcLoc){0}, "the weights need %s f32 values (%.1f GiB), over the CPU executor's limit of %lld; "
                   "shrink the model with --config or --set", count, (double)total * 4 / (1 << 30),
                   (long long)x->max_elements);
        cpu_exec_free(x);
        return NULL;
    }
    if (o.fp8) mark_fp8(x);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT && !load_weight(x, g->nodes[i], ws, d)) {
            cpu_exec_free(x);
            return NULL;
        }
    if (o.fp8 && !prepare_fp8_weights(x, d)) {
        cpu_exec_free(x);
        return NULL;
    }
    return x;
}

static void free_values(CpuExec *x, bool weights_too) {
    for (int i = 0; x->val && i < x->g->nnodes; i++)
        if (weights_too || x->g->nodes[i]->op != IR_OP_WEIGHT) {
            free(x->val[i].p);
            x->val[i].p = NULL;
        }
}

void cpu_exec_reset(CpuExec *x) {
    for (int i = 0; x->cache && i < x->g->nnodes; i++) {
        free(x->cache[i].buf);
        memset(&x->cache[i], 0, sizeof(Cache));
    }
    x->cache_len = 0;
}

bool cpu_exec_truncate(CpuExec *x, int64_t len) {
    if (len < 0 || len > x->cache_len) return false;
    for (int i = 0; i < x->g->nnodes; i++)
        if (x->cache[i].len > len) x->cache[i].len = len;
    x->cache_len = len;
    return true;
}

void cpu_exec_free(CpuExec *x) {
    if (!x) return;
    free_values(x, true);
    cpu_exec_reset(x);
    free(x->val);
    free(x->last_use);
    free(x->fp8_node);
    for (int i = 0; x->fp8_w && i < x->g->nnodes; i++) {
        free(x->fp8_w[i].codes);
        free(x->fp8_w[i].scales);
    }
    free(x->fp8_w);
    free(x->keep);
    free(x->cache);
    free(x);
}

int64_t cpu_exec_cache_len(const CpuExec *x) { return x->cache_len; }

/* Binds symbols from one declared dim and its actual size, when exactly one
 * symbol in it is still unknown. Returns false on a contradiction. */
static bool bind_dim(IrDim dim, int64_t actual, int64_t *sym) {
    int unknown = -1;
    int64_t known = dim.coeff;
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++) {
        if (!dim.exp[s]) continue;
        if (sym[s] < 0) {
            if (unknown >= 0 || dim.exp[s] != 1) return true; /* not yet decidable */
            unknown = s;
        } else {
            for (int k = 0; k < dim.exp[s]; k++) known *= sym[s];
        }
    }
    if (unknown < 0) return known == actual;
    if (known <= 0 || actual % known) return false;
    sym[unknown] = actual / known;
    return true;
}

static const CpuInput *find_input(const CpuInput *in, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(in[i].name, name) == 0) return &in[i];
    return NULL;
}

static bool bind_inputs(CpuExec *x, const CpuInput *in, int nin, int64_t *sym, DiagEngine *d) {
    const IrGraph *g = x->g;
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++) sym[s] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = g->nodes[i];
            if (n->op != IR_OP_INPUT) continue;
            const char *name = ir_node_attr_str(n, "name", "?");
            const CpuInput *v = find_input(in, nin, name);
            if (!v) {
                diag_error(d, n->loc, "input '%s' was not given", name);
                return false;
            }
            bool ok = v->rank == n->type.rank;
            for (int k = 0; ok && k < v->rank; k++) ok = bind_dim(n->type.dims[k], v->dims[k], sym);
            if (!ok) {
                StrBuf sb;
                sb_init(&sb);
                ir_type_print(g, &n->type, &sb);
                diag_error(d, n->loc, "input '%s' has a shape that does not fit its declared type %s", name, sb.data);
                sb_free(&sb);
                return false;
            }
        }
    for (int i = 0; i < g->nnodes; i++) { /* micro-batch dims from the batch they split */
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_SPLIT_BATCH) continue;
        int64_t whole = ir_dim_eval(n->ops[0]->type.dims[0], sym), parts = ir_node_attr_int(n, "parts", 2);
        if (whole < 0 || whole % parts || !bind_dim(n->type.dims[0], whole / parts, sym)) {
            diag_error(d, n->loc, "a batch of %lld does not split into %lld equal micro-batches", (long long)whole, (long long)parts);
            return false;
        }
    }
    int t = ir_graph_find_dim(g, "T");
    for (int i = 0; i < g->nnodes && t >= 0 && sym[t] < 0; i++)
        if (g->nodes[i]->op == IR_OP_KV_CACHE) {
            int64_t s = ir_dim_eval(g->nodes[i]->ops[0]->type.dims[1], sym);
            sym[t] = x->cache_len + s;
        }
    for (int s = 0; s < g->ndims; s++)
        if (sym[s] < 0) sym[s] = 0; /* unused symbols: no value depends on them */
    return true;
}

static bool append_cache(CpuExec *x, const IrNode *n, const Ten *in, Ten *out, DiagEngine *d) {
    Cache *c = &x->cache[n->id];
    int64_t B = in->d[0], S = in->d[1], per = in->n / (B * S > 0 ? B * S : 1);
    if (c->len == 0 && (c->B != B || c->per_token != per)) { /* empty: take any batch */
        free(c->buf);
        memset(c, 0, sizeof *c);
    }
    if (out->d[1] != c->len + S) { /* T came from an input rather than from the cache */
        diag_error(d, n->loc, "kv_cache '%s' holds %lld positions and gets %lld more, but T is bound to %lld",
                   ir_node_attr_str(n, "name", "?"), (long long)c->len, (long long)S, (long long)out->d[1]);
        return false;
    }
    if (c->buf && (c->B != B || c->per_token != per)) {
        diag_error(d, n->loc, "kv_cache '%s' holds batch %lld; reset it before running batch %lld",
                   ir_node_attr_str(n, "name", "?"), (long long)c->B, (long long)B);
        return false;
    }
    if (c->len + S > c->cap) {
        int64_t cap = c->cap ? c->cap : 16;
        while (cap < c->len + S) cap *= 2;
        float *nb = malloc(sizeof(float) * (size_t)(B * cap * per + 1));
        if (!nb) {
            diag_error(d, n->loc, "out of host memory growing kv_cache to %lld positions", (long long)cap);
            return false;
        }
        for (int64_t b = 0; b < B && c->buf; b++)
            memcpy(nb + b * cap * per, c->buf + b * c->cap * per, sizeof(float) * (size_t)(c->len * per));
        free(c->buf);
        c->buf = nb;
        c->cap = cap;
        c->B = B;
        c->per_token = per;
    }
    for (int64_t b = 0; b < B; b++) {
        memcpy(c->buf + (b * c->cap + c->len) * per, in->p + b * S * per, sizeof(float) * (size_t)(S * per));
        memcpy(out->p + b * (c->len + S) * per, c->buf + b * c->cap * per, sizeof(float) * (size_t)((c->len + S) * per));
    }
    c->len += S;
    return true;
}

/* Computes node i into x->val[i]. */
static bool run_node(CpuExec *x, const KernelCtx *kc, int i, const int64_t *sym, const CpuInput *in, int nin, DiagEngine *d) {
    const IrNode *n = x->g->nodes[i];
    if (n->op == IR_OP_WEIGHT || n->op == IR_OP_OUTPUT) return true;
    Ten *out = &x->val[i];
    out->rank = n->type.rank;
    for (int k = 0; k < out->rank; k++) out->d[k] = ir_dim_eval(n->type.dims[k], sym);
    if (!numel_within(x, n, sym, &out->n, d)) return false;
    if (out->n == 0) { /* a symbol bound to 0: kernels divide by extents */
        diag_error(d, n->loc, "%s: the value has no elements (an input with an empty axis?)", ir_op_name(n->op));
        return false;
    }
    out->p = malloc(sizeof(float) * (size_t)(out->n ? out->n : 1));
    if (!out->p) {
        diag_error(d, n->loc, "%s: out of host memory (%lld values)", ir_op_name(n->op), (long long)out->n);
        return false;
    }
    Ten *ops[64];
    for (int k = 0; k < n->nops && k < 64; k++) ops[k] = &x->val[n->ops[k]->id];
    if (n->op == IR_OP_INPUT) {
        const CpuInput *v = find_input(in, nin, ir_node_attr_str(n, "name", ""));
        memcpy(out->p, v->data, sizeof(float) * (size_t)out->n);
        return true;
    }
    if (n->op == IR_OP_KV_CACHE) return append_cache(x, n, ops[0], out, d);
    if (n->op == IR_OP_FRESH_SELECT) { /* the operand this step takes: the first when nothing is cached yet */
        memcpy(out->p, ops[x->cache_len == 0 ? 0 : 1]->p, sizeof(float) * (size_t)out->n);
        return true;
    }
    return cpu_kernel(kc, n, out, ops);
}

bool cpu_exec_run(CpuExec *x, const CpuInput *in, int nin, DiagEngine *d) {
    int64_t sym[IR_MAX_DIM_SYMS];
    free_values(x, false);
    if (!bind_inputs(x, in, nin, sym, d)) return false;
    KernelCtx kc = {d, x->threads, x->fp8_node, x->fp8_w};
    int64_t new_positions = -1;
    for (int i = 0; i < x->g->nnodes; i++) {
        const IrNode *n = x->g->nodes[i];
        bool ran = run_node(x, &kc, i, sym, in, nin, d);
        if (ran && x->after_node && x->val[i].p) x->after_node(x->hook_ctx, i, x->val[i].p, x->val[i].n);
        if (!ran) {
            free_values(x, false);
            for (int k = 0; k < x->g->nnodes; k++) /* forget this step's appends */
                if (x->cache[k].len > x->cache_len) x->cache[k].len = x->cache_len;
            return false;
        }
        if (n->op == IR_OP_KV_CACHE) new_positions = x->val[i].d[1] - x->cache_len;
        /* free operands whose last reader this was */
        for (int k = 0; k < n->nops; k++) {
            int id = n->ops[k]->id;
            if (x->last_use[id] == i && !x->keep[id] && n->ops[k]->op != IR_OP_WEIGHT) {
                free(x->val[id].p);
                x->val[id].p = NULL;
            }
        }
    }
    if (new_positions >= 0) x->cache_len += new_positions;
    return true;
}

const float *cpu_exec_output(const CpuExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]) {
    for (int i = 0; i < x->g->nnodes; i++) {
        const IrNode *n = x->g->nodes[i];
        if (n->op != IR_OP_OUTPUT || strcmp(ir_node_attr_str(n, "name", ""), name) != 0) continue;
        const Ten *t = &x->val[n->ops[0]->id];
        if (!t->p) return NULL;
        *rank = t->rank;
        memcpy(dims, t->d, sizeof(int64_t) * IR_MAX_RANK);
        return t->p;
    }
    return NULL;
}

const float *cpu_exec_value(const CpuExec *x, int id, int64_t *numel) {
    if (id < 0 || id >= x->g->nnodes || !x->val[id].p) return NULL;
    *numel = x->val[id].n;
    return x->val[id].p;
}
