dim B;
input x: f32[B, 4];
let y = silu(