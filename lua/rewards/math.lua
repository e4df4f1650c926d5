-- math: accuracy 1/0. The final answer is the last \boxed{} of the completion (after the
-- last </think>), compared with the row's `answer` by rlvr.math.equal.
local m = require "rlvr.math"

return {
  fields = { "answer" }, -- checked in every dataset row before training starts
  reward = function(s)
    return m.is_correct(s.completion, s.answer) and 1.0 or 0.0
  end,
  selftest = {
    { sample = { completion = "So the answer is \\boxed{\\frac{1}{2}}.", answer = "0.5" }, reward = 1 },
    { sample = { completion = "The answer is $\\boxed{12}$", answer = "Natalia sold 48/2 = 24 clips.\n#### 12" }, reward = 1 },
    { sample = { completion = "\\boxed{13}", answer = "12" }, reward = 0 },
    { sample = { completion = "The answer is 12.", answer = "12" }, reward = 0 },
    { sample = { completion = "<think>\n\\boxed{12}", answer = "12" }, reward = 0 },
    { sample = { completion = "#### 12", answer = "12" }, reward = 0 },
  },
}
