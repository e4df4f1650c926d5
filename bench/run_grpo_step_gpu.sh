#!/bin/sh
# run_grpo_step_gpu.sh [BUILD_DIR] - end-to-end GRPO step time on the GPU: rlvr train with
# bench/grpo_step_0.5b.lua (Qwen2.5-0.5B shape, 64 prompts x G = 8, 512 new tokens, rollouts
# and update on the GPU), then each step's generation, scoring, update and wall time from
# the run's SQLite store. Needs Qwen2.5's tokenizer.json in .bench-data/qwen2.5/ (carried):
#     mkdir -p .bench-data/qwen2.5 && cp ../shared/data/tokenizers/qwen2.5/tokenizer.json .bench-data/qwen2.5/
#   usage, from the repo root on the GPU machine with .deps and .bench-data carried:
#     sh bench/run_grpo_step_gpu.sh [BUILD_DIR]
# SET adds --set options, e.g. SET="--set train.batch_invariant=true".
set -u
. bench/gpu_build.sh
RUNS=${RUNS:-/tmp/grpo-step-runs}
[ -f .bench-data/qwen2.5/tokenizer.json ] || { echo "missing .bench-data/qwen2.5/tokenizer.json (see above)"; exit 1; }
gpu_build rlvr rlvr
rm -rf "$RUNS"
nvidia-smi -L
"$B/rlvr" train bench/grpo_step_0.5b.lua --set output_dir="$RUNS" ${SET:-} 2>&1 | tail -8 || exit 1
DB="$RUNS/grpo-step-0.5b/run.db"
python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cols = "step, wall_s, gen_s, score_s, train_s, tokens_generated, gen_tokens_per_s, train_tokens_per_s, response_len_mean"
print("step  wall s  generate s  score s  update s  tokens  gen tok/s  train tok/s  mean length")
for r in db.execute(f"select {cols} from steps order by step"):
    print("%4d %7.2f %11.2f %8.2f %9.2f %7d %10.0f %12.0f %12.1f" % r)
for name, v in db.execute("select name, max(value) from step_metrics where name like 'rollout/logp_diff%' group by name"):
    print(f"{name} (worst step): {v:.3g}")
PY
