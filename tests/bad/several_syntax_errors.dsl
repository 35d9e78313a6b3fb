// Three independent syntax errors, all reported in one run.
dim B;
// expected-error@+1 {{unexpected '='}}
let = 3;
input x: f32[B, 4];
// expected-error@+1 {{unexpected ')'}}
let y = silu(x));
// expected-error@+1 {{unexpected integer}}
output 5 = x;
