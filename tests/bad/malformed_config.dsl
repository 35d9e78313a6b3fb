// ARGS: --config tests/bad/malformed_config.json
param hidden_size: int = 7168;
