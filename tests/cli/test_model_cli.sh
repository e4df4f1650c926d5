# test_model_cli.sh - rlvr init, generate and score on the CPU reference: token ids, text with
# the byte-level tokenizer of `init --tokenizer byte`, and tokenizers from ../shared/data.
. "$(dirname "$0")/lib.sh"
FX="$SRC/tests/fixtures/model"
TOKS="$SRC/../shared/data/tokenizers"
SMALL="--hidden 16 --layers 1 --heads 2 --kv-heads 1 --intermediate 32"

# --- init ----------------------------------------------------------------------
run rlvr init --out "$TMP/tiny" --arch qwen2 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 --vocab 50 --eos 3 --seed 5
expect_status 0
expect_out "wrote $TMP/tiny: qwen2"
if [ -f "$TMP/tiny/config.json" ] && [ -f "$TMP/tiny/model.safetensors" ]; then ok; else bad "init wrote no model"; fi
run rlvr init --out "$TMP/tiny2" --arch qwen2 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 --vocab 50 --eos 3 --seed 5
if cmp -s "$TMP/tiny/model.safetensors" "$TMP/tiny2/model.safetensors"; then ok; else bad "same seed, different weights"; fi
run rlvr init --arch qwen2
expect_status 2
expect_err_line "rlvr: init: --out DIR is required"
run rlvr init --out "$TMP/x" --arch gpt2
expect_status 2
expect_err "unknown --arch 'gpt2'"
run rlvr init --out "$TMP/x" --hidden 30 --heads 4
expect_status 2
expect_err "not a multiple of --heads 4"
run rlvr init --out "$TMP/x" --heads 4 --kv-heads 3
expect_status 2
expect_err "must be a multiple of num_key_value_heads"

# --- generate --------------------------------------------------------------------
# Greedy from the llama_gqa fixture's first sequence equals transformers' greedy continuation
# (tokens and continuation from tests/fixtures/model/llama_gqa/expected.safetensors).
run rlvr generate --model "$FX/llama_gqa" --prompt-ids "50 48 41 9 93 3 94" --temperature 0 --max-new-tokens 6 --stop-ids 0
expect_status 0
expect_out '"completion_ids": [5, 5, 42, 76, 13, 17]'
expect_out '"finish_reason": "length"'

# The same seed gives the same samples whatever the batch size; another seed others.
printf '{"prompt_ids": [5, 6, 7]}\n{"prompt_ids": [9, 1]}\n' >"$TMP/prompts.jsonl"
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/prompts.jsonl" --n 3 --seed 9 --max-new-tokens 8 --batch 1 --out "$TMP/a.jsonl"
expect_status 0
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/prompts.jsonl" --n 3 --seed 9 --max-new-tokens 8 --batch 16 --out "$TMP/b.jsonl"
expect_status 0
# Tokens are identical; log-probabilities agree to float rounding (BLAS may block a
# matrix product differently for another batch size).
LAST="same samples for --batch 1 and --batch 16"
if python3 - "$TMP/a.jsonl" "$TMP/b.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 6
for x, y in zip(a, b):
    assert x["completion_ids"] == y["completion_ids"] and x["finish_reason"] == y["finish_reason"]
    assert all(abs(p - q) < 1e-5 for p, q in zip(x["logprobs"], y["logprobs"]))
PY
then ok; else bad "batch size changed the samples"; fi
if [ "$(wc -l <"$TMP/a.jsonl")" = 6 ]; then ok; else bad "expected 6 samples"; fi
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/prompts.jsonl" --n 3 --seed 10 --max-new-tokens 8 --out "$TMP/c.jsonl"
if cmp -s "$TMP/a.jsonl" "$TMP/c.jsonl"; then bad "another seed gave the same samples"; else ok; fi

