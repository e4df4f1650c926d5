"""bench_torch_generate.py - the transformers peer of bench/bench_engine_gpu.c: generate()
of a Qwen2.5-0.5B or -1.5B shaped model (random weights, bf16, SDPA attention, static KV
cache) for B samples in groups of min(G, B) sharing a random prompt of P tokens (each
sample carries its own copy: generate has no prefix sharing), N new tokens at temperature 1
with no stop (min_new_tokens = N).

    python3 bench_torch_generate.py MODEL BATCHES PROMPT GROUP NEW [REPS] [--compile]
        e.g.  0.5b 1,64,256 512 8 512

Timings as bench_engine_gpu's: prefill = generate with one new token, full = generate
with N, decode = (full - prefill) / (N - 1) per step, each the best of REPS (default 1)
after a short warm-up generate. generate's automatic torch.compile of the static-cache
forward is off (disable_compile) unless --compile is given, which compiles in the warm-up.
Prints a RESULT line per batch for bench/run_engine_gpu.sh; an out-of-memory is reported,
not raised."""
import sys
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

SHAPES = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960),
}


def generate(model, ids, new, compile_on):
    return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                          min_new_tokens=new, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                          cache_implementation="static", disable_compile=not compile_on, pad_token_id=0)


def best_time(model, ids, new, reps, compile_on):
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = generate(model, ids, new, compile_on)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        assert out.shape[1] == ids.shape[1] + new, out.shape
    return best


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    compile_on = "--compile" in sys.argv
    name, batches, P, G, N = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
    reps = int(args[5]) if len(args) > 5 else 1
    cfg = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, **SHAPES[name])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    model = model.to(dtype=torch.bfloat16).eval()
    print(f"torch {torch.__version__}, transformers generate, {torch.cuda.get_device_name()}, "
          f"{'compiled' if compile_on else 'eager'} static cache", flush=True)
    for B in (int(b) for b in batches.split(",")):
        g = min(G, B)
        gen = torch.Generator(device="cuda").manual_seed(1)
        prompts = torch.randint(0, cfg.vocab_size, ((B + g - 1) // g, P), device="cuda", generator=gen)
        ids = prompts.repeat_interleave(g, dim=0)[:B].contiguous()
        try:
            with torch.inference_mode():
                generate(model, ids, 8, compile_on)  # warm-up (and the compilation with --compile)
                t_pre = best_time(model, ids, 1, reps, compile_on)
                t_full = best_time(model, ids, N, reps, compile_on)
        except torch.cuda.OutOfMemoryError:
            print(f"torch B={B}: out of memory", flush=True)
            torch.cuda.empty_cache()
            continue
        step = (t_full - t_pre) / (N - 1)
        print(f"torch B={B:<4d} (groups of {g}): prefill {1e3 * t_pre:.1f} ms, decode {1e3 * step:.3f} ms/step "
              f"({B / step:.0f} tokens/s), all {B * N / t_full:.0f} tokens/s", flush=True)
        print(f"RESULT impl=torch model={name} batch={B} prompt={P} new={N} prefill_ms={1e3 * t_pre:.2f} "
              f"step_ms={1e3 * step:.4f} decode_tps={B / step:.1f} total_tps={B * N / t_full:.1f} roof_ms=0",
              flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
