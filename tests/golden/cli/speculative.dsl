// dscc run --speculative mtp: the MTP module of tests/fixtures/tiny_mtp as
// the draft model. Greedy output must equal plain greedy decoding token for
// token, and here also the continuation transformers computed
// (reference.json: its tokens, and the 8 verify steps and 7 of 12 drafts
// accepted that the fixture script's simulation of this scheme counts, row 0
// keeping 4 of 5, row 1 3 of 7: rows accept independently).
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 12 --precision bf16 --speculative mtp
// CHECK: row 0: next token 326
// CHECK-NEXT: row 1: next token 462
// CHECK-NEXT: row 0 generated: 326 43 378 422 20 78 148 236 399 433 55 494
// CHECK-NEXT: row 1 generated: 462 39 369 177 197 352 369 211 210 313 210 427
// CHECK-NEXT: speculative mtp (cpu backend): 2 x 12 new tokens in 8 verify steps, 1.44 tokens per step per row; drafts accepted 7 of 12 (58.3%)
// CHECK-NEXT: drafts accepted per row: 4/5 3/7
// Plain and speculative greedy decoding agree, bf16 and fp8, on the
// fixture and on random weights with a batch of 3 (whose random MTP module
// has every draft rejected: the rollback path at every step).
// RUN: for p in bf16 fp8; do a=$(dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 15 --precision $p 2>/dev/null | grep generated); b=$(dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 15 --precision $p --speculative mtp 2>/dev/null | grep generated); [ -n "$a" ] && [ "$a" = "$b" ] && echo "fixture $p: same"; done
// CHECK: fixture bf16: same
// CHECK-NEXT: fixture fp8: same
// RUN: for p in bf16 fp8; do a=$(dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 7 --tokens tests/fixtures/tiny_mtp/batch3.npy --generate 9 --precision $p 2>/dev/null | grep generated); b=$(dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 7 --tokens tests/fixtures/tiny_mtp/batch3.npy --generate 9 --precision $p --speculative mtp 2>/dev/null | grep generated); [ -n "$a" ] && [ "$a" = "$b" ] && echo "random $p: same, $(echo "$b" | wc -l) rows"; done
// CHECK: random bf16: same, 3 rows
// CHECK-NEXT: random fp8: same, 3 rows
// Sampling: the speculative-sampling rule keeps the distribution of plain
// sampling. 1,000 copies of one prompt, two tokens each at temperature 0.25
// (the second is the draft's, kept or replaced by the rule: 14% kept):
// the (first, second) pairs of plain and speculative sampling must pass a
// two-sample chi-square test at the 1e-6 level, while plain sampling at
// temperature 0.35, a control, must fail it.
// RUN: f=tests/fixtures/tiny_mtp; g() { dscc run models/deepseek_v3.dsl --weights $f --tokens $f/rows1000.npy --generate 2 "$@" 2>/dev/null | awk '/generated/ {print $4, $5}'; }; d=$(mktemp -d); g --temperature 0.25 --seed 1 > $d/plain; g --temperature 0.25 --seed 2 --speculative mtp > $d/spec; g --temperature 0.35 --seed 3 > $d/hotter; echo "speculative: $(tests/tools/chi2_two_sample.sh $d/plain $d/spec)"; echo "control: $(tests/tools/chi2_two_sample.sh $d/plain $d/hotter)"; wc -l < $d/spec; rm -rf $d
// CHECK: speculative: same
// CHECK-NEXT: control: differ
// CHECK-NEXT: 1000
// Sampling: reproducible for a seed.
// RUN: for i in 1 2; do dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 12 --speculative mtp --temperature 0.7 --seed 5 2>/dev/null | md5sum; done | uniq | wc -l
// CHECK: 1
// Errors: a checkpoint without the MTP layer; bad options.
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --generate 4 --speculative mtp; echo "exit=$?"
// CHECK: tests/fixtures/tiny_bf16: error: the checkpoint has no MTP layer: tensor 'model.layers.3.embed_tokens.weight' is missing
// CHECK: exit=1
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --speculative eagle; echo "exit=$?"
// CHECK: --speculative expects mtp, got 'eagle'
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --speculative mtp; echo "exit=$?"
// CHECK: --speculative mtp needs --tokens or a prompt and --generate N (N >= 1)
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 3 --speculative mtp --top-k 5; echo "exit=$?"
// CHECK: --speculative mtp needs --tokens or a prompt and --generate N (N >= 1), in one process, and takes no --chat, --prefill, --dump-logits, --top-k or --top-p
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 3 --speculative mtp --temperature -1; echo "exit=$?"
// CHECK: --temperature expects a number in 0..100, got '-1'
// CHECK: exit=2
// --prompt: the text and --output-format json of plain runs (prompt_ids,
// output_ids, text, stop_reason, timings; greedy: the same ids and text),
// with the acceptance figures added; --stop ends it as it ends plain runs.
// RUN: A="models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --max-new-tokens 8"; p=$(dscc run $A --prompt "Hello world" --output-format json 2>/dev/null); s=$(dscc run $A --prompt "Hello world" --output-format json --speculative mtp 2>/dev/null); [ -n "$p" ] && [ "${p%%,\"timings\"*}" = "${s%%,\"timings\"*}" ] && echo "same ids and text"; echo "${s#*\"timings\"}" | sed -E 's/:[0-9][0-9.e+-]*/:N/g'
// CHECK: same ids and text
// CHECK-NEXT: :{"load_s":N,"compile_s":N,"time_to_first_token_s":N,"prefill_tokens":N,"prefill_tokens_per_s":N,"decode_tokens":N,"decode_tokens_per_s":N},"speculative":{"draft":"mtp","verify_steps":N,"drafted":N,"accepted":N,"acceptance_rate":N,"tokens_per_step":N}}
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --max-new-tokens 12 --output-format json --speculative mtp --temperature 3 --seed 4 2>/dev/null | sed 's/"text".*"speculative"/"speculative"/'
// CHECK: {"prompt_ids":[0,2002,1651,1621,2003],"output_ids":[1592,664,1833,881,225,327,521,1392,1544,1752,129,679],"speculative":{"draft":"mtp","verify_steps":7,"drafted":7,"accepted":5,"acceptance_rate":0.7142857142857143,"tokens_per_step":1.7142857142857142}}
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --max-new-tokens 8 --stop GPU --speculative mtp 2>&1
// CHECK: stream stream stream
// CHECK-NEXT: generated 4 tokens (stopped by --stop)
// CHECK-NEXT: speculative mtp (cpu backend): 1 x 4 new tokens in 3 verify steps
// The two step graphs are the DSL's own: `dscc compile` (any --emit) shows
// them with --set mtp_hidden=true (verify) and --set mtp_draft=true (draft).
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --set mtp_draft=true | grep -E "= input|output" | sed "s/%[0-9]*/%N/g"
// CHECK: input {name="tokens"} : i32[B,S]
// CHECK-NEXT: input {name="positions"} : i32[B,S]
// CHECK-NEXT: input {name="h_main"} : bf16[B,S,96]
// CHECK-NEXT: output %N {name="mtp_logits"}
// CHECK-NOT: output
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --set mtp_hidden=true | grep -E "output" | sed "s/%[0-9]*/%N/g"
// CHECK: output %N {name="logits"}
// CHECK-NEXT: output %N {name="hidden"}
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --set mtp_draft=true --set mtp=true; echo "exit=$?"
// CHECK: error: assertion failed: mtp_draft is the MTP module alone: not with mtp or mtp_hidden
// CHECK: exit=1
