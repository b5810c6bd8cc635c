"""The study's settings: one :class:`StudyConfig` composed of the components' own configs, and its presets.

``quick`` composes the components' ``quick()`` presets (every stage with real models at tiny
scale); ``gpu`` the sizes one CUDA GPU affords (its time is an estimate until measured).
:func:`apply_preset` applies a preset while keeping the options a user set on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from negolens.agents.runner import RunConfig
from negolens.analysis import AblationConfig
from negolens.cli.options import with_preset
from negolens.config import option
from negolens.probes import AttentionConfig, ProbeConfig
from negolens.training import RECIPE, WARM_START, FilteredConfig, GRPORunConfig, SFTConfig
from negolens.zoo import DEFAULT_MODEL

__all__ = ["StudyConfig", "PRESETS", "apply_preset"]


@dataclass
class StudyConfig:
    """Everything a study run does; the nested configs are the components' own."""

    model: str = option(DEFAULT_MODEL, "zoo name or model directory studied")
    seed: int = option(0, "seed of every stage")
    data: str | None = option(None, "data directory (default $NEGOLENS_DATA or ../shared/data)")
    quick: bool = option(False, "built by the quick preset (recorded in the manifest)", cli=False)
    preset: str = option("default", "the preset that built this config: default | quick | gpu (recorded in the "
                         "manifest)", cli=False)
    device: str = option("auto", "where every stage's models run: auto (CUDA when available) | cpu | cuda | cuda:N")
    scenarios: int = option(12, "held-out Craigslist scenarios per negotiation condition")
    utterance_tokens: int = option(40, "longest message of an LLM agent in the negotiation conditions, in tokens")
    personalities: tuple[str, ...] = option(("aggressive", "fair", "passive"), "personalities paired SFT vs SFT")
    attention_dialogues: int = option(96, "Craigslist dev dialogues for the attention stage")
    probe_dialogues: int = option(160, "Craigslist dev dialogues for the probe stage")
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=30, eval_examples=32, dtype="bfloat16"))
    negotiation: RunConfig = field(default_factory=lambda: RunConfig(max_turns=8))
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    ablation: AblationConfig = field(default_factory=lambda: AblationConfig(
        metric="offer", kind="zero", n=8, max_tokens=384, offer_heads="top", top=5, rerun_n=12))
    bc: FilteredConfig = field(default_factory=lambda: FilteredConfig(
        steps=120, batch_size=4, teacher_products=400, **WARM_START))
    grpo: GRPORunConfig = field(default_factory=lambda: GRPORunConfig(
        steps=8, products_per_step=2, group_size=4, eval_products=16, max_turns=8, save_every=4, **RECIPE))
    narrow_steps: int = option(2, "GRPO steps on the narrowest zones of agreement (curriculum narrow) after the "
                               "first segment, from its final buyer, saved halfway too (the README's run 23); 0: none")
    select_products: int = option(32, "validation products on which the buyer is chosen among the first segment's "
                                  "final buyer and the narrow segment's checkpoints (train products no rollout and "
                                  "no teacher played, as `negolens train select`); 0: no choice, the last one")
    select_conflicting: bool = option(True, "the validation products hold every conflicting-interest product left "
                                      "(`train select --all-conflicting`); needs select_products at least their number")

    def __post_init__(self) -> None:
        for part in (self.sft, self.negotiation, self.attention, self.probes, self.ablation, self.bc, self.grpo):
            if hasattr(part, "seed"):
                part.seed = self.seed
        if self.narrow_steps < 0 or self.select_products < 0:
            from negolens.errors import NegolensError

            raise NegolensError(f"narrow_steps and select_products are at least 0 (0: none); got "
                                f"{self.narrow_steps} and {self.select_products}")

    @classmethod
    def quick_preset(cls, **kw) -> "StudyConfig":
        """Every stage at tiny scale, composed from the components' ``quick`` presets."""
        base = cls()
        return cls(quick=True, scenarios=2, utterance_tokens=12, attention_dialogues=12, probe_dialogues=24,
                   # float32: bf16 matmuls are fast only on CPUs with AMX/AVX512-BF16; elsewhere torch
                   # falls back to a reference GEMM many times slower than fp32 (seen on this CI machine)
                   sft=SFTConfig.quick(steps=4, batch_size=2, eval_examples=8),
                   negotiation=RunConfig(max_turns=4),
                   attention=AttentionConfig.quick(), probes=ProbeConfig.quick(),
                   # the accept sweep screened (AtP, then the top 30 exactly: 9/10 of the exact top 10
                   # in `negolens bench ablation`) instead of all 270 heads
                   ablation=AblationConfig.quick(metric="offer", top=base.ablation.top, screen_top=30),
                   bc=FilteredConfig.quick(**WARM_START),
                   grpo=GRPORunConfig.quick(steps=2, products_per_step=1, group_size=2, eval_products=3, max_turns=4,
                                            **RECIPE),
                   # four validation products cannot hold every conflicting one left (about 40 here)
                   narrow_steps=1, select_products=4, select_conflicting=False,
                   **{"preset": "quick", **kw})

    @classmethod
    def gpu_preset(cls, **kw) -> "StudyConfig":
        """Every stage at the scale one CUDA GPU affords, composed from the components' defaults.

        Changes from the default study: SFT of about three passes over Craigslist test's turns of
        the role (600 steps of 16; the test file holds about 3,100 turns per role), 200 held-out
        scenarios per negotiation condition decoded 64 at a time, all Craigslist dev dialogues
        for attention and probes, the full offer sweep over every head at 128 decision points
        with 64 re-run negotiations, the warm start cloned from all training products' teacher
        dialogues (200 steps of 16), and GRPO for 300 steps of 4 products × 8 negotiations with
        100 held-out products. No narrow segment and no checkpoint choice (``narrow_steps=0``):
        the teacher plays every training product, so none is left to validate on, and a narrow
        segment without the choice hands on its last checkpoint (run 23's was the worst of its
        candidates on validation). ``device="cuda"``: the study stops at once on a machine
        without a CUDA GPU instead of running this scale on the CPU.

        Expected time — an ESTIMATE, NOT MEASURED (no run of this preset on a GPU has been
        timed yet): a few hours on one H200 for the default model, dominated by the
        negotiations and GRPO's rollouts (token-by-token decoding).

        Parameters
        ----------
        **kw
            Any field, applied after the preset.

        Returns
        -------
        StudyConfig

        Examples
        --------
        >>> cfg = StudyConfig.gpu_preset()
        >>> cfg.device, cfg.scenarios, cfg.grpo.steps, cfg.ablation.n >= 64
        ('cuda', 200, 300, True)
        """
        base = cls()
        return cls(preset="gpu", device="cuda", scenarios=200, attention_dialogues=300, probe_dialogues=300,
                   sft=SFTConfig(steps=600, batch_size=16, eval_examples=128, dtype=base.sft.dtype),
                   negotiation=RunConfig(max_turns=base.negotiation.max_turns, batch_size=64),
                   attention=AttentionConfig(batch_size=16), probes=ProbeConfig(batch_size=16),
                   ablation=AblationConfig(metric=base.ablation.metric, kind=base.ablation.kind, n=128,
                                           max_tokens=base.ablation.max_tokens, offer_heads="all",
                                           top=base.ablation.top, rerun_n=64),
                   bc=FilteredConfig(steps=200, batch_size=16, teacher_products=0, dtype=base.sft.dtype, **WARM_START),
                   grpo=GRPORunConfig(steps=300, products_per_step=4, group_size=8, eval_products=100,
                                      max_turns=base.grpo.max_turns, save_every=25, **RECIPE),
                   narrow_steps=0, select_products=0,
                   **kw)


PRESETS = {"quick": StudyConfig.quick_preset, "gpu": StudyConfig.gpu_preset}


def apply_preset(cfg: StudyConfig, preset: str, quick: bool = False) -> StudyConfig:
    """``cfg`` on ``preset`` (``default`` | ``quick`` | ``gpu``), keeping options set on the command line.

    ``gpu`` checks its device at once (no CUDA GPU: a :class:`~negolens.errors.NegolensError`
    now, not hours of CPU work later).

    Examples
    --------
    >>> apply_preset(StudyConfig(seed=3), "quick").seed, apply_preset(StudyConfig(), "default").preset
    (3, 'default')
    """
    from negolens.errors import NegolensError
    from negolens.loading import resolve_device

    if quick and preset not in ("default", "quick"):
        raise NegolensError(f"--quick and --preset {preset}: choose one")
    if preset == "default":
        return cfg
    if preset not in PRESETS:
        raise NegolensError(f"unknown --preset {preset!r}; use default, quick or gpu")
    cfg = with_preset(cfg, PRESETS[preset]())
    if preset == "gpu":
        try:
            resolve_device(cfg.device)
        except NegolensError as err:
            raise NegolensError(f"--preset gpu: {err}") from None
    return cfg
