dim B;
// expected-error@+1 {{unterminated /* comment}}
/* this comment never ends
input x: f32[B, 4];
