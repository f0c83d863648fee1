#!/usr/bin/env bash
# The fault trial of docs/RELIABILITY.md: hostile input and injected faults against the amm
# binary, each classified as a clear error (exit 1 with a message naming the problem), a correct
# result (exit 0), or a crash (a panic, exit 101, an abort or a signal). Prints one line per case
# and the totals; exits 1 if any case crashed or ended other than expected.
#   bash tools/fault-trial.sh            (builds the release binary first)
#   AMM=path/to/amm bash tools/fault-trial.sh
set -u
cd "$(dirname "$0")/.."
if [ -z "${AMM:-}" ]; then
  cargo build --release -q || exit 1
  AMM="$PWD/target/release/amm"
fi
W=$(mktemp -d /tmp/amm-fault-XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
TINY=(--quiet --set eval.long_iters=0)
D=(--data digits --model "mlp(widths=[16])")
total=0; errors=0; oks=0; crashes=0; unexpected=0

# case NAME EXPECT(error|ok) NEEDLE COMMAND...: NEEDLE must appear in the output.
case_() {
  local name=$1 expect=$2 needle=$3; shift 3
  total=$((total + 1))
  local out rc
  out=$(timeout 60 "$@" 2>&1); rc=$?
  local got
  if [ $rc -ge 101 ] || echo "$out" | grep -q "panicked"; then got=crash; crashes=$((crashes + 1))
  elif [ $rc -eq 0 ]; then got=ok; oks=$((oks + 1))
  else got=error; errors=$((errors + 1)); fi
  local mark=""
  if [ "$got" != "$expect" ] || ! echo "$out" | grep -qF -- "$needle"; then mark="  <-- UNEXPECTED"; unexpected=$((unexpected + 1)); fi
  printf '%-58s %-6s rc=%-3s %s%s\n' "$name" "$got" "$rc" "$(echo "$out" | grep -m1 -E 'error|warning' | cut -c1-110)" "$mark"
}

spec() { printf '%s\n' "$@" > "$W/s.amm"; echo "$W/s.amm"; }

# --- poisoned and damaged results --------------------------------------------------------------
case_ "divergence on an epoch's last step" error "training diverged" env AMM_FAILPOINT=nan-weights-after-epoch=2 "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 3 --out div
case_ "  ...its status is failed" ok "failed" "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 3 --out div --status
case_ "  ...resumed without the fault" ok "" "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 3 --out div --resume
case_ "collapse without NaN (lr 3e4)" ok "the run collapsed" "$AMM" train --data digits --model "mlp(widths=[32])" "${TINY[@]}" --epochs 1 --lr 30000 --out col
"$AMM" train "${D[@]}" "${TINY[@]}" --epochs 2 --out ok >/dev/null 2>&1
cp -r ok trunc; head -c 100 ok/result.json > trunc/result.json
case_ "truncated result.json, resumed" ok "is damaged" "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 2 --out trunc --resume
cp -r ok shape; echo '{"a": 1}' > shape/result.json
case_ "result.json of the wrong shape, report" ok "damaged, left out" "$AMM" report shape
cp -r ok ck; python3 - <<'EOF'
b = bytearray(open("ck/checkpoint-last.safetensors", "rb").read())
for i in range(300):
    b[len(b) // 2 + i] ^= 0x5A
open("ck/checkpoint-last.safetensors", "wb").write(b)
EOF
case_ "garbage in checkpoint weights, eval" error "is damaged: its checksum" "$AMM" eval ck/checkpoint-last.safetensors
env AMM_FAILPOINT=exit-after-epoch=2 "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 3 --out kill >/dev/null 2>&1
echo '{"epoch": 2, "loss": nul' >> kill/metrics.jsonl; touch kill/.result.json.tmp999999999
case_ "bad metrics line + stale tmp file, resume" ok "not a metrics line" "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 3 --out kill --resume
mv ok moved
case_ "run folder moved, then resumed" ok "" "$AMM" train "${D[@]}" "${TINY[@]}" --epochs 2 --out moved --resume

# --- limits and hostile specs ------------------------------------------------------------------
case_ "grid axis of 100,001 values" error "s.amm" "$AMM" check "$(spec '[experiment]' "seeds = [$(seq -s, 0 100000)]")"
case_ "mlp(widths=[9223372036854775807])" error "s.amm" "$AMM" check "$(spec '[model]' 'arch = mlp(widths=[9223372036854775807])')"
case_ "mlp(widths=[100000000])" error "s.amm" "$AMM" check "$(spec '[model]' 'arch = mlp(widths=[100000000])')"
case_ "train.threads=100000" error "threads" "$AMM" check "$(spec '[train]' 'threads = 100000')"
case_ "include \"/dev/zero\"" error "/dev/zero" "$AMM" check "$(spec 'include "/dev/zero"')"
mkfifo fifo
case_ "include of a FIFO" error "fifo" "$AMM" check "$(spec "include \"$W/fifo\"")"
case_ "--plugin naming a FIFO" error "fifo" "$AMM" list --plugin "$W/fifo"
case_ "unknown key (did you mean)" error "s.amm" "$AMM" check "$(spec '[train]' 'batchsize = 3')"

# --- output ------------------------------------------------------------------------------------
total=$((total + 1))
"$AMM" list | head -1 >/dev/null; rc=${PIPESTATUS[0]}
if [ "$rc" -ge 101 ]; then crashes=$((crashes + 1)); g=crash; else oks=$((oks + 1)); g=ok; fi
printf '%-58s %-6s rc=%-3s\n' "amm list | head -1" "$g" "$rc"
case_ "stdout on a full device" error "disk is full" sh -c "\"$AMM\" list > /dev/full"

# --- degenerate data ---------------------------------------------------------------------------
mkdir -p one; printf 'a,b,label\n0,1,0\n1,0,0\n' > one/train.csv; cp one/train.csv one/test.csv
case_ "one-class CSV" error "train.csv" "$AMM" train --model "mlp(widths=[16])" "${TINY[@]}" --data csv:one --out c1
mkdir -p unseen; printf 'a,b,label\n0,1,0\n1,0,1\n' > unseen/train.csv; printf 'a,b,label\n0,1,2\n' > unseen/test.csv
case_ "test label never seen in training" error "test.csv" "$AMM" train --model "mlp(widths=[16])" "${TINY[@]}" --data csv:unseen --out c2
case_ "digits:/nonexistent" error "/nonexistent" "$AMM" train --model "mlp(widths=[16])" "${TINY[@]}" --data digits:/nonexistent --out c3
case_ "data.crop larger than the image" error "data.crop" "$AMM" train "${D[@]}" "${TINY[@]}" --set data.crop=8 --out c4

# --- plugins -----------------------------------------------------------------------------------
echo "not an ELF file" > junk.so
case_ "a text file as --plugin" error "junk.so" "$AMM" list --plugin junk.so

# --- newcomer ----------------------------------------------------------------------------------
case_ "train without --out says where it writes" ok "writing to runs/" "$AMM" train --data digits --model "mlp(widths=[16])" --epochs 1 --set eval.long_iters=0
case_ "the same again names --out" error "--out" "$AMM" train --data digits --model "mlp(widths=[16])" --epochs 1 --set eval.long_iters=0

echo
echo "cases: $total   clear errors: $errors   correct results: $oks   crashes: $crashes   unexpected: $unexpected"
[ "$crashes" -eq 0 ] && [ "$unexpected" -eq 0 ]
