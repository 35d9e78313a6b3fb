// dscc tokenize / detokenize on the small tokenizer of tests/fixtures/tokenizer
// (trained like DeepSeek-V3's): ids, exact round trips, and the usage and
// input errors a user meets (exit 2 for usage, 1 for bad input).
// RUN: dscc tokenize --tokenizer tests/fixtures/tokenizer '<｜begin▁of▁sentence｜>Hi<｜User｜><think>'
// CHECK: [0, 42, 75, 2002, 2000]
// RUN: printf 'héllo 世界\r\n\tx' | dscc tokenize --tokenizer tests/fixtures/tokenizer | dscc detokenize --tokenizer tests/fixtures/tokenizer - | od -An -v -tx1 | tr -d ' \n'; echo
// CHECK: 68c3a96c6c6f20e4b896e7958c0d0a0978
// RUN: dscc tokenize --tokenizer tests/fixtures/tokenizer ''; echo '[]' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: []
// CHECK-NEXT: exit=0
// RUN: dscc tokenize 'Hi'; echo "exit=$?"
// CHECK: dscc tokenize: error: --tokenizer DIR is required
// CHECK: exit=2
// RUN: echo '[1]' | dscc detokenize; echo "exit=$?"
// CHECK: dscc detokenize: error: --tokenizer DIR is required
// CHECK: exit=2
// RUN: dscc tokenize --tokenizer; echo "exit=$?"
// CHECK: dscc tokenize: error: unknown option or missing value: '--tokenizer'
// CHECK: exit=2
// RUN: dscc tokenize --tokenizer tests/fixtures/tokenizer a b; echo "exit=$?"
// CHECK: dscc tokenize: error: expected at most one TEXT, got 2
// CHECK: exit=2
// RUN: dscc detokenize --tokenizer tests/fixtures/tokenizer ids.json; echo "exit=$?"
// CHECK: dscc detokenize: error: the ids come from standard input ('-'), got 'ids.json'
// CHECK: exit=2
// RUN: dscc tokenize --tokenizer tests/golden 'x'; echo "exit=$?"
// CHECK: tests/golden/tokenizer.json: error: cannot read: No such file or directory
// CHECK: exit=1
// RUN: dscc tokenize --tokenizer tests/fixtures/tiny_bf16 'x'; echo "exit=$?"
// CHECK: tests/fixtures/tiny_bf16/tokenizer.json: error: cannot read
// CHECK: exit=1
// RUN: printf 'ok \xed\xa0\x80' | dscc tokenize --tokenizer tests/fixtures/tokenizer -; echo "exit=$?"
// CHECK: error: tokenizer: the text is not valid UTF-8 (byte 3, 0xed)
// CHECK: exit=1
// RUN: printf 'abc\xe4\xb8' | dscc tokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: error: tokenizer: the text is not valid UTF-8 (byte 3, 0xe4)
// CHECK: exit=1
// RUN: echo '{"ids": [1]}' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: <stdin>: error: expected a JSON array of token ids
// CHECK: exit=1
// RUN: echo '[1, 2' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: <stdin>: error: expected a JSON array of token ids
// CHECK: exit=1
// RUN: echo '[5, "x"]' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: <stdin>: error: element 1 is not an integer id: "x"
// CHECK: exit=1
// RUN: echo '[5, 2.5]' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: <stdin>: error: element 1 is not an integer id: 2.5
// CHECK: exit=1
// RUN: echo '[0, 72, 99999]' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: error: detokenize: id 99999 (position 2) is not in the tokenizer (ids 0..2013)
// CHECK: exit=1
// RUN: echo '[-1]' | dscc detokenize --tokenizer tests/fixtures/tokenizer; echo "exit=$?"
// CHECK: error: detokenize: id -1 (position 0) is not in the tokenizer
// CHECK: exit=1