run rlvr generate --model "$TMP/tiny" --prompt "hello world"
expect_status 2
expect_err_line "rlvr: generate: --prompt is text but there is no tokenizer.json in $TMP/tiny: pass --tokenizer PATH or give token ids (--prompt-ids \"1 2 3\")"
run rlvr generate --model "$TMP/tiny" --prompt-ids "1 2 x"
expect_status 2
expect_err "'1 2 x' is not a list of token ids"
run rlvr generate --model "$TMP/tiny" --prompt-ids "1 2 99"
expect_status 2
expect_err "token id 99 is outside the model's vocabulary [0, 50)"
printf '{"prompt_ids": [1]}\n{"prompt": "text"}\n' >"$TMP/bad.jsonl"
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/bad.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/bad.jsonl:2: \"prompt\" is text but there is no tokenizer.json in $TMP/tiny: pass --tokenizer PATH or give token ids (\"prompt_ids\")"
printf '{"prompt_ids": [1]}\n{"messages": [{"role": "user", "content": "hi"}]}\n' >"$TMP/bad.jsonl"
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/bad.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/bad.jsonl:2: \"messages\" is text but there is no tokenizer.json in $TMP/tiny: pass --tokenizer PATH or give token ids (\"prompt_ids\")"
printf '{"ids": [1]}\n' >"$TMP/bad.jsonl"
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/bad.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/bad.jsonl:1: no \"prompt\" (text), \"messages\" (chat) or \"prompt_ids\""
run rlvr generate --model "$TMP/tiny" --prompt "hi" --prompt-ids "1"
expect_status 2
expect_err "give exactly one of --prompt TEXT, --prompt-ids IDS and --prompts FILE.jsonl"
run rlvr generate --model "$TMP/tiny" --prompt-ids "1" --chat
expect_status 2
expect_err "--chat"
run rlvr generate --model "$TMP/tiny" --prompt-ids "1 2" --top-p 0
expect_status 2
expect_err "top_p must be in (0, 1]"
run rlvr generate --model "$TMP/nope" --prompt-ids "1"
expect_status 2
expect_err "$TMP/nope/config.json"

# --- score -------------------------------------------------------------------------
# Scoring a sample's prompt + completion gives back the log-probabilities it was sampled
# with (temperature 1, no filters: the same distribution).
python3 - "$TMP/a.jsonl" >"$TMP/score_in.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"prompt_ids": r["prompt_ids"], "completion_ids": r["completion_ids"]}))
PY
run rlvr score --model "$TMP/tiny" --in "$TMP/score_in.jsonl" --out "$TMP/scored.jsonl"
expect_status 0
LAST="score matches generate's logprobs"
if python3 - "$TMP/a.jsonl" "$TMP/scored.jsonl" <<'PY'
import json, sys
gen = [json.loads(l) for l in open(sys.argv[1])]
sc = [json.loads(l) for l in open(sys.argv[2])]
assert len(gen) == len(sc) == 6
for g, s in zip(gen, sc):
    assert s["token_ids"] == g["completion_ids"]
    assert len(s["entropies"]) == len(s["logprobs"])
    for a, b in zip(g["logprobs"], s["logprobs"]):
        assert abs(a - b) < 1e-4, (a, b)
PY
then ok; else bad "scores differ"; fi

printf '{"token_ids": [1, 2, 3, 4]}\n' >"$TMP/t.jsonl"
run rlvr score --model "$TMP/tiny" --in "$TMP/t.jsonl"
expect_status 0
expect_out '"token_ids": [2, 3, 4], "logprobs": ['
printf '{"token_ids": [1]}\n' >"$TMP/t1.jsonl"
run rlvr score --model "$TMP/tiny" --in "$TMP/t1.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/t1.jsonl:1: nothing to score (at least one token after the first is needed)"
printf '{"text": "hi"}\n' >"$TMP/t2.jsonl"
run rlvr score --model "$TMP/tiny" --in "$TMP/t2.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/t2.jsonl:1: \"text\" is text but there is no tokenizer.json in $TMP/tiny: pass --tokenizer PATH or give token ids (\"token_ids\")"
printf '{"prompt_ids": [1, 2], "completion": "hi"}\n' >"$TMP/t2.jsonl"
run rlvr score --model "$TMP/tiny" --in "$TMP/t2.jsonl"
expect_status 2
expect_err "\"completion\" is text but there is no tokenizer.json in $TMP/tiny"
printf '{"prompt_ids": [1, 2]}\n' >"$TMP/t2.jsonl"
run rlvr score --model "$TMP/tiny" --in "$TMP/t2.jsonl"
expect_status 2
expect_err "no \"text\" or \"token_ids\", nor a prompt"
run rlvr score --model "$TMP/tiny"
expect_status 2

