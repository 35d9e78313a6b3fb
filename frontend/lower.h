/* lower.h — private to frontend/: the values and state of the lowering
 * evaluator, shared by lower.c (statements, expressions), lower_call.c
 * (builtins and op calls) and config.c (parameter binding). */
#ifndef DSCC_FE_LOWER_H
#define DSCC_FE_LOWER_H

#include "frontend/ast.h"
#include "frontend/frontend.h"

typedef enum {
    V_NONE,   /* no value (a fn without return) */
    V_POISON, /* the result of an error already reported: silences follow-ups */
    V_INT,
    V_FLOAT,
    V_BOOL,
    V_STR,
    V_DIM,    /* a product involving symbolic dims */
    V_DTYPE,
    V_LIST,
    V_TUPLE,
    V_TENSOR,
} VKind;

typedef struct Value Value;
struct Value {
    VKind k;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        IrDim dim;
        IrDType dt;
        struct {
            Value *v;
            int n;
        } list;
        IrNode *t;
    } u;
};

/* A scope's names -> Values in a StrMap: a model of 100,000 `let`s looks
 * each name up in constant time. A name is bound at most once per scope
 * (rebinding replaces the value, which shadowing made unreachable anyway). */
typedef struct Scope {
    StrMap names;
    struct Scope *parent;
} Scope;

typedef struct {
    const char *fn;
    SrcLoc call;
} Frame;

#define FE_MAX_CALL_DEPTH 64

typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    const FeOptions *opt;
    Scope *globals;
    AstVec fns;
    StrMap fn_map;       /* name -> first AstNode fn of that name (lw_map_*: pointer values) */
    StrMap inputs, outputs, weights; /* name -> IrNode (first declared) */
    Frame frames[FE_MAX_CALL_DEPTH];
    int depth;
    const char *scope;   /* interned '/'-joined fn path; NULL at top level */
    StrMap scopes;       /* interned paths: path -> itself */
    bool returned;
    Value retval;
    int64_t steps;       /* statements executed so far */
    bool halted;         /* the step budget ran out: stop executing */
    void *config;        /* cJSON root of --config, or NULL */
    bool *set_used;      /* per --set entry */
    const void *bad_config[8]; /* config objects already reported as not objects */
    int nbad_config;
    const char **params; /* names of the bound params, for --set suggestions */
    size_t nparams, capparams;
} Lower;

/* The pointer maps of Lower: name -> pointer. */
void *lw_map_get(const StrMap *m, const char *name); /* NULL if absent */
void lw_map_put(StrMap *m, const char *name, void *v);

/* Reports an error at loc, then a note at each enclosing call site. */
void lw_error(Lower *L, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds the call-stack notes after an error reported elsewhere (the IR builder). */
void lw_call_notes(Lower *L);
const char *lw_kind_name(VKind k);

Value lw_eval(Lower *L, Scope *s, AstNode *e);
Value lw_call(Lower *L, Scope *s, AstNode *call);
/* Inlines the user fn `fn` with evaluated arguments; call is the call site. */
Value lw_call_fn(Lower *L, AstNode *fn, AstNode *call, Value *args, int nargs);
/* Builds an IR node at loc in the current scope; poison on error. */
Value lw_node(Lower *L, SrcLoc loc, IrOp op, IrNode **ops, int nops, const IrAttr *attrs, int nattrs,
              const IrType *declared);
/* Interpolates {name} in a string literal; `keep` names a variable left as
 * written (the stack variable of a stacked weight). NULL after an error. */
const char *lw_interpolate(Lower *L, Scope *s, const char *text, const char *keep, SrcLoc loc);
bool lw_lookup(Lower *L, Scope *s, const char *name, Value *out);
void lw_bind(Lower *L, Scope *s, const char *name, Value v);

/* config.c: loads --config (reports and returns false on malformed JSON). */
bool lw_config_load(Lower *L);
/* Checks the config's model_type against the `model NAME for "TYPE"...`
 * item; false after reporting a mismatch. */
bool lw_config_check_type(Lower *L, AstNode *model);
/* Binds one `param` item into the globals. */
void lw_bind_param(Lower *L, AstNode *item);
/* Reports --set names that matched no param. */
void lw_check_unused_sets(Lower *L);
void lw_config_free(Lower *L);

#endif
