# test_model_cli.sh - rlvr init, generate and score on the CPU reference.
. "$(dirname "$0")/lib.sh"
FX="$SRC/tests/fixtures/model"

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
run rlvr generate --model "$FX/llama_gqa" --prompt "50 48 41 9 93 3 94" --temperature 0 --max-new-tokens 6 --stop-ids 0
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
expect_err "text prompts need the tokenizer"
run rlvr generate --model "$TMP/tiny" --prompt "1 2 99"
expect_status 2
expect_err "token id 99 is outside the model's vocabulary [0, 50)"
printf '{"prompt_ids": [1]}\n{"prompt": "text"}\n' >"$TMP/bad.jsonl"
run rlvr generate --model "$TMP/tiny" --prompts "$TMP/bad.jsonl"
expect_status 2
expect_err_line "rlvr: $TMP/bad.jsonl:2: no \"prompt_ids\" (text prompts need the tokenizer, which has not landed yet)"
run rlvr generate --model "$TMP/tiny" --prompt "1 2" --top-p 0
expect_status 2
expect_err "top_p must be in (0, 1]"
run rlvr generate --model "$TMP/nope" --prompt "1"
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
expect_err "text needs the tokenizer"
run rlvr score --model "$TMP/tiny"
expect_status 2
finish
