dim B;
input x: f32[B, 4];
// expected-error@+1 {{rmsnorm: expects 2 operands, got 1}}
output y = rmsnorm(x, eps=1e-6);
