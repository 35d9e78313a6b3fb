/* kernels.c — looks up the kernel files embedded from codegen/kernels/ and
 * instantiates one with its entry name and #define parameters, the files it
 * includes (a shared prelude such as hopper.cuh) written in where it includes
 * them: the module is one text, so the kernel cache keys all of it. */
#include "codegen/kernels.h"
#include "codegen/codegen.h"
#include "codegen/cuda_scan.h"

#include <stdlib.h>
#include <string.h>

const char *cg_kernel_file(const char *name) {
    for (const CgKernelFile *f = cg_kernel_files; f->name; f++)
        if (strcmp(f->name, name) == 0) return f->text;
    return NULL;
}

/* text, the kernel file `name`, into b with each line `#include "F.cuh"` of an embedded file F
 * replaced by F's text (its own includes likewise, up to a depth); any other include stays for
 * NVRTC to report. */
static void put_kernel_text(StrBuf *b, const char *name, const char *text, int depth) {
    sb_printf(b, "// ---- codegen/kernels/%s.cuh\n", name);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        const char *inc = NULL;
        char inc_name[64] = "";
        if (depth < 4 && strncmp(line, "#include \"", 10) == 0) {
            const char *q = strchr(line + 10, '"');
            size_t k = q ? (size_t)(q - line - 10) : 0;
            if (k > 4 && k - 4 < sizeof inc_name && q < line + n && strncmp(q - 4, ".cuh", 4) == 0) {
                snprintf(inc_name, sizeof inc_name, "%.*s", (int)(k - 4), line + 10);
                inc = cg_kernel_file(inc_name);
            }
        }
        if (inc) {
            put_kernel_text(b, inc_name, inc, depth + 1);
            if (b->data[b->len - 1] != '\n') sb_putc(b, '\n');
            sb_printf(b, "// ---- codegen/kernels/%s.cuh, after %s.cuh\n", name, inc_name);
        } else sb_putn(b, line, n);
        line += n;
    }
}

/* cg_kernel_instance's text; entry NULL: cg_kernel_fragment's (no DSCC_ENTRY) */
static char *instance_text(Arena *a, const char *file, const char *entry, const CgDefine *defs, int ndefs) {
    const char *text = cg_kernel_file(file);
    if (!text) return NULL;
    StrBuf b;
    sb_init(&b);
    if (entry) sb_printf(&b, "#define DSCC_ENTRY %s\n", entry);
    for (int i = 0; i < ndefs; i++) sb_printf(&b, "#define %s %s\n", defs[i].name, defs[i].value);
    put_kernel_text(&b, file, text, 0);
    if (entry) sb_puts(&b, "// ---- the instance's parameters end here (the next instance in the module defines its own)\n#undef DSCC_ENTRY\n");
    else sb_printf(&b, "// ---- codegen/kernels/%s.cuh ends here: its parameters undefined\n", file);
    for (int i = 0; i < ndefs; i++) sb_printf(&b, "#undef %.*s\n", (int)strcspn(defs[i].name, "( "), defs[i].name);
    char *out = arena_strdup(a, b.data);
    sb_free(&b);
    return out;
}

char *cg_kernel_instance(Arena *a, const char *file, const char *entry, const CgDefine *defs, int ndefs) {
    return instance_text(a, file, entry, defs, ndefs);
}

char *cg_kernel_fragment(Arena *a, const char *file, const CgDefine *defs, int ndefs) { return instance_text(a, file, NULL, defs, ndefs); }

char *cg_kernel_prelude(Arena *a, const char *name) {
    const char *text = cg_kernel_file(name);
    if (!text) return NULL;
    StrBuf b;
    sb_init(&b);
    put_kernel_text(&b, name, text, 0);
    char *out = arena_strdup(a, b.data);
    sb_free(&b);
    return out;
}

char *cg_template_rmsnorm_quant(Arena *a, const char *name) {
    return cg_kernel_instance(a, "rmsnorm_quant", name, NULL, 0);
}

/* ---- programmatic dependent launch: which entry points wait ------------- */

/* One __global__ definition of a module's text: its name as written (a kernel file's is DSCC_ENTRY), the name
 * it gets (for DSCC_ENTRY, the latest `#define DSCC_ENTRY name` before it), and its body [open, end). */
