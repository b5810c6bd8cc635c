"""The one-command study: every stage of negolens on real models, into ``results/<run-id>/``.

Stages, in order (each writes its own folder and a ``.done.json`` marker; rerunning the same
command skips finished stages, and the negotiation runner inside a stage resumes per dialogue):

1. ``sft-buyer``, ``sft-seller`` — role specialists (LoRA, bf16 autocast) on Craigslist;
2. ``negotiate`` — untuned vs fine-tuned vs rule agents (buyer × seller matrix), personality
   pairings, CoT vs no CoT, on held-out Craigslist scenarios;
3. ``attention`` — per-head attention on verbs and prices vs controls (fine-tuned buyer);
4. ``probes`` — linear probes by layer with baselines and control tasks;
5. ``ablation`` — every head ablated at decision points; top heads linked to attention;
   negotiations re-run with the top heads vs random heads ablated; steering along a probe;
6. ``grpo`` — the RLVR buyer from the SFT buyer; untuned / SFT / GRPO compared on held-out
   AmazonHistoryPrice products;
7. ``figures`` and ``report.html`` — regenerated from the saved results alone.

Each stage calls the same function as its CLI verb, so a study is the CLI run in sequence.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STAGES = ("sft-buyer", "sft-seller", "negotiate", "attention", "probes", "ablation", "grpo", "figures", "report")


@dataclass
class StudyConfig:
    model: str = "smollm2-135m-instruct"
    quick: bool = False
    seed: int = 0
    data: str | None = None
    sft_steps: int = 30
    sft_eval_examples: int = 32
    scenarios: int = 12  # held-out Craigslist scenarios per negotiation condition
    max_turns: int = 8
    attention_dialogues: int = 96
    probe_dialogues: int = 160
    decision_points: int = 8
    ablation_tokens: int = 384
    offer_heads: str = "top"  # "all": the full offer sweep (270 more greedy decodes on SmolLM2)
    rerun_scenarios: int = 12
    grpo_steps: int = 8
    grpo_products: int = 2
    grpo_group: int = 4
    eval_products: int = 16
    personalities: tuple[str, ...] = ("aggressive", "fair", "passive")
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick_preset(cls, **kw) -> "StudyConfig":
        return cls(quick=True, sft_steps=4, scenarios=2, max_turns=4, attention_dialogues=12, probe_dialogues=24,
                   decision_points=2, ablation_tokens=256, offer_heads="top", rerun_scenarios=3, grpo_steps=2,
                   grpo_products=1, grpo_group=2, eval_products=3, **kw)


def _call(fn, **kwargs):
    """Call a typer command function with its declared defaults filled in."""
    import inspect

    params = inspect.signature(fn).parameters
    full = {k: getattr(p.default, "default", p.default) for k, p in params.items()}
    full.update(kwargs)
    return fn(**full)


class Study:
    def __init__(self, cfg: StudyConfig, run_dir: Path, log=print):
        self.cfg, self.dir, self.log = cfg, Path(run_dir), log
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = Path(cfg.data) if cfg.data else None

    # -- bookkeeping --------------------------------------------------------------------
    def done(self, stage: str) -> bool:
        return (self.dir / stage / ".done.json").is_file()

    def run(self, stages=STAGES) -> Path:
        from tqdm.auto import tqdm

        timings = self._manifest().get("timings_s", {})
        for stage in tqdm(stages, desc="study"):
            if self.done(stage):
                self.log(f"[{stage}] done already — skipped")
                continue
            self.log(f"[{stage}] running")
            t0 = time.perf_counter()
            getattr(self, "stage_" + stage.replace("-", "_"))(self.dir / stage)
            seconds = round(time.perf_counter() - t0, 1)
            timings[stage] = seconds
            (self.dir / stage / ".done.json").write_text(json.dumps({"seconds": seconds}))
            self._write_manifest(timings)
            self.log(f"[{stage}] {seconds:.0f} s")
        self._write_manifest(timings)
        return self.dir

    def _manifest(self) -> dict:
        path = self.dir / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_manifest(self, timings: dict) -> None:
        import torch
        import transformer_lens
        import transformers
        import trl

        manifest = {
            "study": "negolens", "config": asdict(self.cfg), "seed": self.cfg.seed,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__, "trl": trl.__version__,
                         "transformer_lens": getattr(transformer_lens, "__version__", "?")},
            "timings_s": timings, "total_s": round(sum(timings.values()), 1),
        }
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # -- models --------------------------------------------------------------------------
    @property
    def sft_buyer(self) -> str:
        return str(self.dir / "sft-buyer" / "checkpoint")

    @property
    def sft_seller(self) -> str:
        return str(self.dir / "sft-seller" / "checkpoint")

    # -- stages --------------------------------------------------------------------------
    def _sft(self, out: Path, role: str) -> None:
        from negolens.cli_training import sft

        c = self.cfg
        _call(sft, model=c.model, role=role, mode="lora", steps=c.sft_steps, quick=c.quick, dtype="bfloat16",
              out=out / "checkpoint", data=self.data, seed=c.seed, eval_every=max(c.sft_steps // 2, 1),
              eval_examples=c.sft_eval_examples)

    def stage_sft_buyer(self, out: Path) -> None:
        self._sft(out, "buyer")

    def stage_sft_seller(self, out: Path) -> None:
        self._sft(out, "seller")

    def conditions(self) -> list[dict]:
        """Negotiation conditions: (name, group, buyer spec, seller spec)."""
        c = self.cfg
        agents = {"untuned": c.model, "SFT": None, "rule": "rule"}
        specs = {"buyer": {**agents, "SFT": self.sft_buyer}, "seller": {**agents, "SFT": self.sft_seller}}
        out = [{"name": f"matrix:{b}-vs-{s}", "group": "matrix", "buyer_label": b, "seller_label": s,
                "buyer": specs["buyer"][b], "seller": specs["seller"][s]} for b in agents for s in agents]
        pairs = [(p, p) for p in c.personalities] if c.quick else [(b, s) for b in c.personalities for s in c.personalities]
        out += [{"name": f"personality:{b}-vs-{s}", "group": "personality", "buyer_label": b, "seller_label": s,
                 "buyer": f"{self.sft_buyer}:{b}", "seller": f"{self.sft_seller}:{s}"} for b, s in pairs]
        out += [{"name": f"cot:{m}{'+cot' if cot else ''}", "group": "cot", "buyer_label": m, "seller_label": "rule",
                 "cot": cot, "buyer": specs["buyer"][m] + ("+cot" if cot else ""), "seller": "rule"}
                for m in ("untuned", "SFT") for cot in (False, True)]
        return out

    def stage_negotiate(self, out: Path) -> None:
        import pandas as pd

        from negolens.agents.factory import make_agent
        from negolens.agents.metrics import summarize
        from negolens.agents.runner import RunConfig, read_records, run_negotiations

        from negolens.agents.scenarios import load_scenarios

        c = self.cfg
        items = load_scenarios("craigslist", c.scenarios, data=self.data, split="test", seed=c.seed)
        models: dict = {}
        rows = []
        for cond in self.conditions():
            folder = out / cond["name"].replace(":", "_")
            buyer = make_agent(cond["buyer"], "buyer", models=models)
            seller = make_agent(cond["seller"], "seller", models=models)
            run_negotiations(items, buyer, seller, RunConfig(max_turns=c.max_turns, seed=c.seed), out=folder,
                             progress=False)
            recs = read_records(folder / "dialogues.jsonl")
            table = summarize(recs, seed=c.seed)
            for key in ("name", "group", "buyer_label", "seller_label"):
                table.insert(0, key, cond[key])
            rows.append(table)
            deal = table.loc[table.metric == "deal", "mean"].item()
            self.log(f"  {cond['name']}: agreement {deal:.2f} (n={len(recs)})")
        pd.concat(rows).to_csv(out / "conditions.csv", index=False)

    def stage_attention(self, out: Path) -> None:
        from negolens.cli_probes import attention

        c = self.cfg
        _call(attention, model=self.sft_buyer, transcripts="craigslist-dev", n=c.attention_dialogues, out=out,
              data=self.data, seed=c.seed, show="0:23.0" if not c.quick else "0:1.0")

    def stage_probes(self, out: Path) -> None:
        from negolens.cli_probes import probe

        c = self.cfg
        _call(probe, model=self.sft_buyer, transcripts="craigslist-dev", n=c.probe_dialogues, out=out,
              data=self.data, seed=c.seed)

    def stage_ablation(self, out: Path) -> None:
        from negolens.cli_analysis import ablate

        c = self.cfg
        steer, label = self.dir / "probes" / "probes" / "act", None
        if steer.is_dir():  # steer along the act probe's "agree" class where the probe has one
            from negolens.probes.linear import LinearProbe

            classes = [str(k) for k in getattr(LinearProbe.load(steer)[0], "classes_", [])]
            label = "agree" if "agree" in classes else None
        _call(ablate, model=self.sft_buyer, transcripts="craigslist-dev", metric="offer", kind="zero",
              n=c.decision_points, max_tokens=c.ablation_tokens, offer_heads=c.offer_heads, top=5,
              attention=self.dir / "attention" / "attention_heads.csv",
              rerun_n=c.rerun_scenarios, steer=steer if label else None, steer_label=label,
              out=out, data=self.data, seed=c.seed)

    def stage_grpo(self, out: Path) -> None:
        import pandas as pd

        from negolens.agents.metrics import summarize
        from negolens.cli_training import _split, grpo
        from negolens.training.evaluate import play

        c = self.cfg
        _call(grpo, model=self.sft_buyer, steps=c.grpo_steps, products_per_step=c.grpo_products,
              group_size=c.grpo_group, eval_products=c.eval_products, max_turns=c.max_turns,
              save_every=max(c.grpo_steps // 2, 1), out=out, data=self.data, seed=c.seed)
        held = _split("amazon", c.eval_products, self.data, "test", c.seed)  # the products `train grpo` evaluated
        rows = []
        for label, folder in (("untuned", "eval-untuned"), ("SFT", "eval-start"), ("GRPO", "eval-final")):
            ref = {"untuned": c.model, "SFT": self.sft_buyer, "GRPO": out / "final"}[label]
            recs = play(ref, held, "rule", out / folder, max_turns=c.max_turns, seed=c.seed, progress=False)
            t = summarize(recs, ["reward", "deal", "overshoot", "bargained_ratio", "protocol_failure"], seed=c.seed)
            t.insert(0, "model", label)
            rows.append(t)
        pd.concat(rows).to_csv(out / "model_comparison.csv", index=False)

    def stage_figures(self, out: Path) -> None:
        from negolens.figures.regenerate import regenerate

        regenerate(self.dir, out)

    def stage_report(self, out: Path) -> None:
        from negolens.figures.report import write_report

        write_report(self.dir, self.dir / "report.html")
        out.mkdir(parents=True, exist_ok=True)


def run_study(cfg: StudyConfig, out: Path, run_id: str | None = None, log=print) -> Path:
    """Run (or resume) a study; ``run_id`` names ``out/<run_id>`` (default: config + date)."""
    tag = "quick" if cfg.quick else "full"
    run_id = run_id or f"{time.strftime('%Y%m%d')}-{Path(str(cfg.model)).name}-{tag}-seed{cfg.seed}"
    return Study(cfg, Path(out) / run_id, log=log).run()
