/* parser.y — the DSL grammar (bison, pure, with locations).
 *
 * The grammar only builds the AST; every meaning (types, names, shapes) is
 * checked by the lowering, which knows parameter values. Error recovery is
 * at statement level: `error ';'` and `error '}'` resynchronise, so one run
 * reports several syntax errors. Messages are built from the parser's set of
 * expected tokens: a short set is listed, a long one is summarised as what
 * the user most likely forgot (a ';', a ')', an expression). Nesting depth is bounded so that hostile
 * input cannot exhaust the parser stack. */
%define api.pure full
%define api.prefix {fe_yy}
%define parse.error custom
%define parse.lac full
%locations
%param {void *scanner}
%parse-param {FeParseCtx *ctx}

%code requires {
#include "frontend/ast.h"
}

%union {
    int64_t ival;
    double fval;
    const char *str;
    AstNode *node;
    AstVec vec;
}

%code {
#define YYSTYPE FE_YYSTYPE
#define YYLTYPE FE_YYLTYPE
#include "frontend/lexer.h"
#include <string.h>

/* Only bison's own failures arrive here (stack exhaustion); syntax errors go
 * through yyreport_syntax_error below. */
static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, FeParseCtx *ctx, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0) msg = "input nested too deeply (parser stack exhausted)";
    diag_error(ctx->diag, ((SrcLoc){ctx->file, loc->first_line, loc->first_column}), "%s", msg);
}

/* Bison's own stack limit; programs with nesting under FE_MAX_DEPTH stay far
 * below it, while hostile `else if` or unary chains stop early. */
#define YYMAXDEPTH 5000
#define L(n, loc) ast_new(ctx, (n), (loc).first_line, (loc).first_column)
/* Builds an operator node over a and b (b may be NULL); NULL when the
 * expression grows taller than FE_MAX_HEIGHT, which has been reported. */
static AstNode *fe_op(FeParseCtx *ctx, AstKind kind, int op, FE_YYLTYPE loc, AstNode *a, AstNode *b) {
    AstNode *n = ast_new(ctx, kind, loc.first_line, loc.first_column);
    n->op = op;
    n->a = a;
    n->b = b;
    n->height = 1 + (b && b->height > a->height ? b->height : a->height);
    if (n->height > FE_MAX_HEIGHT) {
        diag_error(ctx->diag, n->loc, "expression nested deeper than %d levels", FE_MAX_HEIGHT);
        return NULL;
    }
    return n;
}
/* The height of a call or list: one above its tallest element. */
static int fe_height(const AstVec *v) {
    int h = 0;
    for (size_t i = 0; i < v->n; i++) {
        const AstNode *e = v->v[i]->kind == AST_KWARG ? v->v[i]->a : v->v[i];
        if (e->height > h) h = e->height;
    }
    return h + 1;
}
#define DEEPER(loc)                                                                                  \
    do {                                                                                             \
        if (++ctx->depth > FE_MAX_DEPTH) {                                                           \
            diag_error(ctx->diag, ((SrcLoc){ctx->file, (loc).first_line, (loc).first_column}),      \
                       "nesting deeper than %d levels", FE_MAX_DEPTH);                               \
            YYABORT;                                                                                 \
        }                                                                                            \
    } while (0)
}

%token KW_MODEL "model" KW_IMPORT "import" KW_PARAM "param" KW_DIM "dim" KW_INPUT "input"
%token KW_WEIGHT "weight" KW_FN "fn" KW_LET "let" KW_FOR "for" KW_IN "in" KW_IF "if"
%token KW_ELSE "else" KW_RETURN "return" KW_ASSERT "assert" KW_OUTPUT "output"
%token KW_FROM "from" KW_ABSENT "absent"
%token DOTDOT ".." EQ "==" NE "!=" LE "<=" GE ">=" AND "&&" OR "||"
%token <ival> INT "integer" BOOL "true or false"
%token <fval> FLOAT "number"
%token <str> IDENT "identifier" STRING "string"

