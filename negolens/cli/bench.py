"""``negolens bench NAME``: one run, a ratio against a named baseline, one JSON line last.

Benchmarks are not tests. Absolute times on shared CPUs are noise; ratios measured in the same
process on the same inputs are not. Each benchmark is a function of its layer returning a
dict; this top layer imports them directly and prints the dict as the last line.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import typer

from negolens.cli import app
from negolens.errors import NegolensError
from negolens.zoo import DEFAULT_MODEL


def _benches() -> dict[str, Callable[..., dict]]:
    from negolens.agents.bench import bench_runner
    from negolens.analysis.bench import bench_ablation
    from negolens.probes.bench import bench_recorder
    from negolens.training.bench import bench_grpo_pass, bench_sft

    return {"dtype": bench_dtype, "runner": bench_runner, "recorder": bench_recorder, "ablation": bench_ablation,
            "sft": bench_sft, "grpo-pass": bench_grpo_pass}


BENCH_NAMES = ("ablation", "dtype", "grpo-pass", "recorder", "runner", "sft")


def run_bench(name: str, **kwargs) -> dict:
    """Run benchmark ``name`` (one of :data:`BENCH_NAMES`) and return its result dict."""
    if name not in BENCH_NAMES:
        raise NegolensError(f"unknown benchmark {name!r}; known: {', '.join(BENCH_NAMES)}")
    return _benches()[name](**kwargs)


@app.command()
def bench(
    name: str = typer.Argument(..., help=f"benchmark name: {' | '.join(BENCH_NAMES)}"),
    model: str = typer.Option(DEFAULT_MODEL, help="zoo name or model directory"),
    seed: int = typer.Option(0, help="seed of the inputs"),
) -> None:
    """Measure a speed ratio against the named baseline; prints one JSON line last."""
    typer.echo(json.dumps(run_bench(name, model=model, seed=seed)))


def best_of(fn, repeats: int = 3) -> float:
    """Minimum wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_dtype(model: str = DEFAULT_MODEL, seed: int = 0, batch: int = 4, rounds: int = 6) -> dict:
    """bfloat16 vs float32 forward: speed ratio and how far bf16 logits drift.

    Baseline: the float32 forward of the same model on the same left-padded batch (4 chats of
    growing length). Numerics over all real positions: max |Δlogit|, top-1 agreement and mean
    KL(fp32 ‖ bf16).
    """
    import torch

    import negolens
    from negolens.demo import long_dialogue

    torch.manual_seed(seed)
    fp32 = negolens.load(model)
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
        "bench": "dtype", "model": model, "tokens": int(mask.sum()), "baseline": "float32 forward",
        "fp32_s": round(t32, 3), "bf16_s": round(t16, 3), "speedup_bf16_vs_fp32": round(t32 / t16, 2),
        "max_abs_logit_diff": round((ref - low).abs().max().item(), 4),
        "top1_agreement": round((ref.argmax(-1) == low.argmax(-1)).float().mean().item(), 4),
        "mean_kl": round(kl.item(), 5),
    }
