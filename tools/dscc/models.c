/* models.c — model files by name: the search path ($DSCC_MODEL_PATH, the
 * installed share/dscc/models beside the executable, a build tree's source
 * models/), NAME -> NAME.dsl, and a checkpoint's model_type -> the model
 * file whose `model NAME for "TYPE"` declaration lists it. The declaration
 * is found by a small scanner (comments, strings, brackets), not the
 * frontend, so a directory of models is searched without lowering any. */
#include "tools/dscc/models.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DSCC_MODELS_REL /* the installed models, relative to the executable's directory (or absolute) */
#define DSCC_MODELS_REL "../share/dscc/models"
#endif

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Appends dir (canonical) unless missing or already listed. */
static void add_dir(Arena *a, const char ***v, int *n, int *cap, const char *dir) {
    char real[PATH_MAX];
    if (!*dir || !realpath(dir, real) || !is_dir(real)) return;
    for (int i = 0; i < *n; i++)
        if (strcmp((*v)[i], real) == 0) return;
    ARENA_PUSH(a, *v, *n, *cap, arena_strdup(a, real));
}

const char **driver_model_dirs(Arena *a, int *n) {
    const char **v = NULL;
    int cap = 0;
    *n = 0;
    const char *env = getenv("DSCC_MODEL_PATH");
    if (env) {
        char *copy = arena_strdup(a, env), *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) add_dir(a, &v, n, &cap, t);
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0; /* the executable's directory: <prefix>/bin when installed */
        add_dir(a, &v, n, &cap, DSCC_MODELS_REL[0] == '/' ? DSCC_MODELS_REL : arena_printf(a, "%s/%s", exe, DSCC_MODELS_REL));
#if defined(DSCC_BUILD_DIR) && defined(DSCC_SOURCE_MODELS)
        char build[PATH_MAX];
        if (realpath(DSCC_BUILD_DIR, build) && strcmp(build, exe) == 0) add_dir(a, &v, n, &cap, DSCC_SOURCE_MODELS);
#endif
    }
    return v;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* The .dsl files of dir (full paths), sorted by name. */
static const char **dsl_files(Arena *a, const char *dir, int *n) {
    const char **v = NULL;
    int cap = 0;
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".dsl") == 0 && e->d_name[0] != '.') {
            const char *p = arena_printf(a, "%s/%s", dir, e->d_name);
            if (is_file(p)) ARENA_PUSH(a, v, *n, cap, p);
        }
    }
    closedir(dp);
    if (*n > 1) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* "a, b, c": the model names (file stems) in dirs, for error messages. */
static const char *list_models(Arena *a, const char **dirs, int ndirs) {
    StrBuf sb;
    sb_init(&sb);
    for (int i = 0; i < ndirs; i++) {
        int n;
        const char **f = dsl_files(a, dirs[i], &n);
        for (int k = 0; k < n; k++) {
            const char *base = strrchr(f[k], '/') + 1;
            sb_printf(&sb, "%s%.*s", sb.len ? ", " : "", (int)(strlen(base) - 4), base);
        }
    }
    const char *s = arena_strdup(a, sb.len ? sb.data : "none");
    sb_free(&sb);
    return s;
}

static const char *join_dirs(Arena *a, const char **dirs, int n) {
    StrBuf sb;
    sb_init(&sb);
    for (int i = 0; i < n; i++) sb_printf(&sb, "%s%s", i ? ", " : "", dirs[i]);
    const char *s = arena_strdup(a, sb.len ? sb.data : "");
    sb_free(&sb);
    return s;
}

/* Reports that the search path has no directory at all. */
static void no_dirs(DiagEngine *d, const char *what) {
    diag_error(d, ((SrcLoc){0}),
               "%s: no model directory: DSCC_MODEL_PATH names none and there is no share/dscc/models beside this "
               "dscc (is it installed?); give the path of a .dsl file",
               what);
}

const char *driver_resolve_model(Arena *a, DiagEngine *d, const char *arg) {
    size_t l = strlen(arg);
    if (strchr(arg, '/') || (l > 4 && strcmp(arg + l - 4, ".dsl") == 0) || is_file(arg) || !*arg) return arg;
    int n;
    const char **dirs = driver_model_dirs(a, &n);
    for (int i = 0; i < n; i++) {
        const char *p = arena_printf(a, "%s/%s.dsl", dirs[i], arg);
        if (is_file(p)) return p;
    }
    if (n == 0) {
        no_dirs(d, arena_printf(a, "model '%s'", arg));
        return NULL;
    }
    diag_error(d, ((SrcLoc){0}),
               "model '%s' not found: no %s.dsl in %s (models there: %s); give the path of a .dsl file or add its "
               "directory to DSCC_MODEL_PATH",
               arg, arg, join_dirs(a, dirs, n), list_models(a, dirs, n));
    return NULL;
}

