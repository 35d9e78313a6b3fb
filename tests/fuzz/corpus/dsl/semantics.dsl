param n: int = 3;
assert n > 5, "too small";
for i in 0 .. n { let z = i / 2; }
fn f(a) { return f(a); }
let q = f(1);
