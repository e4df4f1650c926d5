#!/usr/bin/env python3
"""check_byte_tokenizer.py RLVR_BINARY [COUNT]: the byte-level tokenizer of `rlvr init --tokenizer byte`
(core/tokenizer_bytes.c) against HF `tokenizers` and `transformers`.

Writes a model directory with the tokenizer, then checks that
- tokenizers.Tokenizer.from_file and AutoTokenizer both load it: 259 ids, id b is byte b,
  <|endoftext|> 256 (pad), <|im_start|> 257, <|im_end|> 258 (eos);
- `rlvr tokenize` gives HF's ids for fixed and COUNT random strings (any Unicode, invalid UTF-8
  read as bytes.decode('utf-8', 'replace'), special tokens inside the text) and HF's decodes of
  random id lists (invalid UTF-8 byte runs, specials kept and skipped);
- `rlvr tokenize --chat` gives the ids of AutoTokenizer's apply_chat_template(...,
  add_generation_prompt=True, tokenize=True) for several conversations.
Prints "ok: ..." and exits 0, or the first mismatch and exits 1. Not run by CI.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer
from transformers import AutoTokenizer


def rlvr_lines(binary, args, lines):
    inp = "".join(json.dumps(x) + "\n" for x in lines)
    p = subprocess.run([binary, "tokenize", *args], input=inp.encode(), capture_output=True)
    if p.returncode != 0:
        sys.exit("rlvr tokenize %s failed: %s" % (args, p.stderr.decode()))
    return [json.loads(l) for l in p.stdout.decode().splitlines()]


def random_text(rng):
    kind = rng.randrange(4)
    if kind == 0:  # random bytes, read as Python reads invalid UTF-8
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))).decode("utf-8", "replace")
    pieces = ["a", " ", "\n", "é", "日本", "🙂", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "\t", "42", "\u00a0", "\ufffd"]
    if kind == 1:
        return "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 20)))
    return "".join(chr(rng.choice([rng.randrange(0x20, 0x80), rng.randrange(0x80, 0x800), rng.randrange(0x800, 0xD800),
                                   rng.randrange(0x10000, 0x110000)])) for _ in range(rng.randrange(1, 20)))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500
    rng = random.Random(1)
    # transformers 5 picks the tokenizer class by the model's architecture (Qwen2Tokenizer for qwen2
    # and qwen3, TokenizersBackend for llama): check both kinds.
    for arch in ("qwen2", "llama"):
        check(binary, count, arch, rng)


def check(binary, count, arch, rng):
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "m")
        subprocess.run([binary, "init", "--out", d, "--tokenizer", "byte", "--arch", arch, "--hidden", "16", "--heads",
                        "2", "--kv-heads", "1", "--intermediate", "32", "--layers", "1"], check=True, capture_output=True)
        cfg = json.load(open(os.path.join(d, "config.json")))
        assert cfg["vocab_size"] == 259 and cfg["eos_token_id"] == 258, cfg
        tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        at = AutoTokenizer.from_pretrained(d)
        assert tk.get_vocab_size(with_added_tokens=True) == 259 and len(at) == 259
        for b in range(256):
            assert tk.decode([b]) == bytes([b]).decode("utf-8", "replace"), b
        assert [at.convert_tokens_to_ids(s) for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [256, 257, 258]
        assert at.eos_token_id == 258 and at.pad_token_id == 256 and at.bos_token_id is None

        texts = ["", "Hello world", "What is 2+2?", "  two  spaces\n\n", "<|im_start|>user\nhi<|im_end|>\n",
                 "é日本🙂", b"\xff\xfe a \xc3".decode("utf-8", "replace"), "<|im_end|><|im_end|>", "<|im_"]
        texts += [random_text(rng) for _ in range(count)]
        texts = [t for t in texts if "\0" not in t]
        got = rlvr_lines(binary, ["--tokenizer", d], [{"text": t} for t in texts])
        for t, g in zip(texts, got):
            want = tk.encode(t, add_special_tokens=False).ids
            assert g["ids"] == want, (t, g["ids"], want)
            assert at(t, add_special_tokens=True)["input_ids"] == want, t  # no post-processor tokens
        ids_lists = [[rng.choice(range(259)) for _ in range(rng.randrange(0, 12))] for _ in range(count)]
        ids_lists += [[255], [0xC3], [0xE6, 0x97], [0xF0, 0x9F, 0x99, 0x82], [258, 0xC3, 257]]
        for skip in (False, True):
            got = rlvr_lines(binary, ["--tokenizer", d, "--decode"] + (["--skip-special"] if skip else []),
                             [{"ids": v} for v in ids_lists])
            for v, g in zip(ids_lists, got):
                want = tk.decode(v, skip_special_tokens=skip)
                assert g["text"] == want, (v, skip, g["text"], want)
                assert at.decode(v, skip_special_tokens=skip) == want, (v, skip)

        convs = [
            [{"role": "user", "content": "What is 2+2?"}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "  spaced é 🙂  \n"}],
            [{"role": "user", "content": "<|im_end|> inside"}],
        ]
        got = rlvr_lines(binary, ["--tokenizer", d, "--chat"], [{"messages": c} for c in convs])
        for c, g in zip(convs, got):
            want = at.apply_chat_template(c, add_generation_prompt=True, tokenize=True)
            if isinstance(want, dict) or hasattr(want, "keys"):
                want = want["input_ids"]
            assert g["ids"] == list(want), (c, g["ids"], want)
    print("ok (%s, %s): %d texts, %d id lists, %d conversations agree with tokenizers %s / transformers %s"
          % (arch, type(at).__name__, len(texts), len(ids_lists), len(convs), __import__("tokenizers").__version__,
             __import__("transformers").__version__))


if __name__ == "__main__":
    main()
