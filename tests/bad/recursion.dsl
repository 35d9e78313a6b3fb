dim B;
input x: f32[B, 4];
// expected-error@+1 {{calls nested deeper than 64}}
fn f(t) { return f(t); }
output y = f(x);
