/* frontend.h — the DSL frontend's public interface: model file in, IR graph
 * out. Parsing, imports, parameter binding (config.json, --set) and lowering
 * all happen behind fe_compile_file; errors go to the DiagEngine located in
 * the model file, the config file or the command line. */
#ifndef DSCC_FRONTEND_H
#define DSCC_FRONTEND_H

#include "ir/ir.h"

typedef struct {
    const char *name, *value; /* one --set name=value */
} FeSetting;

typedef struct {
    const char *config_path;  /* Hugging Face config.json, or NULL */
    const FeSetting *sets;
    int nsets;
} FeOptions;

/* Reads, parses and lowers a model file (following imports) to an IR graph.
 * Returns NULL if any error was reported. The graph is not yet verified. */
IrGraph *fe_compile_file(Arena *a, DiagEngine *d, const char *path, const FeOptions *opt);
/* The same for text in memory; `file` names it in diagnostics, and imports
 * resolve relative to its directory. */
IrGraph *fe_compile_string(Arena *a, DiagEngine *d, const char *file, const char *text, size_t len,
                           const FeOptions *opt);

/* Whether the model file at path (following its imports) declares a
 * `param` named `name`, from its parse alone (nothing is bound or
 * lowered): *declares. False, with nothing reported, when the file does
 * not parse (compiling it reports why). */
bool fe_declares_param(Arena *a, const char *path, const char *name, bool *declares);

#endif
