dim B;
input x: f32[B, 4];
// expected-error@+1 {{cannot assign to undefined variable 'h'}}
h = x;
output y = x;
