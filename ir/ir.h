/* ir.h — the dscc IR: one SSA graph of tensor ops, its types, builder,
 * printer, parser, verifier, DOT view and graph statistics.
 *
 * A graph is a list of nodes in program order; each node is one op with at
 * most one result (a value), so a value *is* the node that defines it.
 * Operands must be defined earlier in the list (dominance is list order).
 * Shapes are lists of dimensions; a dimension is a monomial over the graph's
 * symbolic dims (B, S, T, ...) times an integer, so 7168, B and B*S are all
 * dimensions while B+1 is not. The op table lives in ops.def; everything
 * keyed by op (enum, keywords, attribute schemas) is generated from it.
 *
 * The text form (see docs/IR.md) prints with stable numbering and parses back
 * to the same graph; printing the parsed graph is byte-identical. */
#ifndef DSCC_IR_H
#define DSCC_IR_H

#include "support/support.h"

/* ---- types -------------------------------------------------------------- */

typedef enum {
    IR_DT_F32,     /* IEEE binary32 */
    IR_DT_BF16,    /* bfloat16 */
    IR_DT_F16,     /* IEEE binary16 */
    IR_DT_FP8E4M3, /* OCP E4M3 (max 448, no inf) */
    IR_DT_I32,     /* 32-bit signed integer */
    IR_DT_I64,     /* 64-bit signed integer */
    IR_DT_COUNT
} IrDType;

const char *ir_dtype_name(IrDType t);          /* "f32", "bf16", ... */
bool ir_dtype_lookup(const char *name, IrDType *out);
int ir_dtype_bits(IrDType t);                  /* 32, 16, 16, 8, 32, 64 */
bool ir_dtype_is_int(IrDType t);

#define IR_MAX_RANK 8
#define IR_MAX_DIM_SYMS 8 /* symbolic dims a graph may declare */

/* coeff * prod(sym_i ^ exp[i]). coeff >= 0; a dim with all exps 0 is the
 * integer coeff. */
typedef struct {
    int64_t coeff;
    uint8_t exp[IR_MAX_DIM_SYMS];
} IrDim;

typedef struct {
    IrDType dtype;
    int rank; /* 0 = scalar */
    IrDim dims[IR_MAX_RANK];
} IrType;

IrDim ir_dim_const(int64_t v);
IrDim ir_dim_sym(int sym);
IrDim ir_dim_mul(IrDim a, IrDim b);
bool ir_dim_eq(IrDim a, IrDim b);
bool ir_dim_is_const(IrDim d);
/* a/b when b divides a exactly (coefficients and exponents); false otherwise */
bool ir_dim_div(IrDim a, IrDim b, IrDim *out);
bool ir_type_eq(const IrType *a, const IrType *b);
/* Product of all dims. */
IrDim ir_type_numel(const IrType *t);
/* Value of a dim with every symbol bound (sym_vals[i] for symbol i). */
int64_t ir_dim_eval(IrDim d, const int64_t *sym_vals);
/* Element count and byte size of t with every symbol bound (sym[i] for
 * symbol i; sym NULL binds every symbol to 1, giving the static part), by
 * size_mul: false when a count overflows int64 or a dim is negative. Every
 * element count or byte size of a value is computed here. */
bool ir_type_numel_at(const IrType *t, const int64_t *sym, int64_t *numel);
bool ir_type_bytes_at(const IrType *t, const int64_t *sym, int64_t *bytes);
/* The largest value a shape rule admits (1 EiB, with every symbol 1): far
 * beyond any machine, and far enough below 2^63 that a few such sizes add
 * up without overflow. Executors apply their own, smaller limits. */
#define IR_MAX_TENSOR_BYTES ((int64_t)1 << 60)

/* ---- ops ---------------------------------------------------------------- */

typedef enum {
#define IR_OP(e, cls, res, kw, mn, mx, attrs, summary) IR_OP_##e,
#include "ir/ops.def"
#undef IR_OP
    IR_OP_COUNT
} IrOp;

/* ---- attributes --------------------------------------------------------- */

typedef enum {
    IR_ATTR_INT,   /* i */
    IR_ATTR_FLOAT, /* f */
    IR_ATTR_BOOL,  /* b */
    IR_ATTR_STR,   /* s */
    IR_ATTR_INTS,  /* I */
    IR_ATTR_DTYPE, /* t */
} IrAttrKind;

