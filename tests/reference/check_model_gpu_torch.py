"""check_model_gpu_torch.py - rlvr's GPU training model against transformers on the same GPU.

For each model (the checkpoints in tests/fixtures/model, then a random Qwen2.5-0.5B-shaped
model written here with save_pretrained), packed sequences of random tokens go through
tests/tools/model_gpu_tool (rlvr: forward, log-probs of the next tokens, backward of their
sum) in fp32 and in bf16, and through transformers (each sequence on its own, the same
loss) in fp32 (TF32 off: the reference) and in bf16 (the model cast to bfloat16, SDPA).

    python3 check_model_gpu_torch.py TOOL [--skip-0.5b]

Checks: rlvr fp32 equals the reference to float rounding (log-probs within 2e-3 absolute,
every parameter's gradient within 2e-3 relative L2); rlvr bf16 is at least as close to
the reference as transformers bf16, up to a factor of 2 (mean |dlogp| and each gradient's
relative L2 error, with floors of 2e-3 and 1e-2 for tensors whose bf16 error is tiny).
Prints one line per model and dtype, then `passed` or `FAILED`. Exit 0 or 1."""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def torch_run(model, seqs):
    """log-probs [T] (0 at each sequence's last token) and float32 gradients by name."""
    model.zero_grad(set_to_none=True)
    out = []
    for s in seqs:
        ids = torch.tensor([s], device="cuda")
        logits = model(input_ids=ids).logits.float()[0]
        lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
        lp.sum().backward()
        out.append(torch.cat([lp.detach(), torch.zeros(1, device="cuda")]))
    grads = {n: p.grad.float().cpu().numpy().ravel() for n, p in model.named_parameters() if p.grad is not None}
    return torch.cat(out).cpu().numpy(), grads


def rlvr_run(tool, model_dir, seqs, dtype, tmp):
    path = os.path.join(tmp, "seqs.txt")
    with open(path, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")
    prefix = os.path.join(tmp, "out-" + dtype)
    r = subprocess.run([tool, model_dir, path, prefix, dtype], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"model_gpu_tool {dtype}: {r.stderr.strip()}")
    logp = np.fromfile(prefix + ".logp", dtype=np.float32)
    flat = np.fromfile(prefix + ".grads", dtype=np.float32)
    grads = {}
    for line in open(prefix + ".params"):
        name, off, n = line.split()
        grads[name] = flat[int(off):int(off) + int(n)]
    return logp, grads


def rel_l2(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


def compare(name, tool, model_dir, seqs, tmp):
    ok = True
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                     attn_implementation="sdpa").cuda()
    ref_lp, ref_g = torch_run(ref_model, seqs)
    bf_model = ref_model.to(torch.bfloat16)
    t_lp, t_g = torch_run(bf_model, seqs)
    del ref_model, bf_model
    torch.cuda.empty_cache()
    valid = np.concatenate([np.r_[np.ones(len(s) - 1), 0.0] for s in seqs]).astype(bool)
    for dtype in ("fp32", "bf16"):
        lp, g = rlvr_run(tool, model_dir, seqs, dtype, tmp)
        missing = sorted(set(ref_g) ^ set(g))
        if missing:
            print(f"{name} {dtype}: parameter names differ: {missing[:5]}")
            ok = False
            continue
        d_lp = np.abs(lp - ref_lp)[valid]
        errs = {n: rel_l2(g[n], ref_g[n]) for n in ref_g}
        worst = max(errs, key=errs.get)
        line = (f"{name} {dtype}: {len(seqs)} seqs, {int(valid.sum())} predicted tokens; |dlogp| mean "
                f"{d_lp.mean():.2e} max {d_lp.max():.2e}; grad rel L2 median {np.median(list(errs.values())):.2e} "
                f"worst {errs[worst]:.2e} ({worst})")
        if dtype == "fp32":
            bad = [n for n in errs if errs[n] > 2e-3]
            if d_lp.max() > 2e-3 or bad:
                ok = False
                line += f"  FAILED (fp32 bounds; gradients over 2e-3: {bad[:5]})"
        else:
            t_d = np.abs(t_lp - ref_lp)[valid]
            t_errs = {n: rel_l2(t_g[n], ref_g[n]) for n in ref_g}
            t_worst = max(t_errs, key=t_errs.get)
            line += (f"\n{name} torch bf16: |dlogp| mean {t_d.mean():.2e} max {t_d.max():.2e}; grad rel L2 median "
                     f"{np.median(list(t_errs.values())):.2e} worst {t_errs[t_worst]:.2e} ({t_worst})")
            bad = [n for n in errs if errs[n] > max(2 * t_errs[n], 1e-2)]
            if d_lp.mean() > max(2 * t_d.mean(), 2e-3) or bad:
                ok = False
                line += f"\n  FAILED (bf16 worse than twice transformers'; gradients: {bad[:5]})"
        print(line, flush=True)
    return ok


def random_seqs(rng, vocab, lens):
    return [rng.integers(0, vocab, n).tolist() for n in lens]


def main():
    tool = sys.argv[1]
    skip_big = "--skip-0.5b" in sys.argv
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rng = np.random.default_rng(5)
    ok = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for d in sorted(glob.glob(os.path.join(root, "fixtures", "model", "*", "config.json"))):
            d = os.path.dirname(d)
            cfg = AutoModelForCausalLM.from_pretrained(d).config
            top = min(cfg.max_position_embeddings, 96)
            seqs = random_seqs(rng, cfg.vocab_size, [top, 7, top // 2 + 1, 2])
            ok &= compare(os.path.basename(d), tool, d, seqs, tmp)
        if not skip_big:
            cfg = Qwen2Config(vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                              num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=32768,
                              rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
            torch.manual_seed(0)
            big = os.path.join(tmp, "qwen2.5-0.5b-random")
            AutoModelForCausalLM.from_config(cfg).to(torch.float32).save_pretrained(big, safe_serialization=True)
            ok &= compare("qwen2.5-0.5b-shape", tool, big, random_seqs(rng, cfg.vocab_size, [300, 77, 512, 129, 2]),
                          tmp)
    print("passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
