/* cmd_tokenize.c — `dscc tokenize` and `dscc detokenize`: a checkpoint's
 * tokenizer (runtime/tokenizer.h) from the command line. Ids travel as one
 * JSON array; text as raw bytes, so `detokenize` restores exactly what
 * `tokenize` read. */
#include "tools/dscc/driver.h"

#include "runtime/tokenizer.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* The whole of standard input (text for tokenize, JSON for detokenize),
 * at most 1 GiB. NULL after printing why. */
static char *read_stdin(const char *cmd, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0;) {
        n += got;
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) {
                fprintf(stderr, "dscc %s: error: standard input is larger than 1 GiB\n", cmd);
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, (cap *= 2) + 1);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (!buf || ferror(stdin)) {
        fprintf(stderr, "dscc %s: error: cannot read standard input\n", cmd);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void tok_help(FILE *o, bool de) {
    if (de)
        fprintf(o, "usage: dscc detokenize --tokenizer DIR [-]\n\n"
                   "Read a JSON array of token ids from standard input and write their text\n"
                   "exactly (special tokens included, no newline added).\n\n");
    else
        fprintf(o, "usage: dscc tokenize --tokenizer DIR [TEXT | -]\n\n"
                   "Print the token ids of TEXT (or of standard input, when TEXT is '-' or\n"
                   "absent) as one JSON array. No BOS is added: the chat template adds it.\n\n");
    fprintf(o, "options:\n"
               "  --tokenizer DIR   folder holding tokenizer.json (a checkpoint folder)\n"
               "  -h, --help        show this help\n\n"
               "The tokenizer must be byte-level BPE with Split pre-tokenizers, as DeepSeek-V3's;\n"
               "another configuration is refused with the field it cannot follow.\n");
}

/* Parses the common options; the index of the first operand, or -1 (with
 * *rc set) when the command is done. */
static int tok_options(int argc, char **argv, bool de, const char **dir, int *rc) {
    static const struct option longopts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        if (c == 't') *dir = optarg;
        else if (c == 'h') {
            tok_help(stdout, de);
            *rc = DSCC_EXIT_OK;
            return -1;
        } else {
            *rc = driver_usage_error(argv[0], "unknown option or missing value: '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (!*dir) {
        *rc = driver_usage_error(argv[0], "--tokenizer DIR is required");
        return -1;
    }
    if (argc - optind > 1) {
        *rc = driver_usage_error(argv[0], "expected at most one %s, got %d", de ? "'-'" : "TEXT", argc - optind);
        return -1;
    }
    if (de && optind < argc && strcmp(argv[optind], "-") != 0) {
        *rc = driver_usage_error(argv[0], "the ids come from standard input ('-'), got '%s'", argv[optind]);
        return -1;
    }
    return optind;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    int rc = DSCC_EXIT_OK, first = tok_options(argc, argv, false, &dir, &rc);
    if (first < 0) return rc;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtTokenizer *t = rt_tok_load(d, dir);
    size_t len = 0;
    char *in = NULL;
    const char *text = first < argc && strcmp(argv[first], "-") != 0 ? argv[first] : NULL;
    if (t && !text) text = in = read_stdin(argv[0], &len);
    else if (text) len = strlen(text);
    int32_t *ids = NULL;
    size_t n = 0;
    rc = !t ? DSCC_EXIT_INPUT : !text ? DSCC_EXIT_RUNTIME : rt_tok_encode(t, d, text, len, &ids, &n) ? DSCC_EXIT_OK : DSCC_EXIT_INPUT;
    if (rc == DSCC_EXIT_OK) {
        StrBuf sb;
        sb_init(&sb);
        sb_putc(&sb, '[');
        for (size_t i = 0; i < n; i++) sb_printf(&sb, "%s%d", i ? ", " : "", ids[i]);
        sb_puts(&sb, "]\n");
        if (!driver_write_output("-", sb.data, sb.len)) rc = DSCC_EXIT_RUNTIME;
        sb_free(&sb);
    }
    free(ids);
    free(in);
    rt_tok_free(t);
    arena_free(a);
    return rc;
}

/* The ids of a JSON array of integers; false after printing why. */
static bool parse_ids(const char *text, size_t len, int32_t **ids, size_t *n) {
    cJSON *j = cJSON_ParseWithLength(text, len);
    bool ok = cJSON_IsArray(j);
    if (!ok) fprintf(stderr, "<stdin>: error: expected a JSON array of token ids\n");
    *n = ok ? (size_t)cJSON_GetArraySize(j) : 0;
    *ids = malloc(sizeof(int32_t) * (*n + 1));
    size_t i = 0;
    for (const cJSON *e = ok ? j->child : NULL; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble) {
            char *s = cJSON_PrintUnformatted(e);
            fprintf(stderr, "<stdin>: error: element %zu is not an integer id: %.40s\n", i, s ? s : "?");
            free(s);
            ok = false;
            break;
        }
        (*ids)[i] = (int32_t)e->valuedouble;
    }
    cJSON_Delete(j);
    return ok;
}

int cmd_detokenize(int argc, char **argv) {
    const char *dir = NULL;
    int rc = DSCC_EXIT_OK;
    if (tok_options(argc, argv, true, &dir, &rc) < 0) return rc;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtTokenizer *t = rt_tok_load(d, dir);
    size_t len = 0, n = 0;
    char *in = t ? read_stdin(argv[0], &len) : NULL;
    int32_t *ids = NULL;
    StrBuf sb;
    sb_init(&sb);
    if (!t) rc = DSCC_EXIT_INPUT;
    else if (!in) rc = DSCC_EXIT_RUNTIME;
    else if (!parse_ids(in, len, &ids, &n) || !rt_tok_decode(t, d, ids, n, &sb)) rc = DSCC_EXIT_INPUT;
    else if (!driver_write_output("-", sb.data ? sb.data : "", sb.len)) rc = DSCC_EXIT_RUNTIME;
    sb_free(&sb);
    free(ids);
    free(in);
    rt_tok_free(t);
    arena_free(a);
    return rc;
}
