#!/usr/bin/env python3
"""Encode throughput of HF `tokenizers` beside rlvr's bench/bench_tokenizer, in the same run,
on the same documents; prints a Markdown table for docs/benchmarks.md.

  python3 tests/reference/bench_hf_tokenizer.py --rlvr-bench build-rel/bench/bench_tokenizer

Documents: (a) GSM8K test (question + "\\n" + answer, 1,319 documents, ~700 kB) from
../shared/data/datasets/gsm8k/test.jsonl; (b) the tokenizer test corpus's 100 kB text as one
document (tests/fixtures/tokenizer/corpus.jsonl, built as the C test builds it).

HF is measured three ways: `encode` per document in a loop (single thread), `encode_batch` with
RAYON_NUM_THREADS=1 (single thread), and `encode_batch` with its default thread pool. Each is
the best of --reps repetitions after one warm-up; rlvr reports its cold first pass and its best.
The id counts of both sides are compared: a benchmark of a tokenizer that disagrees is void.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
TOKENIZERS = ["gpt2", "qwen2.5", "llama3", "tinyllama-llama2"]


def corpus_big_text():
    chunk = []
    with open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "text" in r:
                chunk.append(r["text"])
    chunk = "\n".join(chunk)
    parts, size = [], 0
    while size < 100000:
        parts.append(chunk)
        size += len(chunk.encode("utf-8")) + 1
    return "\n".join(parts)


def hf_worker(args):
    """Runs in a child process so RAYON_NUM_THREADS takes effect before tokenizers starts."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_tokenizer_fixtures import load_reference

    with open(args.docs, encoding="utf-8") as f:
        docs = [bytes.fromhex(json.loads(line)["hex"]).decode("utf-8") for line in f]
    tok = load_reference(os.path.join(SHARED, "tokenizers", args.worker, "tokenizer.json"))
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    res = {}
    for mode in args.modes.split(","):
        best = 1e30
        n_ids = 0
        for rep in range(args.reps + 1):
            t0 = time.perf_counter()
            if mode == "batch":
                encs = tok.encode_batch(docs, add_special_tokens=False)
            else:
                encs = [tok.encode(d, add_special_tokens=False) for d in docs]
            dt = time.perf_counter() - t0
            n_ids = sum(len(e.ids) for e in encs)
            if rep > 0:
                best = min(best, dt)
        res[mode] = {"mb_s": nbytes / best / 1e6, "ids": n_ids}
    print(json.dumps(res))


def run_hf(name, docs, reps, modes, threads):
    env = dict(os.environ)
    if threads is not None:
        env["RAYON_NUM_THREADS"] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "true"
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, "--docs", docs,
                          "--reps", str(reps), "--modes", modes], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rlvr-bench", help="path of the built bench_tokenizer")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--worker")
    ap.add_argument("--docs")
    ap.add_argument("--modes", default="single,batch")
    args = ap.parse_args()
    if args.worker:
        return hf_worker(args)
    if not args.rlvr_bench:
        ap.error("--rlvr-bench is required")

    tmp = tempfile.mkdtemp()
    sets = {}
    gsm = os.path.join(tmp, "gsm8k.jsonl")
    with open(os.path.join(SHARED, "datasets", "gsm8k", "test.jsonl"), encoding="utf-8") as f, \
            open(gsm, "w", encoding="utf-8") as g:
        for line in f:
            r = json.loads(line)
            g.write(json.dumps({"hex": (r["question"] + "\n" + r["answer"]).encode("utf-8").hex()}) + "\n")
    sets["GSM8K test, 1,319 docs"] = gsm
    big = os.path.join(tmp, "corpus100k.jsonl")
    with open(big, "w", encoding="utf-8") as g:
        g.write(json.dumps({"hex": corpus_big_text().encode("utf-8").hex()}) + "\n")
    sets["test corpus, one 100 kB doc"] = big

    print("| tokenizer | documents | rlvr cold MB/s | rlvr MB/s | HF encode loop MB/s (1 thread) | "
          "HF encode_batch MB/s (1 thread) | HF encode_batch MB/s (all cores) | rlvr / HF best 1-thread |")
    print("|---|---|---|---|---|---|---|---|")
    for name in TOKENIZERS:
        for label, docs in sets.items():
            r = subprocess.run([args.rlvr_bench, "--tokenizer", os.path.join(SHARED, "tokenizers", name),
                                "--docs", docs, "--reps", str(args.reps + 1)], check=True, capture_output=True,
                               text=True)
            ours = json.loads(r.stdout)
            one = run_hf(name, docs, args.reps, "single,batch", 1)
            many = run_hf(name, docs, args.reps, "batch", None)
            for v in list(one.values()) + list(many.values()):
                if v["ids"] != ours["ids"]:
                    sys.exit(f"{name} {label}: rlvr gives {ours['ids']} ids, HF {v['ids']}: results disagree")
            hf_best = max(one["single"]["mb_s"], one["batch"]["mb_s"])
            print(f"| {name} | {label} | {ours['cold_mb_s']:.1f} | {ours['mb_s']:.1f} | {one['single']['mb_s']:.1f} | "
                  f"{one['batch']['mb_s']:.1f} | {many['batch']['mb_s']:.1f} | {ours['mb_s'] / hf_best:.2f}x |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
