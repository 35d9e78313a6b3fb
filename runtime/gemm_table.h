/* gemm_table.h — which path runs a GEMM of a given shape, as measured
 * (private to runtime/).
 *
 * bench_gemm times each of DeepSeek-V3's linear shapes at several M on the
 * generated kernel (the skinny-M form at M <= 32, the tile above) and on
 * cuBLASLt, and writes what was faster as a table; the CUDA backend reads
 * one (DSCC_GEMM_TABLE=FILE, else the default measured on an H200, built
 * into dscc from runtime/gemm_table.txt) and asks it per GEMM and step.
 * Where it has no entry, the rule stands: cuBLASLt wherever it has an
 * algorithm for the shape.
 *
 * The text form, one entry a line ('#' starts a comment):
 *   arch 90                        optional, once: the compute capability the
 *                                  times are of (the table is not used elsewhere)
 *   fp8 N K M_LO M_HI CHOICE GEN_US LIB_US
 *                                  kind fp8 (block-scaled FP8) or bf16; rows
 *                                  M_LO..M_HI; CHOICE generated or cublaslt;
 *                                  the two times in microseconds, '-' if not run
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
} RtGemmChoice;

typedef struct {
    RtGemmKind kind;
    int64_t n, k, mlo, mhi;
    RtGemmChoice choice;
    double gen_us, lib_us; /* < 0: not measured */
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
/* Writes one entry line of the text form. */
void rt_gemm_table_write_entry(FILE *f, const RtGemmEntry *e);
/* The table built into dscc (runtime/gemm_table.txt), NUL-terminated. */
extern const char rt_gemm_table_default[];

#endif
