dim B;
input x: f32[B, 4];
// expected-error@+1 {{unexpected ';'}}
let y = silu(x) *;
output o = x;
