/* print.c — the textual IR and the Graphviz view.
 *
 * Values are renumbered %0, %1, ... in program order on every print, so the
 * text depends only on the graph, never on how it was built; ir_parse reads
 * it back and printing again gives the same bytes. */
#include "ir/ir.h"

#include <ctype.h>
#include <string.h>

/* Appends a decimal integer; printf is most of the printer's time on a
 * model-sized graph otherwise. */
static void put_int(StrBuf *sb, int64_t v) {
    char buf[24], *p = buf + sizeof buf;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    sb_putn(sb, p, (size_t)(buf + sizeof buf - p));
}

/* Appends "%N", the printed name of value number v. */
static void put_value(StrBuf *sb, const char *before, int v) {
    sb_puts(sb, before);
    sb_putc(sb, '%');
    put_int(sb, v);
}

/* Appends " name(v)" for a pass annotation that is set (v >= 0). */
static void put_annotation(StrBuf *sb, const char *open, int64_t v) {
    if (v < 0) return;
    sb_puts(sb, open);
    put_int(sb, v);
    sb_putc(sb, ')');
}

void ir_dim_print(const IrGraph *g, IrDim d, StrBuf *sb) {
    bool any = false;
    if (d.coeff != 1 || ir_dim_is_const(d)) {
        put_int(sb, d.coeff);
        any = true;
    }
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++)
        for (int k = 0; k < d.exp[i]; k++) {
            if (any) sb_putc(sb, '*');
            if (g && i < g->ndims) sb_puts(sb, g->dim_names[i]);
            else sb_printf(sb, "$%d", i);
            any = true;
        }
}

void ir_type_print(const IrGraph *g, const IrType *t, StrBuf *sb) {
    sb_puts(sb, ir_dtype_name(t->dtype));
    sb_putc(sb, '[');
    for (int i = 0; i < t->rank; i++) {
        if (i) sb_putc(sb, ',');
        ir_dim_print(g, t->dims[i], sb);
    }
    sb_putc(sb, ']');
}

static void print_attr(const IrAttr *a, StrBuf *sb) {
    sb_puts(sb, a->name);
    sb_putc(sb, '=');
    switch (a->kind) {
    case IR_ATTR_INT: put_int(sb, a->u.i); break;
    case IR_ATTR_FLOAT: sb_put_double(sb, a->u.f); break;
    case IR_ATTR_BOOL: sb_puts(sb, a->u.b ? "true" : "false"); break;
    case IR_ATTR_STR: sb_put_quoted(sb, a->u.s); break;
    case IR_ATTR_DTYPE: sb_puts(sb, ir_dtype_name(a->u.t)); break;
    case IR_ATTR_INTS:
        sb_putc(sb, '[');
        for (int i = 0; i < a->u.ints.n; i++) {
            if (i) sb_putc(sb, ',');
            put_int(sb, a->u.ints.v[i]);
        }
        sb_putc(sb, ']');
        break;
    }
}

/* Whether s reads back as an identifier token ("inf" and "nan" read as floats). */
static bool is_ident(const char *s) {
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_') || strcmp(s, "inf") == 0 || strcmp(s, "nan") == 0) return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.')) return false;
    return true;
}

/* Value numbers in print order: vnum[node->id]. */
static int *number_values(const IrGraph *g, Arena *a) {
    int *vnum = arena_alloc(a, sizeof(int) * (size_t)(g->nnodes + 1));
    int next = 0;
    for (int i = 0; i < g->nnodes; i++) vnum[i] = ir_op_has_result(g->nodes[i]->op) ? next++ : -1;
    return vnum;
}