typedef struct {
    const char *name;
    IrAttrKind kind;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        IrDType t;
        struct {
            const int64_t *v;
            int n;
        } ints;
    } u;
} IrAttr;

/* What kind of work an op is: the class column of ops.def. Every list of
 * ops a pass or backend needs ("fusible", "has a kernel", "in the slab",
 * "communication") is a predicate over the class below, so a new op is
 * classified once, where it is declared. */
typedef enum {
    IR_CLASS_INPUT,       /* graph input: bound at run time, copied into the activation slab */
    IR_CLASS_WEIGHT,      /* checkpoint tensor: lives in the weight slab */
    IR_CLASS_CONST,       /* rank-0 literal: computed inline where it is read */
    IR_CLASS_OUTPUT,      /* names a graph result; no value */
    IR_CLASS_STATE,       /* persistent across steps (KV cache): buffers of its own */
    IR_CLASS_ELEMENTWISE, /* each output element from the matching input elements (and per-row tables) */
    IR_CLASS_REDUCTION,   /* a reduction along one axis, alone or feeding a per-row normalisation */
    IR_CLASS_VIEW,        /* the same elements under another shape: no data moves */
    IR_CLASS_LAYOUT,      /* moves elements (transpose, slice, concat): a fused kernel indexes through it */
    IR_CLASS_TEMPLATE,    /* a kernel template of its own: GEMMs, einsum, attention, embedding */
    IR_CLASS_SELECT,      /* index selection (top-k, gather): a kernel of its own */
    IR_CLASS_COMM,        /* crosses GPUs (dispatch, combine): the communication stream */
    IR_CLASS_BATCH,       /* splits or joins micro-batches */
    IR_CLASS_COUNT
} IrOpClass;

/* Where an op's result type comes from: the result column of ops.def. */
typedef enum {
    IR_RESULT_DECLARED, /* the node's own type (input, weight, const, cast, reshape, split/merge_batch) */
    IR_RESULT_INFERRED, /* computed from the operands by ir/shape.c */
    IR_RESULT_NONE,     /* no value (output) */
} IrOpResult;

typedef struct {
    IrOpClass cls;       /* class column of ops.def */
    IrOpResult result;   /* result column of ops.def */
    const char *name;    /* keyword in the text form and the DSL */
    int min_operands;
    int max_operands;    /* -1 = variadic */
    const char *attrs;   /* schema, see ops.def */
    const char *summary; /* one line, for docs and --help */
} IrOpInfo;

extern const IrOpInfo ir_op_info[IR_OP_COUNT];
const char *ir_op_name(IrOp op);
bool ir_op_lookup(const char *name, IrOp *out); /* keyword -> op */
bool ir_op_has_result(IrOp op);                 /* result column: not NONE (all but output) */
bool ir_op_declares_type(IrOp op);              /* result column: DECLARED */
IrOpClass ir_op_class(IrOp op);
/* Ops a fused kernel computes inline: elementwise, reductions, views,
 * layout, constants (the fuse pass groups them; the codegen inlines them;
 * every other op is a kernel of its own). */
bool ir_op_fusible(IrOp op);
/* False for graph inputs, weights and outputs, whose data is just there:
 * every other op is computed by some kernel (its own or a fused one). */
bool ir_op_computed(IrOp op);
/* Needs a kernel of its own before fusion: computed, and neither a
 * constant nor a view (those go with their reader). */
bool ir_op_own_kernel(IrOp op);
/* Placed in the kernel of the op that reads it (constants and views). */
bool ir_op_goes_with_reader(IrOp op);
/* Its value is in the activation slab (plan-memory gives it an offset):
 * every value but weights, caches and constants. */
bool ir_op_in_slab(IrOp op);
/* Crosses GPUs: issued on the communication stream. */
bool ir_op_is_comm(IrOp op);
/* Position of attribute `name` in op's schema (-1 if absent), its kind and
 * whether it is optional. */
int ir_schema_find(IrOp op, const char *name, IrAttrKind *kind, bool *optional);

/* ---- graph -------------------------------------------------------------- */

