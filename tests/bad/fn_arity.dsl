dim B;
input x: f32[B, 4];
fn mlp(h, l) { return h; }
// expected-error@+1 {{'mlp' takes 2 arguments, got 1}}
output y = mlp(x);
