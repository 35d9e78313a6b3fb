// An op keyword that is not one of its attributes names the valid ones;
// an inexact int division and a bad interpolation are reported in the same run.
dim B;
input x: f32[B, 8];
weight n: f32[8] = "norm.weight";
// expected-error@+1 {{'rmsnorm' has no argument 'epsilon' (it takes: eps:f)}}
let y = rmsnorm(x, n, epsilon=1e-6);
// expected-error@+1 {{9 / 2 is not an integer; use float() for real division}}
let half = 9 / 2;
// expected-error@+1 {{refers to undefined name 'layer'}}
weight w: f32[8, 8] = "model.layers.{layer}.w";
output o = x;
