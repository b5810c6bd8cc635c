"""Supervised fine-tuning of role specialists: full, LoRA (peft) or QLoRA (bitsandbytes, CUDA).

:func:`run_sft` is the whole job — load the base, build Craigslist examples, train, save — and
:func:`train_sft` the loop on examples you built yourself. Both are configured by
:class:`SFTConfig` and save a checkpoint with a manifest. The loop computes the
vocabulary-sized logits only at target positions (the last hidden state is gathered where
labels are set, then multiplied by the unembedding): most positions are prompt, so this saves
most of the head's cost. The checkpoint loads anywhere a model is asked for: a LoRA adapter
directory (merged on load) or a full HF directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from negolens.config import option, to_dict
from negolens.distributed import active_world, barrier
from negolens.errors import NegolensError
from negolens.paths import data_dir
from negolens.runs import model_fingerprint, model_refs, start_run
from negolens.training.data import (IGNORE, LIMIT_RULES, Example, build_examples, collate, first_examples, mask_digits,
                                    match_limits)
from negolens.training.devices import (autocast, check_device, full_state_dict, load_4bit, model_device, shard_model,
                                       sum_across, sync_gradients, to_device)
from negolens.training.losses import eval_loss, target_loss
from negolens.zoo import DEFAULT_MODEL

__all__ = ["LORA_TARGETS", "ROLES", "SFTConfig", "SFTResult", "run_sft", "train_sft", "target_loss", "eval_loss",
           "autocast", "check_device"]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ROLES = ("buyer", "seller", "generalist")


@dataclass
class SFTConfig:
    """Settings of a supervised fine-tuning run (every field is a ``negolens train sft`` option).

    ``lr=None`` resolves to today's rule: 2e-4 for ``lora``/``qlora``, 3e-5 for ``full``. The
    resolved value is stored, so ``replace(cfg, mode="full")`` keeps the LoRA rate: pass
    ``lr=None`` along to resolve it again.

    Examples
    --------
    >>> SFTConfig().lr, SFTConfig(mode="full").lr
    (0.0002, 3e-05)
    >>> SFTConfig.quick(role="seller").steps
    30
    """

    model: str = option(DEFAULT_MODEL, "base: zoo name or model directory")
    role: str = option("buyer", "buyer | seller | generalist")
    mode: str = option("lora", "full | lora | qlora (CUDA only)")
    steps: int = option(200, "optimizer steps")
    batch_size: int = option(8, "examples (turns of the role) per optimizer step")
    lr: float | None = option(None, "learning rate (default 2e-4 for lora/qlora, 3e-5 for full)")
    max_tokens: int = option(512, "longest example in tokens; longer ones are dropped, never cut")
    train_dialogues: int | None = option(None, "Craigslist test dialogues to train on (default all)")
    eval_examples: int = option(64, "held-out examples from validation_dev (0: no held-out loss)")
    eval_every: int = option(50, "held-out loss every N steps (and at the end)")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha (the adapter is scaled by alpha / r)")
    lora_targets: tuple[str, ...] = option(LORA_TARGETS, "modules that get LoRA adapters")
    dtype: str = option("float32", "float32 | bfloat16 (autocast matmuls; weights and optimizer stay float32)")
    seed: int = option(0, "seed of the batch order and the adapter initialisation")
    fsdp: bool = option(False, "with several processes (accelerate launch / torchrun): shard parameters, gradients "
                        "and optimizer state across them (FSDP2) instead of a full model copy per process — for "
                        "models whose training state does not fit one GPU")
    limits: str = option("cover", "what the humans' private numbers become: target (as the data says: the "
                         "buyer's budget is its target, which half of Craigslist buyers paid beyond) | cover "
                         "(budget raised to what the buyer paid, cost lowered to what the seller took: no turn "
                         "breaks its hard limit) | drop (only dialogues where nobody broke their limit) | hindsight "
                         "(budget = the highest price the buyer named, aim = its first; cost = the lowest the "
                         "seller named, aim = its first: every limit binds) | aim (the target stays the aim and the "
                         "budget target / 0.8, the environment's ratio, or what the buyer paid if more; cost as cover)")
    announce_turns: bool = option(False, "follow every context message with the turns the human dialogue had "
                                  "left after it (in hindsight), as --announce-turns negotiations show the deadline")
    digit_loss: bool = option(True, "train on the digits of the humans' turns; --no-digit-loss: no loss on any target "
                              "token holding a digit (the digits of every price), so the model learns the humans' "
                              "words and moves, and its prices get no direct loss (Craigslist prices are wishes, "
                              "not budgets); the held-out loss, too, then counts only the other tokens")

    def __post_init__(self) -> None:
        if self.mode not in ("full", "lora", "qlora"):
            raise NegolensError(f"mode must be full, lora or qlora, not {self.mode!r}")
        if self.role not in ROLES:
            raise NegolensError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise NegolensError(f"dtype must be float32 or bfloat16, not {self.dtype!r}")
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise NegolensError("steps, batch_size and eval_every must be at least 1")
        if self.mode == "qlora" and not torch.cuda.is_available():
            raise NegolensError(
                "QLoRA needs a CUDA GPU: bitsandbytes' 4-bit layers do not run on the CPU. "
                "Use --mode lora (same adapters, float base) or --mode full on this machine."
            )
        if self.limits not in LIMIT_RULES:
            raise NegolensError(f"limits must be one of {', '.join(LIMIT_RULES)}, not {self.limits!r}")
        if self.lr is None:
            self.lr = 3e-5 if self.mode == "full" else 2e-4

    @classmethod
    def quick(cls, **overrides) -> "SFTConfig":
        """A few-minute preset for tests and demos: fewer steps, dialogues and tokens.

        Parameters
        ----------
        **overrides
            Any field, applied after the preset.

        Returns
        -------
        SFTConfig
        """
        return cls(**{"steps": 30, "train_dialogues": 80, "eval_examples": 24, "max_tokens": 384, **overrides})


@dataclass
class SFTResult:
    """What :func:`run_sft` returns: the checkpoint directory and its manifest.

    ``manifest`` holds ``eval_curve`` (held-out loss by step), ``tokens_per_s``, ``seconds``,
    the example counts and the config; it is also saved as ``negolens_manifest.json``.
    """

    checkpoint: Path
    manifest: dict

    @property
    def eval_curve(self) -> list[dict]:
        """Held-out loss by step: ``[{"step": 0, "eval_loss": ...}, {"step": N, "train_loss": ..., ...}]``."""
        return self.manifest["eval_curve"]


def _prepare(model, cfg: SFTConfig):
    hf = model.hf
    hf.train()
    if cfg.mode == "full":
        return hf
    from peft import LoraConfig, get_peft_model

    if cfg.mode == "qlora":
        hf = load_4bit(model, cfg).train()
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
    return get_peft_model(hf, lora)


MANIFEST = "negolens_manifest.json"
SFT_OUTPUTS = ("adapter_config.json", "adapter_model.safetensors", "README.md", "config.json", "generation_config.json",
               "model.safetensors", "model-*.safetensors", "model.safetensors.index.json", "tokenizer*",
               "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json",
               MANIFEST)  # what a checkpoint folder holds (deleted by overwrite=True, nothing else)


def _identity(cfg: SFTConfig, **extra) -> dict:
    """What makes two SFT runs the same: the config, the base's content (a local folder) and the data."""
    settings = to_dict(cfg)
    if not settings["announce_turns"]:  # added later: recorded only when on, so earlier runs still resume
        del settings["announce_turns"]
    if settings["digit_loss"]:  # likewise, recorded only when off
        del settings["digit_loss"]
    return {**settings, "model_content": model_fingerprint(cfg.model), **extra}


