-- examples/arith/sft.lua - stage 1 of the arithmetic demo: a tiny model from scratch
-- (byte-level tokenizer) learns the answer format from worked solutions
-- ("<think>\n3 + 5 = 8\n8 - 2 = 6\n</think>\n\boxed{6}"), briefly.
local cfg = require "rlvr.config"
return cfg.merge(require "common", {
  name = "arith-sft",
  steps = 500,
  learning_rate = 3e-3,
  warmup_steps = 20,
  lr_schedule = "cosine",
  min_lr_ratio = 0.1,
  sft = { batch_size = 32 },
  eval_every = 0,
  log_every = 50,
  save_every = 250,
})
