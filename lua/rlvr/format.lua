-- rlvr.format: response-shape checks for reward scripts.
--   think(text, mode)         DeepSeek-R1 format: "<think>\n...\n</think>\n" then a non-empty answer
--   answer_after_think(text)  the text after the last </think> (nil when a <think> is left open)
--   overlong(n, max, cache)   DAPO's soft overlong penalty (0 .. -1)
--   repetition(text, n)       share of word n-grams that repeat an earlier one (0 .. 1)
local M = {}

local function count(text, plain)
  local n, i = 0, 1
  while true do
    local a, b = string.find(text, plain, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

-- strict: exactly "<think>\n" at the start, one "\n</think>\n", and a non-blank answer
-- after it, with no further think tags. lenient: whitespace around the tags is free,
-- the opening tag may be missing (chat templates that open <think> in the prompt), the
-- answer must still be non-blank and the tags must not repeat.
function M.think(text, mode)
  if type(text) ~= "string" then return false end
  mode = mode or "strict"
  if mode == "strict" then
    if count(text, "<think>") ~= 1 or count(text, "</think>") ~= 1 then return false end
    local reasoning, answer = string.match(text, "^<think>\n(.-)\n</think>\n(.*)$")
    if not reasoning then return false end
    return string.find(reasoning, "%S") ~= nil and string.find(answer, "%S") ~= nil
  elseif mode == "lenient" then
    local opens, closes = count(text, "<think>"), count(text, "</think>")
    if closes ~= 1 or opens > 1 then return false end
    local before, answer = string.match(text, "^(.-)</think>(.*)$")
    if opens == 1 and not string.match(before, "^%s*<think>") then return false end
    return string.find(answer, "%S") ~= nil
  end
  error("format.think: mode must be 'strict' or 'lenient', got " .. tostring(mode), 2)
end

-- The final-answer part of a reasoning completion: after the last </think>. A <think>
-- that is never closed means the model did not finish thinking: no answer (nil).
function M.answer_after_think(text)
  local last_close
  local i = 1
  while true do
    local a, b = string.find(text, "</think>", i, true)
    if not a then break end
    last_close, i = b, b + 1
  end
  if last_close then return string.sub(text, last_close + 1) end
  if string.find(text, "<think>", 1, true) then return nil end
  return text
end

-- DAPO (Yu et al. 2025, eq. 13): no penalty up to max - cache tokens, then a linear ramp
-- to -1 at max, and -1 beyond.
function M.overlong(n_tokens, max_tokens, cache)
  assert(type(n_tokens) == "number" and type(max_tokens) == "number" and type(cache) == "number",
    "format.overlong(n_tokens, max_tokens, cache) takes three numbers")
  if n_tokens <= max_tokens - cache then return 0.0 end
  if n_tokens <= max_tokens then return ((max_tokens - cache) - n_tokens) / cache end
  return -1.0
end

-- Share of the word n-grams (default n = 4) that already occurred earlier in the text:
-- 0 for text without repeats, close to 1 for a loop ("the the the ...").
function M.repetition(text, n)
  n = n or 4
  local words = {}
  for w in string.gmatch(text, "%S+") do words[#words + 1] = w end
  local total = #words - n + 1
  if total <= 1 then return 0.0 end
  local seen, repeated = {}, 0
  for i = 1, total do
    local key = table.concat(words, "\1", i, i + n - 1)
    if seen[key] then repeated = repeated + 1 else seen[key] = true end
  end
  return repeated / total
end

return M
