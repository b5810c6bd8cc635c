"""``negolens bench recorder``: the streaming attention recorder vs a plain forward and vs
TransformerLens ``run_with_cache`` on the same batch (4 Craigslist dev dialogues, ~384 tokens).

Time: best of 3 after a warm-up. Peak memory: the process's resident set size sampled every
2 ms during the call, minus its size just before, after handing freed heap pages back to the
OS (``malloc_trim``; CPU tensors do not show in tracemalloc).
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

import torch

from negolens.agents.transcripts import load_transcripts
from negolens.probes.activations import load_model
from negolens.probes.attention import AttentionRecorder
from negolens.zoo import DEFAULT_MODEL

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm", encoding="utf-8") as fh:
        return int(fh.read().split()[1]) * _PAGE


def _trim() -> None:
    """Return freed heap pages to the OS, so the next call's growth shows in the RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def measure(fn, repeats: int = 3) -> tuple[float, float]:
    """(best seconds, peak extra resident GiB) of ``fn()``."""
    fn()
    best, peak = float("inf"), 0
    for _ in range(repeats):
        _trim()
        base, top, stop = _rss(), [0], threading.Event()

        def sample():
            while not stop.is_set():
                top[0] = max(top[0], _rss())
                time.sleep(0.002)

        th = threading.Thread(target=sample)
        th.start()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        stop.set()
        th.join()
        peak = max(peak, top[0] - base)
    return best, peak / 2**30


def bench_recorder(model: str = DEFAULT_MODEL, seed: int = 0, n: int = 4, tokens: int = 384) -> dict:
    """Time and peak memory of the recorder, a plain forward and ``run_with_cache`` on one batch.

    Returns
    -------
    dict
        One benchmark row (seconds, peak GiB, ratios to the plain forward).
    """
    nm = load_model(model)
    rec = AttentionRecorder(nm, seed=seed)
    pool = load_transcripts("craigslist-dev")
    transcripts = [t for t in pool if len(rec.prepare(t, "buyer", max_tokens=tokens)[0].chat) >= 0.85 * tokens][:n]
    batch = nm.batch([rec.prepare(t, "buyer", max_tokens=tokens)[0].chat for t in transcripts])
    nm.bridge  # boot before timing

    @torch.inference_mode()
    def plain():
        nm.bridge(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids, return_type=None)

    @torch.inference_mode()
    def cache_all():
        nm.bridge.run_with_cache(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)

    t_plain, m_plain = measure(plain)
    t_rec, m_rec = measure(lambda: rec.record(transcripts, "buyer", batch_size=n, progress=False, max_tokens=tokens))
    t_cache, m_cache = measure(cache_all, repeats=1)
    return {
        "bench": "recorder", "model": model, "batch": f"{n}x{batch.input_ids.shape[1]}",
        "baseline": "bridge forward without hooks",
        "forward_s": round(t_plain, 3), "recorder_s": round(t_rec, 3), "run_with_cache_s": round(t_cache, 3),
        "forward_peak_gib": round(m_plain, 3), "recorder_peak_gib": round(m_rec, 3), "run_with_cache_peak_gib": round(m_cache, 3),
        "recorder_vs_forward": round(t_rec / t_plain, 3),
        "run_with_cache_vs_forward": round(t_cache / t_plain, 3),
    }