#define IR_MEM_WEIGHTS (-2) /* IrNode.mem of a value held with the weights */

typedef struct IrNode {
    int id;               /* index in graph->nodes; printer renumbers values */
    IrOp op;
    int nops;
    struct IrNode **ops;  /* operands, each an earlier node with a result */
    int nattrs;
    IrAttr *attrs;        /* in schema order */
    IrType type;          /* result type; unused for output */
    SrcLoc loc;           /* DSL location that created it */
    const char *scope;    /* '/'-joined DSL function call path, NULL at top level */
    int group;            /* fused-kernel group set by the fuse pass; -1 = none */
    int64_t mem;          /* byte offset in the activation slab (plan-memory); -1 = none; IR_MEM_WEIGHTS: */
                          /* a value of weights alone, held with the weights (ir_weight_values; not printed) */
    int stream;           /* stream the op is issued on (microbatch-overlap); -1 = unscheduled */
    int nwaits;
    struct IrNode **waits; /* ops on other streams whose completion this op waits for (events) */
} IrNode;

typedef struct IrGraph {
    Arena *arena;
    const char *name;
    int ndims;
    const char *dim_names[IR_MAX_DIM_SYMS]; /* symbolic dims, e.g. B, S, T */
    int nnodes, cap;
    IrNode **nodes;       /* program order */
    /* The sizes the activation plan (the nodes' mem offsets) was made for:
     * every dim's value, set by plan-memory; printed as plan(B=1, S=4096). */
    bool mem_planned;
    int64_t mem_dims[IR_MAX_DIM_SYMS];
} IrGraph;

IrGraph *ir_graph_new(Arena *a, const char *name);
/* Declares a symbolic dim; returns its index, or -1 when the name is taken
 * or there are already IR_MAX_DIM_SYMS. */
int ir_graph_add_dim(IrGraph *g, const char *name);
int ir_graph_find_dim(const IrGraph *g, const char *name); /* -1 if absent */

/* Appends a node. Operands and attributes are copied. For ops that declare
 * their type, `declared` gives it; otherwise it must be NULL and the type is
 * inferred. On a shape/type/attribute error reports it at `loc` and returns
 * NULL (nothing is appended). */
IrNode *ir_graph_add_node(IrGraph *g, DiagEngine *d, IrOp op, IrNode *const *operands, int nops,
                          const IrAttr *attrs, int nattrs, const IrType *declared, SrcLoc loc,
                          const char *scope);

/* Rewriting: a pass rebuilds the node list in place. ir_rewrite_begin
 * detaches the old nodes (kept in rw); the pass then appends new nodes
 * with ir_graph_add_node or copies old ones with ir_rewrite_copy, whose
 * operands are mapped to their replacements. Old nodes stay valid (arena). */
typedef struct {
    IrNode **old;
    int nold;
    IrNode **map; /* old id -> new node (NULL: dropped or not yet copied) */
} IrRewrite;
void ir_rewrite_begin(IrGraph *g, IrRewrite *rw);
IrNode *ir_rewrite_map(const IrRewrite *rw, const IrNode *old);
/* Re-adds `old` with mapped operands and its annotations; records the map. */
IrNode *ir_rewrite_copy(IrGraph *g, IrRewrite *rw, DiagEngine *d, const IrNode *old);

/* Marks (out[id] = true) each op whose value becomes a graph output,
 * looking through casts and reshapes: the LM head, for passes that keep it
 * in higher precision. out has g->nnodes entries, cleared by the caller. */
void ir_mark_output_producers(const IrGraph *g, bool *out);

/* Attribute lookup on a node. */
const IrAttr *ir_node_attr(const IrNode *n, const char *name);
int64_t ir_node_attr_int(const IrNode *n, const char *name, int64_t dflt);
double ir_node_attr_float(const IrNode *n, const char *name, double dflt);
bool ir_node_attr_bool(const IrNode *n, const char *name, bool dflt);
const char *ir_node_attr_str(const IrNode *n, const char *name, const char *dflt);

/* A rope node's inverse frequencies inv[d/2] (transformers' YaRN when the
 * node has `factor`) and the amplitude its cos/sin are scaled by. Every
 * backend forms the table here so they agree to the bit. */
