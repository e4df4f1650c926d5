-- examples/arith/grpo.lua - stage 2 of the arithmetic demo: GRPO with the math_r1 reward
-- (accuracy + 0.2 x format, the answer taken after </think>) from the SFT model; run.sh
-- passes model.path.
local cfg = require "rlvr.config"
return cfg.merge(require "common", {
  name = "arith-grpo",
  steps = 200,
  learning_rate = 3e-5,
  rollout = { prompts_per_step = 16, group_size = 8, temperature = 1.0 },
  algo = { advantage = "grpo", loss_agg = "token_mean", kl_coef = 0 },
  eval_every = 0,
  log_every = 10,
  save_every = 50,
})
