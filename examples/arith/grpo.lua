-- examples/arith/grpo.lua - stage 2 of the arithmetic demo: GRPO with the math_r1 reward
-- (accuracy + 0.2 x format) from the SFT model (run.sh passes model.path).
return {
  name = "arith-grpo",
  seed = 1,
  steps = 60,
  learning_rate = 5e-4,
  warmup_steps = 5,
  rollout = { prompts_per_step = 8, group_size = 8, max_new_tokens = 48, temperature = 1.0 },
  reward = { script = "math_r1" },
  algo = { advantage = "grpo", loss_agg = "token_mean", kl_coef = 0 },
  eval_every = 0,
  save_every = 20,
}
