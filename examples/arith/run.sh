#!/bin/bash
# examples/arith/run.sh - rlvr's main job, from nothing: a tiny model initialized from
# scratch with a byte-level tokenizer learns the answer format from worked solutions
# (rlvr sft, briefly), then GRPO with the math_r1 reward (rlvr train) makes it better at
# problems it never saw. Both models are evaluated greedily on the same held-out problems
# (never used in training); the last line is the result.
#
#   examples/arith/run.sh                 # uses build/rlvr; output in runs/arith-demo
#   RLVR=path/to/rlvr OUT=dir examples/arith/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RLVR=${RLVR:-build/rlvr}
OUT=${OUT:-runs/arith-demo}
HERE=examples/arith

if [ -e "$OUT" ]; then
    echo "removing the previous demo output $OUT"
    rm -rf "$OUT"
fi
echo "== 1/4 sft: a tiny model from scratch learns the format ($HERE/sft.lua)"
"$RLVR" sft "$HERE/sft.lua" --set output_dir="$OUT"
echo "== 2/4 eval: the SFT model on the held-out problems"
sft=$("$RLVR" eval "$HERE/grpo.lua" --model "$OUT/arith-sft/model" --set output_dir="$OUT")
echo "$sft"
echo "== 3/4 grpo: reinforcement learning with the math_r1 reward ($HERE/grpo.lua)"
"$RLVR" train "$HERE/grpo.lua" --set output_dir="$OUT" --set model.path="$OUT/arith-sft/model"
echo "== 4/4 eval: the GRPO model on the same held-out problems"
grpo=$("$RLVR" eval "$HERE/grpo.lua" --model "$OUT/arith-grpo/model" --set output_dir="$OUT")
echo "$grpo"
echo "run databases: $OUT/arith-sft/run.db $OUT/arith-grpo/run.db (rlvr runs $OUT)"
pct() { sed -n 's/^accuracy: \([0-9.]*\)% (\([0-9]*\) problems).*/\1/p'; }
count() { sed -n 's/^accuracy: \([0-9.]*\)% (\([0-9]*\) problems).*/\2/p'; }
echo "held-out accuracy: sft=$(printf '%s\n' "$sft" | pct)% grpo=$(printf '%s\n' "$grpo" | pct)% ($(printf '%s\n' "$sft" | count) problems)"
