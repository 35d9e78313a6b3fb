param n_routed_experts: int = 250;
param n_group: int = 8;
// expected-error@+1 {{assertion failed: n_routed_experts must split evenly into n_group groups}}
assert n_routed_experts % n_group == 0, "n_routed_experts must split evenly into n_group groups";
