-- think_format: 1 when the completion follows the DeepSeek-R1 format
-- ("<think>\n...\n</think>\n" then a non-empty answer), else 0. Strict mode.
local format = require "rlvr.format"

return {
  reward = function(s)
    return format.think(s.completion, "strict") and 1.0 or 0.0
  end,
  selftest = {
    { sample = { completion = "<think>\nreasoning\n</think>\nThe answer is 4." }, reward = 1 },
    { sample = { completion = "The answer is 4." }, reward = 0 },
    { sample = { completion = "<think>\nreasoning\n</think>\n" }, reward = 0 },
  },
}
