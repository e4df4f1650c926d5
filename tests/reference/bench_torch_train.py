"""bench_torch_train.py - the PyTorch peer of bench/bench_train_gpu.c: training steps of a
Qwen2.5-0.5B or -1.5B shaped model (random weights, transformers' Qwen2ForCausalLM) with
fp32 weights under bf16 autocast (the usual mixed precision: bf16 matrix products, fp32
master weights, gradients and AdamW state, as rlvr keeps them), SDPA attention, fused
AdamW, on B sequences of L tokens (B = tokens / L), the loss the mean cross-entropy of
random next tokens. One step: forward and backward of each of MICRO micro-batches
(gradient accumulation; default 1), clip_grad_norm_(1.0), AdamW, zero_grad.

    python3 bench_torch_train.py MODEL SEQS TOKENS STEPS WARMUP [MICRO]   e.g.  0.5b 1024,4096 8192 5 2

Prints, per sequence length, tokens/s, MFU (same FLOP count and 989 TFLOPS peak as
bench_train_gpu.c) and peak memory (torch.cuda.max_memory_reserved: what the caching
allocator held, comparable to rlvr's device memory in use minus the CUDA context), and a
RESULT line for bench/run_train_gpu.sh. An out-of-memory is reported, not raised."""
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, Qwen2Config

PEAK_FLOPS = 989e12
SHAPES = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960),
}


def main():
    name, seqs, tokens, steps, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    micro = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    shape = SHAPES[name]
    cfg = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, use_cache=False, **shape)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    model = model.to(dtype=torch.float32).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True)
    V, Lay, H = cfg.vocab_size, cfg.num_hidden_layers, cfg.num_attention_heads
    D = cfg.hidden_size // H
    for L in (int(s) for s in seqs.split(",")):
        B = max(1, tokens // L)
        T = B * L
        g = torch.Generator(device="cuda").manual_seed(1)
        ids = torch.randint(0, V, (B, L), device="cuda", generator=g)
        tgt = torch.randint(0, V, (B, L), device="cuda", generator=g)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        try:
            t0 = None
            for it in range(warmup + steps):
                if it == warmup:
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                for _ in range(micro):
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        logits = model(input_ids=ids).logits
                    loss = F.cross_entropy(logits.float().view(-1, V), tgt.view(-1))
                    loss.backward()
                    del logits
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) / steps
        except torch.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            print(f"torch {name} L={L} B={B}: out of memory")
            print(f"RESULT impl=torch model={name} seq={L} batch={B} micro={micro} tokens_per_s=nan mfu=nan mem_gib=nan")
            sys.stdout.flush()
            continue
        flops = micro * (6.0 * n_params * T + 6.0 * Lay * H * D * B * L * L)
        T *= micro
        mfu = flops / dt / PEAK_FLOPS
        mem = torch.cuda.max_memory_reserved() / 2**30
        print(f"torch {name} L={L} B={B} M={micro} bf16 autocast: {T / dt:.0f} tokens/s, {1e3 * dt:.1f} ms/step, "
              f"MFU {100 * mfu:.1f}%, peak memory {mem:.2f} GiB reserved "
              f"({torch.cuda.max_memory_allocated() / 2**30:.2f} allocated), loss {loss.item():.4f}")
        print(f"RESULT impl=torch model={name} seq={L} batch={B} micro={micro} tokens_per_s={T / dt:.1f} mfu={mfu:.4f} mem_gib={mem:.3f}")
        sys.stdout.flush()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
