"""PyTorch's peers of bench/bench_kernels.c, same shapes, same FLOP counts, same GPU.

    python3 tests/reference/bench_torch_kernels.py [BATCH SEQ ITERS [H KV D]]

Qwen2.5-0.5B shapes in bf16 over BATCH sequences of SEQ tokens: F.linear 896 -> 4864
forward and backward; scaled_dot_product_attention (H query and KV key/value heads of
D, 14/2 x 64 unless given) (causal, enable_gqa, the batch as
BATCH equal sequences) forward and backward; the LM head as PyTorch code usually writes it
(logits [T, 151936] in bf16, log_softmax in fp32, gather and entropy) forward and
backward, with its peak memory; RMSNorm (torch.nn.functional.rms_norm) and SwiGLU
(F.silu(g) * u) forward. Times are medians of ITERS CUDA-event-timed runs after warm-up.
"""
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    B, L, iters = (int(a) for a in sys.argv[1:4]) if len(sys.argv) >= 4 else (8, 1024, 20)
    H, KV, D = (int(a) for a in sys.argv[4:7]) if len(sys.argv) == 7 else (14, 2, 64)
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    dev, bf = "cuda", torch.bfloat16
    T, C, I, V = B * L, 896, 4864, 151936
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"shape: {B} sequences x {L} tokens (T = {T}), attention {H}/{KV} heads x {D}, bf16, "
          f"median of {iters} runs")
    rows = []

    x = torch.randn(T, C, device=dev, dtype=bf, requires_grad=True)
    w = (0.02 * torch.randn(I, C, device=dev)).to(bf).requires_grad_(True)
    dy = torch.randn(T, I, device=dev, dtype=bf)
    lin = 2.0 * T * C * I
    rows.append(("linear 896->4864 forward", median_ms(lambda: F.linear(x, w), iters), lin, 0))
    y = F.linear(x, w)
    rows.append(("linear 896->4864 backward (dX, dW)",
                 median_ms(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True), iters), 2 * lin, 0))

    q = torch.randn(B, H, L, D, device=dev, dtype=bf, requires_grad=True)
    k = torch.randn(B, KV, L, D, device=dev, dtype=bf, requires_grad=True)
    v = torch.randn(B, KV, L, D, device=dev, dtype=bf, requires_grad=True)
    do = torch.randn(B, H, L, D, device=dev, dtype=bf)
    att = B * 4.0 * D * H * L * (L + 1) / 2
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    rows.append(("attention forward", median_ms(sdpa, iters), att, 0))
    o = sdpa()
    rows.append(("attention backward",
                 median_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), iters), 2.5 * att, 0))

    xn = torch.randn(T, C, device=dev, dtype=bf, requires_grad=True)
    wh = (0.05 * torch.randn(V, C, device=dev)).to(bf).requires_grad_(True)
    targets = (torch.arange(T, device=dev) * 7919) % V

    def lm_forward():
        logp_all = F.log_softmax(F.linear(xn, wh).float(), dim=-1)
        logp = logp_all.gather(1, targets[:, None]).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp, entropy

    lm = 2.0 * T * C * V
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    rows.append(("LM head + log-probs forward", median_ms(lm_forward, iters), lm, 0))
    logp, entropy = lm_forward()
    ones = torch.ones(T, device=dev)
    rows.append(("LM head + log-probs backward", median_ms(
        lambda: torch.autograd.grad((logp, entropy), (xn, wh), (ones, ones), retain_graph=True), iters), 3 * lm, 0))
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30

    xr = torch.randn(T, C, device=dev, dtype=bf)
    nw = torch.ones(C, device=dev, dtype=bf)
    rows.append(("RMSNorm forward", median_ms(lambda: F.rms_norm(xr, (C,), nw, 1e-6), iters), 0, T * C * 2 * 2))
    g, u = torch.randn(T, I, device=dev, dtype=bf), torch.randn(T, I, device=dev, dtype=bf)
    rows.append(("SwiGLU forward", median_ms(lambda: F.silu(g) * u, iters), 0, T * I * 2 * 3))

    for name, ms, flops, nbytes in rows:
        if flops:
            print(f"{name:38s} {ms:9.3f} ms {flops / ms * 1e-9:8.1f} TFLOP/s")
        else:
            print(f"{name:38s} {ms:9.3f} ms {nbytes / ms * 1e-6:8.1f} GB/s")
    print(f"LM head peak memory above inputs: {peak:.2f} GiB (logits [T, V] materialized)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
