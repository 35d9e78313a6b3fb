model ranges;
param n: int = 3;
dim B;
input x: f32[B, 6];
fn pair(t) { return silu(t), sigmoid(t); }
fn both(t) { let a, b = pair(t); return a + b, pair(b); }
let h = x;
for i in 0..n {
  if i == 0 { h = h * 2; } else if i == 1 { h = neg(h); } else { h = max(h, x); }
}
let p, q, r = split(h, [1, 2, 3], axis=-1);
output o = concat(r, q, p, axis=1);
