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
6. ``bc-buyer`` — the warm start: the studied model cloned from a scripted buyer that reads
   the seller's concessions, on training products (``negolens train filtered --teacher
   extrapolate``; :data:`~negolens.training.WARM_START`; cloned from the studied model, not
   the SFT buyer, whose habit of naming the list price a clone keeps);
7. ``grpo`` — the RLVR buyer, GRPO from the warm start (:data:`~negolens.training.RECIPE`),
   then ``narrow_steps`` on the narrowest zones of agreement and the buyer chosen among the
   checkpoints on validation products (``grpo/selection``; the README's run 23, shorter);
   untuned / SFT / BC / GRPO (the chosen buyer, named in ``grpo/buyer.txt``) compared on
   held-out AmazonHistoryPrice products;
8. ``figures`` and ``report.html`` — regenerated from the saved results alone.

Each stage calls the same public library function as its CLI verb and saves with the verb's
own writer, so a study is the CLI run in sequence. :class:`StudyConfig` is composed of the
components' configs; its ``quick`` preset composes their ``quick`` presets.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Optional

import typer

from negolens.cli import app
from negolens.cli.options import Extra, verb
from negolens.cli.study_config import PRESETS, StudyConfig, apply_preset  # noqa: F401  (public here too)
from negolens.config import to_dict

STAGES = ("sft-buyer", "sft-seller", "negotiate", "attention", "probes", "ablation", "bc-buyer", "grpo", "figures",
          "report")
STEER_ACTS = ("agree", "disagree", "counter-price")  # the acts a steering direction is taken from, in order
# settings added after runs were recorded, at the value that reproduces those runs (no narrow segment;
# the choice's settings do nothing without it): such a run resumes with --narrow-steps 0
LATER_SETTINGS = {"narrow_steps": 0, "select_products": 32, "select_conflicting": True}


class Study:
    """A study run folder: stages, markers, manifest."""

    def __init__(self, cfg: StudyConfig, run_dir: Path, log=print):
        self.cfg, self.dir, self.log = cfg, Path(run_dir), log
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = Path(cfg.data) if cfg.data else None

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished in an earlier run."""
        return (self.dir / stage / ".done.json").is_file()

    def check(self, overwrite: bool = False) -> None:
        """Refuse to resume a run folder whose manifest records another config (``overwrite``: clear it).

        The folder's ``manifest.json`` is written before the first stage and records the
        config that produced its stages; a different config raises
        :class:`~negolens.errors.NegolensError` naming the differing fields. With ``overwrite``,
        the stages, the manifest and the report are deleted (nothing else in the folder).
        """
        from negolens.errors import NegolensError
        from negolens.runs import clear_run, describe, differences

        manifest = self._manifest()
        owned = [*STAGES, "manifest.json", "report.html"]
        if overwrite:
            clear_run(self.dir, owned)
            return
        if not manifest and not any(self.done(s) for s in STAGES):
            return
        recorded = {**LATER_SETTINGS, **manifest.get("config", {})}  # a run made before a setting existed
        diffs = differences(recorded, to_dict(self.cfg))
        if diffs:  # every differing top-level setting (the command-line options) is named, up to 12
            was, now = describe(diffs, limit=min(max(6, sum("." not in k for k, _, _ in diffs)), 12))
            raise NegolensError(f"study run {self.dir} was made with {was}; this run has {now}: pass another --run-id "
                                "for a new run, or --overwrite to delete this one and start again")

    def run(self, stages=STAGES, overwrite: bool = False) -> Path:
        """Run every stage not done yet; returns the run folder.

        A folder holding a run with another config is refused (see :meth:`check`); its
        manifest is never rewritten with a config that did not produce its stages.
        """
        from tqdm.auto import tqdm

        self.check(overwrite)
        timings = self._manifest().get("timings_s", {})
        self._write_manifest(timings)  # before any stage: the folder says which config it holds
        for stage in tqdm(stages, desc="study"):
            if self.done(stage):
                self.log(f"[{stage}] done already — skipped")
                continue
            self.log(f"[{stage}] running")
            t0 = time.perf_counter()
            getattr(self, "stage_" + stage.replace("-", "_"))(self.dir / stage)
            seconds = round(time.perf_counter() - t0, 1)
            timings[stage] = seconds
            (self.dir / stage / ".done.json").write_text(json.dumps({"seconds": seconds}), encoding="utf-8")
            self._write_manifest(timings)
            self.log(f"[{stage}] {seconds:.0f} s")
        self._write_manifest(timings)
        return self.dir

    def _manifest(self) -> dict:
        path = self.dir / "manifest.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _write_manifest(self, timings: dict) -> None:
        from importlib.metadata import PackageNotFoundError, version

        def installed(name: str) -> str:  # the distribution's version (TransformerLens has no __version__)
            try:
                return version(name)
            except PackageNotFoundError:
                return "?"

        manifest = {
            "study": "negolens", "config": to_dict(self.cfg), "seed": self.cfg.seed,
            "versions": {"python": platform.python_version(),
                         **{name.replace("-", "_"): installed(name) for name in (
                             "negolens", "torch", "transformers", "trl", "transformer-lens", "peft")}},
            "timings_s": timings, "total_s": round(sum(timings.values()), 1),
        }
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    # -- models --------------------------------------------------------------------------
    @property
    def sft_buyer(self) -> str:
        """The SFT buyer's checkpoint folder."""
        return str(self.dir / "sft-buyer" / "checkpoint")

    @property
    def sft_seller(self) -> str:
        """The SFT seller's checkpoint folder."""
        return str(self.dir / "sft-seller" / "checkpoint")

    @property
    def bc_buyer(self) -> str:
        """The warm-started (behaviour-cloned) buyer's checkpoint folder."""
        return str(self.dir / "bc-buyer" / "checkpoint")

    # -- stages --------------------------------------------------------------------------
    def _sft(self, out: Path, role: str) -> None:
        from dataclasses import replace

        from negolens.training import run_sft

        sft = replace(self.cfg.sft, model=self.cfg.model, role=role, eval_every=max(self.cfg.sft.steps // 2, 1))
        run_sft(sft, out / "checkpoint", data=self.data, log=self.log, device=self.cfg.device)

    def stage_sft_buyer(self, out: Path) -> None:
        """LoRA buyer specialist."""
        self._sft(out, "buyer")

    def stage_sft_seller(self, out: Path) -> None:
        """LoRA seller specialist."""
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
        """Every condition on the same held-out Craigslist scenarios; one table."""
        import pandas as pd

        from negolens.agents import load_scenarios, negotiate, summarize

        c = self.cfg
        items = load_scenarios("craigslist", c.scenarios, data=self.data, split="test", seed=c.seed)
        models: dict = {}
        rows = []
        for cond in self.conditions():
            folder = out / cond["name"].replace(":", "_")
            recs = negotiate(cond["buyer"], cond["seller"], items, c.negotiation, out=folder, models=models,
                             progress=False, device=c.device, max_utterance_tokens=c.utterance_tokens)
            table = summarize(recs, seed=c.seed)
            for key in ("name", "group", "buyer_label", "seller_label"):
                table.insert(0, key, cond[key])
            rows.append(table)
            deal = table.loc[table.metric == "deal", "mean"].item()
            self.log(f"  {cond['name']}: agreement {deal:.2f} (n={len(recs)})")
        pd.concat(rows).to_csv(out / "conditions.csv", index=False)

    def stage_attention(self, out: Path) -> None:
        """Attention of the SFT buyer on Craigslist dev dialogues."""
        import negolens
        from negolens.agents import load_transcripts
        from negolens.cli.reading import save_attention
        from negolens.probes import record_attention

        c = self.cfg
        model = negolens.load(self.sft_buyer, device=c.device)
        items = load_transcripts("craigslist-dev", c.attention_dialogues, self.data)
        table = record_attention(model, items, view="buyer", config=c.attention)
        save_attention(model, items, table, c.attention, "buyer", out, (0, 1, 0) if c.quick else (0, 23, 0))

    def stage_probes(self, out: Path) -> None:
        """Probes on the SFT buyer's residual stream."""
        import negolens
        from negolens.agents import load_transcripts
        from negolens.cli.reading import save_probes
        from negolens.probes import fit_probes

        c = self.cfg
        items = load_transcripts("craigslist-dev", c.probe_dialogues, self.data)
        result = fit_probes(negolens.load(self.sft_buyer, device=c.device), items, view="buyer", config=c.probes,
                            cache=out / "activations", model_name=self.sft_buyer, log=self.log)
        save_probes(result, out)

    def stage_ablation(self, out: Path) -> None:
        """Head sweeps, re-runs and steering on the SFT buyer."""
        from dataclasses import replace

        import pandas as pd

        import negolens
        from negolens.agents import load_transcripts
        from negolens.analysis import run_ablation
        from negolens.cli.ablate import save_ablation

        c = self.cfg
        steer, label = self.dir / "probes" / "probes" / "act", None
        if steer.is_dir():  # steer along the act probe's "agree" class (else the closest act it has)
            from negolens.probes import LinearProbe

            classes = [str(k) for k in getattr(LinearProbe.load(steer)[0], "classes_", [])]
            label = next((k for k in STEER_ACTS if k in classes), classes[0] if classes else None)
            if label != "agree":
                self.log(f"the act probe has no 'agree' class (its views end before the agreements: "
                         f"--max-tokens); steering along {label!r}")
        cfg = replace(c.ablation, steer_label=label)
        attention = self.dir / "attention" / "attention_heads.csv"
        result = run_ablation(negolens.load(self.sft_buyer, device=c.device), load_transcripts("craigslist-dev", None, self.data), cfg,
                              attention=pd.read_csv(attention) if attention.is_file() else None,
                              steer_probe=steer if label else None)
        save_ablation(result, cfg, out)

    def stage_bc_buyer(self, out: Path) -> None:
        """The studied model cloned from the scripted teacher, in the dialogues the GRPO stage plays."""
        from dataclasses import replace

        from negolens.training import run_filtered

        c = self.cfg
        bc = replace(c.bc, model=c.model, teacher_scenarios=c.grpo.source, teacher_turns=c.grpo.max_turns,
                     announce_turns=c.grpo.announce_turns, max_utterance_tokens=c.grpo.max_utterance_tokens)
        run_filtered(bc, out / "checkpoint", log=self.log, progress=False, device=c.device, data=self.data)

    def stage_grpo(self, out: Path) -> None:
        """RLVR buyer from the warm start: the recipe's segment, a narrow segment, the buyer chosen on
        validation products; untuned vs SFT vs BC vs GRPO on held-out products."""
        from dataclasses import replace

        import pandas as pd

        from negolens.agents import split_scenarios, summarize
        from negolens.training import paired_comparison, play, run_grpo

        c = self.cfg
        grpo = replace(c.grpo, model=self.bc_buyer, eval_products=0)  # the stage evaluates the buyer it hands on
        buyer = str(run_grpo(grpo, out, data=self.data, log=self.log, device=c.device).final)
        if c.narrow_steps:
            buyer = self._narrow_and_choose(grpo, buyer, out)
        (out / "buyer.txt").write_text(str(Path(buyer).relative_to(self.dir)) + "\n", encoding="utf-8")
        held = split_scenarios(grpo.source, "test", c.grpo.eval_products, data=self.data, seed=c.seed)
        rows, recs = [], {}
        for label, folder in (("untuned", "eval-untuned"), ("SFT", "eval-sft"), ("BC", "eval-start"),
                              ("GRPO", "eval-final")):
            ref = {"untuned": c.model, "SFT": self.sft_buyer, "BC": self.bc_buyer, "GRPO": buyer}[label]
            recs[label] = play(ref, held, "rule", out / folder, max_turns=grpo.max_turns, seed=c.seed, progress=False,
                               device=c.device, announce_turns=grpo.announce_turns,
                               max_utterance_tokens=grpo.max_utterance_tokens)
            t = summarize(recs[label], ["reward", "deal", "overshoot", "bargained_ratio", "protocol_failure"],
                          seed=c.seed)
            t.insert(0, "model", label)
            rows.append(t)
        pd.concat(rows).to_csv(out / "model_comparison.csv", index=False)
        paired_comparison(recs["BC"], recs["GRPO"], seed=c.seed).to_json(out / "eval.json", orient="records", indent=2)

    def _narrow_and_choose(self, grpo, first: str, out: Path) -> str:
        """Run 23's last two parts: ``narrow_steps`` GRPO steps on the narrowest zones of agreement from
        ``first`` (into ``out/narrow``), then the buyer chosen among ``first`` and that segment's
        checkpoints on validation products (``out/selection``); the segment's final buyer when
        ``select_products`` is 0."""
        from dataclasses import replace

        from negolens.training import SelectConfig, choose_checkpoint, run_grpo

        c = self.cfg
        narrow = replace(grpo, model=first, curriculum="narrow", steps=c.narrow_steps,
                         save_every=max(1, c.narrow_steps // 2), seed=c.seed + 1)
        last = str(run_grpo(narrow, out / "narrow", data=self.data, log=self.log, device=c.device).final)
        if not c.select_products:
            return last
        select = SelectConfig(candidates=(first, str(out / "narrow")), played=(str(out),),
                              teacher_products=c.bc.teacher_products, teacher_seed=c.bc.seed,
                              products=c.select_products, all_conflicting=c.select_conflicting, source=grpo.source,
                              seller=grpo.seller.split(",")[0], max_turns=grpo.max_turns, announce_turns=grpo.announce_turns,
                              max_utterance_tokens=grpo.max_utterance_tokens, seed=c.seed)
        choice = choose_checkpoint(select, out / "selection", data=self.data, device=c.device, progress=False,
                                   log=self.log)
        self.log(choice.summary())
        return choice.chosen

    def stage_figures(self, out: Path) -> None:
        """Every figure from the saved tables."""
        from negolens.figures.redraw import regenerate

        regenerate(self.dir, out)

    def stage_report(self, out: Path) -> None:
        """The offline HTML report."""
        from negolens.figures.report import write_report

        write_report(self.dir, self.dir / "report.html")
        out.mkdir(parents=True, exist_ok=True)


def run_study(cfg: StudyConfig, out: Path, run_id: str | None = None, log=print, overwrite: bool = False) -> Path:
    """Run (or resume) a study; ``run_id`` names ``out/<run_id>`` (default: config + date).

    Resuming needs the same config as the run folder's manifest; otherwise a
    :class:`~negolens.errors.NegolensError` names the differing fields (``overwrite`` deletes the
    old run's stages and starts again)."""
    from negolens.runs import refuse_file

    tag = "quick" if cfg.quick else ("gpu" if cfg.preset == "gpu" else "full")
    run_id = run_id or f"{time.strftime('%Y%m%d')}-{Path(str(cfg.model)).name}-{tag}-seed{cfg.seed}"
    refuse_file(Path(out) / run_id)
    return Study(cfg, Path(out) / run_id, log=log).run(overwrite=overwrite)


@verb(app, StudyConfig, name="study",
      out=Extra(Path, Path("results"), "parent of the run directory"),
      run_id=Extra(Optional[str], None, "run directory name (default: date-model-mode-seed); reuse it to resume"),
      quick=Extra(bool, False, "every stage at tiny scale, with real models"),
      preset=Extra(str, "default", "default | quick (as --quick) | gpu (the scale one CUDA GPU affords; "
                                   "its time is an estimate, not measured)"),
      full_offer_sweep=Extra(bool, False, "ablate every head for the offer metric too (not just the top)"),
      overwrite=Extra(bool, False, "delete the run directory's stages, manifest and report and start again "
                                   "(without it, a run directory made with another config is refused)"))
def study(cfg: StudyConfig, out: Path, run_id: str | None, quick: bool, preset: str, full_offer_sweep: bool,
          overwrite: bool) -> None:
    """The whole pipeline into results/<run-id>/: SFT buyer and seller, negotiations, attention,
    probes, ablations, a warm-started buyer and GRPO from it, figures and an offline HTML report.
    Finished stages are skipped when the run directory was made with the same config (otherwise:
    another --run-id, or --overwrite)."""
    from dataclasses import replace

    cfg = apply_preset(cfg, "quick" if quick and preset == "default" else preset, quick)
    if full_offer_sweep:
        cfg = replace(cfg, ablation=replace(cfg.ablation, offer_heads="all"))
    run_dir = run_study(cfg, out, run_id, log=lambda m: typer.echo(m, err=True), overwrite=overwrite)
    typer.echo(str(run_dir / "report.html"))
