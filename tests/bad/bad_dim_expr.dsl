dim B, S;
// expected-error@+1 {{dimension expressions are products of dims and ints; '+' is not allowed}}
input x: f32[B + 1, S];
