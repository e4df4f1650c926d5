#!/bin/bash
# test_train_ppo.sh - PPO with a critic (algo.advantage = "gae") end to end on a tiny model:
# the critic's metrics, its values moving to the returns, critic warmup, an update that does
# not depend on micro_batch_size, resume after SIGKILL equal bit for bit (critic included) to
# a run that never stopped, and the errors of a bad critic.path.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
Q() { sqlite3 "$1" "$2"; }

# The byte-level tokenizer, a 2-layer model, 4 prompts x 4 samples; a reward whose mean is
# far from the critic's starting value 0 and that varies with the completion's length.
cat >ppo.lua <<'EOF2'
return {
  model = { init = { hidden = 32, layers = 2, heads = 4, kv_heads = 2, intermediate = 64, max_positions = 160 } },
  rollout = { prompts_per_step = 4, group_size = 4, max_new_tokens = 24, temperature = 1.0 },
  data = { arith = { n_train = 64, n_eval = 8 } },
  reward = { script = "bylen.lua" },
  learning_rate = 3e-3,
  steps = 6,
  save_every = 2,
  eval_every = 0,
  micro_batch_size = 5,
  algo = { advantage = "gae", gamma = 0.99, lam = 0.95, kl_coef = 0.05, kl_in_reward = true, ppo_epochs = 2,
           minibatch_size = 8 },
}
EOF2
cat >bylen.lua <<'EOF2'
return { reward = function(s) return 2 + ((#s.completion % 3 == 0) and 1 or 0) end }
EOF2

# --- the critic learns: 20 steps of critic warmup (the policy, and so the returns' distribution,
# stay fixed) bring the values to the returns; then the policy is updated too ------------------------
run rlvr train ppo.lua --set name=fit --set steps=22 --set critic.warmup_steps=20 --set algo.ppo_epochs=1 \
    --set algo.minibatch_size=0 --set save_every=0
expect_status 0
LAST="fit: every critic metric logged on every step"
if [ "$(Q runs/fit/run.db "select count(distinct step) || '/' || count(*) from step_metrics where name in ('critic/vf_loss', 'critic/vf_clipfrac', 'critic/values_mean', 'critic/returns_mean', 'critic/grad_norm', 'critic/explained_variance') and value is not null")" = 22/132 ] ||
    [ "$(Q runs/fit/run.db "select count(distinct step) || '/' || count(*) from step_metrics where name in ('critic/vf_loss', 'critic/vf_clipfrac', 'critic/values_mean', 'critic/returns_mean', 'critic/grad_norm') and value is not null")" = 22/110 ]; then
    ok
else bad "$(Q runs/fit/run.db "select step, name, value from step_metrics where name like 'critic/%' limit 20")"; fi
LAST="fit: the values start at 0 and the value loss falls"
first=$(Q runs/fit/run.db "select value from step_metrics where step = 1 and name = 'critic/vf_loss'")
last=$(Q runs/fit/run.db "select avg(value) from step_metrics where step between 16 and 20 and name = 'critic/vf_loss'")
v1=$(Q runs/fit/run.db "select value from step_metrics where step = 1 and name = 'critic/values_mean'")
gap=$(Q runs/fit/run.db "select avg(abs(v.value - r.value)) from step_metrics v join step_metrics r on r.step = v.step and r.name = 'critic/returns_mean' where v.name = 'critic/values_mean' and v.step between 16 and 20")
if awk -v a="$first" -v b="$last" -v v="$v1" -v g="$gap" 'BEGIN { exit !(v == 0 && a > 1 && b < 0.2 * a && g < 0.5) }'; then ok
else bad "vf_loss $first -> $last, values_mean at step 1 $v1, |values - returns| at the end $gap"; fi
LAST="fit: the policy waits for the critic"
if [ "$(Q runs/fit/run.db "select group_concat(step) from steps where loss is null")" = "$(seq -s, 1 20)" ] &&
    [ "$(Q runs/fit/run.db "select count(*) from steps where step > 20 and loss is not null and grad_norm > 0")" = 2 ]; then ok
else bad "$(Q runs/fit/run.db "select step, loss from steps")"; fi

# --- micro_batch_size is memory only: one step with 1 and with 16 sequences per pass ----------------
run rlvr train ppo.lua --set name=micro1 --set steps=1 --set micro_batch_size=1
expect_status 0
run rlvr train ppo.lua --set name=micro16 --set steps=1 --set micro_batch_size=16
expect_status 0
LAST="the update does not depend on micro_batch_size"
if python3 - <<'PY'
import sqlite3
def load(name):
    db = sqlite3.connect(f"runs/{name}/run.db")
    m = dict(db.execute("select name, value from step_metrics where step = 1 and name like 'critic/%'"))
    m["loss"], m["grad_norm"] = db.execute("select loss, grad_norm from steps where step = 1").fetchone()
    return m
a, b = load("micro1"), load("micro16")
assert set(a) == set(b) and len(a) >= 9, (a, b)
for k in a:
    assert abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(a[k])), (k, a[k], b[k])
PY
then ok; else bad "metrics differ"; fi

# --- a straight run, and one killed with SIGKILL after its step-2 checkpoint and resumed --------------
run rlvr train ppo.lua --set name=straight
expect_status 0
for f in model.safetensors config.json tokenizer.json value_head.safetensors optim.bin; do
    LAST="checkpoint holds critic/$f"
    if [ -f "runs/straight/checkpoints/step-00000006/critic/$f" ]; then ok; else bad missing; fi
done
LAST="the policy's final model has no value head"
if [ ! -e runs/straight/model/value_head.safetensors ]; then ok; else bad "value head beside the policy"; fi
"$RLVR" train ppo.lua --set name=killed >killed.out 2>&1 &
pid=$!
while [ ! -d runs/killed/checkpoints/step-00000002 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
LAST="the kill landed mid-run"
if [ "$(Q runs/killed/run.db 'select status from runs')" = running ] && [ ! -d runs/killed/model ]; then ok; else bad "the run had finished"; fi
run rlvr train ppo.lua --set name=killed --resume
expect_status 0
expect_out "resumed runs/killed"
LAST="resumed gae run equals the straight run"
same=1
for q in "select step, reward_mean, loss, kl, entropy, grad_norm, lr, adv_mean, adv_std, clip_frac from steps order by step" \
    "select step, prompt_id, group_index, sample_index, hex(completion_ids), hex(logprobs), reward, advantage, policy_version from samples order by id" \
    "select step, name, value from step_metrics order by step, name"; do
    if [ "$(Q runs/straight/run.db "$q")" != "$(Q runs/killed/run.db "$q")" ]; then same=0; echo "differs: $q" >&2; fi
done
if [ $same = 1 ]; then ok; else bad "the resumed run differs"; fi
LAST="final policy and critic equal"
ck=checkpoints/step-00000006
if cmp -s runs/straight/model/model.safetensors runs/killed/model/model.safetensors &&
    cmp -s runs/straight/$ck/optim.bin runs/killed/$ck/optim.bin &&
    cmp -s runs/straight/$ck/critic/model.safetensors runs/killed/$ck/critic/model.safetensors &&
    cmp -s runs/straight/$ck/critic/value_head.safetensors runs/killed/$ck/critic/value_head.safetensors &&
    cmp -s runs/straight/$ck/critic/optim.bin runs/killed/$ck/critic/optim.bin; then ok
else bad "weights or optimizer states differ"; fi

# --- a critic from a checkpoint: critic.path brings the value head along ----------------------------
run rlvr train ppo.lua --set name=reuse --set steps=1 --set "critic.path=runs/straight/$ck/critic" \
    --set model.path=runs/straight/model
expect_status 0
LAST="reused critic: its values are not the zero head's"
if [ "$(Q runs/reuse/run.db "select value != 0 from step_metrics where step = 1 and name = 'critic/values_mean'")" = 1 ]; then ok
else bad "values_mean is 0"; fi

# --- a bad critic.path is an error before the run starts -----------------------------------------------
run rlvr train ppo.lua --set name=bad1 --set critic.path=no/such/dir
expect_status 2
expect_err 'critic.path = "no/such/dir"'
run rlvr train ppo.lua --set name=bad2 --set critic.path="$SRC/tests/fixtures/model/qwen3"
expect_status 2
expect_err "the model's vocabulary is 96 tokens"
expect_err "the critic reads the policy's token ids"
run rlvr train ppo.lua --set name=bad3 --set algo.advantage=grpo --set critic.warmup_steps=3
expect_status 2
expect_err 'critic.warmup_steps is set, but only algo.advantage = "gae" (PPO with a critic) has a critic'
LAST="no run after a critic error"
if [ ! -d runs/bad1/checkpoints ] && [ ! -d runs/bad2/checkpoints ]; then ok; else bad "a run was started"; fi
finish
