#!/bin/bash
# test_device_cuda_host.sh - device = "cuda" end to end, on any machine: rlvr_host_gpu is
# rlvr linked with tests/host_gpu's host emulation of the CUDA kernels (each launcher
# through its CPU twin), so this checks everything above the kernels - packing
# micro-batches, the optimizer on the "device", the CPU model receiving the weights after
# each step, checkpoints and resume, the memory plan - against the CPU path:
#   - SFT and GRPO (KL to a reference, entropy bonus, 2 PPO epochs of minibatches) with
#     train.dtype = fp32 log the same losses, KL and gradient norms as device = "cpu"
#     (within 1e-4 relative: the packed attention sums in another order than the KV-cache one);
#   - train.recompute = true logs the same numbers bit for bit;
#   - a run stopped after step 2 and resumed logs, bit for bit, what the straight run did;
#   - with device = "cuda", rollouts run on the GPU (rollout.device's default "auto": the
#     engine's forward on the GPU model's weights, every sample of the step together) and
#     sample the same completions as the CPU engine (rollout.device = "cpu", 4 x
#     micro_batch_size at a time) and log the same numbers within 1e-4; rollout.device =
#     "cuda" is refused without device = "cuda"; the rollout engine's KV pool is in the
#     memory plan printed at the start, and a round too large for the device is refused
#     there, before any step;
#   - rlvr generate --device cuda --dtype fp32 gives the CPU's completions;
#   - bf16 SFT lowers the loss;
#   - train.batch_invariant = true: every step's rollout/logp_diff_max is exactly 0 (the
#     rollout's sampling log-probs are the trainer's), where without it they differ; a
#     model whose heads the invariant engine cannot take is refused at the start.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
HOST_GPU=${RLVR_HOST_GPU_BIN:?RLVR_HOST_GPU_BIN is not set (run under ctest)}

cat >tiny.lua <<'LUA'
return {
  model = { init = { hidden = 32, layers = 2, heads = 4, kv_heads = 2, intermediate = 64, max_positions = 160 } },
  rollout = { prompts_per_step = 4, group_size = 4, max_new_tokens = 40, temperature = 1.0 },
  data = { arith = { n_train = 64, n_eval = 8 } },
  learning_rate = 3e-3,
  steps = 4,
  save_every = 2,
  eval_every = 0,
  micro_batch_size = 5,
  algo = { kl_coef = 0.05, entropy_coef = 0.01, ppo_epochs = 2, minibatch_size = 8 },
}
LUA
Q() { sqlite3 "runs/$1/run.db" "select step, loss, kl, grad_norm from steps order by step"; }
# Same numbers within 1e-4 relative (columns of Q, row by row).
close() {
    LAST="$1 vs $2"
    if paste -d'|' <(Q "$1") <(Q "$2") | awk -F'|' '
        function bad(a, b) { return (a == "" ? b != "" : (b == "" || (a - b) ^ 2 > 1e-8 * (a * a + b * b) + 1e-24)) }
        { for (i = 1; i <= 4; i++) if (bad($i, $(i + 4))) { print "row " NR ": " $0; exit 1 } } END { if (NR != 4) exit 1 }'; then
        ok
    else bad "$(Q "$1" | tr '\n' ' ') / $(Q "$2" | tr '\n' ' ')"; fi
}
same() {
    LAST="$1 vs $2 bit for bit"
    if [ "$(Q "$1")" = "$(Q "$2")" ] && [ -n "$(Q "$1")" ]; then ok; else bad "$(Q "$1" | tr '\n' ' ') / $(Q "$2" | tr '\n' ' ')"; fi
}

SFT="--set steps=4 --set sft.batch_size=8"
run "$HOST_GPU" sft tiny.lua --set name=sft_cpu $SFT
expect_status 0
run "$HOST_GPU" sft tiny.lua --set name=sft_gpu $SFT --set device=cuda --set train.dtype=fp32
expect_status 0
expect_out "policy on the GPU (fp32"
expect_out "GPU memory plan"
close sft_cpu sft_gpu

run "$HOST_GPU" train tiny.lua --set name=rl_cpu
expect_status 0
run "$HOST_GPU" train tiny.lua --set name=rl_gpu_cpu_rollout --set device=cuda --set train.dtype=fp32 --set rollout.device=cpu
expect_status 0
expect_out "reference model on the GPU (forward only)"
close rl_cpu rl_gpu_cpu_rollout
run "$HOST_GPU" train tiny.lua --set name=rl_gpu --set device=cuda --set train.dtype=fp32
expect_status 0
expect_out "rollout engine on the GPU: KV pool and step buffers"
expect_no_out "rollout engine on the GPU: KV pool and step buffers 0.000 GiB"
close rl_gpu_cpu_rollout rl_gpu
C() { sqlite3 "runs/$1/run.db" "select hex(completion_ids) from samples order by step, group_index, sample_index"; }
LAST="rollouts on the GPU (rollout.device = auto): the CPU engine's completions"
if [ "$(C rl_gpu | md5sum)" = "$(C rl_gpu_cpu_rollout | md5sum)" ] && [ "$(C rl_gpu | wc -l)" = 64 ]; then ok; else
    bad "completions differ ($(C rl_gpu | wc -l) and $(C rl_gpu_cpu_rollout | wc -l) samples)"; fi
