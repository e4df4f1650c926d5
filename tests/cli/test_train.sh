#!/bin/bash
# test_train.sh - rlvr train / sft / eval on the CPU reference, end to end on a tiny model:
# the run directory and store, resume after SIGKILL equal bit for bit to a run that never
# stopped, and the errors a user can cause before any model work.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

# A tiny, fast run (the byte-level tokenizer, a 2-layer model, 4 prompts x 4 samples).
cat >tiny.lua <<'EOF'
return {
  model = { init = { hidden = 32, layers = 2, heads = 4, kv_heads = 2, intermediate = 64, max_positions = 160 } },
  rollout = { prompts_per_step = 4, group_size = 4, max_new_tokens = 40, temperature = 1.0 },
  data = { arith = { n_train = 64, n_eval = 8 } },
  learning_rate = 3e-3,
  lr_schedule = "cosine",
  warmup_steps = 1,
  steps = 6,
  save_every = 2,
  eval_every = 3,
  micro_batch_size = 5,
  algo = { kl_coef = 0.05, entropy_coef = 0.01, ppo_epochs = 2, minibatch_size = 8 },
}
EOF

# --- a run to the end ------------------------------------------------------------------------
run rlvr train tiny.lua --set name=straight
expect_status 0
expect_out "step 6/6"
expect_out "eval after step 3: accuracy"
expect_out "final model: runs/straight/model"
for f in runs/straight/run.db runs/straight/model/model.safetensors runs/straight/model/tokenizer.json \
    runs/straight/checkpoints/step-00000006/optim.bin runs/straight/checkpoints/step-00000006/state.json; do
    if [ -f "$f" ]; then ok; else LAST="$f"; bad "missing"; fi
done
# keep_checkpoints = 2: steps 4 and 6 remain.
LAST="checkpoints kept"
if [ "$(ls runs/straight/checkpoints)" = "$(printf 'step-00000004\nstep-00000006')" ]; then ok; else bad "$(ls runs/straight/checkpoints)"; fi
LAST="store contents"
Q() { sqlite3 "$1" "$2"; }
if [ "$(Q runs/straight/run.db 'select count(*) from steps')" = 6 ] &&
    [ "$(Q runs/straight/run.db 'select count(*) from samples')" = 96 ] &&
    [ "$(Q runs/straight/run.db "select status from runs")" = finished ] &&
    [ "$(Q runs/straight/run.db 'select count(*) from samples where length(logprobs) = 4 * n_completion_tokens and length(completion_ids) = 4 * n_completion_tokens')" = 96 ] &&
    [ "$(Q runs/straight/run.db "select count(*) from step_metrics where name = 'eval/accuracy'")" = 2 ] &&
    [ "$(Q runs/straight/run.db 'select count(*) from steps where loss is not null and kl is not null and entropy is not null and grad_norm > 0 and lr > 0')" = 6 ] &&
    [ "$(Q runs/straight/run.db "select count(distinct name) from sample_rewards")" = 2 ]; then
    ok
else
    bad "unexpected store contents: $(Q runs/straight/run.db 'select step, loss, kl, entropy, grad_norm, lr from steps')"
fi
# The trainer's log-probs of the sampled tokens against the rollout's: float rounding apart
# (the paged engine and the training forward compute alike), logged at temperature 1 only.
LAST="rollout/logp_diff_max"
if [ "$(Q runs/straight/run.db "select count(*) from step_metrics where name = 'rollout/logp_diff_max' and value >= 0 and value < 1e-4")" = 6 ] &&
    [ "$(Q runs/straight/run.db "select count(*) from step_metrics where name = 'rollout/logp_diff_mean' and value <= 1e-5")" = 6 ]; then
    ok
else
    bad "$(Q runs/straight/run.db "select step, name, value from step_metrics where name like 'rollout/%'")"
fi
# The rollout engine's totals: each group's prompt fed once, then every sampled token but
# each sample's last (nothing is preempted in a pool sized for every sample).
LAST="rollout/engine_* totals"
FED="(select sum(np) from (select max(n_prompt_tokens) np from samples x where x.step = s.step group by group_index))
     + (select sum(max(n_completion_tokens - 1, 0)) from samples x where x.step = s.step)"
M() { echo "(select value from step_metrics m where m.step = s.step and m.name = 'rollout/engine_$1')"; }
if [ "$(Q runs/straight/run.db "select count(*) from steps s where $(M tokens_fed) = $FED and $(M forward_calls) > 0
        and $(M preempted) = 0 and $(M prompt_reforks) = 0 and $(M block_copies) >= 0")" = 6 ]; then
    ok
else
    bad "$(Q runs/straight/run.db "select step, name, value from step_metrics where name like 'rollout/engine%'")"