%type <node> item stmt expr primary type param_item fn_item if_stmt arg block_open
%type <vec> stmts names names_opt exprs exprs_opt args args_opt keys block else_opt

%left OR
%left AND
%left EQ NE
%left '<' LE '>' GE
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY

%%

program
    : %empty
    | program item          { if ($2) ast_push(ctx->arena, &ctx->items, $2); }
    ;

item
    : KW_MODEL IDENT ';'    { $$ = L(AST_MODEL, @1); $$->str = $2; }
    | KW_MODEL IDENT KW_FOR keys ';'
                            { $$ = L(AST_MODEL, @1); $$->str = $2; $$->list = $4; }
    | KW_IMPORT STRING ';'  { $$ = L(AST_IMPORT, @1); $$->str = $2; }
    | param_item
    | KW_DIM names ';'      { $$ = L(AST_DIM, @1); $$->list = $2; }
    | fn_item
    | stmt
    | error '}'             { $$ = NULL; yyerrok; }
    ;

param_item
    : KW_PARAM IDENT ':' IDENT '=' expr ';'
        { $$ = L(AST_PARAM, @1); $$->str = $2; $$->str2 = $4; $$->a = $6; }
    | KW_PARAM IDENT ':' IDENT '=' expr KW_FROM keys ';'
        { $$ = L(AST_PARAM, @1); $$->str = $2; $$->str2 = $4; $$->a = $6; $$->list = $8; }
    | KW_PARAM IDENT ':' IDENT '=' expr KW_ABSENT expr ';'
        { $$ = L(AST_PARAM, @1); $$->str = $2; $$->str2 = $4; $$->a = $6; $$->b = $8; }
    | KW_PARAM IDENT ':' IDENT '=' expr KW_FROM keys KW_ABSENT expr ';'
        { $$ = L(AST_PARAM, @1); $$->str = $2; $$->str2 = $4; $$->a = $6; $$->list = $8; $$->b = $10; }
    ;

keys
    : STRING                { $$ = (AstVec){0}; AstNode *k = L(AST_STR, @1); k->str = $1; ast_push(ctx->arena, &$$, k); }
    | keys ',' STRING       { $$ = $1; AstNode *k = L(AST_STR, @3); k->str = $3; ast_push(ctx->arena, &$$, k); }
    ;

fn_item
    : KW_FN IDENT '(' names_opt ')' block
        { $$ = L(AST_FN, @1); $$->str = $2; $$->list = $4; $$->list2 = $6; }
    ;

names_opt
    : %empty                { $$ = (AstVec){0}; }
    | names
    ;

names
    : IDENT                 { $$ = (AstVec){0}; AstNode *n = L(AST_NAME, @1); n->str = $1; ast_push(ctx->arena, &$$, n); }
    | names ',' IDENT       { $$ = $1; AstNode *n = L(AST_NAME, @3); n->str = $3; ast_push(ctx->arena, &$$, n); }
    ;

block_open
    : '{'                   { DEEPER(@1); $$ = NULL; }
    ;

block
    : block_open stmts '}'  { $$ = $2; ctx->depth--; }
    ;

stmts
    : %empty                { $$ = (AstVec){0}; }
    | stmts stmt            { $$ = $1; if ($2) ast_push(ctx->arena, &$$, $2); }
    ;

