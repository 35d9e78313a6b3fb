#!/usr/bin/env bash
# dist.sh — `dscc run` over several ranks on emulated GPUs and the emulated
# NCCL (CTest emu.dist sets the environment): the launches a user has
# (--nproc, mpirun, torchrun-style variables) give the logits of one rank,
# only rank 0 prints, and failures (a rank missing, killed, or hung) end in
# bounded time with exit code 3, an error naming the rank and the
# operation, and no process left behind.
#   dist.sh DSCC NPY_COMPARE
set -uo pipefail
dscc=$(realpath "$1") cmp=$(realpath "$2")
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export DSCC_EMU_NCCL_DIR=$out/nccl
mkdir -p "$DSCC_EMU_NCCL_DIR"
fx=tests/fixtures/tiny_bf16
args=(run models/deepseek_v3.dsl --weights $fx --tokens $fx/tokens.npy --backend cuda --precision bf16 --storage f32)
status=0
fail() { echo "FAILED: $*"; status=1; }
ok() { echo "ok: $*"; }
port() { echo $((21768 + RANDOM % 11000)); } # below Linux's ephemeral ports (32768 up), which connections take
ms() { echo $(($(date +%s%N) / 1000000)); }

# One rank: the references (bf16 and fp8 pipelines, f32 storage).
"$dscc" "${args[@]}" --dump-logits "$out/ref.npy" > "$out/ref.txt" 2> "$out/ref.err" || { fail "one rank"; cat "$out/ref.err"; }
fargs=(run models/deepseek_v3.dsl --weights tests/fixtures/tiny_fp8 --tokens tests/fixtures/tiny_fp8/tokens.npy --backend cuda
       --precision fp8 --storage f32)
"$dscc" "${fargs[@]}" --dump-logits "$out/ref8.npy" > "$out/ref8.txt" 2> "$out/ref8.err" || { fail "one rank, fp8"; cat "$out/ref8.err"; }

# A launch whose rank 0 dumps NAME.npy: the logits of one rank (within
# 1e-5: the experts' partial sums add in another order), and the rows
# printed once (rank 0 alone prints).
same() { # name, description[, reference]
  "$cmp" "$2 vs one rank" "$out/$1.npy" "$out/${3:-ref}.npy" 1e-5 1 || status=1
  local rows; rows=$(grep -c 'next token' "$out/$1.txt")
  [ "$rows" -eq 2 ] || fail "$2: $rows result lines, expected the 2 rows once"
}
# --stats columns summed over the ranks: dispatch inter, dispatch intra, combine inter, combine intra.
bytes() { awk '$3 ~ /^[0-9]+$/ && NF >= 13 { di += $5; da += $7; ci += $9; ca += $11 } END { print di + 0, da + 0, ci + 0, ca + 0 }' "$1"; }

# --nproc 2, experts spread (the default): one node, so nothing crosses nodes.
if "$dscc" "${args[@]}" --nproc 2 --stats --trace "$out/trace.json" --dump-logits "$out/ep2.npy" > "$out/ep2.txt" 2> "$out/ep2.err"; then
  same ep2 "--nproc 2"
  for r in 0 1; do grep -q '"ph":"X"' "$out/trace.rank$r.json" 2> /dev/null || fail "--nproc 2 --trace: no kernels in trace.rank$r.json"; done
  grep -q '^\[rank 0\] row 1: next token' "$out/ep2.txt" || fail "--nproc 2: rank 0 does not print the rows"
  grep -q '^\[rank 1\]' "$out/ep2.txt" "$out/ep2.err" && fail "--nproc 2: rank 1 printed"
  grep -q '2 ranks (1 node x 2 GPUs, launched by dscc run --nproc).*routed experts spread over the ranks' "$out/ep2.err" ||
    fail "--nproc 2: no summary of an expert-parallel world"
  read -r di da ci ca < <(bytes "$out/ep2.txt")
  [ "$di" -eq 0 ] && [ "$ci" -eq 0 ] && [ "$da" -gt 0 ] && [ "$ca" -gt 0 ] ||
    fail "--nproc 2 --stats: bytes inter/intra dispatch $di/$da combine $ci/$ca (one node: no inter-node bytes)"
else fail "--nproc 2"; cat "$out/ep2.err"; fi
# ... without --dump-logits: the LM head on each row's last position alone (logits_last_only), the same tokens.
if "$dscc" "${args[@]}" --nproc 2 --generate 2 > "$out/last2.txt" 2> "$out/last2.err"; then
  [ "$(grep 'next token' "$out/last2.txt")" = "$(grep 'next token' "$out/ep2.txt")" ] ||
    fail "--nproc 2, last-position logits: other next tokens than with every position's"
  [ "$(grep -c 'generated: ' "$out/last2.txt")" -eq 2 ] || fail "--nproc 2, last-position logits: no generated rows"
else fail "--nproc 2 without --dump-logits"; cat "$out/last2.err"; fi

