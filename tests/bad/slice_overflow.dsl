// A slice whose end overflows int64 is reported without computing it.
dim B;
input x: i32[B, 8];
// expected-error@+1 {{slice of 2 from 9223372036854775807 is outside axis 1 of i32[B,8]}}
let y = slice(x, axis=1, start=9223372036854775807, len=2);
// expected-error@+1 {{slice [6, 10) is outside axis 1 of i32[B,8]}}
let z = slice(x, axis=1, start=6, len=4);