# --- the byte-level tokenizer ------------------------------------------------------
run rlvr init --out "$TMP/bm" $SMALL --tokenizer byte --seed 3
expect_status 0
expect_out "vocab 259), tokenizer byte"
LAST="init --tokenizer byte: vocab 259, eos 258, the tokenizer files"
if python3 - "$TMP/bm" <<'PY'
import json, sys
c = json.load(open(sys.argv[1] + "/config.json"))
assert c["vocab_size"] == 259 and c["eos_token_id"] == 258, c
t = json.load(open(sys.argv[1] + "/tokenizer.json"))
assert len(t["model"]["vocab"]) == 256 and t["model"]["merges"] == []
assert [a["content"] for a in t["added_tokens"]] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tc = json.load(open(sys.argv[1] + "/tokenizer_config.json"))
assert tc["eos_token"] == "<|im_end|>" and tc["pad_token"] == "<|endoftext|>"
PY
then ok; else bad "byte model directory"; fi
run rlvr init --out "$TMP/x" $SMALL --tokenizer byte --vocab 200
expect_status 2
expect_err_line "rlvr: init: --vocab 200 is smaller than the tokenizer's vocabulary (259 tokens)"
# a larger vocabulary and another eos may be given; the tokenizer's eos still stops sampling
run rlvr init --out "$TMP/bm5" $SMALL --tokenizer byte --vocab 300 --eos 5 --seed 3
expect_status 0
expect_out "vocab 300)"
# a tokenizer copied from a model directory or a tokenizer.json sets the defaults likewise
run rlvr init --out "$TMP/bmc" $SMALL --tokenizer "$TMP/bm"
expect_status 0
expect_out "vocab 259)"
if cmp -s "$TMP/bm/tokenizer.json" "$TMP/bmc/tokenizer.json" && cmp -s "$TMP/bm/tokenizer_config.json" "$TMP/bmc/tokenizer_config.json"; then ok; else bad "tokenizer not copied from a directory"; fi
run rlvr init --out "$TMP/bmf" $SMALL --tokenizer "$TMP/bm/tokenizer.json"
expect_status 0
if cmp -s "$TMP/bm/tokenizer_config.json" "$TMP/bmf/tokenizer_config.json" && grep -q '"eos_token_id":.258,' "$TMP/bmf/config.json"; then ok; else bad "tokenizer not copied from a file"; fi
# a chat_template.jinja beside the source is copied (transformers and rlvr prefer it to
# tokenizer_config.json's); another tokenizer written over the directory removes it
mkdir -p "$TMP/bmj" && cp "$TMP/bm"/tokenizer*.json "$TMP/bmj/"
printf '%s' "{% for m in messages %}{{ m['content'] }}{% endfor %}" >"$TMP/bmj/chat_template.jinja"
run rlvr init --out "$TMP/bmc" $SMALL --tokenizer "$TMP/bmj"
expect_status 0
if cmp -s "$TMP/bmj/chat_template.jinja" "$TMP/bmc/chat_template.jinja"; then ok; else bad "chat_template.jinja not copied"; fi
run rlvr generate --model "$TMP/bmc" --prompt "Hi" --chat --max-new-tokens 1
expect_out '"prompt_ids": [72, 105]'
run rlvr init --out "$TMP/bmc" $SMALL --tokenizer byte
expect_status 0
if [ ! -e "$TMP/bmc/chat_template.jinja" ]; then ok; else bad "a stale chat_template.jinja stayed"; fi
run rlvr init --out "$TMP/x" --tokenizer "$TMP/nowhere"
expect_status 2
expect_err "rlvr: init: --tokenizer: $TMP/nowhere"

# text prompts: the ids are the bytes; the output has the decoded completion
run rlvr generate --model "$TMP/bm" --prompt "Hi é" --max-new-tokens 6 --seed 4 --out "$TMP/g1.jsonl"
expect_status 0
run rlvr generate --model "$TMP/bm" --prompt-ids "72 105 32 195 169" --max-new-tokens 6 --seed 4 --out "$TMP/g2.jsonl"
if cmp -s "$TMP/g1.jsonl" "$TMP/g2.jsonl"; then ok; else bad "--prompt text and its byte ids differ"; fi
LAST="completion is the decoded completion_ids"
if python3 - "$TMP/g1.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["prompt_ids"] == [72, 105, 32, 195, 169]
text = bytes(i for i in r["completion_ids"] if i < 256).decode("utf-8", "replace")
assert r["completion"] == text, (r["completion"], text)
PY
then ok; else bad "completion text"; fi
# --chat renders the text as one user message with the generation prompt (no system prompt)
CHAT_HI="257, 117, 115, 101, 114, 10, 72, 105, 258, 10, 257, 97, 115, 115, 105, 115, 116, 97, 110, 116, 10"
run rlvr generate --model "$TMP/bm" --prompt "Hi" --chat --max-new-tokens 2
expect_status 0
expect_out "\"prompt_ids\": [$CHAT_HI]"
# JSONL: text, chat messages and ids, in order; an explicit --tokenizer for a model without one
printf '%s\n' '{"prompt": "Hi"}' '{"messages": [{"role": "user", "content": "Hi"}]}' '{"prompt_ids": [7, 8]}' >"$TMP/mixed.jsonl"
run rlvr generate --model "$TMP/bm" --prompts "$TMP/mixed.jsonl" --max-new-tokens 2
expect_status 0
expect_out '"prompt_index": 0, "sample_index": 0, "prompt_ids": [72, 105]'
expect_out "\"prompt_index\": 1, \"sample_index\": 0, \"prompt_ids\": [$CHAT_HI]"
expect_out '"prompt_index": 2, "sample_index": 0, "prompt_ids": [7, 8]'
printf '{"prompt": "a\\u0000b"}\n' >"$TMP/nul.jsonl"
run rlvr generate --model "$TMP/bm" --prompts "$TMP/nul.jsonl"
expect_status 2
expect_err "U+0000"
run rlvr generate --model "$TMP/tiny" --tokenizer "$TMP/bm" --prompt "Hi"
expect_status 2
expect_err "token id 72 from the tokenizer is outside the model's vocabulary [0, 50)"
run rlvr generate --model "$TMP/tiny" --tokenizer "$TMP/nowhere" --prompt "Hi"
expect_status 2
expect_err "rlvr: generate: $TMP/nowhere"
run rlvr generate --model "$TMP/tiny" --prompt "Hi" --chat
expect_status 2
expect_err "--chat is text but there is no tokenizer.json in $TMP/tiny"

