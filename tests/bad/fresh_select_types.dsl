// fresh_select's two operands must have one type: it yields one of them.
dim B, S, T;
input x: f32[B, S, 4];
let c = kv_cache(x, name="c");
let y = slice(x, axis=-1, start=0, len=2);
output o = fresh_select(x, y); // expected-error {{operands must have one type}}
