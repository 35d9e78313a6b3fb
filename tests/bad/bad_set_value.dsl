// ARGS: --set hidden_size=wide
param hidden_size: int = 7168;
