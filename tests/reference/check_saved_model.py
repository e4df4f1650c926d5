#!/usr/bin/env python3
"""Loads a model directory that rlvr wrote (model_save / rlvr init) with transformers and
checks that it gives the fixture's logits: the save path's acceptance test.

  python3 tests/reference/check_saved_model.py DIR CASE    # CASE: a tests/fixtures/model/ case
  python3 tests/reference/check_saved_model.py DIR         # only checks that transformers loads it
"""
import os
import sys

import torch
import transformers
from safetensors.torch import load_file


def main():
    d = sys.argv[1]
    model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
    if len(sys.argv) < 3:
        ids = torch.arange(min(8, model.config.vocab_size))[None]
        print("loaded", type(model).__name__, "logits", tuple(model(ids).logits.shape))
        return
    fx = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "model", sys.argv[2])
    x = load_file(os.path.join(fx, "expected.safetensors"))
    out, start = [], 0
    with torch.no_grad():
        for n in x["seq_lens"].tolist():
            out.append(model(x["tokens"][start:start + n][None]).logits[0])
            start += n
    diff = (torch.cat(out) - x["logits"]).abs().max().item()
    print(f"{sys.argv[2]}: max |logit difference| = {diff:.3g}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    main()