fi
run rlvr train tiny.lua --set name=cool --set rollout.temperature=0.8 --set steps=1 --set eval_every=0
expect_status 0
LAST="no logp_diff at temperature 0.8"
if [ "$(Q runs/cool/run.db "select count(*) from step_metrics where name like 'rollout/logp_diff%'")" = 0 ]; then ok; else bad "logged"; fi
# A finished run's directory is not reused by accident.
run rlvr train tiny.lua --set name=straight
expect_status 2
expect_err "runs/straight already holds a run: continue it with --resume"

# --- killed with SIGKILL during step 3, then resumed: the same run, bit for bit ---------------------
"$RLVR" train tiny.lua --set name=killed >killed.out 2>&1 &
pid=$!
while [ ! -d runs/killed/checkpoints/step-00000002 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
LAST="store after SIGKILL"
if [ "$(Q runs/killed/run.db 'pragma integrity_check')" = ok ]; then ok; else bad "integrity_check failed"; fi
LAST="the kill landed mid-run"
if [ "$(Q runs/killed/run.db 'select status from runs')" = running ] && [ ! -d runs/killed/model ]; then ok; else bad "the run had finished"; fi
LAST="no half-written checkpoint"
for d in runs/killed/checkpoints/step-*; do
    case "$d" in *.tmp-*) continue ;; esac
    if [ -f "$d/state.json" ] && [ -f "$d/optim.bin" ] && [ -f "$d/model/model.safetensors" ]; then ok; else bad "$d is incomplete"; fi
done
run rlvr train tiny.lua --set name=killed --resume
expect_status 0
expect_out "resumed runs/killed"
expect_out "step 6/6"
LAST="resumed run equals the straight run"
same=1
for q in "select step, reward_mean, loss, kl, entropy, grad_norm, lr, adv_mean, adv_std, clip_frac from steps order by step" \
    "select step, prompt_id, group_index, sample_index, hex(completion_ids), hex(logprobs), reward, advantage, policy_version from samples order by id" \
    "select s.step, r.name, r.value from sample_rewards r join samples s on s.id = r.sample_id order by s.id, r.name" \
    "select step, name, value from step_metrics where name like 'eval/%' or name like 'reward/%' order by step, name"; do
    if [ "$(Q runs/straight/run.db "$q")" != "$(Q runs/killed/run.db "$q")" ]; then same=0; echo "differs: $q" >&2; fi
done
if [ $same = 1 ]; then ok; else bad "the resumed run differs"; fi
LAST="final weights equal"
if cmp -s runs/straight/model/model.safetensors runs/killed/model/model.safetensors &&
    cmp -s runs/straight/checkpoints/step-00000006/optim.bin runs/killed/checkpoints/step-00000006/optim.bin; then
    ok
else bad "weights or optimizer state differ"; fi
LAST="resume recorded"
if [ "$(Q runs/killed/run.db "select count(*) from events where message like 'resumed from the checkpoint of step%'")" = 1 ] &&
    [ "$(Q runs/killed/run.db "select status from runs")" = finished ]; then ok; else bad "no resume event"; fi

run rlvr train tiny.lua --set name=never --resume
expect_status 2
expect_err "--resume: runs/never/checkpoints: no checkpoint to resume from"

# --- SFT then evaluation ------------------------------------------------------------------------
run rlvr sft tiny.lua --set name=sft --set steps=30 --set sft.batch_size=8 --set eval_every=0 --set log_every=10
expect_status 0
expect_out "final model: runs/sft/model"
LAST="sft lowers the loss"
first=$(Q runs/sft/run.db 'select loss from steps where step = 1')
last=$(Q runs/sft/run.db 'select avg(loss) from steps where step > 25')
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.8 * a) }'; then ok; else bad "loss $first -> $last"; fi
run rlvr eval tiny.lua --model runs/sft/model --samples eval.jsonl
expect_status 0
expect_out "accuracy: "
expect_out "(8 problems)"
LAST="eval --samples writes one scored line per problem, and its accuracy is the printed one"
if python3 - "$OUT" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open("eval.jsonl")]
assert len(rows) == 8, len(rows)
assert [r["id"] for r in rows] == list(range(8))
for r in rows:
    assert r["prompt"] and r["answer"] and r["status"] == "ok", r
    assert r["finish_reason"] in ("stop", "length") and r["completion_tokens"] > 0, r
    assert set(r["parts"]) == {"accuracy", "format"}, r
    assert abs(r["reward"] - (r["parts"]["accuracy"] + 0.2 * r["parts"]["format"])) < 1e-9, r
printed = float(re.search(r"accuracy: ([0-9.]+)%", sys.argv[1]).group(1))
assert abs(printed - 100 * sum(r["parts"]["accuracy"] for r in rows) / 8) < 0.06, printed
PY
then ok; else bad "eval.jsonl"; fi
run rlvr eval tiny.lua --model runs/sft/model --samples no/such/dir/eval.jsonl
expect_status 2
expect_err "no/such/dir/eval.jsonl: No such file or directory"
run rlvr eval tiny.lua
expect_status 2
expect_err "model.path is empty"

