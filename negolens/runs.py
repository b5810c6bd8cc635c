"""Run identity: every output folder says what produced it, so a rerun resumes only its own run.

Each command that writes into an output folder first calls :func:`start_run`, which

* refuses an output path that exists as a *file* (before any work);
* reads the folder's ``run.json`` (a :class:`RunRecord`: the kind of run, the settings that
  identify it, model references with a content fingerprint for local model folders, the data
  source and the negolens version);
* lets the run go on when the folder is new, holds nothing this kind of run writes, or holds a
  run with the *same* identity (then the run resumes: finished dialogues, checkpoints...);
* otherwise raises :class:`~negolens.errors.NegolensError` naming the fields that differ —
  or, with ``overwrite=True``, deletes what the earlier run wrote (only the paths its kind of run
  owns, never other files) and starts afresh;
* and writes the new ``run.json``.

Local model folders are identified by :func:`model_fingerprint`: a sha256 over the names and
contents of the folder's files — files up to 64 MiB are hashed whole; larger ones by their
size and 16 evenly spaced 64 KiB samples — so a retrained checkpoint in the same folder is
a different model, while a copied folder is the same one.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> start_run(folder, {"seed": 0, "max_turns": 4}, kind="demo", owns=("out.txt",))
False
>>> start_run(folder, {"seed": 0, "max_turns": 4}, kind="demo", owns=("out.txt",))
True
>>> start_run(folder, {"seed": 1, "max_turns": 10}, kind="demo", owns=("out.txt",))
Traceback (most recent call last):
...
negolens.errors.NegolensError: --out ... holds a run with max_turns=4, seed=0; this run has max_turns=10, seed=1: use another --out, or --overwrite (overwrite=True) to replace it
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from negolens.errors import NegolensError
from negolens.fingerprints import RUN_FILE, fingerprint, model_fingerprint, model_refs

__all__ = ["RUN_FILE", "RunRecord", "read_run", "write_run", "refuse_file", "check_resume", "start_run", "clear_run",
           "differences", "describe", "owned_paths", "model_fingerprint", "fingerprint", "model_refs"]



@dataclass
class RunRecord:
    """What produced an output folder (saved as its ``run.json``).

    Attributes
    ----------
    kind : str
        The kind of run (``"negotiate"``, ``"sft"``, ``"grpo"``, ``"attention"``...).
    config : dict
        The identity: the settings that must be equal for a rerun to resume this run.
    models : dict
        Model reference → content fingerprint (:func:`model_fingerprint`) for local folders.
    data : str or None
        Where the data came from.
    owns : list of str
        Glob patterns (relative to the folder) of what this kind of run writes there; only
        these are deleted on ``overwrite``.
    version : str
        The negolens version that wrote the record.
    created : str
        When the run started (UTC, ISO 8601).

    Examples
    --------
    >>> RunRecord("demo", {"seed": 0}).to_dict()["config"]
    {'seed': 0}
    """

    kind: str
    config: dict
    models: dict = field(default_factory=dict)
    data: str | None = None
    owns: list = field(default_factory=list)
    version: str = ""
    created: str = ""

    def to_dict(self) -> dict:
        """The record as a JSON-ready dict (``config`` normalised through JSON)."""
        return {**asdict(self), "config": _plain(self.config), "owns": list(self.owns)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunRecord":
        """A record from :meth:`to_dict`'s output (unknown keys are ignored)."""
        known = {k: d[k] for k in ("kind", "config", "models", "data", "owns", "version", "created") if k in d}
        return cls(**{"kind": "?", "config": {}, **known})


def _plain(value):
    """``value`` as JSON would give it back (tuples → lists, paths → strings)."""
    return json.loads(json.dumps(value, default=str))


def read_run(folder: str | Path) -> RunRecord | None:
    """The :class:`RunRecord` of ``folder``, or ``None`` when it has no (readable) ``run.json``.

    Examples
    --------
    >>> import tempfile
    >>> read_run(tempfile.mkdtemp()) is None
    True
    """
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError):
        return None


