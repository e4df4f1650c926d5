-- gsm8k: as `math`, and a GSM8K-style "#### N" line in the completion also counts as the
-- final answer (when there is no \boxed{}).
local m = require "rlvr.math"

return {
  fields = { "answer" }, -- checked in every dataset row before training starts
  reward = function(s)
    return m.is_correct(s.completion, s.answer, { gsm8k = true }) and 1.0 or 0.0
  end,
  selftest = {
    { sample = { completion = "48 / 2 = 24\n#### 1,234", answer = "So 1234 in all.\n#### 1,234" }, reward = 1 },
    { sample = { completion = "\\boxed{72}", answer = "#### 72" }, reward = 1 },
    { sample = { completion = "#### 71", answer = "#### 72" }, reward = 0 },
    { sample = { completion = "I think it is 72", answer = "#### 72" }, reward = 0 },
  },
}
