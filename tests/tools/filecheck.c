/* filecheck.c — a small FileCheck: reads the text to check on stdin and the
 * directives from the file named by argv[1]:
 *
 *   CHECK: text        a later line contains text
 *   CHECK-NEXT: text   the line right after the previous match contains text
 *   CHECK-NOT: text    no line between the previous and the next match does
 *
 * Matching is by literal substring; leading and trailing blanks of the
 * pattern are ignored. Directives are found anywhere on a line, so they can
 * sit in `//` comments of DSL or IR files. Exits 0 on success and 1, with the
 * failing directive and the input near it, otherwise; a file without any
 * CHECK directive is an error so a golden test can never pass vacuously. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { D_CHECK, D_NEXT, D_NOT } DirKind;

typedef struct {
    DirKind kind;
    char *pat;
    int line; /* in the check file */
} Directive;

typedef struct {
    char **v;
    int n, cap;
} Lines;

static void lines_push(Lines *l, char *s) {
    if (l->n == l->cap) l->v = realloc(l->v, sizeof(char *) * (size_t)(l->cap = l->cap ? l->cap * 2 : 256));
    l->v[l->n++] = s;
}

/* Splits a whole stream into malloc'd lines without their newlines. */
static Lines read_lines(FILE *f) {
    Lines l = {0};
    size_t cap = 0;
    char *buf = NULL;
    ssize_t n;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
        lines_push(&l, strdup(buf));
    }
    free(buf);
    return l;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* Finds the directive on a line, if any. */
static int parse_directive(char *line, int lineno, Directive *out) {
    static const struct { const char *tag; DirKind kind; } tags[] = {
        {"CHECK-NEXT:", D_NEXT}, {"CHECK-NOT:", D_NOT}, {"CHECK:", D_CHECK}};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char *p = strstr(line, tags[i].tag);
        if (!p) continue;
        out->kind = tags[i].kind;
        out->pat = trim(p + strlen(tags[i].tag));
        out->line = lineno;
        return 1;
    }
    return 0;
}

static void show_context(const Lines *in, int from) {
    fprintf(stderr, "input from line %d:\n", from + 1);
    for (int i = from; i < in->n && i < from + 8; i++) fprintf(stderr, "  %4d | %s\n", i + 1, in->v[i]);
    if (from >= in->n) fprintf(stderr, "  (end of input)\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: filecheck CHECKFILE < input\n");
        return 2;
    }
    FILE *cf = fopen(argv[1], "r");
    if (!cf) {
        perror(argv[1]);
        return 2;
    }
    Lines cl = read_lines(cf);
    fclose(cf);
    Lines in = read_lines(stdin);
    Directive *dirs = calloc((size_t)cl.n + 1, sizeof *dirs);
    int nd = 0;
    for (int i = 0; i < cl.n; i++) nd += parse_directive(cl.v[i], i + 1, &dirs[nd]);
    if (nd == 0) {
        fprintf(stderr, "%s: error: no CHECK directives\n", argv[1]);
        return 1;
    }
    int pos = 0;      /* first input line not yet consumed */
    int not_from = 0; /* CHECK-NOTs pending since this line */
    for (int d = 0; d < nd; d++) {
        Directive *dr = &dirs[d];
        if (dr->kind == D_NOT) continue; /* checked when the next match is known */
        int found = -1;
        if (dr->kind == D_NEXT) {
            if (pos < in.n && strstr(in.v[pos], dr->pat)) found = pos;
        } else {
            for (int i = pos; i < in.n && found < 0; i++)
                if (strstr(in.v[i], dr->pat)) found = i;
        }
        if (found < 0) {
            fprintf(stderr, "%s:%d: error: %s: expected string not found: \"%s\"\n", argv[1], dr->line,
                    dr->kind == D_NEXT ? "CHECK-NEXT" : "CHECK", dr->pat);
            show_context(&in, pos);
            return 1;
        }
        /* The CHECK-NOTs just before this directive cover [not_from, found). */
        for (int k = d - 1; k >= 0 && dirs[k].kind == D_NOT; k--)
            for (int i = not_from; i < found; i++)
                if (strstr(in.v[i], dirs[k].pat)) {
                    fprintf(stderr, "%s:%d: error: CHECK-NOT: excluded string found at input line %d: \"%s\"\n",
                            argv[1], dirs[k].line, i + 1, dirs[k].pat);
                    show_context(&in, i);
                    return 1;
                }
        pos = found + 1;
        not_from = pos;
    }
    for (int k = nd - 1; k >= 0 && dirs[k].kind == D_NOT; k--)
        for (int i = not_from; i < in.n; i++)
            if (strstr(in.v[i], dirs[k].pat)) {
                fprintf(stderr, "%s:%d: error: CHECK-NOT: excluded string found at input line %d: \"%s\"\n",
                        argv[1], dirs[k].line, i + 1, dirs[k].pat);
                show_context(&in, i);
                return 1;
            }
    for (int i = 0; i < cl.n; i++) free(cl.v[i]);
    for (int i = 0; i < in.n; i++) free(in.v[i]);
    free(cl.v);
    free(in.v);
    free(dirs);
    return 0;
}