def write_run(folder: str | Path, config: dict, *, kind: str, owns: Iterable[str] = (), models: dict | None = None,
              data: str | Path | None = None) -> RunRecord:
    """Write ``folder/run.json`` for a run with identity ``config``; return the record.

    Parameters
    ----------
    folder : str or Path
        The output folder (created).
    config : dict
        The run's identity (JSON-ready values, tuples allowed).
    kind : str
        The kind of run.
    owns : iterable of str
        Glob patterns of what the run writes in ``folder``.
    models : dict, optional
        Model reference → fingerprint (see :func:`model_refs`).
    data : str or Path, optional
        The data source.

    Returns
    -------
    RunRecord

    Examples
    --------
    >>> import tempfile
    >>> write_run(tempfile.mkdtemp(), {"seed": 0}, kind="demo").kind
    'demo'
    """
    from negolens import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    old = read_run(folder)
    same = old is not None and old.kind == kind and not differences(old.config, config)
    created = old.created if same else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rec = RunRecord(kind, _plain(config), dict(models or {}), None if data is None else str(data), list(owns),
                    __version__, created)
    tmp = folder / f"{RUN_FILE}.{os.getpid()}.tmp"  # several processes (accelerate launch) may write at once
    tmp.write_text(json.dumps(rec.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / RUN_FILE)
    return rec


def _flatten(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def differences(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """The fields (dotted names for nested dicts) whose values differ, top-level fields first, then by name.

    A field missing on one side reads ``None``.

    Examples
    --------
    >>> differences({"a": 1, "b": {"c": (1, 2)}}, {"a": 1, "b": {"c": [1, 3]}})
    [('b.c', [1, 2], [1, 3])]
    """
    a, b = _flatten(_plain(old)), _flatten(_plain(new))
    keys = sorted(set(a) | set(b), key=lambda k: (k.count("."), k))  # top-level fields first
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def _show(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 48 else text[:45] + "..."


def describe(diffs: list[tuple[str, object, object]], limit: int = 6) -> tuple[str, str]:
    """``("max_turns=4, seed=0", "max_turns=10, seed=1")``: the old and the new side of ``diffs``."""
    shown, more = diffs[:limit], len(diffs) - limit
    tail = f" (+{more} more)" if more > 0 else ""
    return (", ".join(f"{k}={_show(o)}" for k, o, _ in shown) + tail,
            ", ".join(f"{k}={_show(n)}" for k, _, n in shown) + tail)


def owned_paths(folder: str | Path, owns: Iterable[str]) -> list[Path]:
    """The paths in ``folder`` matching the ``owns`` patterns (never outside ``folder``).

    Examples
    --------
    >>> import tempfile
    >>> owned_paths(tempfile.mkdtemp(), ["*.csv"])
    []
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    root, found = folder.resolve(), set()
    for pattern in owns:
        for p in folder.glob(pattern):
            if p.name != RUN_FILE and root in p.resolve().parents:
                found.add(p)
    return sorted(found)


def clear_run(folder: str | Path, owns: Iterable[str]) -> list[Path]:
    """Delete what a run owns in ``folder`` (paths matching ``owns``, and ``run.json``).

    Parameters
    ----------
    folder : str or Path
        The output folder.
    owns : iterable of str
        Glob patterns, e.g. ``("dialogues.jsonl", "summary.csv")``; other files are kept.

    Returns
    -------
    list of Path
        What was deleted.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "a.csv").write_text("x"); (d / "notes.txt").write_text("y")
    1
    1
    >>> [p.name for p in clear_run(d, ["*.csv"])], sorted(p.name for p in d.iterdir())
    (['a.csv'], ['notes.txt'])
    """
    gone = owned_paths(folder, owns)
    record = Path(folder) / RUN_FILE
    for p in gone:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if record.is_file():
        record.unlink()
        gone.append(record)
    return gone


def refuse_file(folder: str | Path | None) -> None:
    """Raise :class:`~negolens.errors.NegolensError` when the output folder ``folder`` exists as a file.

    Call it before any expensive work (loading a model, training).

    Examples
    --------
    >>> refuse_file(None)
    """
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise NegolensError(f"--out {folder} is a file, not a folder: pass a new folder (or an earlier run's)")


def check_resume(folder: str | Path, config: dict, overwrite: bool = False, *, kind: str = "run",
                 owns: Iterable[str] = ()) -> bool:
    """May a run with identity ``config`` write into ``folder``? ``True`` when it resumes one.

    Parameters
    ----------
    folder : str or Path
        The output folder.
    config : dict
        The new run's identity.
    overwrite : bool
        Delete what an earlier run wrote (its ``owns`` patterns and ``run.json``) and start
        afresh, whatever its settings.
    kind : str
        The kind of run.
    owns : iterable of str
        Glob patterns of what this kind of run writes in ``folder``; a folder with none of them
        and no ``run.json`` is new.

    Returns
    -------
    bool
        ``True`` when ``folder`` holds a run with the same identity (resume it), ``False`` when
        the run starts afresh.

    Raises
    ------
    NegolensError
        ``folder`` is a file; or it holds another run (different settings, another kind, or
        outputs without ``run.json``) and ``overwrite`` is false. The message names the
        differing fields.

    Examples
    --------
    >>> import tempfile
    >>> check_resume(tempfile.mkdtemp(), {"seed": 0})
    False
    """
    folder, owns = Path(folder), list(owns)
    refuse_file(folder)
    old = read_run(folder)
    if overwrite:
        clear_run(folder, [*owns, *(old.owns if old else [])])
        return False
    fix = "use another --out, or --overwrite (overwrite=True) to replace it"
    if old is None:
        if owned_paths(folder, owns):
            raise NegolensError(f"--out {folder} holds outputs of a run without {RUN_FILE} (an older negolens?), "
                                f"so it cannot be resumed safely: {fix}")
        return False
    if old.kind != kind:
        raise NegolensError(f"--out {folder} holds a {old.kind} run, not a {kind} run: {fix}")
    diffs = differences(old.config, config)
    if diffs:
        was, now = describe(diffs)
        raise NegolensError(f"--out {folder} holds a run with {was}; this run has {now}: {fix}")
    return True


def start_run(folder: str | Path, config: dict, *, kind: str, owns: Iterable[str] = (), overwrite: bool = False,
              models: dict | None = None, data: str | Path | None = None) -> bool:
    """:func:`check_resume`, then :func:`write_run`: the first call of every command with an output folder.

    Parameters
    ----------
    folder, config, kind, owns, overwrite
        As in :func:`check_resume`.
    models, data
        Recorded in ``run.json`` (see :func:`write_run`).

    Returns
    -------
    bool
        ``True`` when the run resumes an earlier one with the same identity.

    Examples
    --------
    >>> import tempfile
    >>> start_run(tempfile.mkdtemp(), {"seed": 0}, kind="demo")
    False
    """
    from negolens.distributed import active_world, barrier

    owns = list(owns)
    w = active_world()
    if w.size == 1:
        resuming = check_resume(folder, config, overwrite, kind=kind, owns=owns)
        write_run(folder, config, kind=kind, owns=owns, models=models, data=data)
        return resuming
    # several processes (negolens.distributed.sharded): each checks, so a refusal stops them all
    # alike (none waits forever for the others); only the main one clears and writes
    resuming = False if overwrite else check_resume(folder, config, False, kind=kind, owns=owns)
    barrier()
    if w.main:
        check_resume(folder, config, overwrite, kind=kind, owns=owns)
        write_run(folder, config, kind=kind, owns=owns, models=models, data=data)
    barrier()
    return resuming
