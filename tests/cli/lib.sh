# lib.sh - sourced by the command-line tests: run rlvr, check its exit status and output.
#
#   run rlvr train --bogus        # runs "$RLVR_BIN train --bogus", keeps status/stdout/stderr
#   expect_status 2
#   expect_err "unknown option '--bogus'"
#   expect_out "usage:"
#   finish                        # prints "N passed, M failed" and exits non-zero on failure
set -u
RLVR=${RLVR_BIN:?RLVR_BIN is not set (run under ctest)}
SRC=${RLVR_SOURCE_DIR:?RLVR_SOURCE_DIR is not set}
TMP=${RLVR_TEST_TMP:-/tmp}/cli.$(basename "$0" .sh).$$
rm -rf "$TMP" && mkdir -p "$TMP"
PASSED=0
FAILED=0
STATUS=0
OUT=""
ERR=""
LAST=""

run() {
    LAST="$*"
    if [ "$1" = rlvr ]; then shift; set -- "$RLVR" "$@"; fi
    "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    STATUS=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}

ok() { PASSED=$((PASSED + 1)); }
bad() {
    FAILED=$((FAILED + 1))
    echo "FAIL: $LAST: $1" >&2
    echo "  status: $STATUS" >&2
    echo "  stdout: $(printf '%s' "$OUT" | head -c 800)" >&2
    echo "  stderr: $(printf '%s' "$ERR" | head -c 800)" >&2
}

expect_status() { if [ "$STATUS" = "$1" ]; then ok; else bad "expected exit status $1"; fi; }
expect_out() { case "$OUT" in *"$1"*) ok ;; *) bad "stdout lacks: $1" ;; esac; }
expect_err() { case "$ERR" in *"$1"*) ok ;; *) bad "stderr lacks: $1" ;; esac; }
expect_no_out() { case "$OUT" in *"$1"*) bad "stdout has: $1" ;; *) ok ;; esac; }
# The exact first line of stderr.
expect_err_line() { if [ "$(printf '%s\n' "$ERR" | head -n 1)" = "$1" ]; then ok; else bad "stderr's first line is not: $1"; fi; }

finish() {
    echo "$PASSED passed, $FAILED failed"
    rm -rf "$TMP"
    [ "$FAILED" = 0 ]
}
