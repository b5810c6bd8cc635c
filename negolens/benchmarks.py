"""``negolens bench NAME``: one run, a ratio against a named baseline, one JSON line.

Benchmarks are not tests. Absolute times on shared CPUs are noise; ratios measured in the same
process on the same inputs are not. Each benchmark returns a dict; the CLI prints it as the
last line. Other layers register theirs here by dotted path (imported lazily, so the core
never imports a higher layer at import time).
"""

from __future__ import annotations

import importlib
import time

import torch

from negolens.errors import NegolensError

BENCHES: dict[str, str] = {
    "dtype": "negolens.benchmarks:bench_dtype",
    "runner": "negolens.agents.bench:bench_runner",
    "recorder": "negolens.probes.bench:bench_recorder",
    "ablation": "negolens.analysis.bench:bench_ablation",
    "sft": "negolens.training.bench:bench_sft",
}


def run_bench(name: str, **kwargs) -> dict:
    try:
        target = BENCHES[name]
    except KeyError:
        raise NegolensError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHES))}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(**kwargs)


def best_of(fn, repeats: int = 3) -> float:
    """Minimum wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_dtype(model: str = "smollm2-135m-instruct", seed: int = 0, batch: int = 4, rounds: int = 6) -> dict:
    """bfloat16 vs float32 forward: speed ratio and how far bf16 logits drift.

    Baseline: the float32 forward of the same model on the same left-padded batch (4 chats of
    growing length, ~200–400 tokens). Numerics over all real positions: max |Δlogit|, top-1
    agreement and mean KL(fp32 ‖ bf16).
    """
    from negolens.demo import long_dialogue
    from negolens.hooked import load
    from negolens.zoo import ZOO

    torch.manual_seed(seed)
    fp32 = load(model, fetch=model in ZOO)
    chats = [fp32.render(long_dialogue(rounds + 2 * i)) for i in range(batch)]
    b = fp32.batch(chats)
    t32 = best_of(lambda: fp32.logits(b))
    ref = fp32.logits(b).float()
    bf16 = fp32.to("bfloat16")  # in place: the fp32 logits are already computed
    t16 = best_of(lambda: bf16.logits(b))
    low = bf16.logits(b).float()
    mask = b.attention_mask.bool()
    ref, low = ref[mask], low[mask]
    kl = torch.nn.functional.kl_div(low.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="batchmean")
    return {
        "bench": "dtype",
        "model": model,
        "tokens": int(mask.sum()),
        "baseline": "float32 forward",
        "fp32_s": round(t32, 3),
        "bf16_s": round(t16, 3),
        "speedup_bf16_vs_fp32": round(t32 / t16, 2),
        "max_abs_logit_diff": round((ref - low).abs().max().item(), 4),
        "top1_agreement": round((ref.argmax(-1) == low.argmax(-1)).float().mean().item(), 4),
        "mean_kl": round(kl.item(), 5),
    }
