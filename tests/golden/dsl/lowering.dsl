// Lowering: loops unrolled, ifs resolved, fns inlined with their scope,
// weight names interpolated, a stacked weight, scalars folded into consts.
// RUN: dscc compile %s --passes=none
// CHECK: graph @lowering dims(B, S) {
// CHECK-NEXT: %0 = input {name="x"} : bf16[B,S,8]
// CHECK-NEXT: %1 = weight {name="layer.0.w"} : bf16[8,8] scope("block")
// CHECK-NEXT: %2 = linear %0, %1 : bf16[B,S,8] scope("block")
// CHECK-NEXT: %3 = const {value=0.5} : bf16[] scope("block")
// CHECK-NEXT: %4 = mul %2, %3 : bf16[B,S,8] scope("block")
// CHECK-NEXT: %5 = weight {name="layer.2.w"} : bf16[8,8] scope("block")
// CHECK: %9 = weight {name="ex.{e}.w", stack="e", count=3} : bf16[3,4,8]
// CHECK-NOT: layer.1.w
// CHECK: output %8 {name="y"}
model lowering;
param n: int = 3;
dim B, S;
input x: bf16[B, S, 8];
fn block(h, l) {
  weight w: bf16[8, 8] = "layer.{l}.w";
  return linear(h, w) * (1.0 / float(l + 2));
}
let h = x;
for l in 0 .. n {
  if l != 1 {
    h = block(h, l);
  }
}
weight ex[e: n]: bf16[4, 8] = "ex.{e}.w";
output y = h;
