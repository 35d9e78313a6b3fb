// `dscc help tuning` and `dscc --help-tuning` list the DSCC_* switches from
// support/tune.def: each with its line of doc, what it takes and what unset
// means; `dscc --help` points at them. (tests/unit/test_tune.c checks the
// list against docs/USAGE.md.) A BOOL switch at another value than 0 or 1 is
// a usage error that names it, before any command runs (tune_check); the
// help still prints.
// RUN: dscc help tuning | grep -A1 -E "^  DSCC_(GEMM_TILE|MLA_QREG|GEMM_TABLE) "
// RUN: dscc --help-tuning | sed -n 1p
// RUN: dscc --help | grep -- --help-tuning
// RUN: DSCC_ROUTE_FUSE=2 dscc run models/deepseek_v3.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// RUN: DSCC_ROUTE_FUSE=2 DSCC_MLA_DSM=yes dscc compile %s; echo "exit=$?"
// RUN: DSCC_ROUTE_FUSE=2 dscc help tuning | grep -c "^  DSCC_ROUTE_FUSE "
// CHECK: DSCC_GEMM_TILE           the FP8/BF16 tensor-core tile of every GEMM
// CHECK-NEXT: word: wgmma|mma; unset: wgmma (mma with f32 storage)
// CHECK: DSCC_MLA_QREG
// CHECK-NEXT: level: 0|1|2; unset: 0
// CHECK: DSCC_GEMM_TABLE          the GEMM table (none: no table)
// CHECK-NEXT: path: FILE|none; unset: runtime/gemm_table.txt (built in)
// CHECK-NEXT: Tuning switches (environment variables, read once at start; docs/USAGE.md tells more):
// CHECK-NEXT: --help-tuning  list the DSCC_* tuning switches
// CHECK-NEXT: dscc: error: DSCC_ROUTE_FUSE is '2': expected 0 or 1
// CHECK-NEXT: exit=2
// CHECK-NEXT: dscc: error: DSCC_ROUTE_FUSE is '2': expected 0 or 1
// CHECK-NEXT: dscc: error: DSCC_MLA_DSM is 'yes': expected 0 or 1
// CHECK-NEXT: exit=2
// CHECK-NEXT: 1
input x: f32[1];
output y = x;
