/* ast.h — private to frontend/: the syntax tree the parser builds and the
 * lowering walks. One node struct for every kind keeps the grammar actions
 * short; which fields a kind uses is listed beside it. */
#ifndef DSCC_FE_AST_H
#define DSCC_FE_AST_H

#include "support/support.h"

typedef struct AstNode AstNode;

typedef struct {
    AstNode **v;
    size_t n, cap;
} AstVec;

typedef enum {
    /* expressions */
    AST_INT,    /* ival */
    AST_FLOAT,  /* fval */
    AST_STR,    /* str (escapes resolved, {name} interpolation still in it) */
    AST_BOOL,   /* ival 0/1 */
    AST_NAME,   /* str */
    AST_LIST,   /* list: elements */
    AST_CALL,   /* str: callee; list: positional args; list2: AST_KWARG */
    AST_KWARG,  /* str: name; a: value */
    AST_BINOP,  /* op: token (+ - * / % == != < <= > >= && ||); a, b */
    AST_UNOP,   /* op: '-' or '!'; a */
    AST_TYPE,   /* str: dtype name; list: dims */
    /* statements */
    AST_LET,    /* list: AST_NAME targets; a: value */
    AST_ASSIGN, /* str: target; a: value */
    AST_WEIGHT, /* str: name; str2: stack var or NULL; b: count; c: type; a: pattern */
    AST_INPUT,  /* str: name; c: type */
    AST_FOR,    /* str: var; a: lo; b: hi; list: body */
    AST_IF,     /* a: cond; list: then; list2: else (may hold one nested AST_IF) */
    AST_ASSERT, /* a: cond; b: message */
    AST_OUTPUT, /* str: name; a: value */
    AST_RETURN, /* list: values */
    /* top-level items */
    AST_MODEL,  /* str: graph name; list: AST_STR config model_types it describes (may be empty) */
    AST_IMPORT, /* str: path as written */
    AST_PARAM,  /* str: name; str2: type (int/float/bool/str); a: default; list: AST_STR keys; b: absent value */
    AST_DIM,    /* list: AST_NAME */
    AST_FN,     /* str: name; list: AST_NAME params; list2: body */
} AstKind;

struct AstNode {
    AstKind kind;
    SrcLoc loc;
    const char *str, *str2;
    int64_t ival;
    double fval;
    int op;
    int height; /* expressions: 1 + the tallest operand, bounded by FE_MAX_HEIGHT */
    AstNode *a, *b, *c;
    AstVec list, list2;
};

/* Context handed to the generated parser and scanner. */
typedef struct {
    Arena *arena;
    DiagEngine *diag;
    const char *file; /* as it appears in diagnostics */
    AstVec items;     /* the parsed top-level items, in order */
    int depth;        /* nesting of () [] {} for the depth limit */
    int line, col;    /* scanner position of the next character */
    int cline, ccol;  /* where the open block comment started */
    const char *tok_text; /* the last identifier scanned, for syntax errors */
} FeParseCtx;

AstNode *ast_new(FeParseCtx *ctx, AstKind kind, int line, int col);
void ast_push(Arena *a, AstVec *v, AstNode *n);

/* Parses one file's text; items are appended to ctx->items. Returns false if
 * any syntax error was reported. */
bool fe_parse_text(FeParseCtx *ctx, const char *text, size_t len);

/* Maximum nesting of brackets before the parser gives up (stack safety). */
#define FE_MAX_DEPTH 200
/* Maximum height of one expression tree: the lowering evaluates expressions
 * recursively, so `1+1+...+1` must not be allowed to grow without bound. */
#define FE_MAX_HEIGHT 1000

#endif
