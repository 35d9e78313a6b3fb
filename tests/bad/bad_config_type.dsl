// ARGS: --config tests/bad/bad_config_type.json
param hidden_size: int = 7168;
