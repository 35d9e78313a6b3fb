// expected-error@+1 {{unterminated string literal}}
weight w: bf16[4, 4] = "model.embed_tokens.weight;
