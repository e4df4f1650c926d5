-- rlvr.math: final-answer extraction and equivalence checking for math rewards.
--
--   final_answer(completion, {gsm8k = bool}) -> string | nil
--       the last \boxed{...} / \fbox{...} (balanced braces, or \boxed 5) in the text after
--       the last </think>; nil when a <think> is never closed or there is no box (with
--       gsm8k = true, "#### N" also counts). Never "some number found in the prose".
--   reference(answer) -> string | nil
--       the reference's final answer: a bare value, LaTeX, a GSM8K solution ending in
--       "#### 1,234" (what follows the last ####), or text holding its own \boxed{}.
--   normalize(s) -> string          the canonical text the comparison starts from
--   equal(pred, ref [, opts]) -> bool
--       strings after normalization, numbers (integers, decimals, fractions, mixed numbers,
--       percentages, scientific notation, \pi and \sqrt evaluated) within a relative
--       tolerance (opts.rel_tol, default 1e-6), intervals and tuples (ordered, brackets
--       must agree), sets and bare lists (any order), multiple-choice letters.
--   is_correct(completion, answer [, opts]) -> bool   final_answer + reference + equal
local M = {}

local sfind, ssub, sgsub, smatch, sbyte = string.find, string.sub, string.gsub, string.match, string.byte

local function trim(s) return (smatch(s, "^%s*(.-)%s*$")) end

-- ---- extraction -------------------------------------------------------------------

-- The content of the brace group opening at position i (s[i] == "{"), and the position
-- after its closing brace; nil when the braces never balance. "\{" and "\}" are text.
local function brace_group(s, i)
  local depth, j, n = 0, i, #s
  while j <= n do
    local c = sbyte(s, j)
    if c == 92 then -- backslash: skip the escaped character
      j = j + 2
    else
      if c == 123 then depth = depth + 1
      elseif c == 125 then
        depth = depth - 1
        if depth == 0 then return ssub(s, i + 1, j - 1), j + 1 end
      end
      j = j + 1
    end
  end
  return nil
end

-- The last boxed answer in s, or nil.
function M.last_boxed(s)
  local best, i = nil, 1
  while true do
    local a, b, cmd = sfind(s, "\\(f?box[ed]*)", i)
    if not a then return best end
    if cmd == "boxed" or cmd == "fbox" then
      local k = b + 1
      local c = ssub(s, k, k)
      if c == "{" then
        local content = brace_group(s, k)
        if content then best = content end
      elseif c == " " then
        -- "\boxed 5": the token up to whitespace, '$' or the end
        local tok = smatch(s, "^ +([^%s%$]+)", k)
        if tok then best = tok end
      end
    end
    i = b + 1
  end
end

-- The part of a completion that may hold the final answer: after the last </think>;
-- nil when a <think> is opened and never closed (answers inside reasoning do not count).
function M.answer_region(text)
  local last, i = nil, 1
  while true do
    local a, b = sfind(text, "</think>", i, true)
    if not a then break end
    last, i = b, b + 1
  end
  if last then return ssub(text, last + 1) end
  if sfind(text, "<think>", 1, true) then return nil end
  return text
end

-- The text after the last "####" up to the end of that line.
local function after_hashes(s)
  local last, i = nil, 1
  while true do
    local a, b = sfind(s, "####", i, true)
    if not a then break end
    last, i = b, b + 1
  end
  if not last then return nil end
  local v = trim(smatch(s, "^[^\n]*", last + 1))
  if v == "" then return nil end
  return v
end

function M.final_answer(completion, opts)
  if type(completion) ~= "string" then return nil end
  local region = M.answer_region(completion)
  if not region then return nil end
  local boxed = M.last_boxed(region)
  if boxed and trim(boxed) ~= "" then return trim(boxed) end
  if opts and opts.gsm8k then return after_hashes(region) end
  return nil
end

function M.reference(answer)
  if type(answer) == "number" then return string.format("%.17g", answer) end
  if type(answer) ~= "string" then return nil end
  local hashes = after_hashes(answer)
  if hashes then return hashes end
  local boxed = M.last_boxed(answer)
  if boxed then return trim(boxed) end
  local s = trim(answer)
  if s == "" then return nil end
  return s
end

-- ---- normalization ----------------------------------------------------------------

-- Replaces every \cmd{content} with f(content) (balanced braces).
local function replace_command(s, cmd, f)
  local out, i = {}, 1
  local pat = "\\" .. cmd .. "%s*{"
  while true do
    local a, b = sfind(s, pat, i)
    if not a then break end
    local content, after = brace_group(s, b)
    if not content then break end
    out[#out + 1] = ssub(s, i, a - 1)
    out[#out + 1] = f(content)
    i = after
  end
  out[#out + 1] = ssub(s, i)
  return table.concat(out)
end

local TEXT_COMMANDS = { "text", "textbf", "textit", "textnormal", "mathrm", "mathbf", "mathit", "mbox",
  "operatorname", "textrm", "mathsf" }

-- Words that name units or currencies, stripped after a number ("5 cm", "12 dollars").
local UNIT_WORDS = {}
for w in string.gmatch([[
  cm mm m km in inch inches ft foot feet yd yard yards mile miles meter meters metre metres
  centimeter centimeters kilometer kilometers millimeter millimeters
  g kg mg gram grams kilogram kilograms lb lbs pound pounds oz ounce ounces ton tons
  s sec second seconds min minute minutes h hr hrs hour hours day days week weeks month months year years
  l ml liter liters litre litres gallon gallons cup cups
  dollar dollars cent cents euro euros usd
  unit units degree degrees deg radian radians
  sq square cubic mph kph kmh
  people person persons student students apple apples ball balls book books page pages item items times
  percent point points]], "%a+") do UNIT_WORDS[w] = true end

local function strip_units(s)
  -- a number-like head, then words that are all units
  local head, tail = smatch(s, "^(.-[%d}%)])%s+(%a[%a%s%.%^%d/]*)$")
  if not head then return s end
  for w in string.gmatch(tail, "%a+") do
    if not UNIT_WORDS[string.lower(w)] then return s end
  end
  return head
end

function M.normalize(s)
  if type(s) ~= "string" then return "" end
  s = trim(s)
  -- math delimiters
  s = sgsub(s, "^%$+(.-)%$+$", "%1")
  s = sgsub(s, "^\\%((.-)\\%)$", "%1")
  s = sgsub(s, "^\\%[(.-)\\%]$", "%1")
  s = sgsub(s, "\\displaystyle", "")
  s = sgsub(s, "\\[dt]frac", "\\frac")
  s = sgsub(s, "\\left", "")
  s = sgsub(s, "\\right", "")
  s = sgsub(s, "\\[bB]igg?[lr]?", "")
  -- \text{...} and friends: the content, set off by a space so units can be told apart
  for _, cmd in ipairs(TEXT_COMMANDS) do
    s = replace_command(s, cmd, function(c) return " " .. c .. " " end)
  end
  -- percent, degrees, currency
  s = sgsub(s, "\\%%", "%%")
  s = sgsub(s, "%^%s*{?%s*\\circ%s*}?", "")
  s = sgsub(s, "\\circ", "")
  s = sgsub(s, "\194\176", "") -- the degree sign
  s = sgsub(s, "\\%$", "")
  s = sgsub(s, "%$", "")
  -- spacing commands: a thin space between digit groups is a thousands separator
  s = sgsub(s, "(%d)\\,(%d%d%d)", "%1%2")
  s = sgsub(s, "\\!", "")
  s = sgsub(s, "\\[,;: ]", " ")
  s = sgsub(s, "\\q?quad", " ")
  s = sgsub(s, "~", " ")
  s = trim(s)
  -- "x = 5", "k=3": a single variable on the left
  local rhs = smatch(s, "^\\?%a+%s*=%s*(.+)$")
  if rhs and not sfind(rhs, "=", 1, true) and #smatch(s, "^\\?%a+") <= 6 then s = trim(rhs) end
  s = sgsub(s, "%.$", "")
  s = strip_units(trim(s))
  s = sgsub(s, "%%$", "")
  s = trim(s)
  -- thousands separators: "1,234,567" and "1{,}234"
  s = sgsub(s, "{,}", "")
  local sign, int, frac = smatch(s, "^([+-]?)(%d[%d,]*)(%.?%d*)$")
  if int and sfind(int, ",", 1, true) then
    local rest = smatch(int, "^%d%d?%d?(.*)$")
    while rest ~= "" and smatch(rest, "^,%d%d%d") do rest = ssub(rest, 5) end
    if rest == "" then s = sign .. sgsub(int, ",", "") .. frac end
  end
  -- "3 1/2" is a mixed number; other digits split by spaces ("1 0") stay apart
  local whole, num, den = smatch(s, "^(%-?%d+)%s+(%d+)/(%d+)$")
  if whole then s = whole .. "\\frac{" .. num .. "}{" .. den .. "}" end
  s = sgsub(s, "(%d)%s+(%d)", "%1#%2")
  s = sgsub(s, "%s+", "")
  s = sgsub(s, "^%+", "")
  -- \frac12 -> \frac{1}{2}, \frac1{2}, \sqrt2 -> \sqrt{2}
  s = sgsub(s, "\\frac(%d)(%d)", "\\frac{%1}{%2}")
  s = sgsub(s, "\\frac(%d){", "\\frac{%1}{")
  s = sgsub(s, "\\frac({[^{}]*})(%d)", "\\frac%1{%2}")
  s = sgsub(s, "\\sqrt(%d+)", "\\sqrt{%1}")
  return s
end

-- ---- numbers: a small evaluator for LaTeX arithmetic ---------------------------------

local function tokenize(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = ssub(s, i, i)
    local num = smatch(s, "^%d+%.?%d*[eE][+-]?%d+", i) or smatch(s, "^%d+%.?%d*", i) or smatch(s, "^%.%d+", i)
    if num then
      toks[#toks + 1] = { "num", tonumber(num), num }
      i = i + #num
    elseif c == "\\" then
      local cmd = smatch(s, "^\\(%a+)", i)
      if cmd then
        toks[#toks + 1] = { "cmd", cmd }
        i = i + 1 + #cmd
      else
        toks[#toks + 1] = { "chr", ssub(s, i + 1, i + 1) }
        i = i + 2
      end
    else
      toks[#toks + 1] = { "chr", c }
      i = i + 1
    end
  end
  return toks
end

-- Recursive descent over tokens; errors (via error()) mean "not arithmetic".
local function evaluate(s)
  local toks = tokenize(s)
  local pos = 1
  local exact = true -- no \pi, \sqrt or fractional power: a rational value
  local function peek() return toks[pos] end
  local function is(t, k, v) return t and t[1] == k and (v == nil or t[2] == v) end
  local function expect(k, v)
    local t = toks[pos]
    if not is(t, k, v) then error("expected " .. tostring(v)) end
    pos = pos + 1
  end
  local expr
  local function group()
    local t = peek()
    if is(t, "chr", "{") then
      pos = pos + 1
      local v = expr()
      expect("chr", "}")
      return v
    elseif is(t, "num") and #t[3] == 1 then
      pos = pos + 1
      return t[2]
    end
    error("expected a group")
  end
  local function primary()
    local t = peek()
    if not t then error("unexpected end") end
    if t[1] == "num" then
      pos = pos + 1
      -- a mixed number: 3\frac{1}{2} is 3 + 1/2
      local nx = peek()
      if is(nx, "cmd", "frac") and not sfind(t[3], "[%.eE]") then
        local save = pos
        pos = pos + 1
        local ok, a, b = pcall(function() return group(), group() end)
        if ok and a == math.floor(a) and b == math.floor(b) and b ~= 0 then return t[2] + a / b end
        pos = save
      end
      return t[2]
    elseif t[1] == "cmd" then
      pos = pos + 1
      local c = t[2]
      if c == "pi" then exact = false return math.pi
      elseif c == "infty" then return math.huge
      elseif c == "frac" then
        local a = group()
        local b = group()
        return a / b
      elseif c == "sqrt" then
        exact = false
        local root = 2
        if is(peek(), "chr", "[") then
          pos = pos + 1
          root = expr()
          expect("chr", "]")
        end
        local v = group()
        if v < 0 then error("sqrt of a negative") end
        return v ^ (1 / root)
      end
      error("unknown command \\" .. c)
    elseif is(t, "chr", "(") then
      pos = pos + 1
      local v = expr()
      expect("chr", ")")
      return v
    elseif is(t, "chr", "{") then
      pos = pos + 1
      local v = expr()
      expect("chr", "}")
      return v
    end
    error("not a number")
  end
  local unary
  local function power()
    local base = primary()
    if is(peek(), "chr", "^") then
      pos = pos + 1
      local e = unary()
      if e ~= math.floor(e) then exact = false end
      return base ^ e
    end
    return base
  end
  function unary()
    local t = peek()
    if is(t, "chr", "-") then pos = pos + 1 return -unary() end
    if is(t, "chr", "+") then pos = pos + 1 return unary() end
    return power()
  end
  local function starts_primary(t)
    return t and (t[1] == "num" or (t[1] == "cmd" and (t[2] == "pi" or t[2] == "frac" or t[2] == "sqrt"))
      or is(t, "chr", "(") or is(t, "chr", "{"))
  end
  local function term()
    local v = unary()
    while true do
      local t = peek()
      if is(t, "chr", "*") or is(t, "cmd", "cdot") or is(t, "cmd", "times") then
        pos = pos + 1
        v = v * unary()
      elseif is(t, "chr", "/") or is(t, "cmd", "div") then
        pos = pos + 1
        v = v / unary()
      elseif starts_primary(t) then
        v = v * power() -- implicit product: 2\pi, 3\sqrt{2}
      else
        return v
      end
    end
  end
  function expr()
    local v = term()
    while true do
      local t = peek()
      if is(t, "chr", "+") then pos = pos + 1 v = v + term()
      elseif is(t, "chr", "-") then pos = pos + 1 v = v - term()
      else return v end
    end
  end
  local v = expr()
  if pos <= #toks then error("trailing text") end
  return v, exact
end

-- The value of a normalized string when it is plain arithmetic, else nil; and whether
-- the value is exact (no \pi or \sqrt: integers, decimals and fractions only).
function M.number(s)
  if s == "" or #s > 200 then return nil end
  local ok, v, exact = pcall(evaluate, s)
  if ok and type(v) == "number" and v == v then return v, exact end
  return nil
end

-- ---- structure: lists, tuples, intervals, sets -----------------------------------------

-- Splits at top-level commas (outside (), [], {}).
local function split_top(s)
  local parts, depth, start = {}, 0, 1
  local i, n = 1, #s
  while i <= n do
    local c = ssub(s, i, i)
    if c == "\\" then i = i + 1
    elseif c == "(" or c == "[" or c == "{" then depth = depth + 1
    elseif c == ")" or c == "]" or c == "}" then depth = depth - 1
    elseif c == "," and depth == 0 then
      parts[#parts + 1] = ssub(s, start, i - 1)
      start = i + 1
    end
    i = i + 1
  end
  parts[#parts + 1] = ssub(s, start)
  return parts
end

-- Whether the brackets at both ends enclose the whole string (not "(1)+(2)").
local function encloses(s)
  local depth = 0
  for i = 1, #s do
    local c = ssub(s, i, i)
    if c == "(" or c == "[" or c == "{" then depth = depth + 1
    elseif c == ")" or c == "]" or c == "}" then
      depth = depth - 1
      if depth == 0 and i < #s then return false end
    end
  end
  return depth == 0
end

-- {kind = "set"|"seq"|"list", open, close, items} or nil for a single value.
local function structure(s)
  local inner = smatch(s, "^\\{(.*)\\}$")
  if inner then return { kind = "set", items = split_top(inner) } end
  local open, body, close = smatch(s, "^([%(%[])(.*)([%)%]])$")
  if open and encloses(s) then
    local items = split_top(body)
    if #items >= 2 then return { kind = "seq", open = open, close = close, items = items } end
  end
  local items = split_top(s)
  if #items >= 2 then return { kind = "list", items = items } end
  return nil
end

local function choice_letter(s)
  return smatch(s, "^%(([A-Ea-e])%)$") or smatch(s, "^([A-Ea-e])$") or smatch(s, "^([A-Ea-e])[%.:%)]$")
end

local equal_norm

local function close(a, b, rel)
  if a == b then return true end
  if a == math.huge or b == math.huge or a == -math.huge or b == -math.huge then return false end
  return math.abs(a - b) <= rel * math.max(math.abs(a), math.abs(b), 1e-12)
end

-- Unordered matching of items: every item of a pairs with a distinct equal item of b.
local function same_multiset(a, b, opts)
  if #a ~= #b then return false end
  local used = {}
  for i = 1, #a do
    local found = false
    for j = 1, #b do
      if not used[j] and equal_norm(a[i], b[j], opts) then
        used[j], found = true, true
        break
      end
    end
    if not found then return false end
  end
  return true
end

function equal_norm(p, r, opts)
  if p == r then return p ~= "" end
  if p == "" or r == "" then return false end
  local rel = opts and opts.rel_tol or 1e-6
  local pv, pe = M.number(p)
  local r_v, re = M.number(r)
  if pv and r_v then return close(pv, r_v, (pe and re) and 1e-12 or rel) end
  local rl = choice_letter(r)
  if rl then
    local pl = choice_letter(p)
    return pl ~= nil and string.upper(pl) == string.upper(rl)
  end
  local ps, rs = structure(p), structure(r)
  if ps and rs then
    if rs.kind == "seq" then
      if ps.kind ~= "seq" or ps.open ~= rs.open or ps.close ~= rs.close or #ps.items ~= #rs.items then return false end
      for i = 1, #rs.items do
        if not equal_norm(ps.items[i], rs.items[i], opts) then return false end
      end
      return true
    end
    if ps.kind == "seq" then return false end -- ordered pred for a set/list reference
    return same_multiset(ps.items, rs.items, opts)
  end
  -- interval unions: compare the pieces in order
  if sfind(r, "\\cup", 1, true) and sfind(p, "\\cup", 1, true) then
    local function pieces(s)
      local t = {}
      for piece in string.gmatch(s .. "\\cup", "(.-)\\cup") do t[#t + 1] = piece end
      return t
    end
    local pp, rp = pieces(p), pieces(r)
    if #pp ~= #rp then return false end
    for i = 1, #rp do
      if not equal_norm(pp[i], rp[i], opts) then return false end
    end
    return true
  end
  return false
end

function M.equal(pred, ref, opts)
  if type(pred) ~= "string" or type(ref) ~= "string" then return false end
  local p, r = M.normalize(pred), M.normalize(ref)
  if equal_norm(p, r, opts) then return true end
  -- a percentage against its fraction: "50\%" and "0.5"
  local p_pct, r_pct = sfind(pred, "%%") ~= nil, sfind(ref, "%%") ~= nil
  if p_pct ~= r_pct then
    local pv, r_v = M.number(p), M.number(r)
    local rel = opts and opts.rel_tol or 1e-6
    if pv and r_v then
      if p_pct then return close(pv / 100, r_v, rel) end
      return close(pv, r_v / 100, rel)
    end
  end
  return false
end

function M.is_correct(completion, answer, opts)
  local pred = M.final_answer(completion, opts)
  local ref = M.reference(answer)
  if not pred or not ref then return false end
  return M.equal(pred, ref, opts)
end

return M
