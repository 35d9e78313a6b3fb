/* support.h — the pieces every stage shares: the arena that owns a
 * compilation, diagnostics with source locations, a string-keyed map, a
 * growable string, and files read and written safely.
 *
 * One arena per compilation owns the AST, the IR, interned strings and the
 * diagnostics; it is freed once. Building with -DDSCC_ARENA_MALLOC makes every
 * arena allocation a separate malloc so AddressSanitizer sees each object.
 * Library code never exits: it reports through a DiagEngine and returns a
 * status; only main() picks the exit code. */
#ifndef DSCC_SUPPORT_H
#define DSCC_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- arena ------------------------------------------------------------ */

typedef struct Arena Arena;

Arena *arena_new(void);                             /* NULL only on OOM */
void arena_free(Arena *a);                          /* frees everything; NULL ok */
void *arena_alloc(Arena *a, size_t n);              /* zeroed, 16-byte aligned; aborts on OOM */
void *arena_realloc(Arena *a, void *p, size_t old, size_t n); /* grows a block */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Grow-by-doubling array stored in an arena: ARENA_PUSH(a, arr, n, cap, v). */
#define ARENA_PUSH(ar, arr, n, cap, v)                                           \
    do {                                                                         \
        if ((n) == (cap)) {                                                      \
            size_t ncap_ = (cap) ? (size_t)(cap) * 2 : 8;                        \
            (arr) = arena_realloc((ar), (arr), sizeof(*(arr)) * (size_t)(cap),   \
                                  sizeof(*(arr)) * ncap_);                       \
            (cap) = ncap_;                                                       \
        }                                                                        \
        (arr)[(n)++] = (v);                                                      \
    } while (0)

/* ---- string-keyed map (strmap.c), in an arena ------------------------ */

/* Strings to values of one size (vsize bytes), a chained hash table grown
 * as it fills. Keys are not copied: they must live as long as the map
 * (arena or interned strings). Values start zeroed and keep their address. */
typedef struct StrMapEntry StrMapEntry;
typedef struct {
    Arena *a;
    StrMapEntry **tab;
    size_t mask, count; /* buckets - 1 (once made), entries */
    size_t vsize;
} StrMap;

void strmap_init(StrMap *m, Arena *a, size_t vsize);
void *strmap_get(const StrMap *m, const char *key);           /* its value, or NULL */
void *strmap_getn(const StrMap *m, const char *key, size_t n); /* the key is key[0..n) */
/* The value under key, added (zeroed, *fresh = true) if absent; fresh may be NULL. */
void *strmap_put(StrMap *m, const char *key, bool *fresh);

/* ---- growable string (heap, not arena: used for output text) ---------- */

typedef struct {
    char *data; /* always NUL-terminated once anything is appended */
    size_t len, cap;
} StrBuf;

void sb_init(StrBuf *sb);
void sb_free(StrBuf *sb);
void sb_putc(StrBuf *sb, char c);
void sb_puts(StrBuf *sb, const char *s);
void sb_putn(StrBuf *sb, const char *s, size_t n);
void sb_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap);
/* Appends s as a double-quoted string with C escapes for ", \ and controls. */
void sb_put_quoted(StrBuf *sb, const char *s);
/* Appends the shortest decimal text that reads back as exactly d; always
 * contains '.', 'e', "inf" or "nan" so it never reads back as an integer. */
void sb_put_double(StrBuf *sb, double d);

/* ---- source locations and diagnostics --------------------------------- */

typedef struct {
    const char *file; /* interned in the arena; NULL = unknown */
    int line, col;    /* 1-based; 0 = unknown */
} SrcLoc;

typedef enum {
    DIAG_ERROR,   /* the input is wrong; the run fails */
    DIAG_WARNING, /* suspicious but accepted */
    DIAG_NOTE,    /* attached to the previous error or warning */
} DiagLevel;

typedef struct Diag {
    DiagLevel level;
    SrcLoc loc;
    char *msg;
    struct Diag *next;
} Diag;

typedef struct DiagEngine DiagEngine;

/* Diagnostics are printed to `out` as they are reported (NULL = keep them
 * silently, for tests) and also kept in a list. Colour is used only when
 * `out` is a TTY and NO_COLOR is unset; diag_set_color overrides. */
DiagEngine *diag_new(Arena *a, FILE *out);
void diag_set_color(DiagEngine *d, bool on);
/* Registers the text of a file so diagnostics can show its line and a caret.
 * The text is copied into the arena. */
