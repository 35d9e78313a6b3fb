// Diagnostics: file:line:col, the source line and a caret; syntax errors
// recover at ';' so all three are reported; `0..n` is a range.
// RUN: dscc compile %s
// EXIT: 1
// CHECK: diagnostics.dsl:14:18: error: unexpected ';', expected an expression
// CHECK-NEXT: let a = silu(x) *;
// CHECK-NEXT:                  ^
// CHECK: diagnostics.dsl:16:1: error: unexpected 'let', expected ';'
// CHECK: diagnostics.dsl:17:15: error: unexpected identifier 'y', expected ',' or ')'
// CHECK-NOT: error
dim B;
input x: f32[B, 4];
for i in 0..2 { }
let a = silu(x) *;
let b = 1
let c = 2;
let d = max(x y);
