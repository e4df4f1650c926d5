-- examples/arith/sft.lua - stage 1 of the arithmetic demo: a tiny model from scratch
-- (byte-level tokenizer) learns the answer format from worked solutions.
return {
  name = "arith-sft",
  seed = 1,
  model = { init = { arch = "qwen2", hidden = 128, layers = 4, heads = 4, kv_heads = 2, intermediate = 512, max_positions = 256 } },
  steps = 300,
  learning_rate = 3e-3,
  warmup_steps = 20,
  lr_schedule = "cosine",
  min_lr_ratio = 0.1,
  sft = { batch_size = 32 },
  eval_every = 0,
  save_every = 100,
}