typedef struct {
    char written[128], name[128];
    size_t open, end;
} Entry;

/* The next __global__ definition at or after *at (advanced past it); false when there is none. */
static bool next_entry(const char *s, size_t *at, char *entry_def, Entry *e) {
    for (size_t i = *at; s[i];) {
        size_t j = cg_scan_skip_lit(s, i);
        if (j != i) {
            i = j;
            continue;
        }
        if ((i == 0 || s[i - 1] == '\n') && strncmp(s + i, "#define DSCC_ENTRY ", 19) == 0) {
            size_t n = 0;
            while (cg_scan_ident(s[i + 19 + n]) && n < 127) n++;
            snprintf(entry_def, 128, "%.*s", (int)n, s + i + 19);
        }
        if (!cg_scan_word_at(s, i, "__global__")) {
            i++;
            continue;
        }
        size_t k = cg_scan_decl_end(s, i);
        if (s[k] != '{') { /* a declaration */
            i = k;
            continue;
        }
        size_t close = k; /* the parameter list: the last parenthesis of the header, and the name before it */
        while (close > i && s[close] != ')') close--;
        int depth = 0;
        size_t p = close;
        for (; p > i; p--) {
            if (s[p] == ')') depth++;
            if (s[p] == '(' && --depth == 0) break;
        }
        size_t ne = p;
        while (ne > i && (s[ne - 1] == ' ' || s[ne - 1] == '\n' || s[ne - 1] == '\t')) ne--;
        size_t ns = ne;
        while (ns > i && cg_scan_ident(s[ns - 1])) ns--;
        snprintf(e->written, sizeof e->written, "%.*s", (int)(ne - ns), s + ns);
        snprintf(e->name, sizeof e->name, "%s", strcmp(e->written, "DSCC_ENTRY") == 0 ? entry_def : e->written);
        e->open = k;
        e->end = cg_scan_brace_end(s, k);
        *at = e->end;
        return true;
    }
    *at = strlen(s);
    return false;
}

/* Whether s[a, b) calls DSCC_PDL_WAIT() outside comments and literals. */
static bool calls_wait(const char *s, size_t a, size_t b) {
    for (size_t i = cg_scan_find_word(s, a, b, "DSCC_PDL_WAIT"); i < b; i = cg_scan_find_word(s, i + 13, b, "DSCC_PDL_WAIT")) {
        size_t k = i + 13;
        while (s[k] == ' ') k++;
        if (s[k] == '(') return true;
    }
    return false;
}

bool cg_kernel_waits(const char *src, const char *fn) {
    char def[128] = "";
    Entry e;
    for (size_t at = 0; next_entry(src, &at, def, &e);)
        if (strcmp(e.name, fn) == 0) return calls_wait(src, e.open, e.end);
    return false;
}

bool cg_pdl_early(const DsccTune *t) { return tune_on(t ? t->pdl_early : NULL, false); }

char *cg_pdl_prologue(Arena *a, const char *src, const DsccTune *t) {
    const char *pro = cg_pdl_early(t) ? CG_PDL_PROLOGUE_EARLY : CG_PDL_PROLOGUE;
    StrBuf b;
    sb_init(&b);
    char def[128] = "";
    Entry e;
    size_t from = 0;
    for (size_t at = 0; next_entry(src, &at, def, &e);) {
        if (strcmp(e.written, "DSCC_ENTRY") == 0 || calls_wait(src, e.open, e.end)) continue;
        size_t put = e.open + 1, i = put; /* after the brace; where only a comment follows it, after the next line's indentation */
        bool code = false;
        while (src[i] && src[i] != '\n' && !code) {
            size_t j = cg_scan_skip_lit(src, i);
            code = j == i && src[i] != ' ' && src[i] != '\t';
            i = j != i ? j : i + 1;
        }
        if (!code && src[i] == '\n') {
            size_t n = i + 1;
            while (src[n] == ' ') n++;
            if (src[n] != '#') put = n; /* not before a directive (#pragma unroll) */
        }
        sb_printf(&b, "%.*s", (int)(put - from), src + from);
        sb_printf(&b, put == e.open + 1 ? " %s " : "%s ", pro);
        from = put;
    }
    sb_puts(&b, src + from);
    char *out = arena_strdup(a, b.data ? b.data : "");
    sb_free(&b);
    return out;
}
