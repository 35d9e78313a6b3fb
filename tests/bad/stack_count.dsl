// A stack count out of range says what it got.
dim B;
// expected-error@+1 {{a stack count must be an int in 1..1000000, got 0}}
weight a[e: 0]: bf16[4] = "layers.{e}.a";
// expected-error@+1 {{a stack count must be an int in 1..1000000, got 2000000}}
weight b[e: 2000 * 1000]: bf16[4] = "layers.{e}.b";
// expected-error@+1 {{a stack count must be an int in 1..1000000, got -3}}
weight c[e: -3]: bf16[4] = "layers.{e}.c";
// expected-error@+1 {{a stack count must be an int in 1..1000000, got a float}}
weight f[e: 2.5]: bf16[4] = "layers.{e}.f";
