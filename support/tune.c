/* tune.c — the DSCC_* tuning switches: their table, the one reader, help.
 *
 * tune.def lists each switch once; everything here is generated from it.
 * tune_read_env is the only getenv of a tuning switch in the library, and
 * only the mains call it (the CLI, the tests, the benchmarks): codegen and
 * the runtime take the filled struct, so a run's switches are one value a
 * caller can see, set and pass, not process state read anywhere. */
#include "support/support.h"

#include <stdlib.h>
#include <string.h>

const TuneInfo tune_table[] = {
#define TUNE(NAME, field, kind, values, deflt, doc) {"DSCC_" #NAME, offsetof(DsccTune, field), TUNE_##kind, values, deflt, doc},
#include "support/tune.def"
#undef TUNE
};
const int tune_count = (int)(sizeof tune_table / sizeof tune_table[0]);
_Static_assert(sizeof(DsccTune) == sizeof tune_table / sizeof tune_table[0] * sizeof(const char *), "a field per line of tune.def");

void tune_read_env(DsccTune *t) {
    for (int i = 0; i < tune_count; i++) *(const char **)((char *)t + tune_table[i].offset) = getenv(tune_table[i].name);
}

bool tune_check(const DsccTune *t, DiagEngine *d) {
    Arena *own = d ? NULL : arena_new(); /* no engine: the errors on stderr, as a main reports them */
    if (own) d = diag_new(own, stderr);
    bool ok = true;
    for (int i = 0; i < tune_count; i++) {
        const char *v = *(const char *const *)((const char *)t + tune_table[i].offset);
        if (tune_table[i].kind != TUNE_BOOL || !v || !*v || strcmp(v, "0") == 0 || strcmp(v, "1") == 0) continue;
        diag_error(d, (SrcLoc){0}, "%s is '%s': expected 0 or 1", tune_table[i].name, v);
        ok = false;
    }
    arena_free(own);
    return ok;
}

bool tune_on(const char *v, bool deflt) { return v && *v ? strcmp(v, "0") != 0 : deflt; }

const TuneInfo *tune_find(const char *name) {
    for (int i = 0; i < tune_count; i++)
        if (strcmp(tune_table[i].name, name) == 0) return &tune_table[i];
    return NULL;
}

void tune_print_help(FILE *out) {
    static const char *const kinds[] = {"bool", "level", "count", "word", "list", "path"};
    fprintf(out, "Tuning switches (environment variables, read once at start; docs/USAGE.md tells more):\n");
    for (int i = 0; i < tune_count; i++) {
        const TuneInfo *e = &tune_table[i];
        fprintf(out, "  %-24s %s\n  %-24s   %s: %s; unset: %s\n", e->name, e->doc, "", kinds[e->kind], e->values, e->deflt);
    }
}