def _targets(model, cfg: SFTConfig, train: list[Example], held: list[Example]):
    """The examples as ``cfg`` trains on them: without the digits' loss when ``digit_loss`` is off."""
    if cfg.digit_loss:
        return train, held
    return mask_digits(model.tokenizer, train), mask_digits(model.tokenizer, held)


def _digest(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.input_ids, e.labels]).encode())
    return h.hexdigest()


def _trained(out: str | Path, resuming: bool) -> dict | None:
    """The manifest of a finished checkpoint in ``out`` that belongs to this run, else ``None``."""
    path = Path(out) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if resuming and path.is_file() else None


def train_sft(model, cfg: SFTConfig, train: list[Example], eval_set: list[Example], out: str | Path,
              progress: bool = True, notes: dict | None = None, overwrite: bool = False) -> Path:
    """Train on examples, with the held-out loss every ``cfg.eval_every`` steps; save to ``out``.

    Parameters
    ----------
    model : NegoModel
        The base; trained in place (``full``) or given adapters in place (``lora``).
    cfg : SFTConfig
        ``mode``, ``steps``, ``batch_size``, ``lr``, LoRA and ``dtype`` settings; ``cfg.model`` is
        the reference saved for the adapter's base, so it must name the model passed in.
    train, eval_set : list of Example
        From :func:`~negolens.training.data.build_examples`; ``eval_set`` may be empty.
    out : str or Path
        The checkpoint directory (created).
    progress : bool
        Show a progress bar.
    notes : dict, optional
        Extra manifest entries (e.g. where the examples came from).
    overwrite : bool
        Replace an earlier run in ``out``. Without it, ``out`` holding a checkpoint of the same
        run (same config, base and examples: ``run.json``) returns at once without training,
        and ``out`` holding another run raises :class:`~negolens.errors.NegolensError`.

    Returns
    -------
    Path
        ``out``, holding the checkpoint, the tokenizer and ``negolens_manifest.json``.

    Examples
    --------
    >>> import negolens, tempfile
    >>> from negolens.testing import tiny_model_dir
    >>> from negolens.agents import example_transcripts
    >>> base = tiny_model_dir(tempfile.mkdtemp())  # its own model: training changes the weights
    >>> model = negolens.load(base)
    >>> examples = build_examples(model, example_transcripts(4), "buyer")
    >>> cfg = SFTConfig(model=str(base), steps=3, batch_size=2, eval_every=3)
    >>> out = train_sft(model, cfg, examples, examples[:2], tempfile.mkdtemp(), progress=False)
    >>> negolens.load(out).name == str(out)
    True
    """
    if not train:
        raise NegolensError("no training examples (all longer than max_tokens?)")
    train, eval_set = _targets(model, cfg, train, eval_set)
    ident = _identity(cfg, train_examples=_digest(train), eval_examples=_digest(eval_set))
    resuming = start_run(out, ident, kind="sft", owns=SFT_OUTPUTS, overwrite=overwrite, models=model_refs(cfg.model))
    if _trained(out, resuming) is not None:
        return Path(out)  # already trained with these settings
    return _fit(model, cfg, train, eval_set, out, progress, notes)


