"""Content fingerprints of models and files, so a run can tell a retrained checkpoint from its copy.

:func:`model_fingerprint` hashes a local model folder: sha256 over the names and contents of its
files — files up to 64 MiB whole, larger ones by their size and 16 evenly spaced 64 KiB samples.
A copied folder keeps its fingerprint; retrained weights change it. Zoo names and hub ids have
none (their content is pinned by the zoo's checksums).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["RUN_FILE", "model_fingerprint", "fingerprint", "model_refs"]

RUN_FILE = "run.json"  # a run's own record, left out of its folder's fingerprint
WHOLE_FILE_LIMIT = 64 * 2**20  # files up to this size are hashed whole
SAMPLES, SAMPLE_BYTES = 16, 64 * 2**10  # larger files: size + evenly spaced samples


def model_fingerprint(ref: str | Path | None) -> str | None:
    """A content hash of a local model folder (``None`` for a zoo name or hub id).

    sha256 over each file's name and content hash, files in name order (``run.json`` and
    sub-folders left out); files up to 64 MiB are hashed whole, larger ones by their size and 16
    evenly spaced 64 KiB samples. A copied folder keeps its fingerprint; retrained weights
    change it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "config.json").write_text("{}")
    2
    >>> len(model_fingerprint(d)), model_fingerprint("smollm2-135m-instruct")
    (64, None)
    """
    if ref is None:
        return None
    path = Path(str(ref))
    if not path.is_dir():
        return None
    total = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.is_file() and p.name != RUN_FILE:
            total.update(p.name.encode() + b"\0" + _file_hash(p).encode() + b"\0")
    return total.hexdigest()


def _file_hash(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= WHOLE_FILE_LIMIT:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        else:
            for i in range(SAMPLES):
                fh.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
                h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def fingerprint(path: str | Path | None) -> str | None:
    """Content hash of a file or a folder (as :func:`model_fingerprint`); ``None`` when it does not exist.

    Examples
    --------
    >>> fingerprint(None), fingerprint("no/such/file")
    (None, None)
    """
    if path is None:
        return None
    path = Path(path)
    return model_fingerprint(path) if path.is_dir() else _file_hash(path) if path.is_file() else None


def model_refs(*refs) -> dict:
    """``{reference: fingerprint}`` for each reference that is a local model folder.

    A reference may carry an agent suffix (``/ckpt:passive+cot``): the folder part is used.

    Examples
    --------
    >>> model_refs("rule", "smollm2-135m-instruct")
    {}
    """
    out = {}
    for ref in refs:
        if ref is None:
            continue
        text = str(ref)
        candidates = [text, text.removesuffix("+cot"), text.removesuffix("+cot").rpartition(":")[0]]
        folder = next((c for c in candidates if c and Path(c).is_dir()), None)
        if folder is not None:
            out[str(ref)] = model_fingerprint(folder)
    return out
