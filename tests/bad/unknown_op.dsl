dim B;
input x: f32[B, 4];
// expected-error@+1 {{unknown function or op 'gelu'}}
output y = gelu(x);
