/* models.h — private to the dscc driver: finding model files by name.
 *
 * A model argument that names an existing file, or holds a '/' or ends in
 * ".dsl", is a path. Anything else is a model name, looked up as NAME.dsl
 * in the search path: each directory of $DSCC_MODEL_PATH (':'-separated),
 * then the installed models, <prefix>/share/dscc/models, found from the
 * executable's own location (/proc/self/exe, so an installed tree can be
 * moved); the dscc of a build tree also searches its source tree's
 * models/. */
#ifndef DSCC_DRIVER_MODELS_H
#define DSCC_DRIVER_MODELS_H

#include "support/support.h"

/* The search path's existing directories, in order; *n gets the count. */
const char **driver_model_dirs(Arena *a, int *n);

/* The file a MODEL argument names: `arg` itself when it is a path, else
 * DIR/arg.dsl from the first directory that has it. NULL after reporting
 * where it looked and which models exist there. */
const char *driver_resolve_model(Arena *a, DiagEngine *d, const char *arg);

/* The model file, in the search path, whose `model NAME for "TYPE", ...;`
 * declaration lists model_type (a checkpoint's config.json "model_type"),
 * the first directory winning and files in name order within one. NULL
 * after reporting the model types the search path does describe. */
const char *driver_find_model_for_type(Arena *a, DiagEngine *d, const char *model_type);

#endif
