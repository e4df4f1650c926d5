-- examples/arith/sft.lua - stage 1 of the arithmetic demo: a tiny model from scratch
-- (byte-level tokenizer) learns the answer format from worked solutions
-- ("<think>\n3 + 5 = 8\n8 - 2 = 6\n</think>\n\boxed{6}"), briefly.
--
-- Worked solutions are the scarce kind of data: SFT gets them for the first 1,000 of the
-- 2,000 training problems only, while GRPO (grpo.lua) needs nothing but the final answer of
-- all 2,000. Problems are a pure function of (seed, index), so these 1,000 are the same
-- problems GRPO starts its list with, and the held-out set (built from grpo.lua's 2,000)
-- shares none of them.
local cfg = require "rlvr.config"
return cfg.merge(require "common", {
  name = "arith-sft",
  steps = 500,
  learning_rate = 3e-3,
  warmup_steps = 20,
  lr_schedule = "cosine",
  min_lr_ratio = 0.1,
  data = { arith = { n_train = 1000 } },
  sft = { batch_size = 32 },
  eval_every = 0,
  log_every = 50,
  save_every = 250,
})
