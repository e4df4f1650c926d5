#!/bin/bash
# Replays the saved fuzz inputs (crashers found by libFuzzer, kept as regressions) through
# tests/tools/fuzz_tokenizer and fuzz_jinja, which abort on a broken invariant; ASan/UBSan watch it.
. "$(dirname "$0")/lib.sh"

# Chat-template (Jinja subset) crashers need no tokenizer files.
JTOOL=${RLVR_TOOL_fuzz_jinja:?RLVR_TOOL_fuzz_jinja is not set}
LAST="fuzz_jinja replay"
"$JTOOL" "$SRC/tests/fixtures/tokenizer/fuzz-jinja" >"$TMP/out" 2>"$TMP/err"
STATUS=$?
OUT=$(cat "$TMP/out")
ERR=$(cat "$TMP/err")
expect_status 0
expect_out "inputs replayed"
expect_no_out " 0 inputs replayed"

TOKS="$SRC/../shared/data/tokenizers"
if [ ! -d "$TOKS" ]; then
    echo "skipped: $TOKS not present"
    finish
    exit $?
fi
TOOL=${RLVR_TOOL_fuzz_tokenizer:?RLVR_TOOL_fuzz_tokenizer is not set}
LAST="fuzz_tokenizer replay"
RLVR_FUZZ_TOKENIZERS="$TOKS" "$TOOL" "$SRC/tests/fixtures/tokenizer/fuzz" >"$TMP/out" 2>"$TMP/err"
STATUS=$?
OUT=$(cat "$TMP/out")
ERR=$(cat "$TMP/err")
expect_status 0
expect_out "inputs replayed"
expect_no_out " 0 inputs replayed"
finish
