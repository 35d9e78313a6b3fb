// Messages that say what is wrong (issue 16): an empty token array is named
// as such (not blamed on --passes), --weights naming a folder that does not
// exist says so, a .npy of format 2.0 is read and one whose header length
// runs past the end of the file is reported as such.
// RUN: d=$(mktemp -d); printf "\x93NUMPY\x01\x00\x76\x00%-117s\n" "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 0), }" > $d/t.npy; dscc run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json --tokens $d/t.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/t.npy: error: the token array is empty (shape [1, 0]): give at least one row of at least one token id
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); dscc run models/deepseek_v3.dsl --weights $d/nonexistent --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/nonexistent: error: the checkpoint folder does not exist
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); printf "\x93NUMPY\x02\x00\x74\x00\x00\x00%-115s\n\x05\x00\x00\x00\x07\x00\x00\x00" "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }" > $d/t.npy; dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokens $d/t.npy 2>&1 | grep -o "ran 1 x 2 tokens"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: ran 1 x 2 tokens
// CHECK-NEXT: exit=0
// RUN: d=$(mktemp -d); printf "\x93NUMPY\x03\x00\x00\x00\x01\x00{'descr'" > $d/t.npy; dscc run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json --tokens $d/t.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/t.npy: error: header length 65536 is past the end of the file (20 bytes; truncated file?)
// CHECK-NEXT: exit=1
