/* diag.c — clang-style diagnostics: `file:line:col: error: message`, the
 * source line, a caret. Sources are registered by name so any stage that
 * knows a SrcLoc can show the line without re-reading the file. */
#include "support/support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Source {
    const char *file;
    const char *text;
    size_t len;
    struct Source *next;
} Source;

struct DiagEngine {
    Arena *arena;
    FILE *out;
    bool color;
    int errors, printed_errors, max_errors;
    Diag *first, *last;
    Source *sources;
    bool suppress_notes; /* notes after a suppressed error are dropped too */
};

DiagEngine *diag_new(Arena *a, FILE *out) {
    DiagEngine *d = arena_alloc(a, sizeof *d);
    d->arena = a;
    d->out = out;
    d->max_errors = 50;
    const char *nc = getenv("NO_COLOR");
    d->color = out && (!nc || !*nc) && isatty(fileno(out));
    return d;
}

void diag_set_color(DiagEngine *d, bool on) { d->color = on; }
void diag_set_max_errors(DiagEngine *d, int n) { d->max_errors = n; }
int diag_error_count(const DiagEngine *d) { return d->errors; }
const Diag *diag_first(const DiagEngine *d) { return d->first; }

void diag_add_source(DiagEngine *d, const char *file, const char *text, size_t len) {
    Source *s = arena_alloc(d->arena, sizeof *s);
    s->file = arena_strdup(d->arena, file);
    s->text = arena_strndup(d->arena, text, len);
    s->len = len;
    s->next = d->sources;
    d->sources = s;
}

/* Finds line `line` of a registered file; returns its start and length. */
static bool find_line(const DiagEngine *d, const char *file, int line, const char **start,
                      size_t *n) {
    for (const Source *s = d->sources; s; s = s->next) {
        if (strcmp(s->file, file) != 0) continue;
        const char *p = s->text, *end = s->text + s->len;
        for (int l = 1; l < line && p < end; l++) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) return false;
            p = nl + 1;
        }
        if (p >= end && line > 1) return false;
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r') e++;
        *start = p;
        *n = (size_t)(e - p);
        return true;
    }
    return false;
}

/* A byte a terminal would act on rather than show: printed as \xNN so a
 * hostile file cannot move the cursor, recolour or forge output. */
static bool is_control(unsigned char c, bool keep_newline) {
    return (c < 0x20 && c != '\t' && !(keep_newline && c == '\n')) || c == 0x7f;
}

/* Prints n bytes of s with control bytes escaped. Newlines are kept only in
 * messages, where dscc's own multi-line texts (NVRTC's log) put them. */
static void put_escaped(FILE *o, const char *s, size_t n, bool keep_newline) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_control(c, keep_newline)) fprintf(o, "\\x%02x", c);
        else fputc(c, o);
    }
}

static void print_diag(DiagEngine *d, const Diag *g) {
    static const char *names[] = {"error", "warning", "note"};
    static const char *colors[] = {"\033[1;31m", "\033[1;35m", "\033[1;36m"};
    FILE *o = d->out;
    const char *bold = d->color ? "\033[1m" : "", *reset = d->color ? "\033[0m" : "";
    fputs(bold, o);
    if (g->loc.file) {
        put_escaped(o, g->loc.file, strlen(g->loc.file), false);
        if (g->loc.line > 0) fprintf(o, ":%d", g->loc.line);
        if (g->loc.line > 0 && g->loc.col > 0) fprintf(o, ":%d", g->loc.col);
        fputs(": ", o);
    } else {
        fputs("dscc: ", o);
    }
    fprintf(o, "%s%s%s:%s %s", reset, d->color ? colors[g->level] : "", names[g->level], reset, bold);
    put_escaped(o, g->msg, strlen(g->msg), true);
    fprintf(o, "%s\n", reset);
    const char *line;
    size_t n;
    if (g->loc.file && g->loc.line > 0 && find_line(d, g->loc.file, g->loc.line, &line, &n)) {
        /* Show at most 200 columns; tabs kept and escapes padded so the
         * caret lines up. */
        if (n > 200) n = 200;
        put_escaped(o, line, n, false);
        fputc('\n', o);
        if (g->loc.col > 0) {
            for (int i = 0; i < g->loc.col - 1 && (size_t)i < n; i++)
                fputs(line[i] == '\t' ? "\t" : is_control((unsigned char)line[i], false) ? "    " : " ", o);
            fprintf(o, "%s^%s\n", d->color ? "\033[1;32m" : "", reset);
        }
    }
}

void diag_vreport(DiagEngine *d, DiagLevel lv, SrcLoc loc, const char *fmt, va_list ap) {
    Diag *g = arena_alloc(d->arena, sizeof *g);
    g->level = lv;
    g->loc = loc;
    /* kept past the caller's arena: a loader that frees its own (and the
     * path in it) on failure leaves a readable diagnostic behind */
    if (loc.file) g->loc.file = arena_strdup(d->arena, loc.file);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    g->msg = arena_alloc(d->arena, (size_t)n + 1);
    vsnprintf(g->msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    if (d->last) d->last->next = g;
    else d->first = g;
    d->last = g;
    bool show = true;
    if (lv == DIAG_ERROR) {
        d->errors++;
        show = d->printed_errors < d->max_errors;
        if (show) d->printed_errors++;
        else if (d->errors == d->max_errors + 1 && d->out)
            fprintf(d->out, "dscc: too many errors; further errors are not shown\n");
        d->suppress_notes = !show;
    } else if (lv == DIAG_NOTE) {
        show = !d->suppress_notes;
    } else {
        d->suppress_notes = false;
    }
    if (show && d->out) print_diag(d, g);
}

void diag_report(DiagEngine *d, DiagLevel lv, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, lv, loc, fmt, ap);
    va_end(ap);
}
