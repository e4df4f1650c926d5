-- examples/arith/common.lua - what both stages of the demo share: the model shape, the
-- task (so SFT, GRPO and both evaluations see the same training and held-out problems),
-- and the generation length.
return {
  seed = 1,
  model = { init = { arch = "qwen2", hidden = 128, layers = 2, heads = 4, kv_heads = 2, intermediate = 384, max_positions = 256 } },
  -- "What is 3 + 5 - 2?": three one-digit operands, + and -; 2,000 training problems and
  -- 500 held-out ones whose expressions never occur in training.
  data = { arith = { n_train = 2000, n_eval = 500, min_digits = 1, max_digits = 1, terms = 3, ops = "+-" } },
  rollout = { max_new_tokens = 64 },
  reward = { script = "math_r1" },
  threads = 1, -- this model is too small to split: one thread is faster than two here
  blas_threads = 1,
}
