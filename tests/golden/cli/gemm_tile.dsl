// The generated GEMM tile: Hopper's wgmma by default, the mma.sync one
// with DSCC_GEMM_TILE=mma; any other value is an error that names it.
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cuda | grep -o "fp8_linear: tensor cores ([^)]*)" | sort -u
// CHECK: fp8_linear: tensor cores (wgmma m64n64k32 E4M3)
// RUN: DSCC_GEMM_TILE=mma dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cuda | grep -o "fp8_linear: tensor cores ([^)]*)" | sort -u
// CHECK: fp8_linear: tensor cores (mma m16n8k32 E4M3)
// RUN: DSCC_GEMM_TILE=wgmma dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cuda | grep -c "m64n64k32.f32.e4m3.e4m3" | awk '{ print ($1 > 0 ? "wgmma present" : "no wgmma") }'
// CHECK: wgmma present
// RUN: DSCC_GEMM_TILE=bogus dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cuda > /dev/null; echo "exit=$?"
// CHECK: error: DSCC_GEMM_TILE is 'bogus': expected 'wgmma' or 'mma'
// CHECK-NEXT: exit=1
