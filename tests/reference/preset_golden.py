"""Golden values for the `preset` key: for each recipe, the advantages and the total
loss (policy + KL) and its gradient on a fixed batch, each computed from that recipe's
own published formula, written here independently of rlvr's rl/ code:

  grpo     DeepSeekMath eq. 3: -1/G sum_i 1/|o_i| sum_t [min(r A, clip(r) A) - beta D_KL],
           D_KL = p_ref/p - log(p_ref/p) - 1, beta 0.04, A = (R - mean) / std
  dr_grpo  Dr. GRPO as verl implements it: sum_i sum_t -min(r A, clip(r) A) / T_max,
           A = R - mean
  dapo     DAPO eq. 8: -1/sum|o_i| sum_i sum_t min(r A, clip(r, 0.8, 1.28) A)
  trl      TRL GRPOTrainer, loss_type "dapo": sum(per_token_loss * mask) / sum(mask),
           per_token_loss = -min(r A, clamp(r, 0.8, 1.2) A), A = (R - mean) / (std + 1e-4)
  verl     verl compute_policy_loss_vanilla with clip_ratio_c 3 (token-mean) plus
           kl_loss_coef 0.001 * token-mean(low_var_kl)

Regenerate:  python3 tests/reference/preset_golden.py > tests/fixtures/rl/presets.json
"""
import json

import torch

torch.manual_seed(11)
B, T = 8, 5
lengths = [5, 2, 4, 1, 3, 5, 5, 2]
mask = torch.zeros(B, T)
for b, n in enumerate(lengths):
    mask[b, :n] = 1
group = [0, 0, 0, 0, 1, 1, 1, 1]
R = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.9, 0.1, 0.1])
old = (torch.randn(B, T) * 0.5 - 1.2) * mask
logp = (old + torch.randn(B, T) * 0.35) * mask
ref = (old + torch.randn(B, T) * 0.25) * mask


def group_stats():
    mean, std = torch.zeros(B), torch.zeros(B)
    for b in range(B):
        g = R[[j for j in range(B) if group[j] == group[b]]]
        mean[b], std[b] = g.mean(), g.std()
    return mean, std


def clipped_objective(lp, A, lo, hi):
    r = torch.exp(lp - old)
    return torch.minimum(r * A, torch.clamp(r, 1 - lo, 1 + hi) * A)


def low_var_kl(lp):
    x = ref - lp
    return torch.exp(x) - x - 1


mean, std = group_stats()
A_std = ((R - mean) / (std + 1e-6)).unsqueeze(-1).expand(B, T)
A_mean = (R - mean).unsqueeze(-1).expand(B, T)
A_trl = ((R - mean) / (std + 1e-4)).unsqueeze(-1).expand(B, T)
n = mask.sum(-1)


def grpo(lp):
    per_tok = clipped_objective(lp, A_std, 0.2, 0.2) - 0.04 * low_var_kl(lp)
    return -((per_tok * mask).sum(-1) / n).mean(), A_std


def dr_grpo(lp):
    return -(clipped_objective(lp, A_mean, 0.2, 0.2) * mask).sum() / T, A_mean


def dapo(lp):
    return -(clipped_objective(lp, A_std, 0.2, 0.28) * mask).sum() / mask.sum(), A_std


def trl(lp):
    coef1 = torch.exp(lp - old)
    coef2 = torch.clamp(coef1, 1 - 0.2, 1 + 0.2)
    per_token_loss = -torch.min(coef1 * A_trl, coef2 * A_trl)
    return (per_token_loss * mask).sum() / mask.sum(), A_trl


def verl(lp):
    r = torch.exp(torch.clamp(lp - old, -20, 20))
    l1, l2 = -A_std * r, -A_std * torch.clamp(r, 0.8, 1.2)
    c1 = torch.maximum(l1, l2)
    pg = torch.where(A_std < 0, torch.min(-A_std * 3.0, c1), c1)
    pg_loss = (pg * mask).sum() / mask.sum()
    kl = torch.clamp(low_var_kl(lp), -10, 10)
    return pg_loss + 0.001 * (kl * mask).sum() / mask.sum(), A_std


def r9(x):
    return [round(float(v), 9) for v in x.flatten().tolist()]


out = {"B": B, "T": T, "mask": r9(mask), "group": group, "scores": r9(R), "logp": r9(logp),
       "old_logp": r9(old), "ref_logp": r9(ref), "presets": {}}
for name, fn in [("grpo", grpo), ("dr_grpo", dr_grpo), ("dapo", dapo), ("trl", trl), ("verl", verl)]:
    lp = logp.clone().requires_grad_(True)
    loss, adv = fn(lp)
    loss.backward()
    out["presets"][name] = {"loss": float(loss.detach()), "advantages": r9(adv * mask), "grad": r9(lp.grad * mask)}
print(json.dumps(out, indent=1))
