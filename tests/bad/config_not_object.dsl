// ARGS: --config tests/bad/config_not_object.json
// "rope_scaling": "yarn" where an object is expected: an error naming the
// key, not a silent fallback to the `absent` values.
param rope_factor: float = 40.0 from "rope_scaling.factor" absent 1.0;
param rope_type: str = "yarn" from "rope_scaling.type" absent "default";
dim B;
input x: f32[B, 4];
output y = x * rope_factor;
