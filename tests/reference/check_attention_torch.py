"""Compare rlvr's GPU attention with PyTorch's scaled_dot_product_attention on the same GPU.

    python3 tests/reference/check_attention_torch.py BUILD_DIR/tests/tools/attention_tool

For packed sequences of odd lengths, grouped-query and multi-head layouts and fp32/bf16,
runs rlvr's forward and backward (through attention_tool) and PyTorch's SDPA
(is_causal per sequence, enable_gqa), and measures both against a float64 reference
(SDPA's math on float64 copies of the same inputs). Passes when rlvr's error, as
||x - ref|| / ||ref|| for out, dq, dk and dv, is within twice PyTorch's own plus 2e-3 in
bf16 or 1e-5 in fp32 (dK and dV sum over every query of a group: fp32 sums over 1024 x 7
rows reach ~2e-6), and lse within 1e-4 of the float64 one; PyTorch runs TF32-free. Prints
one line per case and exits 1 on any failure. Needs a CUDA GPU and torch
(tests/reference/requirements.txt). The script's own arithmetic was checked on a CPU with
the CPU twin standing in for the GPU tool.
"""
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F


def sdpa_packed(q, k, v, cu, H, KV):
    """SDPA per sequence of packed [T, heads, D] tensors; returns [T, H, D]."""
    outs = []
    for s in range(len(cu) - 1):
        a, b = cu[s], cu[s + 1]
        if a == b:
            continue
        qs = q[a:b].transpose(0, 1).unsqueeze(0)  # [1, H, L, D]
        ks = k[a:b].transpose(0, 1).unsqueeze(0)
        vs = v[a:b].transpose(0, 1).unsqueeze(0)
        o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=(H != KV))
        outs.append(o.squeeze(0).transpose(0, 1))
    return torch.cat(outs, 0)


def grads(q, k, v, dout, cu, H, KV):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = sdpa_packed(q, k, v, cu, H, KV)
    out.backward(dout)
    return out.detach(), q.grad, k.grad, v.grad


def rel(x, ref):
    return ((x.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def run_case(tool, dtype, lens, H, KV, D, seed):
    torch.manual_seed(seed)
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    T = cu[-1]
    tdt = torch.bfloat16 if dtype == 1 else torch.float32
    dev = "cuda"
    # inputs representable in the dtype, so that every side starts from the same numbers
    q = torch.randn(T, H, D, device=dev).to(tdt)
    k = torch.randn(T, KV, D, device=dev).to(tdt)
    v = torch.randn(T, KV, D, device=dev).to(tdt)
    dout = torch.randn(T, H, D, device=dev).to(tdt)

    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        with open(fin, "wb") as f:
            f.write(struct.pack("<5i", dtype, len(lens), H, KV, D))
            f.write(struct.pack(f"<{len(cu)}i", *cu))
            for t in (q, k, v, dout):
                f.write(t.float().cpu().numpy().astype("<f4").tobytes())
        subprocess.run([tool, fin, fout], check=True)
        raw = torch.frombuffer(bytearray(open(fout, "rb").read()), dtype=torch.float32)
    sizes = [T * H * D, T * H, T * H * D, T * KV * D, T * KV * D]
    parts = list(torch.split(raw, sizes))
    ours = [parts[0].view(T, H, D), parts[2].view(T, H, D), parts[3].view(T, KV, D), parts[4].view(T, KV, D)]
    ours_lse = parts[1].view(T, H)

    ref = grads(q.double(), k.double(), v.double(), dout.double(), cu, H, KV)
    theirs = grads(q, k, v, dout, cu, H, KV)
    # float64 log-sum-exp of the scaled causal scores, per sequence
    lse_ref = torch.empty(T, H, dtype=torch.float64, device=dev)
    for s in range(len(lens)):
        a, b = cu[s], cu[s + 1]
        if a == b:
            continue
        g = H // KV
        kk = k[a:b].double().repeat_interleave(g, dim=1)
        sc = torch.einsum("ihd,jhd->hij", q[a:b].double(), kk) / D**0.5
        mask = torch.ones(b - a, b - a, dtype=torch.bool, device=dev).tril()
        sc = sc.masked_fill(~mask, float("-inf"))
        lse_ref[a:b] = torch.logsumexp(sc, dim=-1).transpose(0, 1)

    ok = True
    names = ["out", "dq", "dk", "dv"]
    line = []
    for name, o, t, r in zip(names, ours, theirs, ref):
        eo, et = rel(o.to(dev), r), rel(t, r)
        good = eo <= 2 * et + (2e-3 if dtype == 1 else 1e-5) and eo == eo
        ok &= good
        line.append(f"{name} {eo:.2e}/{et:.2e}{'' if good else ' FAIL'}")
    el = (ours_lse.to(dev).double() - lse_ref).abs().max().item()
    good = el <= 1e-4  # the same inputs on every side: only fp32 rounding differs
    ok &= good
    line.append(f"lse max {el:.1e}{'' if good else ' FAIL'}")
    name = "bf16" if dtype == 1 else "fp32"
    print(f"{name} lens={lens} H={H} KV={KV} D={D}: rlvr/torch rel. error " + ", ".join(line), flush=True)
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    cases = [
        ([1, 7, 33, 64, 100], 4, 2, 64),
        ([129, 300], 14, 2, 64),
        ([77, 1], 8, 8, 128),
        ([50], 4, 1, 256),
        ([31, 45], 6, 3, 40),
        ([1024], 14, 2, 64),
    ]
    ok = True
    for dtype in (0, 1):
        for i, (lens, H, KV, D) in enumerate(cases):
            ok &= run_case(sys.argv[1], dtype, lens, H, KV, D, 1000 * dtype + i)
    print("passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
