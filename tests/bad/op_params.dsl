// Parameters an op divides by or takes the log of: zero, negative or
// non-finite values are errors naming the attribute, not NaN values later.
dim B, S;
input x: f32[B, S, 2, 8];
input pos: i32[B, S];
weight w: f32[8] = "w";
let huge = 1e300 * 1e300;
// expected-error@+1 {{assertion failed: huge is not finite}}
assert isfinite(huge) && !isfinite(1.5), "huge is not finite";
assert isfinite(1.5) && !isfinite(huge) && !isfinite(huge - huge), "never fails";
// expected-error@+1 {{rmsnorm: eps=0 must be a positive finite number}}
let a = rmsnorm(x, w, eps=0.0);
// expected-error@+1 {{rmsnorm: eps=inf must be a positive finite number}}
let b = rmsnorm(x, w, eps=huge);
// expected-error@+1 {{rope: theta=-1 must be a positive finite number}}
let c = rope(x, pos, theta=-1.0, interleave=true);
// expected-error@+1 {{rope: factor=0 must be a positive finite number}}
let d = rope(x, pos, theta=10000.0, interleave=true, factor=0.0);
// expected-error@+1 {{rope: original_max_position=0 must be at least 1}}
let e = rope(x, pos, theta=10000.0, interleave=true, factor=4.0, original_max_position=0);
// expected-error@+1 {{rope: beta_slow=0 must be a positive finite number}}
let f = rope(x, pos, theta=10000.0, interleave=true, factor=4.0, beta_slow=0.0);
// expected-error@+1 {{attention: scale must be finite}}
let g = attention(x, x, x, scale=huge, causal=true);