void ir_print(const IrGraph *g, StrBuf *sb) {
    Arena *tmp = arena_new();
    int *vnum = number_values(g, tmp);
    sb_puts(sb, "// dscc IR\ngraph @");
    if (is_ident(g->name)) sb_puts(sb, g->name);
    else sb_put_quoted(sb, g->name);
    sb_puts(sb, " dims(");
    for (int i = 0; i < g->ndims; i++) sb_printf(sb, i ? ", %s" : "%s", g->dim_names[i]);
    sb_puts(sb, ")");
    if (g->mem_planned) { /* the sizes the mem offsets were planned for */
        sb_puts(sb, " plan(");
        for (int i = 0; i < g->ndims; i++) sb_printf(sb, "%s%s=%lld", i ? ", " : "", g->dim_names[i], (long long)g->mem_dims[i]);
        sb_puts(sb, ")");
    }
    sb_puts(sb, " {\n");
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        sb_puts(sb, "  ");
        if (vnum[i] >= 0) {
            put_value(sb, "", vnum[i]);
            sb_puts(sb, " = ");
        }
        sb_puts(sb, ir_op_name(n->op));
        for (int k = 0; k < n->nops; k++) put_value(sb, k ? ", " : " ", vnum[n->ops[k]->id]);
        if (n->nattrs) {
            sb_puts(sb, " {");
            for (int k = 0; k < n->nattrs; k++) {
                if (k) sb_puts(sb, ", ");
                print_attr(&n->attrs[k], sb);
            }
            sb_putc(sb, '}');
        }
        if (ir_op_has_result(n->op)) {
            sb_puts(sb, " : ");
            ir_type_print(g, &n->type, sb);
        }
        if (n->scope) {
            sb_puts(sb, " scope(");
            sb_put_quoted(sb, n->scope);
            sb_putc(sb, ')');
        }
        put_annotation(sb, " group(", n->group);
        put_annotation(sb, " mem(", n->mem);
        put_annotation(sb, " stream(", n->stream);
        for (int k = 0; k < n->nwaits; k++) put_value(sb, k ? ", " : " wait(", vnum[n->waits[k]->id]);
        if (n->nwaits) sb_putc(sb, ')');
        if (n->loc.file) {
            sb_puts(sb, " loc(");
            sb_put_quoted(sb, n->loc.file);
            sb_putc(sb, ':');
            put_int(sb, n->loc.line);
            sb_putc(sb, ':');
            put_int(sb, n->loc.col);
            sb_putc(sb, ')');
        }
        sb_putc(sb, '\n');
    }
    sb_puts(sb, "}\n");
    arena_free(tmp);
}

/* Length of the well-formed UTF-8 sequence at s (lead byte >= 0x80), or 0. */
static int utf8_len(const unsigned char *s) {
    int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : 0;
    if (s[0] >= 0xf5) n = 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* Escapes text for a double-quoted DOT label. Names may hold any byte;
 * control bytes and broken UTF-8 become '?' so the file stays valid. */
static void dot_text(StrBuf *sb, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_putc(sb, '\\');
        if (*p == '\n') sb_puts(sb, "\\n");
        else if (*p < 0x20 || *p == 0x7f) sb_putc(sb, '?');
        else if (*p < 0x80) sb_putc(sb, (char)*p);
        else {
            int n = utf8_len(p);
            if (n) {
                sb_putn(sb, (const char *)p, (size_t)n);
                p += n - 1;
            } else sb_putc(sb, '?');
        }
    }
}

static void dot_node(const IrGraph *g, const IrNode *n, int v, StrBuf *sb) {
    StrBuf lab;
    sb_init(&lab);
    if (v >= 0) sb_printf(&lab, "%%%d ", v); /* outputs have no value */
    sb_puts(&lab, ir_op_name(n->op));
    const char *name = ir_node_attr_str(n, "name", NULL);
    if (name) sb_printf(&lab, "\n%s", name);
    if (ir_op_has_result(n->op)) {
        sb_putc(&lab, '\n');
        ir_type_print(g, &n->type, &lab);
    }
    /* ops are rounded boxes, not records: a record label would read the
     * braces of names like "experts.{e}.w" as fields */
    const char *shape = n->op == IR_OP_WEIGHT                              ? "box"
                        : n->op == IR_OP_INPUT || n->op == IR_OP_OUTPUT ? "ellipse"
                                                                         : "box, style=rounded";
    sb_printf(sb, "    n%d [shape=%s, label=\"", n->id, shape);
    dot_text(sb, lab.data);
    sb_puts(sb, "\"];\n");
    sb_free(&lab);
}

