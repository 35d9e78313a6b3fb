// ARGS: --set attn_impl=flash --config models/tiny/config.json
import "../../models/deepseek_v3.dsl";