# --nproc 4 --nodes 2 over 2 rows: ranks 2 and 3 have no rows but serve their experts; two hops.
if "$dscc" "${args[@]}" --nproc 4 --nodes 2 --stats --dump-logits "$out/ep4.npy" > "$out/ep4.txt" 2> "$out/ep4.err"; then
  same ep4 "--nproc 4 --nodes 2"
  grep -q '4 ranks (2 nodes x 2 GPUs' "$out/ep4.err" || fail "--nproc 4 --nodes 2: not 2 nodes of 2"
  read -r di da ci ca < <(bytes "$out/ep4.txt")
  [ "$di" -gt 0 ] && [ "$ci" -gt 0 ] || fail "--nproc 4 --nodes 2 --stats: no inter-node bytes (dispatch $di, combine $ci)"
else fail "--nproc 4 --nodes 2"; cat "$out/ep4.err"; fi

# --nproc 4 --nodes 4 on the FP8 pipeline: codes and scales travel.
if "$dscc" "${fargs[@]}" --nproc 4 --nodes 4 --dump-logits "$out/ep8.npy" > "$out/ep8.txt" 2> "$out/ep8.err"; then
  same ep8 "--nproc 4 --nodes 4, fp8" ref8
else fail "--nproc 4 --nodes 4, fp8"; cat "$out/ep8.err"; fi

# --experts replicated: data parallel, every rank holds the whole model.
if "$dscc" "${args[@]}" --nproc 2 --experts replicated --dump-logits "$out/rep.npy" > "$out/rep.txt" 2> "$out/rep.err"; then
  same rep "--nproc 2 --experts replicated"
  grep -q 'routed experts replicated' "$out/rep.err" || fail "--experts replicated: not replicated"
else fail "--nproc 2 --experts replicated"; cat "$out/rep.err"; fi

# mpirun -np 2: Open MPI is only the launcher.
if command -v mpirun > /dev/null; then
  if mpirun --allow-run-as-root --oversubscribe -np 2 -x MASTER_PORT="$(port)" "$dscc" "${args[@]}" \
       --dump-logits "$out/mpi.npy" > "$out/mpi.txt" 2> "$out/mpi.err"; then
    same mpi "mpirun -np 2"
    grep -q 'launched by Open MPI' "$out/mpi.err" || fail "mpirun: ranks not found from Open MPI's variables"
  else fail "mpirun -np 2"; cat "$out/mpi.err"; fi
else fail "mpirun not installed (tools/deps.sh installs openmpi-bin)"; fi

