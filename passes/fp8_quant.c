/* fp8_quant.c — DeepSeek-V3's FP8 scheme as a rewrite.
 *
 *   linear(x, w)  ->  s = act_scale(x); q = quantize(x, s);
 *                     fp8_linear(q, s, w8, w8_scale_inv)
 *
 * and the same for expert_linear, whose quantized input is the FP8 dispatch
 * payload with its scales. A linear is converted when its activation is
 * low precision (bf16/f16: the f32 router stays), its weight is a
 * checkpoint matrix, it does not produce a graph output directly (the LM
 * head stays BF16), and no `exclude` substring matches the weight's name.
 * Weights become fp8e4m3 checkpoint tensors with `..._scale_inv` block
 * scales, exactly the layout of DeepSeek's FP8 release. Embedding, norms,
 * attention, softmax and the einsum of absorbed MLA are untouched. */
#include "passes/passes.h"

#include <string.h>

typedef struct {
    bool *shared; /* per old weight id: also used where FP8 does not apply */
    PassCtx *c;
    IrGraph *g;
    IrRewrite rw;
    IrNode **w8, **ws; /* per old weight id: its FP8 form and scales */
    const char *exclude;
    int converted, kept;
    double bytes_before, bytes_after;
} Fp8;

static bool excluded(const char *excl, const char *name) {
    if (!excl || !*excl) return false;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", excl);
    for (char *tok = strtok(buf, ":;|"); tok; tok = strtok(NULL, ":;|"))
        if (*tok && strstr(name, tok)) return true;
    return false;
}

/* The linear making an output (maybe behind cast/reshape) is the head. */
static bool *find_heads(IrGraph *g) {
    bool *head = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    ir_mark_output_producers(g, head);
    return head;
}

static IrAttr str_attr(const char *name, const char *v) { return (IrAttr){.name = name, .kind = IR_ATTR_STR, .u.s = v}; }

/* The FP8 weight and its scales for old weight node w (made once). */
static bool fp8_weight(Fp8 *f, const IrNode *w, IrNode **w8, IrNode **ws) {
    if (f->w8[w->id]) {
        *w8 = f->w8[w->id];
        *ws = f->ws[w->id];
        return true;
    }
    const char *name = ir_node_attr_str(w, "name", "");
    const IrAttr *stack = ir_node_attr(w, "stack"), *count = ir_node_attr(w, "count");
    IrAttr a[4] = {str_attr("name", name)};
    int na = 1;
    if (stack) {
        a[na++] = *stack;
        a[na++] = *count;
    }
    IrType t8 = w->type, ts = w->type;
    t8.dtype = IR_DT_FP8E4M3;
    ts.dtype = IR_DT_F32;
    for (int i = ts.rank - 2; i < ts.rank; i++) ts.dims[i] = ir_dim_const((ts.dims[i].coeff + 127) / 128);
    DiagEngine *d = pass_diag(f->c);
    *w8 = ir_graph_add_node(f->g, d, IR_OP_WEIGHT, NULL, 0, a, na, &t8, w->loc, w->scope);
    a[0] = str_attr("name", arena_printf(f->g->arena, "%s_scale_inv", name));
    a[na] = str_attr("scales_of", name);
    *ws = ir_graph_add_node(f->g, d, IR_OP_WEIGHT, NULL, 0, a, na + 1, &ts, w->loc, w->scope);
    if (!*w8 || !*ws) return false;
    int64_t zero[IR_MAX_DIM_SYMS] = {0};
    int64_t n = ir_dim_eval(ir_type_numel(&w->type), zero);
    f->bytes_before += (double)n * ir_dtype_bits(w->type.dtype) / 8;
    f->bytes_after += (double)n + 4.0 * (double)ir_dim_eval(ir_type_numel(&ts), zero);
    f->w8[w->id] = *w8;
    f->ws[w->id] = *ws;
    return true;
}

