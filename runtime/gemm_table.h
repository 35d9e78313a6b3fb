/* gemm_table.h — which path runs a GEMM of a given shape, as measured
 * (private to runtime/).
 *
 * bench_gemm times each of DeepSeek-V3's linear shapes at several M on the
 * generated kernel (the skinny-M form at M <= 32, the tile above), on the
 * FP8 TMA kernel (codegen/kernels/gemm_tma.cuh) and on cuBLASLt, and writes
 * what was fastest as a table; the CUDA backend reads one
 * (DSCC_GEMM_TABLE=FILE, else the default measured on an H200, built into
 * dscc from runtime/gemm_table.txt) and asks it per GEMM and step. Where
 * it has no entry, the rule stands: cuBLASLt wherever it has an
 * algorithm for the shape (on an H100 it ran V3's shapes at M >= 256 at
 * 1.6-3x the TMA kernel's TFLOPS), else the TMA kernel for FP8 at M >=
 * RT_GEMM_TMA_MIN_M (where the device has tensor maps and DSCC_GEMM_TMA
 * is not 0; 1.1-1.8x the tile there), else the generated tile.
 *
 * The text form, one entry a line ('#' starts a comment):
 *   arch 90                        optional, once: the compute capability the
 *                                  times are of (the table is not used elsewhere)
 *   fp8 N K M_LO M_HI CHOICE GEN_US LIB_US [TMA_US]
 *                                  kind fp8 (block-scaled FP8) or bf16; rows
 *                                  M_LO..M_HI; CHOICE generated, cublaslt or
 *                                  tma; the times in microseconds, '-' if not
 *                                  run (TMA_US: the TMA kernel's, fp8 only)
 * Entries of one kind and shape may not overlap in M. */
#ifndef DSCC_RT_GEMM_TABLE_H
#define DSCC_RT_GEMM_TABLE_H

#include <stdio.h>

#include "support/support.h"

typedef enum {
    RT_GEMM_FP8,  /* block-scaled FP8 linear */
    RT_GEMM_BF16, /* BF16 linear */
} RtGemmKind;

typedef enum {
    RT_GEMM_RULE,      /* no entry: the fixed rule decides */
    RT_GEMM_GENERATED, /* dscc's generated kernel */
    RT_GEMM_CUBLASLT,  /* cuBLASLt */
    RT_GEMM_TMA,       /* the FP8 TMA kernel (gemm_tma.cuh) */
} RtGemmChoice;

/* Rows from which the rule (no table entry) runs an FP8 GEMM on the TMA kernel. */
#define RT_GEMM_TMA_MIN_M 256

typedef struct {
    RtGemmKind kind;
    int64_t n, k, mlo, mhi;
    RtGemmChoice choice;
    double gen_us, lib_us; /* < 0: not measured */
    double tma_us;         /* the TMA kernel's (< 0 or 0: not measured) */
} RtGemmEntry;

typedef struct {
    int arch; /* 0: any device */
    RtGemmEntry *e;
    int n;
} RtGemmTable;

/* Parses the text form; `file` names it in errors ("FILE:LINE: ..."). NULL after reporting. */
RtGemmTable *rt_gemm_table_parse(const char *text, size_t len, const char *file, DiagEngine *d);
/* Reads and parses a file. NULL after reporting. */
RtGemmTable *rt_gemm_table_load(const char *path, DiagEngine *d);
void rt_gemm_table_free(RtGemmTable *t);
/* The table's choice for y[M, N] = x[M, K] . w[N, K]^T (RT_GEMM_RULE: no entry; t may be NULL). */
RtGemmChoice rt_gemm_table_pick(const RtGemmTable *t, RtGemmKind kind, int64_t M, int64_t N, int64_t K);
/* Whether cuBLASLt runs the GEMM: the table's choice, else the rule
 * (cuBLASLt wherever it has an algorithm); never where it has none. */
bool rt_gemm_use_cublaslt(const RtGemmTable *t, RtGemmKind kind, int64_t M, int64_t N, int64_t K, bool has_algorithm);
/* Whether the FP8 TMA kernel may run the GEMM: the table's choice, else the rule (M >= RT_GEMM_TMA_MIN_M; the
 * executor asks only where cuBLASLt does not take the GEMM). */
bool rt_gemm_use_tma(const RtGemmTable *t, int64_t M, int64_t N, int64_t K);
/* path's table (DSCC_GEMM_TABLE's text, DsccTune.gemm_table; NULL or "":
 * unset), else the built-in table; NULL without one
 * (`none`, or one measured on another architecture than sm) or after
 * reporting (*bad set). explain: the user's table also gets a note on
 * how to run without it when it does not read, and a warning when it was
 * measured on another architecture (the first of a run's openers says
 * so, the others need not). */
RtGemmTable *rt_gemm_table_open(int sm, const char *path, DiagEngine *d, bool explain, bool *bad);
/* Writes one entry line of the text form. */
void rt_gemm_table_write_entry(FILE *f, const RtGemmEntry *e);
/* The table built into dscc (runtime/gemm_table.txt), NUL-terminated. */
extern const char rt_gemm_table_default[];

#endif
