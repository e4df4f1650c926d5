#!/usr/bin/env python3
"""ncu_summary.py CSV - where the GPU time of a profiled run goes, from Nsight Compute's
per-launch CSV (`ncu --csv --metrics gpu__time_duration.sum ...`): total kernel time,
time per kernel family (by name), and the kernels that took longest, summed over launches.
Used by bench/profile_train_gpu.sh."""
import csv
import re
import sys
from collections import defaultdict

UNITS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0, "second": 1e3, "s": 1e3}
FAMILIES = [  # first match wins
    ("GEMM (cuBLASLt)", r"gemm|nvjet|xmma|cutlass|sm90_|sm80_|ampere|hopper|cublas"),
    ("attention", r"attn|attention|flash"),
    ("LM head softmax / loss", r"lmhead|lm_head|logsumexp|softmax"),
    ("SwiGLU", r"swiglu"),
    ("AdamW + clipping", r"adamw|grad_norm|scale_kernel|clip"),
    ("RMSNorm", r"rmsnorm|rms_norm"),
    ("RoPE", r"rope"),
    ("embedding", r"embed"),
    ("bias gradient", r"bias"),
]


def family(name):
    low = name.lower()
    for fam, pat in FAMILIES:
        if re.search(pat, low):
            return fam
    return "other"


def main(path):
    per_kernel = defaultdict(lambda: [0, 0.0])
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # skip ncu's ==PROF== lines
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ms = float(row["Metric Value"].replace(",", "")) * UNITS[row["Metric Unit"]]
        name = re.sub(r"\(.*", "", row["Kernel Name"])[:90]
        per_kernel[name][0] += 1
        per_kernel[name][1] += ms
    total = sum(v[1] for v in per_kernel.values())
    fams = defaultdict(float)
    for name, (_, ms) in per_kernel.items():
        fams[family(name)] += ms
    print(f"total kernel time {total:.2f} ms in {sum(v[0] for v in per_kernel.values())} launches")
    for fam, ms in sorted(fams.items(), key=lambda kv: -kv[1]):
        print(f"  {fam:26s} {ms:9.2f} ms  {100 * ms / total:5.1f}%")
    print("longest kernels (summed over launches):")
    for name, (n, ms) in sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {ms:8.2f} ms {100 * ms / total:5.1f}%  x{n:<5d} {1e3 * ms / n:8.1f} us  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
