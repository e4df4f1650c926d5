#!/usr/bin/env python3
"""Builds tiny random models of every supported architecture with transformers and writes
them with their reference outputs to tests/fixtures/model/<case>/:

  config.json, model.safetensors (or a sharded index + shards), generation_config.json
  expected.safetensors:
    tokens [T] (I64), seq_lens [S] (I64)  two sequences of different lengths, concatenated
    logits [T, V]                          fp32 logits of each sequence run on its own
    targets [T] (I64), logp [T], entropy [T]  log p(target) and entropy of every position
    w_logp [T], w_entropy [T]              the fixed loss  L = sum w_logp*logp + w_entropy*entropy
    grad.<parameter name>                  dL/dparameter for every parameter
    greedy [G] (I64)                       greedy continuation of sequence 0 (argmax, G steps)

Regenerate: pip install -r tests/reference/requirements.txt &&
            python3 tests/reference/make_model_fixtures.py
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "model")
BASE = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6,
            rope_theta=10000.0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)

CASES = [
    # name, config class, model class, extra config, saved dtype, sharded
    ("llama_gqa", "LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2), torch.float32, False),
    ("llama3_tied_bias", "LlamaConfig", "LlamaForCausalLM",
     dict(num_key_value_heads=4, head_dim=16, tie_word_embeddings=True, attention_bias=True,
          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                            original_max_position_embeddings=16)), torch.bfloat16, False),
    ("qwen2_tied", "Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=1, tie_word_embeddings=True),
     torch.bfloat16, False),
    ("qwen2_sharded_fp16", "Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2), torch.float16, True),
    ("qwen3", "Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=16), torch.bfloat16, False),
    ("mistral", "MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=2, sliding_window=None),
     torch.bfloat16, False),
]
SEQ_LENS = [7, 4]
GREEDY = 6


def build(name, cfg_cls, model_cls, extra, dtype, sharded, seed):
    torch.manual_seed(seed)
    cfg = getattr(transformers, cfg_cls)(**{**BASE, **extra})
    cfg._attn_implementation = "eager"
    model = getattr(transformers, model_cls)(cfg).float().eval()
    # Larger-than-default weights so logits and gradients are far from uniform.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.25 * torch.randn_like(p))
            p.copy_(p.to(dtype).float())  # exactly what the saved file holds
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.to(dtype).save_pretrained(d, max_shard_size="24KB" if sharded else "1GB")
    # Everything below runs on the model as loaded back from disk: what the C side reads.
    model = getattr(transformers, model_cls).from_pretrained(d, attn_implementation="eager").float().eval()

    g = torch.Generator().manual_seed(seed + 1)
    V = cfg.vocab_size
    seqs = [torch.randint(3, V, (n,), generator=g) for n in SEQ_LENS]
    tokens = torch.cat(seqs)
    T = tokens.numel()
    targets = torch.randint(0, V, (T,), generator=g)
    w_logp = torch.randn(T, generator=g)
    w_entropy = 0.5 * torch.randn(T, generator=g)

    logits = torch.cat([model(s[None]).logits[0] for s in seqs])
    lsm = torch.log_softmax(logits.double(), -1)
    logp = lsm.gather(1, targets[:, None])[:, 0]
    entropy = -(lsm.exp() * lsm).sum(-1)
    loss = (w_logp.double() * logp).sum() + (w_entropy.double() * entropy).sum()
    model.zero_grad()
    loss.backward()

    with torch.no_grad():
        ids = seqs[0][None]
        for _ in range(GREEDY):
            nxt = model(ids).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
        greedy = ids[0, SEQ_LENS[0]:]
        # transformers' own greedy search must agree with the loop above
        gen = model.generate(seqs[0][None], max_new_tokens=GREEDY, do_sample=False, eos_token_id=None,
                             pad_token_id=0, attention_mask=torch.ones(1, SEQ_LENS[0], dtype=torch.long))
        assert torch.equal(gen[0, SEQ_LENS[0]:], greedy), (gen, greedy)

    out = {
        "tokens": tokens.long(), "seq_lens": torch.tensor(SEQ_LENS, dtype=torch.long),
        "logits": logits.detach().float().contiguous(), "targets": targets.long(),
        "logp": logp.detach().float(), "entropy": entropy.detach().float(),
        "w_logp": w_logp.float(), "w_entropy": w_entropy.float(), "greedy": greedy.long().contiguous(),
    }
    for pname, p in model.named_parameters():
        out["grad." + pname] = p.grad.detach().float().contiguous()
    save_file(out, os.path.join(d, "expected.safetensors"))
    print(name, "params", sum(p.numel() for p in model.parameters()), "greedy", greedy.tolist(), file=sys.stderr)


def main():
    torch.set_grad_enabled(True)
    for i, case in enumerate(CASES):
        build(*case, seed=1000 + i)


if __name__ == "__main__":
    main()
