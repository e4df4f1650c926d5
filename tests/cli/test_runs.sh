# test_runs.sh - `rlvr runs`: what a user sees for finished steps, dry runs, a run killed
# with SIGKILL (shown as "died"), an empty directory and a missing one.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
WRITER=${RLVR_TOOL_store_writer:?RLVR_TOOL_store_writer is not set}

mkdir -p runs/empty
run rlvr runs runs
expect_status 0
expect_out "no runs in runs"

run rlvr runs does-not-exist
expect_status 2
expect_err "does-not-exist"

# Three finished steps written by the test writer (it records status "running" and exits).
"$WRITER" runs/three/run.db 3 > /dev/null
# A writer killed mid-run: its status stays "running" but its process is gone.
"$WRITER" runs/killed/run.db > killed.out &
pid=$!
while ! grep -q "step 2" killed.out 2>/dev/null; do sleep 0.05; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
run rlvr train --dry-run --set name=dry
expect_status 0

run rlvr runs
expect_status 0
expect_out "NAME"
expect_out "dry-run"
expect_out "runs/dry/run.db"
line=$(printf '%s\n' "$OUT" | grep "runs/three/run.db")
case "$line" in *" 2 "*"64"*|*" 2 "*) ok ;; *) LAST="runs: three"; bad "last step of runs/three should be 2: $line" ;; esac
line=$(printf '%s\n' "$OUT" | grep "runs/killed/run.db")
case "$line" in *died*) ok ;; *) LAST="runs: killed"; bad "a SIGKILLed run should show as died: $line" ;; esac

# A run directory or a database file can be named directly.
run rlvr runs runs/three
expect_status 0
expect_out "runs/three/run.db"
run rlvr runs runs/three/run.db
expect_status 0
expect_out "runs/three/run.db"

# A file that is not a database is an error naming it.
echo "not a database" > runs/empty/run.db
run rlvr runs runs/empty
expect_status 1
expect_err "runs/empty/run.db"
finish