double ir_rope_freqs(const IrNode *n, int64_t d, double *inv);

/* Checks n's attributes against the op's schema (missing required, unknown,
 * wrong kind) and computes its result type. For declared-type ops checks the
 * declared type is admissible (e.g. reshape keeps the element count). On
 * failure writes a message to err and returns false. */
bool ir_infer_type(const IrGraph *g, const IrNode *n, IrType *out, char *err, size_t errlen);

/* ---- text, checks, views ------------------------------------------------ */

void ir_type_print(const IrGraph *g, const IrType *t, StrBuf *sb); /* bf16[B,S,7168] */
void ir_dim_print(const IrGraph *g, IrDim d, StrBuf *sb);          /* 8*B*S */
void ir_print(const IrGraph *g, StrBuf *sb);
/* Parses the text form. Errors go to d located in `file`; returns NULL when
 * any error was reported. The graph is not verified (call ir_verify). */
IrGraph *ir_parse(Arena *a, DiagEngine *d, const char *file, const char *text, size_t len);
/* Arity, attribute schema, dominance, declared == inferred types, unique
 * input/output names, same-name weights agree. Returns the error count. */
int ir_verify(const IrGraph *g, DiagEngine *d);
/* For a scheduled graph (ops carry streams): every operand produced on
 * another stream must be waited for, and waits must name earlier ops.
 * With a memory plan (g->mem_planned), ir_check_memory below.
 * Returns the number of errors (each reported). */
int ir_check_schedule(const IrGraph *g, DiagEngine *d);
/* A memory plan holds: two values whose slab bytes overlap are ordered,
 * every access of the earlier one (as IrOrder counts them: by kernel)
 * happening before the later one is written (program order on one stream,
 * waits across); an `early` value is written before every op, so nothing
 * that overlaps it may be live then. bytes: per node, the bytes its value
 * takes (a backend's, at its sizes and storage dtypes); NULL: at the
 * plan's sizes (g->mem_dims) in the declared dtypes. Returns the number
 * of errors (each reported). */
int ir_check_memory(const IrGraph *g, const int64_t *bytes, DiagEngine *d);
void ir_print_dot(const IrGraph *g, StrBuf *sb);
/* Streams view of a scheduled graph (--emit=schedule). */
void ir_print_schedule(const IrGraph *g, StrBuf *sb);

/* ---- order and memory of a scheduled graph ------------------------------ */

/* Bytes n's value takes in the activation slab with every dim bound
 * (sym[i] for dim i): its elements' bytes rounded up to 256 (a sub-byte
 * dtype one byte more). False when the size overflows int64. */
bool ir_value_bytes(const IrNode *n, const int64_t *sym, int64_t *out);
/* The same for n's value stored in dtype dt (a backend's storage dtype). */
bool ir_value_bytes_as(const IrNode *n, IrDType dt, const int64_t *sym, int64_t *out);

/* Happens-before over the ops of a graph whose ops carry streams (stream
 * -1 counts as stream 0): an op starts after the earlier ops of its own
 * stream and after each op it waits for (and all that op waited for).
 * From it, for each value, the program position from which its memory may
 * be reused: the first position p such that, on every stream, each op at
 * or after p starts after every access (its definition and its reads) of
 * the value. The plan-memory pass frees blocks there; the schedule checker
 * verifies the plan with it; the CUDA runtime verifies with it that the
 * plan holds its values.
 *
 * Accesses are those of the kernels the graph runs as: the ops of one
 * fused group (n->group) are one kernel, which may read or write any of
 * its values while any of its ops runs, so an access by a group's op
 * counts at the group's last op. A value that is not stored (`stored`
 * false: inlined into its readers, or read through by a template) is
 * recomputed by each reader from its operands: a read of it reads them.
 * Graph results, routing choices (topk, group_topk: read back after the
 * step) and values computed from weights alone (kept from the first step
 * on) are never released; inputs (written before the step) and values of
 * weights alone are `early`: in memory before the first op runs. */
