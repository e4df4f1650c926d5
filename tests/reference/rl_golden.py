"""Golden values for rl/advantages.c and rl/policy_loss.c.

Computes every advantage estimator, the clipped policy loss (symmetric, clip-higher,
dual-clip) under every aggregation, and the k1/k2/k3 KL losses, with torch autograd
for the gradients, on a fixed random batch, following the published formulas as
verl's core_algos.py implements them (GRPO, Dr. GRPO, RLOO, REINFORCE++, GAE,
agg_loss, compute_policy_loss, kl_penalty, compute_value_loss). The value-loss inputs are
drawn after everything else, so the earlier values do not change.

Regenerate:  python3 tests/reference/rl_golden.py > tests/fixtures/rl/golden.json
"""
import json

import torch

torch.manual_seed(20261123)
B, T = 7, 6
lengths = [6, 3, 1, 5, 6, 2, 4]
mask = torch.zeros(B, T)
for b, n in enumerate(lengths):
    mask[b, :n] = 1
# Groups of 3, 3 and a lone sample (group of one).
group = [0, 0, 0, 1, 1, 1, 2]
scores = torch.tensor([1.0, 0.0, 1.0, 0.2, 0.2, 0.7, 0.5])


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_whiten(x, m):
    mean = masked_mean(x, m)
    var = masked_mean((x - mean) ** 2, m)
    var = var * (m.sum() / (m.sum() - 1))
    return (x - mean) * torch.rsqrt(var + 1e-8)


def outcome(kind, eps):
    adv = torch.zeros(B)
    for b in range(B):
        g = torch.tensor([scores[j] for j in range(B) if group[j] == group[b]])
        n = len(g)
        if n == 1:
            mean, std = 0.0, 1.0
            adv[b] = scores[b] / (std + eps) if kind == "grpo" else scores[b] - mean
            continue
        if kind == "grpo":
            adv[b] = (scores[b] - g.mean()) / (g.std() + eps)  # torch.std is unbiased
        elif kind == "dr_grpo":
            adv[b] = scores[b] - g.mean()
        elif kind == "rloo":
            adv[b] = scores[b] * n / (n - 1) - g.mean() * n / (n - 1)
    return (adv.unsqueeze(-1) * mask)


def token_rewards(kl=None, kl_coef=0.0):
    r = torch.zeros(B, T)
    if kl is not None:
        r = r - kl_coef * kl * mask
    for b, n in enumerate(lengths):
        r[b, n - 1] += scores[b]
    return r * mask


def reinforce_pp(rewards, gamma):
    returns = torch.zeros(B, T)
    running = torch.zeros(B)
    for t in reversed(range(T)):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
        running = running * mask[:, t]
    return masked_whiten(returns, mask) * mask, returns


def gae(rewards, values, gamma, lam):
    nextvalues = torch.zeros(B)
    lastgaelam = torch.zeros(B)
    rev = []
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lg = delta + gamma * lam * lastgaelam
        nextvalues = values[:, t] * mask[:, t] + (1 - mask[:, t]) * nextvalues
        lastgaelam = lg * mask[:, t] + (1 - mask[:, t]) * lastgaelam
        rev.append(lastgaelam)
    adv = torch.stack(rev[::-1], dim=1)
    returns = adv + values
    return masked_whiten(adv, mask), returns


def agg(loss, kind):
    if kind == "token_mean":
        return masked_mean(loss, mask)
    if kind == "seq_mean_token_sum":
        return (loss * mask).sum(-1).mean()
    if kind == "seq_mean_token_mean":
        return ((loss * mask).sum(-1) / mask.sum(-1)).mean()
    if kind == "seq_mean_token_sum_norm":
        return (loss * mask).sum() / mask.shape[-1]
    raise ValueError(kind)


def policy_loss(logp, old, adv, clip_low, clip_high, clip_c, kind):
    d = torch.clamp(logp - old, -20.0, 20.0)
    ratio = torch.exp(d)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    c1 = torch.maximum(l1, l2)
    clip_frac = masked_mean(torch.gt(l2, l1).float(), mask)
    if clip_c > 1:
        l3 = -adv * clip_c
        c2 = torch.min(l3, c1)
        lower = masked_mean(torch.gt(c1, l3).float() * (adv < 0).float(), mask)
        losses = torch.where(adv < 0, c2, c1)
    else:
        lower = torch.tensor(0.0)
        losses = c1
    return agg(losses, kind), clip_frac, lower, masked_mean(-d, mask)


