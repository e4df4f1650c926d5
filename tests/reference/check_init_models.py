#!/usr/bin/env python3
"""Checks that `rlvr init` writes model directories transformers loads, and that
`rlvr score` gives transformers' per-token log-probabilities and entropies on them, for
every supported architecture (untied embeddings, GQA 3, head_dim != hidden/heads).

  python3 tests/reference/check_init_models.py build-model/rlvr [WORKDIR]
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers

IDS = [1, 5, 77, 299, 42, 8, 150, 3]


def main():
    rlvr = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
    inp = os.path.join(work, "in.jsonl")
    with open(inp, "w") as f:
        f.write(json.dumps({"token_ids": IDS}) + "\n")
    worst = 0.0
    for arch in ["llama", "qwen2", "qwen3", "mistral"]:
        d = os.path.join(work, arch)
        subprocess.run([rlvr, "init", "--out", d, "--arch", arch, "--hidden", "48", "--layers", "2", "--heads", "6",
                        "--kv-heads", "2", "--head-dim", "12", "--intermediate", "96", "--vocab", "300", "--untied",
                        "--init-range", "0.2", "--seed", "3"], check=True, stdout=subprocess.DEVNULL)
        got = json.loads(subprocess.run([rlvr, "score", "--model", d, "--in", inp], check=True,
                                        capture_output=True, text=True).stdout)
        m = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
        with torch.no_grad():
            lsm = torch.log_softmax(m(torch.tensor([IDS])).logits[0].double(), -1)
        ref = [lsm[t, IDS[t + 1]].item() for t in range(len(IDS) - 1)]
        ent = [-(lsm[t].exp() * lsm[t]).sum().item() for t in range(len(IDS) - 1)]
        dl = max(abs(a - b) for a, b in zip(ref, got["logprobs"]))
        de = max(abs(a - b) for a, b in zip(ent, got["entropies"]))
        worst = max(worst, dl, de)
        print(f"{arch}: {type(m).__name__} loads; max |logprob diff| {dl:.2e}, max |entropy diff| {de:.2e}")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
