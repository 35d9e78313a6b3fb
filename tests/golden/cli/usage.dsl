// The driver's help, version and exit codes (0 ok, 1 input, 2 usage).
// RUN: dscc --help
// CHECK: usage: dscc <command> [options] [args]
// CHECK: compile     parse and lower a model file to verified IR; print IR or DOT
// CHECK: 2  usage error (unknown option, missing argument)
// RUN: dscc help stats
// CHECK: usage: dscc stats MODEL [options]
// CHECK: --seq N            sequence length for FLOPs (default 4096)
// RUN: dscc compile --bogus models/deepseek_v3.dsl; echo "exit=$?"
// CHECK: dscc compile: error: unknown option '--bogus'
// CHECK: exit=2
// RUN: dscc compile; echo "exit=$?"
// CHECK: dscc compile: error: missing MODEL (a .dsl file or a model name)
// CHECK: exit=2
// RUN: dscc frobnicate; echo "exit=$?"
// CHECK: dscc: error: unknown command 'frobnicate'
// CHECK: exit=2
// RUN: dscc compile models/deepseek_v3.dsl --passes=dce,fp8-quantize; echo "exit=$?"
// CHECK: --passes: error: unknown pass 'fp8-quantize' (passes: shape-infer, fold-constants, dce, cse, fp8-quant, merge-linears, node-limited-routing, microbatch-overlap, fuse, plan-memory)
// CHECK: exit=2
// RUN: dscc compile models/deepseek_v3.dsl --passes='fp8-quant{act-tile=64}'; echo "exit=$?"
// CHECK: --passes: error: fp8-quant: only act-tile=128 and weight-block=128 (DeepSeek-V3's) are implemented
// CHECK: exit=1
// RUN: dscc compile models/deepseek_v3.dsl --passes='plan-memory{batch=x}'; echo "exit=$?"
// CHECK: --passes: error: plan-memory: option batch expects an integer, got 'x'
// CHECK: exit=2
// RUN: dscc stats models/deepseek_v3.dsl --seq 0; echo "exit=$?"
// CHECK: --seq expects an integer in 1..16777216, got '0'
// CHECK: exit=2
// RUN: dscc compile no/such/file.dsl; echo "exit=$?"
// CHECK: no/such/file.dsl: error: cannot read: No such file or directory
// CHECK: exit=1
// RUN: dscc compile models/deepseek_v3.dsl --set bogus; echo "exit=$?"
// CHECK: --set expects NAME=VALUE, got 'bogus'
// CHECK: exit=2
// RUN: dscc compile models/deepseek_v3.dsl --set num_hidden_layer=2; echo "exit=$?"
// CHECK: dscc: error: --set: no parameter named 'num_hidden_layer'; did you mean 'num_hidden_layers'?
// CHECK: exit=1
// RUN: dscc compile models/deepseek_v3.dsl -o /nonexistent-dir/x.ir; echo "exit=$?"
// CHECK: /nonexistent-dir/x.ir: error: cannot write output
// CHECK: exit=3
// --version: the version, the checkout, NVRTC, NVTX and the driver (found or not)
// RUN: dscc --version
// CHECK: dscc 0.1.0
// CHECK-NEXT: git:
// CHECK-NEXT: NVRTC:
// CHECK-NEXT: NVTX:
// CHECK-NEXT: CUDA driver:
// RUN: dscc --version | wc -l
// CHECK-NEXT: 5
// A model by name: the build tree's dscc finds the source tree's models
// RUN: dscc stats deepseek_v3 --set num_hidden_layers=4 | head -n 1 | sed 's|(.*/models/|(.../models/|'
// CHECK: model deepseek_v3 (.../models/deepseek_v3.dsl), batch 1, sequence 4096
// RUN: dscc compile deepseek_v4; echo "exit=$?"
// CHECK: dscc: error: model 'deepseek_v4' not found: no deepseek_v4.dsl in
// CHECK-NEXT: exit=1