stmt
    : KW_LET names '=' expr ';'         { $$ = L(AST_LET, @1); $$->list = $2; $$->a = $4; }
    | IDENT '=' expr ';'                { $$ = L(AST_ASSIGN, @1); $$->str = $1; $$->a = $3; }
    | KW_WEIGHT IDENT ':' type '=' expr ';'
        { $$ = L(AST_WEIGHT, @1); $$->str = $2; $$->c = $4; $$->a = $6; }
    | KW_WEIGHT IDENT '[' IDENT ':' expr ']' ':' type '=' expr ';'
        { $$ = L(AST_WEIGHT, @1); $$->str = $2; $$->str2 = $4; $$->b = $6; $$->c = $9; $$->a = $11; }
    | KW_INPUT IDENT ':' type ';'       { $$ = L(AST_INPUT, @1); $$->str = $2; $$->c = $4; }
    | KW_FOR IDENT KW_IN expr DOTDOT expr block
        { $$ = L(AST_FOR, @1); $$->str = $2; $$->a = $4; $$->b = $6; $$->list = $7; }
    | if_stmt
    | KW_ASSERT expr ',' expr ';'       { $$ = L(AST_ASSERT, @1); $$->a = $2; $$->b = $4; }
    | KW_OUTPUT IDENT '=' expr ';'      { $$ = L(AST_OUTPUT, @1); $$->str = $2; $$->a = $4; }
    | KW_RETURN exprs ';'               { $$ = L(AST_RETURN, @1); $$->list = $2; }
    | error ';'                         { $$ = NULL; yyerrok; }
    ;

if_stmt
    : KW_IF expr block else_opt         { $$ = L(AST_IF, @1); $$->a = $2; $$->list = $3; $$->list2 = $4; }
    ;

else_opt
    : %empty                            { $$ = (AstVec){0}; }
    | KW_ELSE block                     { $$ = $2; }
    | KW_ELSE if_stmt                   { $$ = (AstVec){0}; ast_push(ctx->arena, &$$, $2); }
    ;

type
    : IDENT '[' exprs_opt ']'           { $$ = L(AST_TYPE, @1); $$->str = $1; $$->list = $3; }
    ;

exprs_opt
    : %empty                            { $$ = (AstVec){0}; }
    | exprs
    ;

exprs
    : expr                              { $$ = (AstVec){0}; ast_push(ctx->arena, &$$, $1); }
    | exprs ',' expr                    { $$ = $1; ast_push(ctx->arena, &$$, $3); }
    ;

expr
    : primary
    | expr OR expr          { if (!($$ = fe_op(ctx, AST_BINOP, OR, @2, $1, $3))) YYABORT; }
    | expr AND expr         { if (!($$ = fe_op(ctx, AST_BINOP, AND, @2, $1, $3))) YYABORT; }
    | expr EQ expr          { if (!($$ = fe_op(ctx, AST_BINOP, EQ, @2, $1, $3))) YYABORT; }
    | expr NE expr          { if (!($$ = fe_op(ctx, AST_BINOP, NE, @2, $1, $3))) YYABORT; }
    | expr '<' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '<', @2, $1, $3))) YYABORT; }
    | expr LE expr          { if (!($$ = fe_op(ctx, AST_BINOP, LE, @2, $1, $3))) YYABORT; }
    | expr '>' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '>', @2, $1, $3))) YYABORT; }
    | expr GE expr          { if (!($$ = fe_op(ctx, AST_BINOP, GE, @2, $1, $3))) YYABORT; }
    | expr '+' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '+', @2, $1, $3))) YYABORT; }
    | expr '-' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '-', @2, $1, $3))) YYABORT; }
    | expr '*' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '*', @2, $1, $3))) YYABORT; }
    | expr '/' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '/', @2, $1, $3))) YYABORT; }
    | expr '%' expr         { if (!($$ = fe_op(ctx, AST_BINOP, '%', @2, $1, $3))) YYABORT; }
    | '-' expr %prec UNARY  { if (!($$ = fe_op(ctx, AST_UNOP, '-', @1, $2, NULL))) YYABORT; }
    | '!' expr %prec UNARY  { if (!($$ = fe_op(ctx, AST_UNOP, '!', @1, $2, NULL))) YYABORT; }
    ;

