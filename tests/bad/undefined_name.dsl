dim B;
input x: f32[B, 4];
// expected-error@+1 {{undefined name 'hidden_sise'}}
let y = reshape(x, [B, hidden_sise]);
output o = x;
