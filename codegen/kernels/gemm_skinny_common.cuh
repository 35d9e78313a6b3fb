// gemm_skinny_common.cuh — the parameters the skinny-M GEMM files
// (gemm_skinny.cuh, gemm_skinny2.cuh, gemm_skinny_bulk.cuh) share, their
// meaning in each file's opening comment. Each file includes it twice:
//
// * at its top, where it stands in for a module's prelude when the file is
//   compiled on its own (test_codegen, tools/kernel_cubins.c): args.cuh and
//   mma.cuh, and the operands and shape a module's instance defines
//   (codegen/gen_gemm.c), over the Args `a`; the shape is 7168 x 7168 unless
//   the file sets SK_N or SK_K (and its own stand-ins: SK_GRID, SK_PER)
//   above the include, under the same `#ifndef SK_X`;
// * at its end, after `#define SK_COMMON_END`, where it #undefs every
//   parameter any of the three takes (an instance #undefs those it defined,
//   a file its defaults and internal macros), so that the next instance of
//   a module starts from none.
#ifndef SK_COMMON_END
#ifndef SK_X // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#include "mma.cuh"
#define SK_M (a.sym[0])
#ifndef SK_N
#define SK_N 7168LL
#endif
#ifndef SK_K
#define SK_K 7168LL
#endif
#define SK_XS(m, kb) (((const float *)a.t[1])[(kb) * SK_M + (m)])
#define SK_W ((const unsigned char *)a.t[2])
#define SK_WS(i) (((const float *)a.t[3])[i])
#define SK_STORE(i, v) (((float *)a.t[4])[i] = (v))
#define SK_X ((const unsigned char *)a.t[0]) // (last: the files test it)
#endif
#else
#undef SK_COMMON_END
#undef DSCC_ENTRY
#undef SK_M
#undef SK_MROWS
#undef SK_N
#undef SK_K
#undef SK_RB
#undef SK_U
#undef SK_MINB
#undef SK_SPLIT
#undef SK_STAGES
#undef SK_GRID
#undef SK_PER
#undef SK_PIPE
#undef SK_PF
#undef SK_EARLY
#undef SK_BF16
#undef SK_X
#undef SK_W
#undef SK_XS
#undef SK_WS
#undef SK_STORE
#undef SK_LAST
#endif
