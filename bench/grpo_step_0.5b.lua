-- bench/grpo_step_0.5b.lua - the end-to-end GRPO step benchmark (bench/run_grpo_step_gpu.sh):
-- a Qwen2.5-0.5B-shaped policy initialized at random with Qwen2.5's tokenizer (copied to
-- .bench-data/ by the script), 64 synthetic arithmetic prompts x G = 8 samples a step, 512
-- new tokens each at temperature 1 (a random model hardly ever stops early), rollouts and
-- training on the GPU, a hashed-text reward (grpo_step_reward.lua) so groups have spread.
return {
  name = "grpo-step-0.5b",
  device = "cuda",
  steps = 3,
  save_every = 0,
  eval_every = 0,
  learning_rate = 1e-6,
  micro_batch_size = 16,
  model = { init = { arch = "qwen2", hidden = 896, layers = 24, heads = 14, kv_heads = 2, intermediate = 4864,
                     max_positions = 1024 } },
  tokenizer = { path = ".bench-data/qwen2.5/tokenizer.json", chat_template = "qwen2.5" },
  data = { arith = { n_train = 2000, n_eval = 0 } },
  rollout = { device = "cuda", prompts_per_step = 64, group_size = 8, max_new_tokens = 512, temperature = 1 },
  reward = { script = "bench/grpo_step_reward.lua" },
  algo = { advantage = "grpo", loss_agg = "token_mean", kl_coef = 0 },
}