void diag_add_source(DiagEngine *d, const char *file, const char *text, size_t len);
void diag_report(DiagEngine *d, DiagLevel lv, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_vreport(DiagEngine *d, DiagLevel lv, SrcLoc loc, const char *fmt, va_list ap);
/* diag_error(d, loc, fmt, ...); loc may be a compound literal. */
#define diag_error(d, ...) diag_report((d), DIAG_ERROR, __VA_ARGS__)
#define diag_warning(d, ...) diag_report((d), DIAG_WARNING, __VA_ARGS__)
#define diag_note(d, ...) diag_report((d), DIAG_NOTE, __VA_ARGS__)
int diag_error_count(const DiagEngine *d);
const Diag *diag_first(const DiagEngine *d); /* in report order */
/* After this many errors further ones are counted but not printed. */
void diag_set_max_errors(DiagEngine *d, int n);

/* ---- files (fileio.c): bounded inputs, outputs that replace only theirs */

#define FILE_TEXT_MAX ((int64_t)64 << 20) /* model, import, config, IR, index */

typedef enum {
    FILE_OK,          /* open: a regular file within the size limit */
    FILE_ERRNO,       /* open or fstat failed: FileIn.err says why */
    FILE_NOT_REGULAR, /* a directory, FIFO, device or socket (FileIn.mode) */
    FILE_TOO_BIG,     /* over the caller's limit (FileIn.size) */
} FileStatus;

typedef struct {
    int fd;        /* read-only descriptor when FILE_OK, else -1 */
    int64_t size;  /* st_size */
    unsigned mode; /* st_mode */
    int err;       /* errno when FILE_ERRNO */
} FileIn;

/* Opens path to read: a regular file of at most max bytes (max < 0: any
 * size). Never blocks, even on a FIFO with no writer. Thread-safe. */
FileStatus file_open_in(const char *path, int64_t max, FileIn *f);
/* What went wrong, as "is not a regular file (a FIFO)", "cannot read: ...". */
const char *file_status_text(FileStatus st, const FileIn *f, int64_t max, char *buf, size_t n);
/* file_open_in that reports "PATH: error: <why>"; the fd, or -1. */
int file_open_checked(DiagEngine *d, const char *path, int64_t max, int64_t *size);
/* Reads up to n bytes (fewer only at end of file or on error; errno then). */
size_t file_read_fd(int fd, void *buf, size_t n);
/* Reads a whole regular file of at most FILE_TEXT_MAX bytes into an arena
 * buffer (NUL-terminated); NULL after reporting "FILE: error: ...". */
char *read_file_text(Arena *a, DiagEngine *d, const char *path, size_t *len_out);
/* The same for a stream (standard input), reported under `name`. */
char *read_stream_text(Arena *a, DiagEngine *d, FILE *f, const char *name, size_t *len_out);

typedef struct {
    const void *data;
    size_t len;
} FileChunk;

/* Writes the chunks, in order, as the content of path. A regular file (or a
 * new one) is replaced atomically: a temporary beside it, renamed over it.
 * A symlink is followed to its final target, which is replaced (the link
 * stays a link). A character device or FIFO is written in place. Returns 0
 * or an errno value (EISDIR for a directory). Thread-safe. */
int file_write(const char *path, const FileChunk *chunks, int n);

/* ---- checked sizes ---------------------------------------------------- */

/* The one place element counts and byte sizes are multiplied and added:
 * true and *out = a*b (a+b) when the result fits int64 and neither operand
 * is negative; false (and *out = INT64_MAX) otherwise. Callers report a
 * located error on false. */
static inline bool size_mul(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, out)) {
        *out = INT64_MAX;
        return false;
    }
    return true;
}
static inline bool size_add(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, out)) {
        *out = INT64_MAX;
        return false;
    }
    return true;
}

/* ---- internal-error checks (compiler bugs, not user errors) ---------- */

void dscc_internal_error(const char *file, int line, const char *msg) __attribute__((noreturn));
#define IR_ASSERT(c)                                                             \
    do {                                                                         \
        if (!(c)) dscc_internal_error(__FILE__, __LINE__, "assertion failed: " #c); \
    } while (0)
#define IR_UNREACHABLE() dscc_internal_error(__FILE__, __LINE__, "unreachable")


/* ---- tuning switches (tune.def) ---------------------------------------- */

/* Every DSCC_* tuning switch's text (NULL: unset), one field per line of
 * tune.def. Filled once by a main (tune_read_env) and passed to the
 * library (CgGenOptions.tune, GpuOptions.tune); a zeroed struct is every
 * switch unset, the defaults. tune_check, beside the read, refuses a BOOL
 * switch's bad value once for all; the other kinds are checked where they
 * act, with the message naming them. */
typedef struct {
#define TUNE(NAME, field, kind, values, deflt, doc) const char *field;
#include "support/tune.def"
#undef TUNE
} DsccTune;

typedef enum {
    TUNE_BOOL,  /* 0 or 1 */
    TUNE_LEVEL, /* a small integer, each named in the values */
    TUNE_INT,   /* a count in the values' range */
    TUNE_WORD,  /* one of the values' words */
    TUNE_LIST,  /* comma-separated key=value items (DSCC_SKINNY, DSCC_EXPERT_TMA), after a level for some */
    TUNE_PATH,  /* a file */
} TuneKind;
typedef struct {
    const char *name;   /* "DSCC_MLA_QREG" */
    size_t offset;      /* of its field in DsccTune */
    TuneKind kind;
    const char *values, *deflt, *doc;
} TuneInfo;
extern const TuneInfo tune_table[];
extern const int tune_count;
/* The one reader: t's fields from the environment (getenv's strings, so
 * valid until that variable is set again: read again after a setenv). */
void tune_read_env(DsccTune *t);
/* Whether every BOOL switch of t is unset, empty, 0 or 1; false, with an
 * error naming each that is not and its values, otherwise (on d; NULL:
 * on stderr). A main calls it after tune_read_env, before t reaches the
 * library, which then reads a BOOL switch with tune_on and no check of its
 * own. */
bool tune_check(const DsccTune *t, DiagEngine *d);
/* A BOOL switch's value v (tune_check has passed it): deflt where unset or
 * empty, else whether it is not 0. */
bool tune_on(const char *v, bool deflt);
/* The switch's entry in tune_table by its full name, or NULL. */
const TuneInfo *tune_find(const char *name);
/* The table as `dscc --help-tuning` prints it. */
void tune_print_help(FILE *out);

#endif
