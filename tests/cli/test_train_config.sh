# test_train_config.sh - `rlvr train`: config files, --set, --dry-run, and every way a
# config can be wrong, as a user meets them on the command line.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

# The embedded default: a dry run prints a loadable config and records the run.
run rlvr train --dry-run
expect_status 0
expect_out "return {"
expect_out 'name = "arith-grpo"'
expect_out "-- train: 2000 prompts from arith(seed=1, split=train)"
expect_out "-- eval:  500 prompts from arith(seed=1, split=eval)"
expect_out "-- run database: runs/arith-grpo/run.db (run 1, status dry-run)"
[ -f runs/arith-grpo/run.db ] && ok || bad "runs/arith-grpo/run.db was not created"

# The printed config loads back and resolves to the same text.
printf '%s\n' "$OUT" > resolved.lua
run rlvr train resolved.lua --dry-run --db other.db
expect_status 0
grep -v '^-- ' resolved.lua > a.txt
printf '%s\n' "$OUT" | grep -v '^-- ' | sed 's|^  db = "other.db",|  db = "",|' > b.txt
if cmp -s a.txt b.txt; then ok; else LAST="round trip"; bad "resolved config changed on reload: $(diff a.txt b.txt | head -5)"; fi
[ -f other.db ] && ok || bad "--db other.db was not used"

# A bad key stops the trainer before anything is written (the run itself: test_train.sh).
run rlvr train --set rollout.temprature=0.5
expect_status 2
expect_err "did you mean 'rollout.temperature'"
[ ! -d runs/arith-grpo/checkpoints ] && [ ! -d runs/arith-grpo/tokenizer ] && ok || bad "a failed config started a run"

# A config file with nested sections and --set overrides, later wins.
cat > good.lua <<'LUA'
-- a comment
local g = 4
return {
  name = "t1",
  learning_rate = 3e-6,
  rollout = { group_size = g * 2, temperature = 0.7 },
}
LUA
run rlvr train good.lua --set rollout.temperature=0.5 --set seed=7 --dry-run --db t1.db
expect_status 0
expect_out "learning_rate = 3e-06"
expect_out "group_size = 8"
expect_out "temperature = 0.5"
expect_out "seed = 7"

# Unknown keys, with the line and a suggestion.
printf 'return {\n  seed = 1,\n  lerning_rate = 1e-5,\n}\n' > typo.lua
run rlvr train typo.lua --dry-run
expect_status 2
expect_err_line "rlvr: typo.lua:3: unknown key 'lerning_rate' (did you mean 'learning_rate'?)"

printf 'return { rollout = { temprature = 1 } }\n' > nested.lua
run rlvr train nested.lua --dry-run
expect_status 2
expect_err "unknown key 'rollout.temprature' (did you mean 'rollout.temperature'?)"

# Malformed Lua, runtime errors, wrong types, bad enums, out of range.
printf 'return {\n  seed = 1\n  steps = 2,\n}\n' > syntax.lua
run rlvr train syntax.lua --dry-run
expect_status 2
expect_err "rlvr: syntax.lua:3:"

printf 'local x = nil\nreturn { seed = x.y }\n' > runtime.lua
run rlvr train runtime.lua --dry-run
expect_status 2
expect_err "rlvr: runtime.lua:2:"

printf 'return {\n  learning_rate = "fast",\n}\n' > type.lua
run rlvr train type.lua --dry-run
expect_status 2
expect_err_line "rlvr: type.lua:2: key 'learning_rate': expected a number, got a string"

printf 'return { device = "gpu" }\n' > enum.lua
run rlvr train enum.lua --dry-run
expect_status 2
expect_err "key 'device': expected one of cpu|cuda, got 'gpu'"

printf 'return 42\n' > scalar.lua
run rlvr train scalar.lua --dry-run
expect_status 2
expect_err "scalar.lua: must return a table, got a number"

printf 'return { steps = 2.5 }\n' > int.lua
run rlvr train int.lua --dry-run
expect_status 2
expect_err "key 'steps': expected an integer, got 2.5"

printf 'return { os.exit(1) }\n' > escape.lua
run rlvr train escape.lua --dry-run
expect_status 2
expect_err "escape.lua:1:"

run rlvr train missing.lua --dry-run
expect_status 2
expect_err "missing.lua"

# --set errors name the argument.
run rlvr train --set lerning_rate=1 --dry-run
expect_status 2
expect_err "--set lerning_rate=1: unknown key 'lerning_rate' (did you mean 'learning_rate'?)"
run rlvr train --set rollout.top_p=1.5 --dry-run
expect_status 2
expect_err "1.5 is out of range [0, 1]"
run rlvr train --set steps --dry-run
expect_status 2
expect_err "--set steps: expected key=value"

# Cross-key checks fail before anything is written.
run rlvr train --set rollout.group_size=1 --dry-run --db g1.db
expect_status 2
expect_err "rollout.group_size = 1: GRPO needs at least 2 samples per prompt"
[ ! -e g1.db ] && ok || bad "a failed config check wrote a database"

# Bad options and missing values.
run rlvr train --dryrun
expect_status 2
expect_err_line "rlvr: train: unknown option '--dryrun' (did you mean '--dry-run'?)"
run rlvr train --db
expect_status 2
expect_err_line "rlvr: train: option '--db' needs a value (PATH)"
run rlvr train a.lua b.lua
expect_status 2
expect_err "unexpected argument 'b.lua'"

# Data named by the config is checked row by row, before any model work.
printf '{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?"}\n' > data.jsonl
run rlvr train --set data.train=data.jsonl --dry-run --db d.db
expect_status 2
expect_err "data.jsonl:2: row has no 'answer' field (data.answer_key)"
printf '{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?", "answer": 4}\n' > data.jsonl
run rlvr train --set data.train=data.jsonl --dry-run --db d.db
expect_status 0
expect_out "-- train: 2 prompts from data.jsonl"
run rlvr train --set model.path=/nonexistent/model --dry-run --db m.db
expect_status 2
expect_err "model.path: '/nonexistent/model' is not a directory"

# A run name is one plain directory name: nothing can escape output_dir.
run rlvr train --set name=../../etc/x --dry-run
expect_status 2
expect_err "name = \"../../etc/x\": use only letters, digits"
run rlvr train --set name= --dry-run
expect_status 2
expect_err "name is empty"
run rlvr train . --dry-run
expect_status 2
expect_err "rlvr: .: is a directory, not a file"

# The reference of every key.
run rlvr --config-doc
expect_status 0
expect_out "| \`learning_rate\` |"
finish