# torchrun-style variables set here, one process each.
p=$(port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$p "$dscc" "${args[@]}" \
    --dump-logits "$out/tr.npy" > "$out/tr$r.txt" 2> "$out/tr$r.err" & pids[r]=$!
done
wait "${pids[0]}"; rc0=$?; wait "${pids[1]}"; rc1=$?
if [ $rc0 -eq 0 ] && [ $rc1 -eq 0 ]; then
  cp "$out/tr0.txt" "$out/tr.txt"; same tr "RANK/WORLD_SIZE variables"
  [ -s "$out/tr1.txt" ] && fail "torchrun variables: rank 1 printed"
else fail "torchrun variables: exit codes $rc0 $rc1"; cat "$out/tr0.err" "$out/tr1.err"; fi

# A lone rank of 2: the rendezvous names the missing rank within --timeout.
t0=$(ms)
RANK=0 WORLD_SIZE=2 MASTER_PORT=$(port) "$dscc" "${args[@]}" --timeout 2 > "$out/lone.txt" 2> "$out/lone.err"; rc=$?
t=$(($(ms) - t0))
if [ $rc -eq 3 ] && grep -q 'rendezvous: rank 1 did not join within the timeout' "$out/lone.err" && [ $t -lt 30000 ]; then
  ok "a lone rank of 2 stops after ${t} ms: $(grep -m1 error "$out/lone.err")"
else fail "lone rank: exit $rc after ${t} ms"; cat "$out/lone.err"; fi

# A rank killed mid-run: the other stops within --timeout (watchdog), naming it.
p=$(port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_PORT=$p "$dscc" "${args[@]}" --prefill 1 --generate 30 \
    --timeout 10 > "$out/k$r.txt" 2> "$out/k$r.err" & kp[r]=$!
done
sleep 4
kill -9 "${kp[1]}"
t0=$(ms)
{ wait "${kp[0]}"; rc=$?; } 2> /dev/null
{ wait "${kp[1]}"; } 2> /dev/null
t=$(($(ms) - t0))
if [ $rc -eq 3 ] && grep -q 'rank 1' "$out/k0.err" && [ $t -lt 30000 ]; then
  ok "rank 0 stops ${t} ms after rank 1 was killed: $(grep -m1 error "$out/k0.err")"
else fail "killed rank: rank 0 exit $rc after ${t} ms"; cat "$out/k0.err"; fi

# A rank that hangs (stopped): the other hears its silence and stops within --timeout.
p=$(port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_PORT=$p "$dscc" "${args[@]}" --prefill 1 --generate 30 \
    --timeout 6 > "$out/h$r.txt" 2> "$out/h$r.err" & hp[r]=$!
done
sleep 4
kill -STOP "${hp[1]}"
t0=$(ms)
{ wait "${hp[0]}"; rc=$?; } 2> /dev/null
t=$(($(ms) - t0))
kill -9 "${hp[1]}"; { wait "${hp[1]}"; } 2> /dev/null
if [ $rc -eq 3 ] && grep -q 'rank 1' "$out/h0.err" && [ $t -lt 20000 ]; then
  ok "rank 0 stops ${t} ms after rank 1 hung: $(grep -m1 error "$out/h0.err")"
else fail "hung rank: rank 0 exit $rc after ${t} ms"; cat "$out/h0.err"; fi

# --nproc with a rank killed: the launcher stops the others, exit 3, no process left.
"$dscc" "${args[@]}" --nproc 2 --prefill 1 --generate 30 > "$out/l.txt" 2> "$out/l.err" & lp=$!
sleep 4
kids=$(pgrep -P "$lp")
victim=$(for k in $kids; do grep -qz '^RANK=1$' /proc/$k/environ 2> /dev/null && echo $k; done)
[ -n "$victim" ] && kill -9 "$victim"
wait "$lp"; rc=$?
left=$(for k in $kids; do kill -0 "$k" 2> /dev/null && echo "$k"; done)
# the launcher names rank 1's death by signal, or rank 0 saw its connection close first and exited 3 (a race, both right)
if [ -n "$victim" ] && [ $rc -eq 3 ] && grep -qE 'rank 1 was killed by signal 9|rank 1 died' "$out/l.err" && [ -z "$left" ]; then
  ok "--nproc 2, rank 1 killed: exit 3, $(grep -m1 -E 'rank 1 was killed|rank 1 died' "$out/l.err")"
else fail "--nproc 2 with rank 1 killed (victim '${victim}', exit $rc, left '${left}')"; cat "$out/l.err"; fi

# Prompts over 2 ranks: rank 0 alone reads (--prompt, --prompt-file -, --chat on standard input),
# tokenizes and prints; every rank runs the same steps: the text of one rank (greedy).
pargs=(run models/deepseek_v3.dsl --config models/tiny/config.json --set vocab_size=2014 --random-weights 1
       --tokenizer tests/fixtures/tokenizer --max-new-tokens 6 --backend cuda --precision bf16 --storage f32)
text_of() { sed 's/^\[rank 0\] //' "$out/$1.txt"; }
"$dscc" "${pargs[@]}" --prompt "Hello world" > "$out/p1.txt" 2> "$out/p1.err" || { fail "--prompt, one rank"; cat "$out/p1.err"; }
printf 'Hello\nHow are you\n' | "$dscc" "${pargs[@]}" --chat > "$out/c1.txt" 2> "$out/c1.err" || { fail "--chat, one rank"; cat "$out/c1.err"; }
[ "$(wc -l < "$out/c1.txt")" -eq 2 ] || fail "--chat, one rank: $(wc -l < "$out/c1.txt") replies to 2 lines"
if "$dscc" "${pargs[@]}" --prompt "Hello world" --nproc 2 > "$out/p2.txt" 2> "$out/p2.err"; then
  [ "$(text_of p2)" = "$(cat "$out/p1.txt")" ] && ok "--prompt --nproc 2: the text of one rank" ||
    fail "--prompt --nproc 2: '$(text_of p2)', one rank '$(cat "$out/p1.txt")'"
  grep -q '^\[rank 1\]' "$out/p2.txt" "$out/p2.err" && fail "--prompt --nproc 2: rank 1 printed"
else fail "--prompt --nproc 2"; cat "$out/p2.err"; fi
if printf 'Hello world' | "$dscc" "${pargs[@]}" --prompt-file - --nproc 2 > "$out/f2.txt" 2> "$out/f2.err"; then
  [ "$(text_of f2)" = "$(cat "$out/p1.txt")" ] || fail "--prompt-file - --nproc 2: '$(text_of f2)'"
else fail "--prompt-file - --nproc 2"; cat "$out/f2.err"; fi
if printf 'Hello\nHow are you\n' | "$dscc" "${pargs[@]}" --chat --nproc 2 > "$out/c2.txt" 2> "$out/c2.err"; then
  [ "$(text_of c2)" = "$(cat "$out/c1.txt")" ] && ok "--chat --nproc 2: two turns as one rank, the end of input ends both ranks" ||
    fail "--chat --nproc 2: '$(text_of c2)', one rank '$(cat "$out/c1.txt")'"
else fail "--chat --nproc 2"; cat "$out/c2.err"; fi
# rank 0 cannot read the prompt: every rank stops, exit 1, rank 0 names the file
"$dscc" "${pargs[@]}" --prompt-file "$out/missing.txt" --nproc 2 --timeout 20 > "$out/m2.txt" 2> "$out/m2.err"; rc=$?
if [ $rc -eq 1 ] && grep -q "missing.txt" "$out/m2.err"; then ok "--prompt-file missing over 2 ranks: exit 1"
else fail "--prompt-file missing over 2 ranks: exit $rc"; cat "$out/m2.err"; fi

exit $status
