"""The end-to-end study. Until the full pipeline lands this runs the foundation slice:

fetch the model → load HF + TransformerLens bridge → check bridge logits against HF → let the
model answer a seller as the buyer → tag prices/verbs/roles in the whole chat → record how much
each head attends from the reply position to price tokens → write ``results/<run-id>/``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from negolens.chat import Turn
from negolens.demo import DIALOGUE


def run_study(model: str, out: Path, dtype: str = "float32", seed: int = 0, log=print) -> Path:
    import transformer_lens
    import transformers

    from negolens.hooked import load
    from negolens.tagging import tag_chat
    from negolens.zoo import ZOO

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    nm = load(model, dtype=dtype, fetch=model in ZOO)
    timings["load_s"] = time.perf_counter() - t0
    log(f"loaded {nm!r}")

    t0 = time.perf_counter()
    prompt = nm.render(DIALOGUE, add_generation_prompt=True)
    reply_ids = nm.generate([prompt], max_new_tokens=48, seed=seed)[0]
    reply = nm.decode(reply_ids).strip()
    timings["generate_s"] = time.perf_counter() - t0
    log(f"buyer says: {reply!r}")

    chat = nm.render([*DIALOGUE, Turn("assistant", reply or "(empty)")])
    tags = tag_chat(chat)
    batch = nm.batch([chat])
    t0 = time.perf_counter()
    hf_logits = nm.logits(batch)
    bridge_logits, cache = nm.run_with_cache(batch, names_filter=lambda n: n.endswith("hook_pattern"))
    timings["bridge_forward_s"] = time.perf_counter() - t0
    max_diff = (hf_logits - bridge_logits).abs().max().item()
    log(f"bridge vs HF max |Δlogit| = {max_diff:.2e}")

    decision = prompt.input_ids.__len__() - 1  # last prompt token: where the reply is decided
    price_idx = [i for i in tags.indices("price") if i < decision]
    heads = []
    for layer in range(nm.shape.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, decision, :]  # [head, key]
        to_price = pattern[:, price_idx].sum(-1)
        for head in range(nm.shape.n_heads):
            heads.append({"layer": layer, "head": head, "attn_to_price": round(to_price[head].item(), 4)})
    heads.sort(key=lambda h: -h["attn_to_price"])
    uniform = len(price_idx) / (decision + 1)

    run_dir = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(str(model)).name}-seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "reply": reply,
        "tags": [
            {"kind": s.kind, "text": s.text, "turn": s.turn, "tokens": list(s.tokens), "value": s.value, "lemma": s.lemma}
            for s in tags.spans
        ],
        "bridge_vs_hf_max_abs_logit_diff": max_diff,
        "decision_position": decision,
        "uniform_attention_to_price": uniform,
        "top_heads_to_price": heads[:10],
    }
    (run_dir / "slice.json").write_text(json.dumps(result, indent=2) + "\n")
    manifest = {
        "stage": "foundation-slice",
        "model": str(model),
        "model_path": str(nm.path),
        "dtype": dtype,
        "seed": seed,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "transformer_lens": getattr(transformer_lens, "__version__", "?"),
        },
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"price tokens: {[s.text for s in tags.of('price')]}; verbs: {[s.text for s in tags.of('verb')]}")
    top = ", ".join(f"L{h['layer']}H{h['head']}={h['attn_to_price']:.2f}" for h in heads[:3])
    log(f"top heads by attention to prices from the reply position (uniform = {uniform:.2f}): {top}")
    return run_dir
