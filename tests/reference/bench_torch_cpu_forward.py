#!/usr/bin/env python3
"""PyTorch's CPU forward of the same model and batch as bench/bench_cpu_forward.c:
batch B x T tokens, logits for every token, fp32, eager attention.

  bench_cpu_forward --write /tmp/bench10m        # rlvr: writes the model and measures
  python3 tests/reference/bench_torch_cpu_forward.py /tmp/bench10m [B T ITERS THREADS]
"""
import sys
import time

import torch
import transformers


def main():
    d = sys.argv[1]
    B, T, iters, threads = (int(x) for x in (sys.argv[2:6] + ["4", "256", "5", "2"][len(sys.argv[2:6]):]))
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
    V = model.config.vocab_size
    ids = ((7 * torch.arange(B * T) + 3) % V).view(B, T)
    best, total = 1e30, 0.0
    with torch.inference_mode():
        for it in range(iters + 1):
            t0 = time.perf_counter()
            logits = model(ids, use_cache=False).logits
            dt = time.perf_counter() - t0
            if it == 0:
                continue
            best = min(best, dt)
            total += dt
    n = sum(p.numel() for p in model.parameters())
    print(f"torch cpu forward: {n} params, batch {B} x {T} tokens, {threads} threads, torch {torch.__version__}: "
          f"best {best * 1e3:.1f} ms, mean {total / iters * 1e3:.1f} ms, {B * T / best:.0f} tokens/s (best)")
    print("checksum logits[0][0..2] = " + " ".join(f"{v:.6f}" for v in logits[0, 0, :3].tolist()))


if __name__ == "__main__":
    main()