/* ---- the `model NAME for "TYPE", ...;` declaration ------------------------ */

typedef struct {
    const char *s, *end;
} Scan;

/* Skips blanks and comments. */
static void skip_space(Scan *c) {
    while (c->s < c->end) {
        if (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r') c->s++;
        else if (c->s + 1 < c->end && c->s[0] == '/' && c->s[1] == '/') {
            while (c->s < c->end && *c->s != '\n') c->s++;
        } else if (c->s + 1 < c->end && c->s[0] == '/' && c->s[1] == '*') {
            const char *e = c->s + 2;
            while (e + 1 < c->end && !(e[0] == '*' && e[1] == '/')) e++;
            c->s = e + 1 < c->end ? e + 2 : c->end;
        } else return;
    }
}

static bool is_ident(char ch, bool first) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (!first && ch >= '0' && ch <= '9');
}

typedef enum { TOK_END, TOK_IDENT, TOK_STRING, TOK_PUNCT } TokKind;

/* The next token: its kind, text (identifiers, strings with \" and \\
 * resolved) or character (punctuation). */
static TokKind next_tok(Arena *a, Scan *c, const char **text, char *ch) {
    skip_space(c);
    if (c->s >= c->end) return TOK_END;
    const char *b = c->s;
    if (is_ident(*b, true)) {
        while (c->s < c->end && is_ident(*c->s, false)) c->s++;
        *text = arena_strndup(a, b, (size_t)(c->s - b));
        return TOK_IDENT;
    }
    if (*b == '"') {
        StrBuf sb;
        sb_init(&sb);
        for (c->s++; c->s < c->end && *c->s != '"' && *c->s != '\n'; c->s++) {
            if (*c->s == '\\' && c->s + 1 < c->end) c->s++;
            sb_putc(&sb, *c->s);
        }
        if (c->s < c->end && *c->s == '"') c->s++;
        *text = arena_strdup(a, sb.len ? sb.data : "");
        sb_free(&sb);
        return TOK_STRING;
    }
    *ch = *c->s++;
    return TOK_PUNCT;
}

/* Whether the model file at path declares model_type among its `for`
 * types; *name gets the declared model name. Unreadable files say no. */
static bool declares_type(Arena *a, const char *path, const char *model_type, const char **name, StrBuf *seen) {
    DiagEngine *quiet = diag_new(a, NULL);
    size_t len = 0;
    const char *text = read_file_text(a, quiet, path, &len);
    if (!text) return false;
    Scan c = {text, text + len};
    int depth = 0;
    bool start = true; /* at the start of a top-level item */
    for (;;) {
        const char *t = NULL;
        char ch = 0;
        TokKind k = next_tok(a, &c, &t, &ch);
        if (k == TOK_END) return false;
        if (k == TOK_IDENT && start && depth == 0 && strcmp(t, "model") == 0) {
            if (next_tok(a, &c, name, &ch) != TOK_IDENT) return false;
            if (next_tok(a, &c, &t, &ch) != TOK_IDENT || strcmp(t, "for") != 0) return false;
            bool found = false;
            while (next_tok(a, &c, &t, &ch) == TOK_STRING) {
                sb_printf(seen, "%s%s for \"%s\"", seen->len ? ", " : "", *name, t);
                found = found || strcmp(t, model_type) == 0;
                if (next_tok(a, &c, &t, &ch) != TOK_PUNCT || ch != ',') break;
            }
            return found;
        }
        if (k == TOK_PUNCT && (ch == '{' || ch == '(' || ch == '[')) depth++;
        if (k == TOK_PUNCT && (ch == '}' || ch == ')' || ch == ']') && depth > 0) depth--;
        start = k == TOK_PUNCT && depth == 0 && (ch == ';' || ch == '}');
    }
}

const char *driver_find_model_for_type(Arena *a, DiagEngine *d, const char *model_type) {
    int ndirs;
    const char **dirs = driver_model_dirs(a, &ndirs);
    if (ndirs == 0) {
        no_dirs(d, arena_printf(a, "model_type '%s'", model_type));
        return NULL;
    }
    StrBuf seen;
    sb_init(&seen);
    for (int i = 0; i < ndirs; i++) {
        int n;
        const char **files = dsl_files(a, dirs[i], &n);
        for (int k = 0; k < n; k++) {
            const char *name = NULL;
            if (declares_type(a, files[k], model_type, &name, &seen)) {
                sb_free(&seen);
                return files[k];
            }
        }
    }
    diag_error(d, ((SrcLoc){0}),
               "no model for model_type '%s': none of the models in %s declares it (they declare: %s); give the model file",
               model_type, join_dirs(a, dirs, ndirs), seen.len ? seen.data : "no model types");
    sb_free(&seen);
    return NULL;
}
