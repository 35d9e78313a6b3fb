// `dscc help tuning` and `dscc --help-tuning` list the DSCC_* switches from
// support/tune.def: each with its line of doc, what it takes and what unset
// means; `dscc --help` points at them. (tests/unit/test_tune.c checks the
// list against docs/USAGE.md.)
// RUN: dscc help tuning | grep -A1 -E "^  DSCC_(GEMM_TILE|MLA_QREG|GEMM_TABLE) "
// RUN: dscc --help-tuning | sed -n 1p
// RUN: dscc --help | grep -- --help-tuning
// CHECK: DSCC_GEMM_TILE           the FP8/BF16 tensor-core tile of every GEMM
// CHECK-NEXT: word: wgmma|mma; unset: wgmma (mma with f32 storage)
// CHECK: DSCC_MLA_QREG
// CHECK-NEXT: level: 0|1|2; unset: 0
// CHECK: DSCC_GEMM_TABLE          the GEMM table (none: no table)
// CHECK-NEXT: path: FILE|none; unset: runtime/gemm_table.txt (built in)
// CHECK-NEXT: Tuning switches (environment variables, read once at start; docs/USAGE.md tells more):
// CHECK-NEXT: --help-tuning  list the DSCC_* tuning switches
input x: f32[1];
output y = x;
