"""bench_math_verify.py - the peer of bench/bench_rewards.c: Math-Verify on the same
(completion, answer) pairs, one core, best of 5; prints samples/s and how often its
verdict agrees with rlvr's (read from the inputs file that bench_rewards wrote).

    python3 tests/reference/bench_math_verify.py bench_rewards_inputs.jsonl
"""
import json
import sys
import time

from math_verify import parse, verify


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    best = float("inf")
    verdicts = []
    for _ in range(5):
        t0 = time.perf_counter()
        verdicts = []
        for r in rows:
            gold = parse("$" + r["answer"] + "$")
            pred = parse(r["completion"])
            verdicts.append(1.0 if verify(gold, pred) else 0.0)
        best = min(best, time.perf_counter() - t0)
    agree = sum(1 for r, v in zip(rows, verdicts) if v == r["rlvr_reward"])
    # Every 4th completion states the answer only in prose: rlvr scores it 0 by design
    # (no final answer), Math-Verify falls back to the last number it finds.
    boxed = [(r, v) for i, (r, v) in enumerate(zip(rows, verdicts)) if i % 4 != 3]
    agree_boxed = sum(1 for r, v in boxed if v == r["rlvr_reward"])
    print(f"math (Math-Verify, Python, 1 core): {len(rows)} samples, best of 5: {best:.3f} s, "
          f"{len(rows) / best:.0f} samples/s; reward 1 on {sum(verdicts):.0f}; agrees with rlvr on {agree}/{len(rows)} "
          f"({agree_boxed}/{len(boxed)} on the boxed completions)")
    for i, (r, v) in enumerate(zip(rows, verdicts)):
        if v != r["rlvr_reward"] and i % 4 != 3:
            print(f"  disagree: rlvr {r['rlvr_reward']} math-verify {v}: {r['completion']!r} vs {r['answer']!r}")


if __name__ == "__main__":
    main()
