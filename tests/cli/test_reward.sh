# test_reward.sh - rlvr reward: output lines in input order with reward/parts/status/error,
# malformed lines reported with their line number and skipped, the summary, script
# errors getting the fallback, and the code sandbox refusing when it cannot isolate.
. "$(dirname "$0")/lib.sh"

cat >"$TMP/in.jsonl" <<'JSONL'
{"id": 1, "completion": "so \\boxed{\\dfrac{3}{4}}", "answer": "0.75"}
{"id": 2, "completion": "so \\boxed{5}", "answer": "Some work.\n#### 6"}
this is not json

{"id": 3, "completion": "<think>\n\\boxed{7}\n</think>\nIt is \\boxed{7}.", "answer": "7"}
{"id": 4, "answer": "3"}
{"id": 5, "completion": "#### 1,234", "answer": "#### 1234"}
JSONL

run rlvr reward --script math --in "$TMP/in.jsonl" --jobs 2
expect_status 0
expect_err "in.jsonl:3: not valid JSON"
expect_err "in.jsonl:6: no \"completion\" string (line skipped)"
expect_err "rlvr reward: 4 samples, mean reward 0.5000, 0 errors, 0 timeouts, 2 lines skipped"
expect_err "samples/s"
# input order, fields kept, results added
ids=$(printf '%s\n' "$OUT" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p' | tr '\n' ' ')
if [ "$ids" = "1 2 3 5 " ]; then ok; else bad "ids in order: got '$ids'"; fi
expect_out '{"id":1,"completion":"so \\boxed{\\dfrac{3}{4}}","answer":"0.75","reward":1,"parts":{},"status":"ok","error":null}'
expect_out '"id":5,"completion":"#### 1,234","answer":"#### 1234","reward":0,'

run rlvr reward --script gsm8k --in "$TMP/in.jsonl" --out "$TMP/out.jsonl"
expect_status 0
expect_err "mean reward 0.7500"
if [ "$(wc -l <"$TMP/out.jsonl")" = 4 ]; then ok; else bad "out.jsonl should have 4 lines"; fi

run rlvr reward --script math_r1 --in "$TMP/in.jsonl"
expect_status 0
expect_out '"id":3,'
expect_out '"reward":1.2,"parts":{"accuracy":1,"format":1},"status":"ok"'

# A script that fails on some samples: status error, the message, the fallback reward.
cat >"$TMP/flaky.lua" <<'LUA'
return { reward = function(s)
  if s.id == 2 then error("no luck") end
  if s.id == 3 then while true do end end
  return 1
end }
LUA
run rlvr reward --script "$TMP/flaky.lua" --in "$TMP/in.jsonl" --fallback -0.5 --max-instructions 100000
expect_status 0
expect_out '"id":2,'
expect_out '"reward":-0.5,"parts":{},"status":"error","error":"'
expect_out 'flaky.lua:2: no luck"'
expect_out '"status":"timeout","error":"'
expect_err "4 samples, mean reward 0.2500, 1 errors, 1 timeouts"

# Usage errors
run rlvr reward --script mth --in "$TMP/in.jsonl"
expect_status 2
expect_err "unknown reward script 'mth' (did you mean 'math'?)"
run rlvr reward --script math
expect_status 2
expect_err "--in is required"
run rlvr reward --script math --in "$TMP/missing.jsonl"
expect_status 2
expect_err "missing.jsonl"
run rlvr reward --script math --in "$TMP/in.jsonl" --jobs x
expect_status 2
cat >"$TMP/selfbad.lua" <<'LUA'
return { reward = function(s) return 0 end, selftest = { { sample = { completion = "" }, reward = 1 } } }
LUA
run rlvr reward --script "$TMP/selfbad.lua" --in "$TMP/in.jsonl"
expect_status 2
expect_err "self-test case 1: reward 0, expected 1"

# The code sandbox: refused with a clear message where isolation cannot be set up...
cat >"$TMP/code.jsonl" <<'JSONL'
{"completion": "```python\ndef add(a, b):\n    return a + b\n```", "tests": "assert add(1, 2) == 3"}
{"completion": "def add(a, b):\n    return 0\n", "tests": "assert add(1, 2) == 3"}
JSONL
run env RLVR_SANDBOX_BWRAP=/nonexistent/bwrap "$RLVR" reward --script code --in "$TMP/code.jsonl"
expect_status 2
expect_err "refusing to run model-written code"
expect_err "--unsafe-no-sandbox"
# ... unless the user opts out explicitly
run env RLVR_SANDBOX_BWRAP=/nonexistent/bwrap "$RLVR" reward --script code --in "$TMP/code.jsonl" --unsafe-no-sandbox
expect_status 0
expect_err "warning: --unsafe-no-sandbox"
expect_err "2 samples, mean reward 0.5000"
# and with the sandbox, where it works here
if [ -x /usr/bin/bwrap ] && /usr/bin/bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib64 /lib64 --symlink usr/lib /lib /usr/bin/true 2>/dev/null; then
    run rlvr reward --script code --in "$TMP/code.jsonl"
    expect_status 0
    expect_err "2 samples, mean reward 0.5000, 0 errors"
else
    echo "skipped: bubblewrap cannot run here"
fi
finish