run "$HOST_GPU" train tiny.lua --set name=rl_gpu_rollout --set device=cuda --set train.dtype=fp32 --set rollout.device=cuda
expect_status 0
same rl_gpu rl_gpu_rollout
G="generate --model runs/rl_gpu/model --prompt-ids 3,4,5,6,7 --n 8 --max-new-tokens 40 --seed 7"
run "$HOST_GPU" $G --out gen_cpu.jsonl
expect_status 0
run "$HOST_GPU" $G --device cuda --dtype fp32 --out gen_gpu.jsonl
expect_status 0
ids() { grep -o '"completion_ids": \[[^]]*\]' "$1"; }
LAST="generate --device cuda: the CPU's completions"
if [ "$(ids gen_cpu.jsonl)" = "$(ids gen_gpu.jsonl)" ] && [ "$(ids gen_gpu.jsonl | wc -l)" = 8 ]; then ok; else
    bad "$(ids gen_cpu.jsonl | tr '\n' ' ') / $(ids gen_gpu.jsonl | tr '\n' ' ')"; fi
# and their sampling log-probs within 1e-4 (the two forwards round differently)
lps() { grep -o '"logprobs": \[[^]]*\]' "$1" | tr -d '"logprobs:[]' | tr ',' '\n' | tr -d ' '; }
LAST="generate --device cuda: the CPU's log-probs"
if paste -d' ' <(lps gen_cpu.jsonl) <(lps gen_gpu.jsonl) |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (NF != 2 || d > 1e-4) { print "token " NR ": " $0; exit 1 }; n++ }
         END { if (n != 320) { print n " log-probs"; exit 1 } }'; then ok; else bad "differ"; fi
run "$HOST_GPU" $G --dtype fp32
expect_status 2
expect_err "--dtype goes with --device cuda"
# a round of 2M samples of 4,000 tokens cannot fit: refused before any step, naming what to lower
BIG="--set model.init.max_positions=4096 --set rollout.max_new_tokens=4000 --set rollout.prompts_per_step=4096 --set rollout.group_size=512"
run "$HOST_GPU" train tiny.lua --set name=rl_big --set device=cuda --set train.dtype=fp32 $BIG
expect_status 1
expect_err "the rollout engine needs"
expect_err "lower rollout.prompts_per_step x rollout.group_size or rollout.max_new_tokens"
expect_out "(2097152 samples of up to 4091 tokens)"
run "$HOST_GPU" train tiny.lua --set name=rl_cpu_device --set rollout.device=cuda
expect_status 2
expect_err 'rollout.device = "cuda" needs device = "cuda"'
run "$HOST_GPU" train tiny.lua --set name=rl_recompute --set device=cuda --set train.dtype=fp32 --set train.recompute=true
expect_status 0
same rl_gpu rl_recompute
# stopped after the checkpoint of step 2, then resumed to step 4
run "$HOST_GPU" train tiny.lua --set name=rl_resumed --set device=cuda --set train.dtype=fp32 --set steps=2
expect_status 0
run "$HOST_GPU" train tiny.lua --set name=rl_resumed --set device=cuda --set train.dtype=fp32 --resume
expect_status 0
expect_out "resumed"
same rl_gpu rl_resumed

run "$HOST_GPU" sft tiny.lua --set name=sft_bf16 --set steps=8 --set sft.batch_size=8 --set device=cuda
expect_status 0
expect_out "policy on the GPU (bf16"
LAST="bf16 SFT lowers the loss"
first=$(sqlite3 runs/sft_bf16/run.db 'select loss from steps where step = 1')
last=$(sqlite3 runs/sft_bf16/run.db 'select loss from steps where step = 8')
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.1) }'; then ok; else bad "loss $first -> $last"; fi
# train.batch_invariant: 64-wide heads (hidden 128 over 2), bf16, rollouts on the "GPU"
INV="--set model.init.hidden=128 --set model.init.heads=2 --set model.init.kv_heads=1 --set rollout.max_new_tokens=16"
INV="$INV --set steps=2 --set device=cuda"
D() { sqlite3 "runs/$1/run.db" "select count(*), max(value) from step_metrics where name = 'rollout/logp_diff_max'"; }
run "$HOST_GPU" train tiny.lua --set name=rl_inv $INV --set train.batch_invariant=true
expect_status 0
expect_out "batch-invariant"
LAST="train.batch_invariant: rollout/logp_diff_max is 0 at every step"
if [ "$(D rl_inv)" = "2|0.0" ]; then ok; else bad "$(D rl_inv)"; fi
run "$HOST_GPU" train tiny.lua --set name=rl_not_inv $INV
expect_status 0
LAST="without train.batch_invariant: rollout/logp_diff_max is not 0"
if D rl_not_inv | awk -F'|' '{ exit !($1 == 2 && $2 > 0) }'; then ok; else bad "$(D rl_not_inv)"; fi
run "$HOST_GPU" train tiny.lua --set name=rl_inv_small --set device=cuda --set train.batch_invariant=true
expect_status 1
expect_err "head size of 64 or 128"
expect_err "train.batch_invariant"
finish
