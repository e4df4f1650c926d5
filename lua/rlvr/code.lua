-- rlvr.code: scoring model-written Python against a row's tests in the code sandbox.
--   extract_program(text)   the last ```python (or ```py / bare ```) block, else the whole text
--   build(s)                program text, the test text, and whether the tests are plain asserts
--   score(s, opts)          1/0 (all tests ran to the end), or with opts.partial the share of
--                           plain `assert` lines that passed
--   script(opts)            a reward-script table using score(s, opts)
local sandbox = require "rlvr.sandbox"
local fmt = require "rlvr.format"
local M = {}

function M.extract_program(text)
  local last
  local i = 1
  while true do
    local a, b, lang = string.find(text, "```([%w_+-]*)[^\n]*\n", i)
    if not a then break end
    local close_a, close_b = string.find(text, "\n```", b, true)
    local body
    if close_a then body = string.sub(text, b + 1, close_a - 1) else body = string.sub(text, b + 1) end
    lang = string.lower(lang)
    if lang == "python" or lang == "py" or lang == "python3" or lang == "" then last = body end
    if not close_a then break end
    i = close_b + 1
  end
  return last or text
end

local function tests_text(tests)
  if type(tests) == "table" then return table.concat(tests, "\n") end
  if type(tests) == "string" then return tests end
  return nil
end

-- Plain asserts: every non-blank, non-comment line is a one-line assert statement.
local function plain_asserts(t)
  local n = 0
  for line in string.gmatch(t, "[^\n]+") do
    if string.find(line, "%S") and not string.match(line, "^%s*#") then
      if not string.match(line, "^assert[%s%(]") then return false end
      n = n + 1
    end
  end
  return n > 0
end

function M.build(s)
  local region = fmt.answer_after_think(s.completion or "")
  if not region then return nil, "the completion never closes its <think>" end
  local program = M.extract_program(region)
  local tests = tests_text(s.tests or s.test)
  if not tests then error("the row has no `tests` (a string or a list of strings)", 0) end
  local entry = s.entry_point
  if entry and string.find(tests, "def%s+check%s*%(") and not string.find(tests, "\ncheck%s*%(")
      and not string.match(tests, "^check%s*%(") then
    tests = tests .. "\n\ncheck(" .. entry .. ")\n"
  end
  return program, tests, plain_asserts(tests)
end

function M.score(s, opts)
  local program, tests, asserts_only = M.build(s)
  if not program then return 0.0 end
  if opts and opts.partial and asserts_only then
    local r = sandbox.run_python(program, tests)
    if r.verdict ~= "pass" and r.verdict ~= "fail" then return 0.0 end
    if r.asserts_total == 0 then return 0.0 end
    return r.asserts_passed / r.asserts_total
  end
  local r = sandbox.run_python(program .. "\n\n" .. tests .. "\n")
  return r.passed and 1.0 or 0.0
end

function M.script(opts)
  return {
    fields = { "tests" },
    reward = function(s) return M.score(s, opts) end,
    selftest = {
      { sample = { completion = "```python\ndef add(a, b):\n    return a + b\n```",
                   tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n", entry_point = "add" }, reward = 1 },
      { sample = { completion = "```python\ndef add(a, b):\n    return a - b\n```",
                   tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n", entry_point = "add" }, reward = 0 },
      { sample = { completion = "import sys\nprint('OK')\nsys.exit(0)\n", tests = "assert False\n" }, reward = 0 },
    },
  }
end

return M
