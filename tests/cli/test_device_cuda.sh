#!/bin/bash
# test_device_cuda.sh - device = "cuda" on a machine without a usable GPU (CI's): rlvr
# train and rlvr sft fail before any model work with an error that says so, and leave no
# run behind. Where a GPU is present, tests/gpu covers the GPU path and this test has
# nothing to check.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

if "$RLVR" --version | grep -q '^cuda: device'; then
    echo "skipped: a CUDA device is present"
    finish
    exit
fi

cat >tiny.lua <<'LUA'
return {
  model = { init = { hidden = 32, layers = 2, heads = 4, kv_heads = 2, intermediate = 64, max_positions = 160 } },
  rollout = { prompts_per_step = 4, group_size = 4, max_new_tokens = 40 },
  data = { arith = { n_train = 64, n_eval = 8 } },
  steps = 2,
  device = "cuda",
}
LUA

for cmd in train sft; do
    run rlvr $cmd tiny.lua --set name=$cmd
    expect_status 1
    expect_err 'device = "cuda" but no CUDA device: '
    LAST="$cmd leaves no model behind"
    if [ ! -d runs/$cmd/model ] && [ ! -d runs/$cmd/checkpoints ]; then ok; else bad "runs/$cmd holds a model"; fi
done
# The same from the command line, with the GPU training keys set.
run rlvr train tiny.lua --set name=cli --set device=cuda --set train.recompute=true --set train.dtype=fp32
expect_status 1
expect_err 'device = "cuda" but no CUDA device: '
# A dtype the GPU path does not have is a config error.
run rlvr train tiny.lua --set name=bad --set train.dtype=fp16
expect_status 2
expect_err "train.dtype"
finish