/* Rewrites one linear / expert_linear; NULL on error. */
static IrNode *convert(Fp8 *f, const IrNode *old) {
    DiagEngine *d = pass_diag(f->c);
    IrNode *x = ir_rewrite_map(&f->rw, old->ops[0]), *w8, *ws;
    if (!fp8_weight(f, old->ops[1], &w8, &ws)) return NULL;
    IrAttr blk = {.name = "block", .kind = IR_ATTR_INT, .u.i = 128};
    IrNode *s = ir_graph_add_node(f->g, d, IR_OP_ACT_SCALE, &x, 1, &blk, 1, NULL, old->loc, old->scope);
    IrNode *qo[2] = {x, s};
    IrNode *q = s ? ir_graph_add_node(f->g, d, IR_OP_QUANTIZE, qo, 2, &blk, 1, NULL, old->loc, old->scope) : NULL;
    if (!q) return NULL;
    bool ex = old->op == IR_OP_EXPERT_LINEAR;
    IrNode *ops[5] = {q, s, w8, ws, ex ? ir_rewrite_map(&f->rw, old->ops[2]) : NULL};
    return ir_graph_add_node(f->g, d, ex ? IR_OP_FP8_EXPERT_LINEAR : IR_OP_FP8_LINEAR, ops, ex ? 5 : 4, NULL, 0, NULL,
                             old->loc, old->scope);
}

static bool convertible(Fp8 *f, const IrNode *n, const bool *head) {
    if (n->op != IR_OP_LINEAR && n->op != IR_OP_EXPERT_LINEAR) return false;
    const IrNode *w = n->ops[1];
    IrDType xt = n->ops[0]->type.dtype;
    if ((xt != IR_DT_BF16 && xt != IR_DT_F16) || w->op != IR_OP_WEIGHT || n->type.dtype != IR_DT_BF16) return false;
    if (head[n->id] || f->shared[w->id] || excluded(f->exclude, ir_node_attr_str(w, "name", ""))) {
        f->kept++;
        return false;
    }
    return true;
}

PassResult pass_fp8_quant(PassCtx *c, IrGraph *g) {
    if (pass_opt_int(c, "act-tile") != 128 || pass_opt_int(c, "weight-block") != 128) {
        diag_error(pass_diag(c), ((SrcLoc){"--passes", 0, 0}),
                   "fp8-quant: only act-tile=128 and weight-block=128 (DeepSeek-V3's) are implemented");
        return PASS_FAILED;
    }
    Fp8 f = {.c = c, .g = g, .exclude = pass_opt_str(c, "exclude")};
    bool *head = find_heads(g);
    /* One checkpoint name is one weight: convert a weight only if every use
     * of it can take the FP8 form. */
    f.shared = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bool lin = (n->op == IR_OP_LINEAR || n->op == IR_OP_EXPERT_LINEAR) && !head[i];
        for (int k = 0; k < n->nops; k++)
            if (n->ops[k]->op == IR_OP_WEIGHT && !(lin && k == 1)) f.shared[n->ops[k]->id] = true;
    }
    f.w8 = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(g->nnodes + 1));
    f.ws = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(g->nnodes + 1));
    ir_rewrite_begin(g, &f.rw);
    for (int i = 0; i < f.rw.nold; i++) {
        const IrNode *old = f.rw.old[i];
        IrNode *n;
        if (old->op == IR_OP_WEIGHT) continue; /* copied when a remaining use needs it */
        bool conv = convertible(&f, old, head);
        for (int k = 0; k < old->nops; k++) {
            const IrNode *o = old->ops[k];
            if (o->op == IR_OP_WEIGHT && !(conv && k == 1) && !ir_rewrite_map(&f.rw, o) &&
                !ir_rewrite_copy(g, &f.rw, pass_diag(c), o))
                return PASS_FAILED;
        }
        if (conv) {
            n = convert(&f, old);
            f.converted++;
        } else {
            n = ir_rewrite_copy(g, &f.rw, pass_diag(c), old);
        }
        if (!n) return PASS_FAILED;
        f.rw.map[old->id] = n;
    }
    pass_report(c, "%d linears to FP8 (%d kept in higher precision: head, excluded); converted weights %.2f GB -> %.2f GB",
                f.converted, f.kept, f.bytes_before / 1e9, f.bytes_after / 1e9);
    return f.converted ? PASS_CHANGED : PASS_UNCHANGED;
}