#define IR_ORDER_MAX_STREAMS 16
typedef struct {
    int n, nstreams;
    int *before;  /* [op * nstreams + s]: latest op of stream s complete when op starts; -1: none */
    int *last;    /* [op * nstreams + s]: latest access of op's value on stream s; -1: none */
    int *release; /* first program position where op's memory may be reused; INT_MAX: never */
    int *release_on; /* [op * nstreams + s]: the same for ops of stream s (an op there from this position on starts after
                      * every access); release is their maximum */
    int *stream;  /* per op: its stream's index (0 .. nstreams - 1, in order of first use) */
    bool *early;  /* written before the first op: inputs and values of weights alone */
} IrOrder;
/* Fills o (malloc'ed; free with ir_order_free). stored: per node, whether
 * its value is in memory; NULL: the planned ones (mem >= 0) of a planned
 * graph, else every value. False, with an error through d, for more than
 * IR_ORDER_MAX_STREAMS distinct streams or no memory. */
bool ir_order_compute(const IrGraph *g, const bool *stored, DiagEngine *d, IrOrder *o);
/* The same where also_read (when not NULL) names, per value v, an op that
 * reads v besides the ops the graph gives it (-1 or an op before v: none):
 * a backend's kernel that computes in place what another kernel would have
 * stored for it (the CUDA backend's folded row kernel, cg_fold_reads), so
 * v's bytes stay alive until that kernel too has run. */
bool ir_order_compute_with(const IrGraph *g, const bool *stored, const int *also_read, DiagEngine *d, IrOrder *o);
void ir_order_free(IrOrder *o);
/* Whether every access of value a happens before op b starts (a value
 * never released never is: it must survive the run). */
bool ir_order_done_before(const IrOrder *o, int a, int b);

/* Values of the weights alone that live with the weights, never in the
 * activation slab (plan-memory leaves them out; the CUDA executor holds
 * them in its weight memory), and the weights only they read:
 *   IR_WV_DERIVED  computed once, when the weights load: a value of weights
 *                  alone whose fused group holds only such values, each
 *                  computed from weights and such values (the slices of
 *                  kv_b_proj that absorbed MLA reads);
 *   IR_WV_JOINED   a DERIVED axis-0 concat of unstacked weights (of 8 bits
 *                  or more), alone in its group, each read by it alone (a
 *                  merge-linears weight): row-major, each part's rows are a
 *                  contiguous slice of it, so the weights load straight
 *                  into their rows and nothing computes it;
 *   IR_WV_PART     a weight loaded into its rows of the JOINED concat;
 *   IR_WV_LOAD     a weight only DERIVED values read: needed while they
 *                  are computed, freed after.
 * Values of weights alone fused with ops of the step (recomputed by every
 * step's kernel) are IR_WV_NONE, as is everything else. kind: per node.
 * held: per node, whether the kernels store the value (cg_stored_values;
 * a value they do not is computed where it is read: a DERIVED value the
 * step reads that way keeps its weights loaded, and no concat that is not
 * stored is JOINED); NULL: those a plan marked IR_MEM_WEIGHTS, and every
 * one in a graph without a plan. False without host memory. */
enum { IR_WV_NONE, IR_WV_DERIVED, IR_WV_JOINED, IR_WV_PART, IR_WV_LOAD };
bool ir_weight_values(const IrGraph *g, const bool *held, unsigned char *kind);
/* need[i] (g->nnodes entries): whether a step of kind f (0: nothing cached
 * yet, 1: a cached context) uses node i: from the roots (outputs, state
 * appends, exchanges) back through the operands, of a fresh_select only
 * operand f. The runtime launches a kernel none of whose nodes a step
 * uses not at all (gpu_exec.c); codegen's folds plan by the same rule. */
void ir_step_needs(const IrGraph *g, int f, bool *need);
/* c[i] (g->nnodes entries): whether node i is a function of the weights
 * alone (a weight, or an op other than an input, cache or output all of
 * whose operands are): a kernel of such nodes only runs once, not at
 * every step (gpu_exec.c). */
void ir_weights_only(const IrGraph *g, bool *c);
/* Whether kind (of ir_weight_values) is a computed value kept with the weights. */
static inline bool ir_wv_kept(unsigned char kind) { return kind == IR_WV_DERIVED || kind == IR_WV_JOINED; }

/* Spans: a set of byte ranges [off, off+len) ordered by offset, each tagged
 * with an id (the value it holds), in a balanced tree: insert, remove,
 * first fit and overlap queries in O(log n) (plus what they return). The
 * planner keeps its free gaps in one, the checker the live values. */
