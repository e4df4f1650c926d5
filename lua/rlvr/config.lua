-- rlvr.config: helpers for writing run configs.
--
--   local cfg = require "rlvr.config"
--   local base = require "base"            -- base.lua beside this config
--   return cfg.merge(base, { rollout = { temperature = 0.7 } })
--
-- merge() deep-merges tables: keys of `over` replace those of `base`, sub-tables are
-- merged key by key, and lists (tables with a [1]) are replaced whole, never spliced.
local M = {}

local function is_list(t)
  return type(t) == "table" and (next(t) == nil or t[1] ~= nil)
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

function M.merge(base, over, ...)
  if type(base) ~= "table" then error("rlvr.config.merge: base must be a table, got " .. type(base), 2) end
  local out = copy(base)
  if over ~= nil then
    if type(over) ~= "table" then error("rlvr.config.merge: override must be a table, got " .. type(over), 2) end
    for k, v in pairs(over) do
      if type(v) == "table" and type(out[k]) == "table" and not is_list(v) and not is_list(out[k]) then
        out[k] = M.merge(out[k], v)
      else
        out[k] = copy(v)
      end
    end
  end
  if select("#", ...) > 0 then return M.merge(out, ...) end
  return out
end

return M
