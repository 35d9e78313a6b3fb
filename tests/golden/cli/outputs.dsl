// Outputs replace only what is theirs (issue 16): a character device stays a
// device (a null device made in the test's folder, as /dev/null would be; a
// FIFO where mknod is not allowed), a symlink stays a link and its target gets
// the content, a FIFO is written in place. Everything in a mktemp folder.
// RUN: d=$(mktemp -d); mknod $d/null c 1 3 2>/dev/null || mkfifo $d/null; (timeout 60 cat $d/null >/dev/null &); dscc compile models/deepseek_v3.dsl --config models/tiny/config.json -o $d/null; echo "exit=$?"; stat -c 'null: %F' $d/null | sed 's/fifo/character special file/'; rm -rf $d
// CHECK: exit=0
// CHECK-NEXT: null: character special file
// RUN: d=$(mktemp -d); echo old > $d/target.ir; ln -s target.ir $d/link.ir; dscc compile models/deepseek_v3.dsl --config models/tiny/config.json -o $d/link.ir; echo "exit=$?"; stat -c 'link: %F' $d/link.ir; grep -c '^graph @deepseek_v3' $d/target.ir; ls $d; rm -rf $d
// CHECK: exit=0
// CHECK-NEXT: link: symbolic link
// CHECK-NEXT: 1
// CHECK-NEXT: link.ir
// CHECK-NEXT: target.ir
// RUN: d=$(mktemp -d); mkfifo $d/fifo; (timeout 60 sh -c "wc -c < $d/fifo > $d/count" &); timeout 60 "$DSCC" compile models/deepseek_v3.dsl --config models/tiny/config.json -o $d/fifo; echo "exit=$?"; sleep 0.2; test $(cat $d/count) -gt 1000 && stat -c 'fifo: %F' $d/fifo; rm -rf $d
// CHECK: exit=0
// CHECK-NEXT: fifo: fifo
// RUN: d=$(mktemp -d); touch $d/logits.npy; ln -s logits.npy $d/link.npy; dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy --dump-logits $d/link.npy >/dev/null; echo "exit=$?"; stat -c 'dump: %F' $d/link.npy; head -c 6 $d/logits.npy | tail -c 5; echo; ls $d; rm -rf $d
// CHECK: exit=0
// CHECK-NEXT: dump: symbolic link
// CHECK-NEXT: NUMPY
// CHECK-NEXT: link.npy
// CHECK-NEXT: logits.npy
