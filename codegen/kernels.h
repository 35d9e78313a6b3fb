/* kernels.h — CUDA kernels written as CUDA files (codegen/kernels/, .cuh),
 * embedded in the binary at build time (cmake/embed_kernels.cmake).
 *
 * A kernel file is plain CUDA C++ whose parameters are named macros: its
 * entry point is `DSCC_ENTRY`, and each tunable or shape parameter is a
 * `#define` the file documents at its top (and may default with #ifndef).
 * cg_kernel_instance() prepends those definitions, so the text NVRTC
 * compiles is the file itself below a few #define lines: readable in
 * `--emit=cuda`, and the entry point carries its group's and phase's name
 * (`g12_rmsnorm_quant`), never a positional printf hole. */
#ifndef DSCC_CODEGEN_KERNELS_H
#define DSCC_CODEGEN_KERNELS_H

#include <stddef.h>

#include "support/support.h"

typedef struct {
    const char *name; /* file name without .cuh */
    const char *text; /* NUL-terminated */
    size_t len;
} CgKernelFile;

/* The embedded files, ended by a NULL name (generated). */
extern const CgKernelFile cg_kernel_files[];

/* The text of codegen/kernels/NAME.cuh, or NULL when there is no such file. */
const char *cg_kernel_file(const char *name);

/* One macro definition for cg_kernel_instance: `#define name value`. */
typedef struct {
    const char *name;
    const char *value;
} CgDefine;

/* "#define DSCC_ENTRY <entry>\n#define <d.name> <d.value>\n...\n" followed
 * by the file's text, in the arena; NULL when the file does not exist. */
char *cg_kernel_instance(Arena *a, const char *file, const char *entry, const CgDefine *defs, int ndefs);

#endif
