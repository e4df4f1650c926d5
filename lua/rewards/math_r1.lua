-- math_r1: DeepSeek-R1-style reward: accuracy (1/0, the answer taken after </think>)
-- plus 0.2 x format (1/0, "<think>\n...\n</think>\n" then a non-empty answer).
local m = require "rlvr.math"
local format = require "rlvr.format"

return {
  fields = { "answer" }, -- checked in every dataset row before training starts
  reward = function(s)
    return {
      accuracy = m.is_correct(s.completion, s.answer) and 1.0 or 0.0,
      format = format.think(s.completion, "strict") and 1.0 or 0.0,
    }
  end,
  weights = { accuracy = 1.0, format = 0.2 },
  selftest = {
    { sample = { completion = "<think>\n2+2 is 4\n</think>\nThe answer is \\boxed{4}.", answer = "4" }, reward = 1.2 },
    { sample = { completion = "<think>\nmaybe \\boxed{4}\n</think>\nThe answer is \\boxed{5}.", answer = "4" }, reward = 0.2 },
    { sample = { completion = "The answer is \\boxed{4}.", answer = "4" }, reward = 1.0 },
    { sample = { completion = "<think>\nIt is \\boxed{4}", answer = "4" }, reward = 0 },
  },
}