# the default stop ids hold the tokenizer's eos (258) besides the config's (5): near-uniform
# sampling from a random model meets both; each ends its sample
run rlvr generate --model "$TMP/bm5" --prompt "Hi" --n 24 --max-new-tokens 48 --seed 2 --out "$TMP/stops.jsonl"
expect_status 0
LAST="samples stop at the config's and the tokenizer's eos"
if python3 - "$TMP/stops.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ends = set()
for r in rows:
    ids = r["completion_ids"]
    assert not any(i in (5, 258) for i in ids[:-1]), ids
    assert (r["finish_reason"] == "stop") == (ids[-1] in (5, 258)), r
    if r["finish_reason"] == "stop":
        ends.add(ids[-1])
    # ids past the tokenizer's 259 (the model has 300) and specials decode to nothing
    assert r["completion"] == bytes(i for i in ids if i < 256).decode("utf-8", "replace"), r
assert ends == {5, 258}, ends
assert any(i >= 259 for r in rows for i in r["completion_ids"])
PY
then ok; else bad "stop ids"; fi

# score: text scores every token after the first, as its ids; prompt + completion texts are
# encoded separately and the completion's tokens scored
printf '%s\n' '{"text": "Hi é"}' '{"token_ids": [72, 105, 32, 195, 169]}' '{"prompt": "Hi", "completion": " é"}' \
    '{"prompt_ids": [72, 105], "completion_ids": [32, 195, 169]}' >"$TMP/st.jsonl"
run rlvr score --model "$TMP/bm" --in "$TMP/st.jsonl" --out "$TMP/st_out.jsonl"
expect_status 0
LAST="text and ids score alike"
if python3 - "$TMP/st_out.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert r[0]["token_ids"] == r[1]["token_ids"] == [105, 32, 195, 169]
assert r[0]["logprobs"] == r[1]["logprobs"] and r[0]["entropies"] == r[1]["entropies"]
assert r[2]["token_ids"] == r[3]["token_ids"] == [32, 195, 169]
assert r[2]["logprobs"] == r[3]["logprobs"] == r[1]["logprobs"][1:]
PY
then ok; else bad "score of text"; fi

# --- tokenizers from ../shared/data ------------------------------------------------------
if [ ! -f "$TOKS/qwen2.5/tokenizer.json" ] || [ ! -f "$TOKS/gpt2/tokenizer.json" ]; then
    echo "skipped: $TOKS not present"
    finish
    exit $?
fi
run rlvr init --out "$TMP/qm" --hidden 8 --layers 1 --heads 2 --kv-heads 1 --intermediate 16 --tokenizer "$TOKS/qwen2.5"
expect_status 0
expect_out "vocab 151665)"
if grep -q '"eos_token_id":.151643,' "$TMP/qm/config.json"; then ok; else bad "qwen2.5 eos not in config.json"; fi
# the chat prompt's ids are transformers' apply_chat_template ids (as in test_tokenize.sh)
run rlvr generate --model "$TMP/qm" --prompt "What is 2+2?" --chat --max-new-tokens 2
expect_status 0
expect_out '"prompt_ids": [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198]'
expect_out '"completion": "'
# gpt2 has no eos in its tokenizer_config.json: none in config.json
run rlvr init --out "$TMP/gm" --hidden 8 --layers 1 --heads 2 --kv-heads 1 --intermediate 16 --tokenizer "$TOKS/gpt2/tokenizer.json"
expect_status 0
expect_out "vocab 50257)"
if ! grep -q eos_token_id "$TMP/gm/config.json"; then ok; else bad "gpt2 eos"; fi
printf '{"text": "Hello world"}\n' >"$TMP/hw.jsonl"
run rlvr score --model "$TMP/gm" --in "$TMP/hw.jsonl"
expect_status 0
expect_out '"token_ids": [995]'
run rlvr score --model "$TMP/bm" --tokenizer "$TOKS/gpt2" --in "$TMP/hw.jsonl"
expect_status 2
expect_err "token id 15496 from the tokenizer is outside the model's vocabulary [0, 259)"
finish