typedef struct IrSpans IrSpans;
typedef struct {
    int64_t off, len;
    int id;
} IrSpan;
IrSpans *ir_spans_new(void); /* NULL: no memory */
void ir_spans_free(IrSpans *t);
bool ir_spans_insert(IrSpans *t, int64_t off, int64_t len, int id); /* false: no memory */
bool ir_spans_remove(IrSpans *t, int64_t off, int id);              /* false: absent */
/* The span of lowest offset whose length is at least len. */
bool ir_spans_first_fit(const IrSpans *t, int64_t len, IrSpan *out);
bool ir_spans_before(const IrSpans *t, int64_t pos, IrSpan *out); /* the last span starting before pos */
bool ir_spans_at(const IrSpans *t, int64_t pos, IrSpan *out);     /* a span starting at pos */
/* Up to max spans meeting [lo, hi), in offset order; returns how many. */
int ir_spans_overlapping(const IrSpans *t, int64_t lo, int64_t hi, IrSpan *out, int max);

/* ---- statistics from the graph ------------------------------------------ */

typedef struct {
    const char *kind;        /* first component of scope, or "model" */
    int64_t params;          /* elements of weights first used here */
    double active_params;    /* per token; expert weights count k/E of their size */
    double flops_per_token;  /* forward multiply-adds x2, at the bound sequence */
    int64_t kv_bytes_per_token;
    int64_t nodes;
} IrStatsRow;

typedef struct {
    int nrows;
    IrStatsRow *rows; /* arena-allocated, in first-seen order */
    IrStatsRow total;
} IrStats;

/* Walks the graph with the first declared symbolic dim (the batch) bound to
 * 1 and every other one bound to seq_len (queries and context alike: one
 * full causal forward of seq_len tokens); per-token figures divide by
 * seq_len. Returns false and reports through d when the graph has no dims. */
bool ir_stats_compute(const IrGraph *g, DiagEngine *d, int64_t seq_len, IrStats *out);

/* One node at dims sym (index = the graph's dim), as the runtime's
 * per-kernel figures count it: its FLOPs (the convention above; fp8_linear
 * and fp8_expert_linear as the linears they replace), and the bytes it
 * reads of operand k, elements `bits` wide (the stored dtype): all of it,
 * except that an embedding or gather reads only the rows it outputs and an
 * expert linear at most min(E, N*K) of a stacked weight's (or its scales')
 * E slices; k = -1: the bytes its result stores (a kv_cache: the new
 * positions only). */
double ir_stats_node_flops(const IrNode *n, const int64_t *sym);
double ir_stats_node_bytes(const IrNode *n, int k, const int64_t *sym, int bits);

/* Memory one GPU holds when the graph runs over `gpus` GPUs with expert
 * parallelism: every weight in its stored dtype (FP8 codes and their f32
 * scales where fp8-quant ran), except that a stacked weight (attribute
 * `stack`: the routed experts and their scales) holds only its share of
 * the slices, count / gpus. Values of weights alone held with them
 * (ir_weight_values: DERIVED ones; a JOINED one takes its parts' bytes)
 * count with the replicated weights, and weights read only to compute
 * them (IR_WV_LOAD: freed once they are) do not. The activation slab is the extent of the
 * offsets plan-memory gave (0 when it has not run), with its bindings:
 * batch rows, seq new positions, ctx cached + new (0 = seq), micro-batch
 * dims the batch over the parts, rounded up. */
typedef struct {
    int64_t replicated_bytes; /* weights every GPU holds (with the values of weights alone computed at load) */
    int64_t derived_bytes;    /* of which values computed at load (IR_WV_DERIVED) */
    int64_t load_only_bytes;  /* weights freed after load (IR_WV_LOAD), not counted above */
    int64_t expert_bytes;     /* this GPU's share of the stacked weights */
    int64_t experts, experts_per_gpu; /* largest stack count, its share */
    int64_t activation_bytes; /* plan-memory's slab */
} IrMemStats;

bool ir_stats_memory(const IrGraph *g, DiagEngine *d, int gpus, int64_t batch, int64_t seq, int64_t ctx, IrMemStats *out);

#endif
