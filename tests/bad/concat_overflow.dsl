// A concat whose axis adds up past int64 (each part is at the size limit).
dim B;
input x: fp8e4m3[B, 1152921504606846976];
// expected-error@+1 {{concat: the concat axis overflows int64}}
let y = concat(x, x, x, x, x, x, x, x, axis=1);
