"""``negolens bench runner``: batched runner vs one-at-a-time plain HF ``generate``.

Both sides play the same 16 built-in scenarios (LLM buyer, greedy, vs the rule seller) with the
same model and seed. The baseline runs the dialogues one after another; each LLM turn is one
``model.generate`` for the utterance (stopping at a newline or end of turn) and a second one
for the ``\\nACTION:`` trailer, parsed from free text. The negolens side runs all 16 at once
through :class:`~negolens.agents.decoding.TurnDecoder` (one KV-cached step for every row,
prompt logits at the last position only). Reported: dialogues per minute of each, the ratio,
the share of baseline turns whose free-text action could not be parsed, and the same
negolens run in bfloat16 (speed, and how many transcripts stay identical to fp32).
"""

from __future__ import annotations

import re
import time

import torch

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.protocol import Act, Move
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.zoo import DEFAULT_MODEL

ACTION_RE = re.compile(r"^\s*(offer|counter|accept|reject|quit|greet|inquire|inform)\b\s*\$?\s*([\d,]*\.?\d+)?", re.I)


class PlainGenerateBuyer(LLMAgent):
    """The baseline: the same prompts, decoded with two plain ``generate`` calls per turn."""

    unparsed = 0

    def act_batch(self, negs, seeds):
        """Decode each dialogue's move one at a time with two ``generate`` calls (the baseline)."""
        moves = []
        tok, hf = self.model.tokenizer, self.model.hf
        stops = self.model.stop_ids() + [tok.encode("\n", add_special_tokens=False)[-1]]
        for neg in negs:
            ids = torch.tensor([self.model.render(self.messages(neg), add_generation_prompt=True).input_ids],
                               device=self.model.device)
            with torch.inference_mode():
                out = hf.generate(ids, max_new_tokens=self.max_utterance_tokens, do_sample=False,
                                  eos_token_id=stops, pad_token_id=self.model.pad_id)
                utter = out[0, ids.shape[1]:].tolist()
                utter = [t for t in utter if t not in stops]
                trailer = torch.tensor([ids[0].tolist() + utter + tok.encode("\nACTION:", add_special_tokens=False)],
                                       device=self.model.device)
                act_out = hf.generate(trailer, max_new_tokens=8, do_sample=False, eos_token_id=stops,
                                      pad_token_id=self.model.pad_id)
            text = tok.decode(act_out[0, trailer.shape[1]:], skip_special_tokens=True)
            m = ACTION_RE.match(text)
            act = Act(m.group(1).lower()) if m else None
            price = float(m.group(2).replace(",", "")) if m and m.group(2) else None
            if act is None:
                PlainGenerateBuyer.unparsed += 1
            if act not in neg.legal_acts(self.role):
                act = None
            moves.append(Move(tok.decode(utter, skip_special_tokens=True), act, price,
                              failure=None if act else "no_action"))
        return moves


def bench_runner(model: str = DEFAULT_MODEL, seed: int = 0, n: int = 16, max_turns: int = 6) -> dict:
    """Time the batched runner against the plain-``generate`` baseline (see the module docstring).

    Returns a JSON-ready dict: dialogues and turns per minute of each side, speed-up ratios,
    the baseline's unparsed-action share, and the bfloat16 run's speed and agreement with fp32.
    """
    from negolens.hooked import load

    nm = load(model, attn_implementation="sdpa")
    scenarios = builtin_scenarios()[:n]
    seller = RuleAgent("seller")

    def timed(agent, batch_size):
        t0 = time.perf_counter()
        recs = run_negotiations(scenarios, agent, seller, RunConfig(max_turns=max_turns, seed=seed, batch_size=batch_size),
                                progress=False)
        return time.perf_counter() - t0, recs

    t_fast, fast = timed(LLMAgent(nm, "buyer"), n)
    PlainGenerateBuyer.unparsed = 0
    t_base, base = timed(PlainGenerateBuyer(nm, "buyer"), 1)
    base_turns = sum(len([t for t in r["turns"] if t["role"] == "buyer"]) for r in base)
    nm.to("bfloat16")
    t_bf16, bf16 = timed(LLMAgent(nm, "buyer"), n)
    same = sum(a["turns"] == b["turns"] for a, b in zip(fast, bf16))
    turns = lambda recs: sum(len(r["turns"]) for r in recs)  # noqa: E731
    return {
        "bench": "runner",
        "model": model,
        "dialogues": n,
        "max_turns": max_turns,
        "baseline": "sequential plain HF generate",
        "baseline_dialogues_per_min": round(60 * n / t_base, 2),
        "negolens_dialogues_per_min": round(60 * n / t_fast, 2),
        "baseline_turns_per_min": round(60 * turns(base) / t_base, 1),
        "negolens_turns_per_min": round(60 * turns(fast) / t_fast, 1),
        "baseline_unparsed_action_share": round(PlainGenerateBuyer.unparsed / max(1, base_turns), 3),
        "negolens_protocol_failures": sum(r["outcome"] == "protocol_failure" for r in fast),
        "negolens_bf16_dialogues_per_min": round(60 * n / t_bf16, 2),
        "bf16_transcripts_identical_to_fp32": f"{same}/{n}",
        "bf16_deal_rate": round(sum(r["outcome"] == "deal" for r in bf16) / n, 3),
        "fp32_deal_rate": round(sum(r["outcome"] == "deal" for r in fast) / n, 3),
        "speedup_bf16": round(t_base / t_bf16, 2),
        "speedup_turns": round((turns(fast) / t_fast) / (turns(base) / t_base), 2),
        "speedup": round(t_base / t_fast, 2),
    }
