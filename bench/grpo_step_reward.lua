-- bench/grpo_step_reward.lua - the reward of the GRPO step benchmark: a random-weight
-- model never answers, so any verifier gives every sample 0 and every group zero
-- advantages. This one scores a cheap hash of the completion's text into [0, 1), so the
-- groups have spread and the update does real work, at the cost of a real reward call.
return {
  reward = function(s)
    local h = 0
    local text = s.completion
    for i = 1, #text, 7 do h = (h * 31 + text:byte(i)) % 1000003 end
    return (h % 1000) / 1000
  end,
  selftest = { { sample = { completion = "" }, reward = 0 } },
}