# --- every estimator and option runs end to end and logs what it should ------------------------------
algo_run() { # name, expectation SQL (must print 1), then --set options
    local name=$1 check=$2
    shift 2
    run rlvr train tiny.lua --set name="$name" --set steps=2 --set eval_every=0 "$@"
    expect_status 0
    LAST="$name: $check"
    if [ "$(Q "runs/$name/run.db" "$check")" = 1 ]; then ok; else bad "check failed"; fi
}
algo_run dr_grpo "select count(*) = 2 from steps where loss is not null and kl is null" \
    --set algo.advantage=dr_grpo --set algo.loss_agg=seq_mean_token_sum_norm --set algo.kl_coef=0
algo_run rloo "select count(*) = 2 from steps where grad_norm > 0" --set algo.advantage=rloo --set algo.loss_agg=seq_mean_token_mean
# REINFORCE++ with the KL in the reward: whitened advantages (batch mean 0), no KL term in the loss.
algo_run rpp "select count(*) = 2 from steps where abs(adv_mean) < 1e-3 and kl is null" \
    --set algo.advantage=reinforce_pp --set algo.kl_in_reward=true --set algo.kl_coef=0.1
# Dynamic sampling, with a reward an untrained model's samples differ on (completion length
# mod 3): groups were trained, none of them with equal rewards, and some equal groups were
# dropped (the first check fails when an equal group is trained, the second when none is).
cat >bylen.lua <<'EOF'
return { reward = function(s) return (#s.completion % 3 == 0) and 1 or 0 end }
EOF
algo_run dyn "select count(*) = 0 from (select step, group_index from samples where advantage is not null group by step, group_index having min(reward) = max(reward))" \
    --set algo.dynamic_sampling=true --set algo.max_sampling_rounds=3 --set reward.script=bylen.lua \
    --set rollout.group_size=2 --set steps=4
LAST="dyn: groups trained and groups dropped"
trained=$(Q runs/dyn/run.db "select count(*) from samples where advantage is not null")
dropped=$(Q runs/dyn/run.db "select count(*) from samples where advantage is null")
if [ "$trained" -gt 0 ] && [ "$dropped" -gt 0 ]; then ok; else bad "trained $trained, dropped $dropped"; fi
# Truncated samples are left out: with 4 new tokens (almost) every sample is cut, and a step
# whose samples were all cut trains nothing.
algo_run trunc "select count(*) = 2 from steps where frac_truncated > 0.5 and (frac_truncated < 1 or loss is null)" \
    --set algo.mask_truncated=true --set rollout.max_new_tokens=4
# DAPO's preset turns dynamic sampling on: an untrained model's rewards are all 0, so every
# group is dropped after max_sampling_rounds rounds and the step makes no update (and says so).
algo_run dapo "select count(*) = 2 from step_metrics where name = 'batch/groups_generated' and value = 12" \
    --set preset=dapo --set algo.ppo_epochs=2 --set algo.minibatch_size=8
LAST="dapo: no update, said"
if [ "$(Q runs/dapo/run.db "select count(*) from events where message like '%rewards were equal; no update'")" = 2 ] &&
    [ "$(Q runs/dapo/run.db "select count(*) from steps where loss is null")" = 2 ]; then ok; else bad "no warning"; fi

# --- errors before any model work ----------------------------------------------------------------------
printf '{"prompt": "What is 2 + 2?", "answer": "4"}\n{"prompt": "What is 3 + 3?"}\n' >noanswer.jsonl
run rlvr train tiny.lua --set name=bad1 --set data.train=noanswer.jsonl --set data.answer_key=
expect_status 2
expect_err "noanswer.jsonl:2: no field 'answer', which reward script 'math_r1' reads"
LAST="no model work after a data error"
if [ ! -d runs/bad1/checkpoints ] && [ ! -d runs/bad1/model ]; then ok; else bad "the failed run left a model"; fi
run rlvr train tiny.lua --set name=bad2 --set data.max_prompt_tokens=5
expect_status 2
expect_err "row 0: the prompt is"
expect_err "more than data.max_prompt_tokens = 5"
run rlvr train tiny.lua --set name=bad3 --set rollout.max_new_tokens=150
expect_status 2
expect_err "does not fit the model's context of 160 positions"
run rlvr train tiny.lua --set name=bad4 --set rollout.group_size=1
expect_status 2
expect_err "rollout.group_size = 1: GRPO needs at least 2 samples per prompt"
run rlvr sft tiny.lua --set name=bad6 --set sft.response_key=nope
expect_status 2
expect_err "no string field 'nope' (sft.response_key)"
run rlvr train tiny.lua --set name=bad7 --set reward.script=nosuch
expect_status 2
expect_err "nosuch"
finish
