#!/usr/bin/env python3
"""gpu-baseline.py - the transformers anchor for bench-gpu (tools/gpu-run.sh).

Times a Hugging Face LlamaForCausalLM of the bench-gpu shapes (1b: Llama-3.2-1B,
8b: Llama-3-8B; engine/model_random.c presets), random bf16 weights made on the
GPU, with a static KV cache: a batch-1 and a batch-32 decode step at context
512 and a 2048-token prefill. Decode steps run through torch.compile
(mode="reduce-overhead", CUDA graphs) when it compiles inside the budget, else
eager; the row says which. Timing: CUDA events, median of the repetitions,
after warm-up.

Rows use bench-gpu's table layout and test names so gpu-run.sh can divide:
| model | type | test | measured unit | mode |

  gpu-baseline.py [--models 8b,1b] [--budget SECONDS] [--no-compile] [--dry-run]

--dry-run: prints the shapes and the rows it would time (no torch needed).
Runs with the GPU machine's python3 (torch 2.11, transformers 5.x there).
"""
import argparse
import signal
import statistics
import sys
import time

SHAPES = {  # n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, tied, rope_theta
    "1b": (16, 2048, 32, 8, 8192, 128256, True, 500000.0),
    "8b": (32, 4096, 32, 8, 14336, 128256, False, 500000.0),
}
CTX = 512
BATCHES = (1, 32)
PREFILL = 2048


def row(model, test, value, unit, mode):
    print(f"| {model:<4} | bf16 | {test:<22} | {value:12.3f} {unit:<8} | {mode} |", flush=True)


class Budget(Exception):
    pass


def _alarm(signum, frame):
    raise Budget()


def make_model(torch, transformers, name):
    L, E, H, HKV, FF, V, tied, theta = SHAPES[name]
    cfg = transformers.LlamaConfig(
        vocab_size=V, hidden_size=E, intermediate_size=FF, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=HKV, max_position_embeddings=8192,
        rope_theta=theta, tie_word_embeddings=tied, torch_dtype=torch.bfloat16)
    torch.manual_seed(1)
    with torch.device("cuda"):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = transformers.LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(prev)
    return cfg, model.eval()


def static_cache(transformers, torch, cfg, batch, length):
    # The constructor's arguments moved between transformers releases.
    sc = transformers.StaticCache
    for kw in ({"config": cfg, "max_batch_size": batch, "max_cache_len": length, "device": "cuda",
                "dtype": torch.bfloat16},
               {"config": cfg, "max_cache_len": length}):
        try:
            return sc(**kw)
        except TypeError:
            continue
    raise RuntimeError("StaticCache: no known constructor form")


def timed(torch, fn, reps):
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def bench(torch, transformers, name, deadline, compile_ok):
    cfg, model = make_model(torch, transformers, name)
    V = cfg.vocab_size
    g = torch.Generator(device="cuda").manual_seed(7)
    with torch.inference_mode():
        for B in BATCHES:
            if time.time() > deadline:
                print(f"{name}: budget spent before batch {B}", flush=True)
                return
            cache = static_cache(transformers, torch, cfg, B, CTX + 16)
            ids = torch.randint(0, V, (B, CTX), device="cuda", generator=g)
            pos = torch.arange(CTX, device="cuda")
            model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True,
                  logits_to_keep=1)
            step_ids = torch.randint(0, V, (B, 1), device="cuda", generator=g)
            step_pos = torch.tensor([CTX], device="cuda")

            def eager():
                return model(input_ids=step_ids, past_key_values=cache, cache_position=step_pos,
                             use_cache=True).logits

            fn, mode = eager, "eager"
            left = int(deadline - time.time())
            if compile_ok and left > 30:
                try:
                    signal.signal(signal.SIGALRM, _alarm)
                    signal.alarm(max(1, left - 10))
                    cfwd = torch.compile(model.forward, mode="reduce-overhead", fullgraph=False)

                    def compiled():
                        return cfwd(input_ids=step_ids, past_key_values=cache,
                                    cache_position=step_pos, use_cache=True).logits

                    for _ in range(3):
                        compiled()
                    torch.cuda.synchronize()
                    signal.alarm(0)
                    fn, mode = compiled, "torch.compile"
                except Budget:
                    print(f"{name} batch {B}: torch.compile over budget: eager", flush=True)
                except Exception as e:  # noqa: BLE001 - any compile failure falls back to eager
                    signal.alarm(0)
                    print(f"{name} batch {B}: torch.compile failed ({type(e).__name__}: {e}): eager",
                          flush=True)
            for _ in range(3):
                fn()
            row(name, f"decode step, batch {B}", timed(torch, fn, 20), "ms", mode)
            del cache
        if time.time() > deadline:
            print(f"{name}: budget spent before prefill", flush=True)
            return
        ids = torch.randint(0, V, (1, PREFILL), device="cuda", generator=g)

        def prefill():
            return model(input_ids=ids, use_cache=False, logits_to_keep=1).logits

        prefill()
        ms = timed(torch, prefill, 5)
        row(name, f"prefill {PREFILL} tok (tok/s)", PREFILL / (ms * 1e-3), "tok/s", "eager")
    del model
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="8b,1b")
    ap.add_argument("--budget", type=float, default=100.0, help="seconds for all models")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    for m in models:
        if m not in SHAPES:
            ap.error(f"unknown model {m} (1b, 8b)")
    print("| model | type | test | measured | mode |\n|---|---|---|---|---|", flush=True)
    if a.dry_run:
        for m in models:
            print(f"DRY: {m}: LlamaForCausalLM {SHAPES[m]} bf16, static cache {CTX}+16; decode batches "
                  f"{BATCHES}, prefill {PREFILL}; torch.compile {'off' if a.no_compile else 'on'}")
            # The rows' layout, valued 0, so gpu-run.sh's join is exercised.
            for B in BATCHES:
                row(m, f"decode step, batch {B}", 0.0, "ms", "dry-run")
            row(m, f"prefill {PREFILL} tok (tok/s)", 0.0, "tok/s", "dry-run")
        return 0
    import torch
    import transformers
    if not torch.cuda.is_available():
        print("SKIP: gpu-baseline: no CUDA device for torch")
        return 0
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name()}", flush=True)
    t0 = time.time()
    for i, m in enumerate(models):
        # Each model gets an even share of what is left.
        deadline = time.time() + (a.budget - (time.time() - t0)) / (len(models) - i)
        try:
            bench(torch, transformers, m, deadline, not a.no_compile)
        except Exception as e:  # noqa: BLE001 - one model's failure must not hide the other's rows
            print(f"{m}: failed: {type(e).__name__}: {e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
