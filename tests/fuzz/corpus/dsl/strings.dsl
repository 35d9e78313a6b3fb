param name: str = "x";
let s = "a{name}b{{c}}";
let bad = "{missing}";
dim B;
input v: f32[B];
output o = v;