def kl_est(logp, ref, kind):
    if kind == "k1":
        return logp - ref
    if kind == "k2":
        return 0.5 * (logp - ref) ** 2
    kl = torch.clamp(ref - logp, -20, 20)
    return torch.clamp(torch.exp(kl) - kl - 1, -10, 10)


def tolist(x):
    return [round(float(v), 9) for v in x.flatten().tolist()]


old = (torch.randn(B, T) * 0.5 - 1.5) * mask
# New log-probs: some tokens far enough to be clipped on both sides.
logp = (old + torch.randn(B, T) * 0.3) * mask
ref = (old + torch.randn(B, T) * 0.2) * mask
values = torch.randn(B, T) * 0.5
kl_tok = kl_est(logp, ref, "k1")

out = {
    "B": B, "T": T, "mask": tolist(mask), "group": group, "scores": tolist(scores),
    "logp": tolist(logp), "old_logp": tolist(old), "ref_logp": tolist(ref), "values": tolist(values),
    "advantages": {}, "policy": [], "kl": [],
}
for kind in ["grpo", "dr_grpo", "rloo"]:
    out["advantages"][kind] = tolist(outcome(kind, 1e-6))
rew = token_rewards(kl_tok, 0.05)
out["token_rewards_kl005"] = tolist(rew)
a, ret = reinforce_pp(rew, 0.99)
out["advantages"]["reinforce_pp"] = tolist(a)
out["returns_reinforce_pp"] = tolist(ret)
a, ret = gae(rew, values, 0.95, 0.9)
out["advantages"]["gae"] = tolist(a * mask)
out["returns_gae"] = tolist(ret)

adv_for_loss = outcome("grpo", 1e-6)
out["adv_for_loss"] = tolist(adv_for_loss)
for clip in [(0.2, 0.2, 0.0), (0.2, 0.28, 0.0), (0.2, 0.2, 3.0), (0.1, 0.15, 1.5)]:
    for kind in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]:
        lp = logp.clone().requires_grad_(True)
        loss, cf, lower, pkl = policy_loss(lp, old, adv_for_loss, clip[0], clip[1], clip[2], kind)
        loss.backward()
        out["policy"].append({"clip_low": clip[0], "clip_high": clip[1], "clip_c": clip[2], "agg": kind,
                              "loss": float(loss.detach()), "clip_frac": float(cf), "clip_frac_lower": float(lower),
                              "ppo_kl": float(pkl.detach()), "grad": tolist(lp.grad * mask)})
for est in ["k1", "k2", "k3"]:
    for kind in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]:
        lp = logp.clone().requires_grad_(True)
        loss = 0.04 * agg(kl_est(lp, ref, est), kind)
        loss.backward()
        out["kl"].append({"estimator": est, "agg": kind, "coef": 0.04, "loss": float(loss.detach()),
                          "grad": tolist(lp.grad * mask)})

def value_loss(vpreds, values, returns, cliprange_value, kind):
    # verl core_algos.compute_value_loss
    vpredclipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    clipped_vf_losses = torch.max(vf_losses1, vf_losses2)
    vf_loss = 0.5 * agg(clipped_vf_losses, kind)
    vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).float(), mask)
    return vf_loss, vf_clipfrac


# The critic's new values: the old ones (`values`) moved by up to about +-1, so that some
# tokens fall outside every clip range tested and some inside.
vpreds = values + torch.randn(B, T) * 0.6
_, gae_returns = gae(rew, values, 0.95, 0.9)
out["vpreds"] = tolist(vpreds)
out["value"] = []
for cliprange in [0.2, 0.5, 100.0]:
    for kind in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]:
        vp = vpreds.clone().requires_grad_(True)
        loss, cf = value_loss(vp, values, gae_returns, cliprange, kind)
        loss.backward()
        out["value"].append({"cliprange": cliprange, "agg": kind, "loss": float(loss.detach()),
                             "clip_frac": float(cf), "grad": tolist(vp.grad * mask)})
m = mask.bool()
y, p = gae_returns[m], vpreds[m]
out["explained_variance"] = float(1 - torch.var(y - p) / torch.var(y))
print(json.dumps(out, indent=1))
