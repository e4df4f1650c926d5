#!/bin/bash
# rlvr tokenize: JSONL in, JSONL out, in order; --add-special, --chat, --decode; errors.
. "$(dirname "$0")/lib.sh"
TOKS="$SRC/../shared/data/tokenizers"

run rlvr tokenize
expect_status 2
expect_err "--tokenizer PATH is required"

run rlvr tokenize --tokenizer "$TMP/nowhere/tokenizer.json"
expect_status 2
expect_err "$TMP/nowhere/tokenizer.json"

run rlvr tokenize --help
expect_status 0
expect_out "usage: rlvr tokenize"

if [ ! -f "$TOKS/qwen2.5/tokenizer.json" ] || [ ! -f "$TOKS/llama3/tokenizer.json" ]; then
    echo "skipped: $TOKS not present"
    finish
    exit $?
fi

tok() { # tok INPUT ARGS...: runs rlvr tokenize with INPUT on stdin
    local input=$1; shift
    printf '%s' "$input" >"$TMP/in"
    LAST="tokenize $*"
    "$RLVR" tokenize "$@" <"$TMP/in" >"$TMP/out" 2>"$TMP/err"
    STATUS=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}

# ids as HF tokenizers gives them; one output line per input line, in order
tok $'{"text":"Hello world"}\n{"text":"What is 2+2?"}\n{"text":""}\n' --tokenizer "$TOKS/qwen2.5"
expect_status 0
[ "$OUT" = $'{"ids":[9707,1879]}\n{"ids":[3838,374,220,17,10,17,30]}\n{"ids":[]}' ] && ok || bad "qwen2.5 ids"

# no BOS unless --add-special; then the post-processor's <|begin_of_text|>
tok $'{"text":"Hello world"}\n' --tokenizer "$TOKS/llama3/tokenizer.json"
[ "$OUT" = '{"ids":[9906,1917]}' ] && ok || bad "llama3 ids"
tok $'{"text":"Hello world"}\n' --tokenizer "$TOKS/llama3" --add-special
[ "$OUT" = '{"ids":[128000,9906,1917]}' ] && ok || bad "llama3 ids with --add-special"

# --chat: the template's prompt with the generation prompt, as transformers' apply_chat_template(tokenize=True)
tok $'{"messages":[{"role":"user","content":"What is 2+2?"}]}\n' --tokenizer "$TOKS/qwen2.5" --chat
expect_status 0
[ "$OUT" = '{"ids":[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,3838,374,220,17,10,17,30,151645,198,151644,77091,198]}' ] && ok || bad "qwen2.5 chat ids"
tok $'{"messages":[{"role":"user","content":"What is 2+2?"}]}\n' --tokenizer "$TOKS/llama3" --chat
[ "$OUT" = '{"ids":[128000,128006,882,128007,271,3923,374,220,17,10,17,30,128009,128006,78191,128007,271]}' ] && ok || bad "llama3 chat ids"

# --decode, with and without special tokens; U+0000 and quotes escaped
tok $'{"ids":[151644,9707,1879,151645]}\n{"ids":[1,15,2]}\n' --tokenizer "$TOKS/qwen2.5" --decode
expect_status 0
[ "$OUT" = $'{"text":"<|im_start|>Hello world<|im_end|>"}\n{"text":"\\"0#"}' ] && ok || bad "decode"
tok $'{"ids":[151644,9707,1879,151645]}\n' --tokenizer "$TOKS/qwen2.5" --decode --skip-special
[ "$OUT" = '{"text":"Hello world"}' ] && ok || bad "decode --skip-special"
tok $'{"ids":[188]}\n' --tokenizer "$TOKS/qwen2.5" --decode
[ "$OUT" = '{"text":"\u0000"}' ] && ok || bad "decode of U+0000"

# a bad line stops with status 2 after the lines before it were written
tok $'{"text":"Hello"}\nnot json\n{"text":"never"}\n' --tokenizer "$TOKS/qwen2.5"
expect_status 2
expect_err "<stdin>:2"
[ "$OUT" = '{"ids":[9707]}' ] && ok || bad "lines before the bad one"
tok $'{"txt":"Hello"}\n' --tokenizer "$TOKS/qwen2.5"
expect_status 2
expect_err 'expected {"text": "..."}'
tok $'{"ids":[99999999]}\n' --tokenizer "$TOKS/qwen2.5" --decode
expect_status 2
expect_err "token id 99999999 is not in the vocabulary"
tok $'{"text":"a\\u0000b"}\n' --tokenizer "$TOKS/qwen2.5"
expect_status 2
expect_err "U+0000"
tok $'{"text":"x"}\n' --tokenizer "$TOKS/qwen2.5" --chat --decode
expect_status 2
tok $'{"messages":[{"role":"user"}]}\n' --tokenizer "$TOKS/qwen2.5" --chat
expect_status 2
expect_err 'messages[0] needs string "role" and "content"'

# a tokenizer without a chat template: the error says how to supply one
if [ -f "$TOKS/gpt2/tokenizer.json" ]; then
    tok $'{"messages":[{"role":"user","content":"hi"}]}\n' --tokenizer "$TOKS/gpt2" --chat
    expect_status 2
    expect_err "Lua function"
fi

finish
