// dscc run with text: honest defaults (weights required, the precision the
// checkpoint declares, the summary after generation), prompts through the
// small tokenizer fixture's chat template, streaming, stops, sampling, JSON.
// The fixture tokenizer's ids reach 2013: the tiny model gets vocab_size 2014.
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: no weights: give --weights DIR (a checkpoint) or --random-weights SEED
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --threads 2 2>&1
// CHECK: row 0: next token 948
// CHECK: ran 2 x
// CHECK-NEXT: weights tests/fixtures/tiny_bf16, precision bf16, backend cpu, device host CPU, 2 threads
// CHECK-NEXT: time to first token

// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_fp8 --tokens tests/fixtures/tiny_fp8/tokens.npy 2>&1 >/dev/null | grep weights
// CHECK: weights tests/fixtures/tiny_fp8, precision fp8, backend cpu
// The checkpoint's own config.json decides, not --config.
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_fp8 --config tests/fixtures/tiny_bf16/config.json --tokens tests/fixtures/tiny_fp8/tokens.npy 2>&1 >/dev/null | grep weights
// CHECK: weights tests/fixtures/tiny_fp8, precision fp8, backend cpu
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --prompt hi --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: tests/fixtures/tokenizer: error: the tokenizer has ids up to 2013 but the model's vocabulary has 1000 entries
// CHECK: exit=1
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --prompt hi; echo "exit=$?"
// CHECK: --prompt with --random-weights needs --tokenizer DIR
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --prompt hi --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: give one input: --prompt, --prompt-file, --chat or --tokens
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt hi --nproc 2; echo "exit=$?"
// CHECK: --nproc 2: several ranks need --backend cuda
// CHECK: exit=2
// RUN: RANK=1 WORLD_SIZE=2 dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt hi; echo "exit=$?"
// CHECK: rank 1 of 2 (torchrun): several ranks need --backend cuda
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt hi --temperature -1; echo "exit=$?"
// CHECK: --temperature expects a number in 0..100, got '-1'
// CHECK: exit=2
// The chat template around "Hello world" (bos, <｜User｜>, text, <｜Assistant｜>), then greedy ids.
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --max-new-tokens 8 --output-format json 2>&1
// CHECK: {"prompt_ids":[0,2002,1651,1621,2003],"output_ids":[529,529,529,1712,1408,1956,1956,1956],"text":" stream stream stream GPU
// CHECK-NEXT: generated 8 tokens (stopped by --max-new-tokens)
// CHECK-NEXT: weights random, seed 1, precision bf16, backend cpu
// --raw: the text alone; the text streams to stdout.
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --raw --max-new-tokens 4 --output-format json 2>/dev/null | cut -c1-60
// CHECK: {"prompt_ids":[1651,1621],"output_ids":[785,65,1217,1765]
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --max-new-tokens 8 --stop GPU 2>&1
// CHECK: stream stream stream
// CHECK-NEXT: generated 4 tokens (stopped by --stop)
// RUN: printf 'Hello world' | dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --prompt-file - --max-new-tokens 3 2>/dev/null
// CHECK: stream stream stream
// CHECK-NOT: GPU
// Sampling: the same seed twice gives the same ids; temperature 1 differs
// from greedy for some seed among four; top-k 1 is greedy.
// RUN: r() { dscc run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 2 --tokenizer tests/fixtures/tokenizer --prompt "Hello world" --max-new-tokens 6 --output-format json "$@" 2>/dev/null | sed 's/"text".*//'; }; g=$(r); a=$(r --temperature 1 --seed 9); b=$(r --temperature 1 --seed 9); [ -n "$a" ] && [ "$a" = "$b" ] && echo "same seed: same"; for s in 1 2 3 4; do [ "$(r --temperature 1 --top-p 0.95 --seed $s)" != "$g" ] && d=1; done; echo "sampled differs from greedy: ${d:-0}"; [ "$(r --temperature 1 --top-k 1 --seed 3)" = "$g" ] && echo "top-k 1: greedy"
// CHECK: same seed: same
// CHECK-NEXT: sampled differs from greedy: 1
// CHECK-NEXT: top-k 1: greedy
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy --output-format json; echo "exit=$?"
// CHECK: --raw, --stop, --tokenizer and --output-format json need --prompt or --prompt-file
// CHECK: exit=2
// --chat: two turns; the second reuses the cache for the first turn's ids
// and answers as a fresh run of the whole conversation (--raw) does.
// RUN: A="models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1 --tokenizer tests/fixtures/tokenizer --max-new-tokens 3"; d=$(mktemp -d); printf 'Hello world\nHow are you\n' | dscc run $A --chat > $d/out 2> $d/err; echo "exit=$?"; cat $d/err; head -1 $d/out; t2=$(sed -n 2p $d/out); rm -rf $d; fresh=$(dscc run $A --raw --prompt "<｜begin▁of▁sentence｜><｜User｜>Hello world<｜Assistant｜> stream stream stream<｜end▁of▁sentence｜><｜User｜>How are you<｜Assistant｜>" 2>/dev/null); [ -n "$t2" ] && [ "$t2" = "$fresh" ] && echo "turn 2 = fresh run"
// CHECK: exit=0
// CHECK-NEXT: generated 3 tokens (stopped by --max-new-tokens; 0 of 5 prompt tokens from the cache)
// CHECK-NEXT: generated 3 tokens (stopped by --max-new-tokens; 7 of 17 prompt tokens from the cache)
// CHECK: stream stream stream
// CHECK-NEXT: turn 2 = fresh run
// RUN: printf 'hi\n' | dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokenizer tests/fixtures/tokenizer --chat --output-format json; echo "exit=$?"
// CHECK: --chat renders each turn through the chat template as text: no --raw or --output-format json
// CHECK: exit=2