def _fit(model, cfg: SFTConfig, train: list[Example], eval_set: list[Example], out, progress: bool,
         notes: dict | None) -> Path:
    """The training loop of :func:`train_sft` (no output-folder checks)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    hf = _prepare(model, cfg)
    device = model_device(hf)  # batches follow the model (a QLoRA base may sit on another device)
    w = active_world()  # data parallel inside negolens.distributed.sharded(): each process a share of each batch
    fsdp = cfg.fsdp and w.size > 1
    if fsdp:
        shard_model(hf)  # before the optimizer: it must hold the shards
    params = [p for p in hf.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    curve = [{"step": 0, "eval_loss": eval_loss(hf, eval_set, model.pad_id)}] if eval_set else []
    order, seen, t0, tokens = [], 0, time.perf_counter(), 0
    if cfg.batch_size < w.size:
        raise NegolensError(f"batch_size {cfg.batch_size} is smaller than the {w.size} processes: each needs a row")
    for step in tqdm(range(1, cfg.steps + 1), desc="sft", disable=not progress or not w.main):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(train)), len(train))
        batch = [train[order.pop()] for _ in range(cfg.batch_size)]  # the same batch in every process
        ids, labels, mask = to_device(collate(batch[w.rank :: w.size], model.pad_id), device)
        share = (labels[:, 1:] != IGNORE).sum()
        total = sum_across(share, device)  # target tokens of the whole batch
        with autocast(cfg.dtype, device):
            loss = target_loss(hf, ids, labels, mask) * (share / total)  # this share of the batch mean
        opt.zero_grad()
        (loss * w.size if fsdp else loss).backward()  # FSDP averages the shards' gradients: undo the 1/N
        if not fsdp:
            sync_gradients(params)  # sum of the shares: the whole batch's gradient in every process
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        tokens += int(sum_across(mask.sum(), device))
        seen += len(batch)
        if eval_set and (step % cfg.eval_every == 0 or step == cfg.steps):
            curve.append({"step": step, "train_loss": sum_across(loss.detach(), device),
                          "eval_loss": eval_loss(hf, eval_set, model.pad_id)})
    seconds = time.perf_counter() - t0
    state = full_state_dict(hf)  # FSDP: every process sends its shards to the main one
    if not w.main:  # the main process writes the checkpoint
        barrier()
        return Path(out)
    saved = _save(model, hf, cfg, out, curve, state, {"train_examples": len(train), "eval_examples": len(eval_set),
                                            "examples_seen": seen, "tokens_per_s": tokens / seconds, "seconds": seconds,
                                            "processes": w.size, "fsdp": fsdp, **(notes or {})})
    barrier()
    return saved


def _save(model, hf, cfg: SFTConfig, out, curve, state, stats) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf.eval()
    hf.save_pretrained(out, **({"state_dict": state} if state is not None else {}))
    model.tokenizer.save_pretrained(out)
    if cfg.mode != "full":  # the adapter must find its base by a reference negolens can load
        path = out / "adapter_config.json"
        conf = json.loads(path.read_text(encoding="utf-8"))
        conf["base_model_name_or_path"] = cfg.model
        path.write_text(json.dumps(conf, indent=2), encoding="utf-8")
    manifest = {"kind": "sft", "base_model": cfg.model, "config": to_dict(cfg), "eval_curve": curve, **stats}
    (out / "negolens_manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return out


def run_sft(config: SFTConfig, out: str | Path, *, data: str | Path | None = None, model=None,
            log: Callable[[str], None] | None = None, progress: bool = True, overwrite: bool = False,
            device: str = "auto") -> SFTResult:
    """Fine-tune a role specialist on Craigslist Bargains: load, build examples, train, save.

    Training dialogues are Craigslist ``test.jsonl`` (the first ``config.train_dialogues``);
    the held-out loss uses the first ``config.eval_examples`` examples of
    ``validation_dev.jsonl``, a different file, so no dialogue is in both.

    Parameters
    ----------
    config : SFTConfig
        What to train (see :meth:`SFTConfig.quick` for a few-minute run).
    out : str or Path
        The checkpoint directory (created).
    data : str or Path, optional
        The data directory holding ``craigslist_bargains/`` (default:
        :func:`negolens.paths.data_dir`).
    model : NegoModel, optional
        ``config.model`` already loaded (float32). It is trained in place, or given adapters in
        place, so do not reuse it as the untuned base afterwards.
    log : callable, optional
        Receives one-line progress messages (example counts, each held-out loss, the checkpoint).
    device : str
        Where ``config.model`` is loaded and trained when ``model`` is not given: ``"auto"``
        (CUDA when available), ``"cpu"``, ``"cuda:1"`` … (see :func:`negolens.load`). ``qlora``
        puts its 4-bit base on this CUDA device.
    progress : bool
        Show a progress bar.
    overwrite : bool
        Replace an earlier run in ``out``. Without it, a finished checkpoint of the same run
        (``run.json``: same config and base) is returned without loading or training
        (``log`` gets ``already trained: …``), and ``out`` holding another run — or being a
        file — raises :class:`~negolens.errors.NegolensError` before any work.

    Returns
    -------
    SFTResult
        ``checkpoint`` (loads with :func:`negolens.load` like any zoo model) and ``manifest``.

    Examples
    --------
    >>> from negolens.training import SFTConfig, run_sft
    >>> result = run_sft(SFTConfig.quick(role="buyer"), "results/sft-buyer")  # doctest: +SKIP
    >>> result.eval_curve[-1]["eval_loss"] < result.eval_curve[0]["eval_loss"]  # doctest: +SKIP
    True
    """
    from negolens.agents.transcripts import load_transcripts

    say = log or (lambda _msg: None)
    resuming = start_run(out, _identity(config), kind="sft", owns=SFT_OUTPUTS, overwrite=overwrite,
                         models=model_refs(config.model), data=data_dir(data))
    done = _trained(out, resuming)
    if done is not None:
        say(f"already trained: {out} holds this run's checkpoint (same settings); --overwrite retrains")
        return SFTResult(Path(out), done)
    if model is None:
        from negolens.hooked import load

        model = load(config.model, device=device)
    dialogues = match_limits(load_transcripts("craigslist-test", None, data), config.limits)
    train = build_examples(model, dialogues[: config.train_dialogues], config.role, config.max_tokens,
                           config.announce_turns)
    held = first_examples(model, match_limits(load_transcripts("craigslist-dev", None, data), config.limits)
                          if config.eval_examples else [], config.role, config.max_tokens, config.eval_examples,
                          config.announce_turns)
    train, held = _targets(model, config, train, held)
    say(f"{len(train)} training examples, {len(held)} held-out examples ({config.role}, {config.mode})")
    notes = {"data": f"craigslist_bargains/test.jsonl (train), validation_dev.jsonl (eval); limits: {config.limits}"
                     + ("" if config.digit_loss else "; no loss on digits")}
    if not train:
        raise NegolensError("no training examples (all longer than max_tokens?)")
    path = _fit(model, config, train, held, out, progress, notes)
    manifest = json.loads((path / "negolens_manifest.json").read_text(encoding="utf-8"))
    for point in manifest["eval_curve"]:
        say(f"step {point['step']:>4}: held-out loss {point['eval_loss']:.3f}")
    say(f"{manifest['tokens_per_s']:.0f} tokens/s; checkpoint: {path}")
    return SFTResult(path, manifest)
