dim B;
weight a: bf16[4, 4] = "model.norm.weight";
// expected-error@+1 {{weight "model.norm.weight" declared as bf16[4,8] here but as bf16[4,4] before}}
weight b: bf16[4, 8] = "model.norm.weight";
