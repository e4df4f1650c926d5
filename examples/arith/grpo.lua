-- examples/arith/grpo.lua - stage 2 of the arithmetic demo: GRPO with the math_r1 reward
-- (accuracy + 0.2 x format, the answer taken after </think>) from the SFT model, on all
-- 2,000 training problems (answers only); run.sh passes model.path.
--
-- 8 prompts x 16 samples per step at temperature 0.7 (held-out accuracy is greedy: cooler
-- samples put the learning signal where greedy decoding goes), lr 5e-5 decaying to 5e-6.
-- docs/training.md records what else was measured.
local cfg = require "rlvr.config"
return cfg.merge(require "common", {
  name = "arith-grpo",
  steps = 200,
  learning_rate = 5e-5,
  warmup_steps = 10,
  lr_schedule = "cosine",
  min_lr_ratio = 0.1,
  rollout = { prompts_per_step = 8, group_size = 16, temperature = 0.7 },
  algo = { advantage = "grpo", loss_agg = "token_mean", kl_coef = 0 },
  eval_every = 0,
  log_every = 10,
  save_every = 50,
})