primary
    : INT                   { $$ = L(AST_INT, @1); $$->ival = $1; }
    | FLOAT                 { $$ = L(AST_FLOAT, @1); $$->fval = $1; }
    | BOOL                  { $$ = L(AST_BOOL, @1); $$->ival = $1; }
    | STRING                { $$ = L(AST_STR, @1); $$->str = $1; }
    | IDENT                 { $$ = L(AST_NAME, @1); $$->str = $1; }
    | open_paren expr ')'   { $$ = $2; ctx->depth--; }
    | open_bracket exprs_opt ']'  { $$ = L(AST_LIST, @1); $$->list = $2; $$->height = fe_height(&$2); ctx->depth--; }
    | IDENT open_paren args_opt ')'
        { $$ = L(AST_CALL, @1); $$->str = $1; $$->height = fe_height(&$3); ctx->depth--;
          for (size_t i = 0; i < $3.n; i++) ast_push(ctx->arena, $3.v[i]->kind == AST_KWARG ? &$$->list2 : &$$->list, $3.v[i]); }
    ;

open_paren
    : '('                   { DEEPER(@1); }
    ;

open_bracket
    : '['                   { DEEPER(@1); }
    ;

args_opt
    : %empty                { $$ = (AstVec){0}; }
    | args
    ;

args
    : arg                   { $$ = (AstVec){0}; ast_push(ctx->arena, &$$, $1); }
    | args ',' arg          { $$ = $1; ast_push(ctx->arena, &$$, $3); }
    ;

arg
    : expr
    | IDENT '=' expr        { $$ = L(AST_KWARG, @1); $$->str = $1; $$->a = $3; }
    ;

%%

/* A token the way the user wrote it: keywords and operators quoted, the
 * lookahead identifier with its name. */
static const char *fe_tok_desc(FeParseCtx *ctx, yysymbol_kind_t k, bool lookahead) {
    if (k == YYSYMBOL_IDENT && lookahead && ctx->tok_text)
        return arena_printf(ctx->arena, "identifier '%.40s'", ctx->tok_text);
    if (k >= YYSYMBOL_KW_MODEL && k <= YYSYMBOL_OR) return arena_printf(ctx->arena, "'%s'", yysymbol_name(k));
    return yysymbol_name(k);
}

/* Reports "unexpected X, expected ..." at the lookahead. */
static int yyreport_syntax_error(const yypcontext_t *yyctx, void *scanner, FeParseCtx *ctx) {
    (void)scanner;
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
    bool has[YYNTOKENS] = {false};
    for (int i = 0; i < n; i++) has[exp[i]] = true;
    StrBuf sb;
    sb_init(&sb);
    sb_printf(&sb, "unexpected %s", fe_tok_desc(ctx, yypcontext_token(yyctx), true));
    if (n >= 1 && n <= 4) {
        for (int i = 0; i < n; i++)
            sb_printf(&sb, "%s%s", i == 0 ? ", expecting " : i == n - 1 ? " or " : ", ", fe_tok_desc(ctx, exp[i], false));
    } else if (has[YYTRANSLATE(';')]) {
        sb_puts(&sb, ", expected ';'");
    } else if (has[YYTRANSLATE(')')] || has[YYTRANSLATE(']')]) {
        sb_printf(&sb, ", expected %s'%c'",
                  has[YYSYMBOL_INT] ? "an expression or " : has[YYTRANSLATE(',')] ? "',' or " : "",
                  has[YYTRANSLATE(')')] ? ')' : ']');
    } else if (has[YYSYMBOL_INT]) {
        sb_puts(&sb, ", expected an expression");
    } else if (has[YYSYMBOL_KW_LET]) {
        sb_puts(&sb, has[YYTRANSLATE('}')] ? ", expected a statement or '}'" : ", expected a statement");
    }
    const FE_YYLTYPE *loc = yypcontext_location(yyctx);
    diag_error(ctx->diag, ((SrcLoc){ctx->file, loc->first_line, loc->first_column}), "%s", sb.data);
    sb_free(&sb);
    return 0;
}

AstNode *ast_new(FeParseCtx *ctx, AstKind kind, int line, int col) {
    AstNode *n = arena_alloc(ctx->arena, sizeof *n);
    n->kind = kind;
    n->loc = (SrcLoc){ctx->file, line, col};
    return n;
}

void ast_push(Arena *a, AstVec *v, AstNode *n) { ARENA_PUSH(a, v->v, v->n, v->cap, n); }
