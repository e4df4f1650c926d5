"""Golden values for rl/optim.c: torch.optim.AdamW (single-tensor path) and
torch.nn.utils.clip_grad_norm_ over a few steps on fixed random parameters.

Regenerate:  python3 tests/reference/optim_golden.py > tests/fixtures/rl/optim.json
"""
import json

import torch

torch.manual_seed(7)
N = 37
p0 = torch.randn(N)
grads = [torch.randn(N) * s for s in (0.5, 3.0, 0.01, 10.0, 1.0)]  # norms above and below max_norm


def run(lr, betas, eps, wd, max_norm):
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False, fused=False)
    norms, params = [], []
    for g in grads:
        p.grad = g.clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p], max_norm, foreach=False)))
        opt.step()
        params.append([float(x) for x in p.detach()])
    return {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps, "weight_decay": wd,
            "max_norm": max_norm, "norms": norms, "params": params}


out = {"n": N, "p0": [float(x) for x in p0], "grads": [[float(x) for x in g] for g in grads],
       "cases": [run(1e-2, (0.9, 0.999), 1e-8, 0.0, 1.0),
                 run(3e-3, (0.8, 0.95), 1e-6, 0.1, 5.0),
                 run(1e-1, (0.9, 0.999), 1e-8, 0.01, 1e9)]}
print(json.dumps(out))
