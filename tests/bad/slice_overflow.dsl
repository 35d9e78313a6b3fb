// A slice whose end overflows int64 is reported without computing it.
dim B;
input x: i32[B, 8];
// expected-error@+1 {{slice of 2 from 9223372036854775807 is outside axis 1 of i32[B,8]}}
let y = slice(x, axis=1, start=9223372036854775807, len=2);
// expected-error@+1 {{slice [6, 10) is outside axis 1 of i32[B,8]}}
let z = slice(x, axis=1, start=6, len=4);
// A symbolic axis has no known extent: only its last position can be sliced.
dim S;
input w: f32[B, S, 4];
// expected-error@+1 {{cannot slice symbolic axis 1 of f32[B,S,4] other than its last position (start=-1, len=1)}}
let u = slice(w, axis=1, start=0, len=1);
// expected-error@+1 {{slice of 2 from -9 (counted from the end) is outside axis 1 of i32[B,8]}}
let v = slice(x, axis=1, start=-9, len=2);
let last = slice(w, axis=1, start=-1, len=1);
