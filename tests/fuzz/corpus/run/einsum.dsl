dim B, S;
input q: bf16[B, S, 2, 4];
weight w: bf16[2, 4, 6] = "w";
let t = transpose(einsum("bshd,hdc->bshc", q, w), [0, 2, 1, 3]);
output o = softmax(exp(neg(t)) * max(t, t), axis=-1);
