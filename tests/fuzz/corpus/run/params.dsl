param eps: float = 1e-6 from "rms_norm_eps", "layer_norm_eps" absent 1e-5;
param kind: str = "yarn" from "rope_scaling.type" absent "none";
param on: bool = kind == "yarn";
assert on || !on, "tautology {kind}";
dim B, S;
input t: i32[B, S];
weight e[x: 2 * 2]: bf16[8, 4] = "emb.{x}.{kind}";
weight tbl: bf16[100, 4] = "tbl";
output o = embedding(tbl, t);