void ir_print_dot(const IrGraph *g, StrBuf *sb) {
    Arena *tmp = arena_new();
    int *vnum = number_values(g, tmp);
    sb_puts(sb, "digraph \"");
    dot_text(sb, g->name);
    sb_puts(sb, "\" {\n  node [fontname=\"monospace\", fontsize=10];\n");
    /* One cluster per top-level scope component, in first-seen order. */
    const char **tops = arena_alloc(tmp, sizeof(char *) * (size_t)(g->nnodes + 1));
    size_t *toplen = arena_alloc(tmp, sizeof(size_t) * (size_t)(g->nnodes + 1));
    int ntops = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const char *s = g->nodes[i]->scope;
        if (!s) continue;
        size_t len = strcspn(s, "/");
        bool seen = false;
        for (int k = 0; k < ntops && !seen; k++) seen = toplen[k] == len && strncmp(tops[k], s, len) == 0;
        if (!seen) {
            tops[ntops] = s;
            toplen[ntops++] = len;
        }
    }
    for (int k = 0; k < ntops; k++) {
        sb_printf(sb, "  subgraph cluster_%d {\n    label=\"", k);
        StrBuf t;
        sb_init(&t);
        sb_putn(&t, tops[k], toplen[k]);
        dot_text(sb, t.data);
        sb_free(&t);
        sb_puts(sb, "\";\n");
        for (int i = 0; i < g->nnodes; i++) {
            const char *s = g->nodes[i]->scope;
            if (s && strcspn(s, "/") == toplen[k] && strncmp(s, tops[k], toplen[k]) == 0)
                dot_node(g, g->nodes[i], vnum[i], sb);
        }
        sb_puts(sb, "  }\n");
    }
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i]->scope) dot_node(g, g->nodes[i], vnum[i], sb);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nops; k++)
            sb_printf(sb, "  n%d -> n%d;\n", g->nodes[i]->ops[k]->id, g->nodes[i]->id);
    sb_puts(sb, "}\n");
    arena_free(tmp);
}

/* Schedule view: the issue order as runs of consecutive ops on one stream,
 * what they are, and which ops of the other stream they wait for. */
void ir_print_schedule(const IrGraph *g, StrBuf *sb) {
    Arena *tmp = arena_new();
    int *vnum = number_values(g, tmp);
    int *count = arena_alloc(tmp, sizeof(int) * IR_OP_COUNT);
    sb_printf(sb, "// dscc schedule of @%s: stream 0 computes, stream 1 communicates; runs in issue order\n", g->name);
    int scheduled = 0;
    for (int i = 0; i < g->nnodes;) {
        const IrNode *n = g->nodes[i];
        if (n->stream < 0) { i++; continue; }
        int j = i;
        memset(count, 0, sizeof(int) * IR_OP_COUNT);
        while (j < g->nnodes && g->nodes[j]->stream == n->stream) count[g->nodes[j++]->op]++;
        scheduled += j - i;
        sb_printf(sb, "stream %d  %%%d..%%%d  %3d ops:", n->stream, vnum[i] >= 0 ? vnum[i] : 0,
                  vnum[j - 1] >= 0 ? vnum[j - 1] : 0, j - i);
        for (int shown = 0; shown < 4; shown++) { /* the most frequent ops */
            int best = -1;
            for (int o = 0; o < IR_OP_COUNT; o++)
                if (count[o] && (best < 0 || count[o] > count[best])) best = o;
            if (best < 0) break;
            sb_printf(sb, " %s x%d", ir_op_name((IrOp)best), count[best]);
            count[best] = 0;
        }
        bool any = false;
        for (int k = i; k < j; k++)
            for (int w = 0; w < g->nodes[k]->nwaits; w++) {
                const IrNode *x = g->nodes[k]->waits[w];
                bool dup = false; /* several ops of the run may wait for the same event */
                for (int k2 = i; k2 <= k && !dup; k2++)
                    for (int w2 = 0; w2 < (k2 == k ? w : g->nodes[k2]->nwaits) && !dup; w2++) dup = g->nodes[k2]->waits[w2] == x;
                if (dup) continue;
                sb_printf(sb, any ? ", %%%d %s" : "   waits for %%%d %s", vnum[x->id], ir_op_name(x->op));
                any = true;
            }
        sb_putc(sb, '\n');
        i = j;
    }
    if (!scheduled) sb_puts(sb, "// no op is scheduled: run the microbatch-overlap pass (--passes=...,microbatch-overlap)\n");
    arena_free(tmp);
}
