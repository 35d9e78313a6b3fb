// dscc run --trace: what it needs. The CPU executor times no kernels, so a
// trace there is a usage error (a GPU run's trace: tests/emu/trace.sh).
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --trace /nonexistent-dir/t.json; echo "exit=$?"
// CHECK: --trace needs --backend cuda (the CPU executor records no per-kernel times)
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --trace-steps 4; echo "exit=$?"
// CHECK: --trace-steps needs --trace FILE
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --trace t.json --trace-steps 0; echo "exit=$?"
// CHECK: --trace-steps expects an integer in 1..1073741824, got '0'
// CHECK: exit=2
// RUN: dscc run --help | grep -A1 -e '--trace-steps'
// CHECK: --trace-steps N        trace the first N steps only (default 256; the trace's metadata
// CHECK-NEXT: says how many were left out)
// --version says whether the NVTX ranges are built in (nvtx3 found at configure time)
// RUN: dscc --version | grep -c -e '^NVTX: ranges built in (nvtx3' -e '^NVTX: not built in (no nvtx3'
// CHECK: 1
