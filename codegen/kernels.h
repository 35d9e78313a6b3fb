/* kernels.h — CUDA kernels written as CUDA files (codegen/kernels/, .cuh),
 * embedded in the binary at build time (cmake/embed_kernels.cmake).
 *
 * A kernel file is plain CUDA C++ whose parameters are named macros: its
 * entry point is `DSCC_ENTRY`, and each tunable or shape parameter is a
 * `#define` the file documents at its top (and may default with #ifndef).
 * cg_kernel_instance() prepends those definitions, so the text NVRTC
 * compiles is the file itself below a few #define lines: readable in
 * `--emit=cuda`, and the entry point carries its phase's and form's name
 * (`p0_fp8_linear_skinny_m8`), never a positional printf hole. A file of the
 * folder with no entry point is a prelude the kernel files share (hopper.cuh:
 * Hopper's inline-PTX primitives; args.cuh: the argument block, which every
 * module starts with): a kernel file's line `#include "x.cuh"` becomes
 * x.cuh's text in the instance, which guards it to one copy a module; or a
 * fragment, a phase's body the generator writes in (gemm_tile.cuh:
 * cg_kernel_fragment). */
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

/* "#define DSCC_ENTRY <entry>\n#define <d.name> <d.value>\n...\n", the
 * file's text (its includes of embedded files written in), then an #undef of
 * each of those names, so the instances of a module keep their parameters
 * apart; in the arena; NULL when the file does not exist. */
char *cg_kernel_instance(Arena *a, const char *file, const char *entry, const CgDefine *defs, int ndefs);

/* A fragment file (gemm_tile.cuh: the body of a phase, no entry point of its
 * own) as cg_kernel_instance writes a kernel file, without DSCC_ENTRY: the
 * #defines, the text, the #undefs, for the generator to write inside the
 * function it opened; NULL when the file does not exist. */
char *cg_kernel_fragment(Arena *a, const char *file, const CgDefine *defs, int ndefs);

/* The embedded prelude codegen/kernels/NAME.cuh as an include writes it in
 * (under a `// ---- codegen/kernels/NAME.cuh` line, its own includes written
 * in), for a source that is no kernel file: the module prelude (args.cuh,
 * codegen/gen.c), a test's kernels; in the arena; NULL when there is no
 * such file. */
char *cg_kernel_prelude(Arena *a, const char *name);

/* Programmatic dependent launch (runtime/cuda.h's rt_cuda_launch_pdl): a
 * kernel opts in by calling DSCC_PDL_WAIT() (griddepcontrol.wait, from
 * the module prelude, codegen/gen.c) in the body of its entry point, in
 * every thread, on every path, before it touches anything another kernel
 * of the step writes: before the wait it may read only its weights (and
 * prefetch them). DSCC_PDL_LAUNCH_DEPENDENTS() (griddepcontrol.
 * launch_dependents) lets the kernel after it start its own prologue. The
 * runtime launches a phase programmatically only when its entry opts in
 * (CgPhase.pdl, from cg_kernel_waits): every other kernel, a kernel file
 * that does not call the wait, the libraries', runs after the one before
 * it has finished, as always. */

/* Whether the __global__ function fn of module source src (its name as
 * defined, or a kernel file's DSCC_ENTRY as `#define DSCC_ENTRY fn` names
 * it) calls DSCC_PDL_WAIT() in its own body, outside comments. */
bool cg_kernel_waits(const char *src, const char *fn);

/* The statement cg_pdl_prologue puts first in an entry point; with
 * DSCC_PDL_EARLY=1 the early one, which lets the next kernel launch before
 * the wait: that kernel's prologue (its weights) may then run under the tail
 * of the kernel before this one too. The order stays whole: the next kernel
 * waits for this one to complete, which waits for the one before it. A
 * kernel's trigger never takes room from its own CTAs (the next launches
 * once every CTA of this one has triggered, so has been placed). */
#define CG_PDL_PROLOGUE "DSCC_PDL_WAIT(); DSCC_PDL_LAUNCH_DEPENDENTS();"
#define CG_PDL_PROLOGUE_EARLY "DSCC_PDL_LAUNCH_DEPENDENTS(); DSCC_PDL_WAIT();"

/* Whether DSCC_PDL_EARLY (t->pdl_early; t NULL: unset) is 1: the kernel
 * files the generator picks take it as their own define, the entries it
 * writes the early prologue. */
bool cg_pdl_early(const DsccTune *t);

/* src with CG_PDL_PROLOGUE as the first statement of every entry point the
 * generator wrote itself (any name but a kernel file's DSCC_ENTRY) that
 * does not call the wait yet: such a kernel does nothing before it, so it
 * may be launched programmatically, and the next kernel may start its
 * prologue (its weights) while it runs. Before the first statement, on its
 * line (line numbers stay). A kernel file opts in on its own. */
char *cg_pdl_prologue(Arena *a, const char *src, const DsccTune *t);

#endif
