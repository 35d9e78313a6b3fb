// --emit=plan prints what codegen decided: each kernel's ops with the values
// it stores (and their dtype) or computes where they are read, its phases
// (the skinny forms to 8 and 32 rows, the tile above) and the library call
// that may replace them; a tuning switch from the environment reaches it
// (DSCC_GEMM_SKINNY=0: the tile at every row count), and a bad value is an
// error naming the switch (before codegen: tune_check).
// RUN: dscc compile %s --emit=plan
// RUN: DSCC_GEMM_SKINNY=0 dscc compile %s --emit=plan
// RUN: DSCC_GEMM_SKINNY=2 dscc compile %s --emit=plan || true
// CHECK: 2 kernels in 2 modules
// CHECK-NEXT: plan.dsl:33:9), module g0_rmsnorm_silu_mul
// CHECK-NEXT: %2 rmsnorm          computed where read
// CHECK-NEXT: %3 silu             computed where read
// CHECK-NEXT: %4 mul              stored bf16
// CHECK-NEXT: phase p0_rmsnorm_silu_mul: 256 threads a block, 0 bytes of shared memory, programmatic launch
// CHECK-NEXT: kernel g1_linear_cast
// CHECK-NEXT: %6 linear           computed where read
// CHECK-NEXT: %7 cast             stored f32
// CHECK-NEXT: phase p0_linear_bf16_skinny2_m8: 256 threads a block,
// CHECK-NEXT: at most 32 rows, above 8 rows, programmatic launch
// CHECK-NEXT: above 32 rows, programmatic launch
// CHECK-NEXT: library: cuBLASLt BF16 GEMM instead of phase 0 to 2
// CHECK: kernel g1_linear_cast
// CHECK-NEXT: %6 linear
// CHECK-NEXT: %7 cast
// CHECK-NEXT: bytes of shared memory, programmatic launch
// CHECK-NEXT: library: cuBLASLt BF16 GEMM instead of phase 0
// CHECK-NEXT: dscc: error: DSCC_GEMM_SKINNY is '2': expected 0 or 1
dim B, S;
input x: bf16[B, S, 64];
weight g: bf16[64] = "g";
weight w: bf16[128, 64] = "w";
let h = rmsnorm(x, g, eps=1e-6);
let m = h * silu(h);
output y = cast(linear(m, w), f32);
