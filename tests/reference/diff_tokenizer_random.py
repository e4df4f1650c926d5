#!/usr/bin/env python3
"""Differential check of `rlvr tokenize` against HF `tokenizers` on random strings (a search for
mismatches beyond the committed corpus; what it finds becomes corpus lines).

  python3 tests/reference/diff_tokenizer_random.py RLVR_BINARY [SEED] [COUNT]

Strings mix code points from many scripts and blocks (letters, marks, digits of several scripts,
symbols, emoji, unassigned ones) with fragments that matter to tokenizers (contractions, Unicode
spaces, special tokens, ZWJ, decomposed accents). Every tokenizer in ../shared/data/tokenizers
and the two synthetic fixtures is compared on encode and decode."""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_fixtures import load_reference
from tokenizers import Tokenizer
RLVR = sys.argv[1]
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
pools = [
    (0x20, 0x7e), (0x80, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
    (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x20a0, 0x20cf), (0x2100, 0x22ff), (0x3000, 0x30ff),
    (0x4e00, 0x4fff), (0xac00, 0xad00), (0xff00, 0xffef), (0x1f300, 0x1f6ff), (0x1f900, 0x1f9ff), (0x10000, 0x1007f),
    (0x660, 0x669), (0x6f0, 0x6f9), (0x966, 0x96f), (0xff10, 0xff19), (0x2160, 0x2188), (0x1d400, 0x1d7ff),
]
frags = ["'s", "'T", "'ll", "'RE", " ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", "\u0085", "\u2028", "<|im_start|>",
         "<|endoftext|>", "<|eot_id|>", "<s>", "</s>", "<unk>", "<mask>", "[END]", "word", "Raw Text", "<tag>", "``",
         "-", "...", "123456", "\u200d", "\ufe0f", "e\u0301", "\u0130", "ǅ", "ﬁ", "①", "½"]
def rnd():
    out = []
    for _ in range(random.randint(0, 40)):
        if random.random() < 0.35:
            out.append(random.choice(frags))
        else:
            lo, hi = random.choice(pools)
            c = random.randint(lo, hi)
            if 0xd800 <= c <= 0xdfff: continue
            out.append(chr(c) * (random.randint(1, 3) if random.random() < 0.2 else 1))
    return ''.join(out)
texts = [rnd() for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1500)]
inp = ''.join(json.dumps({'text': t}) + '\n' for t in texts)
paths = {n: os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'data', 'tokenizers', n, 'tokenizer.json') for n in ['gpt2', 'qwen2.5', 'llama3', 'tinyllama-llama2']}
paths.update({n: os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'tokenizer', n + '.json') for n in ['synth-metaspace', 'synth-split']})
for name, p in paths.items():
    tok = load_reference(p) if name == 'gpt2' else Tokenizer.from_file(p)
    r = subprocess.run([RLVR, 'tokenize', '--tokenizer', p], input=inp.encode(), capture_output=True)
    got = [json.loads(l)['ids'] for l in r.stdout.decode().split('\n')[:-1]]
    bad = 0
    for t, g in zip(texts, got):
        e = tok.encode(t, add_special_tokens=False).ids
        if g != e:
            bad += 1
            if bad <= 3: print(name, repr(t)[:150], '\n  got', g[:20], '\n  exp', e[:20])
    # decode check
    dinp = ''.join(json.dumps({'ids': g}) + '\n' for g in got)
    r2 = subprocess.run([RLVR, 'tokenize', '--decode', '--tokenizer', p], input=dinp.encode(), capture_output=True)
    dgot = [json.loads(l)['text'] for l in r2.stdout.decode().split('\n')[:-1]]
    dbad = sum(1 for g, d in zip(got, dgot) if d != tok.decode(g, skip_special_tokens=False))
    print(name, 'encode mismatches', bad, 'decode mismatches', dbad, 'of', len(got), r.stderr.decode()[:200])
