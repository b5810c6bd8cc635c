"""CLI options derived from config dataclasses, so every default and help text is written once.

A verb declares which config classes it takes and a few options of its own (the model, the
data, the output folder); :func:`verb` builds the typer command whose options are the union of
the configs' fields (``--max-turns``, ``--seed`` …) and the extras, and calls the verb body with
ready config objects::

    @verb(app, AttentionConfig, model=MODEL, out=out_dir("results/attention"))
    def attention(cfg: AttentionConfig, model: str, out: Path) -> None: ...

A field present in several configs (``seed``) is one option that sets all of them. Fields of
type ``tuple[...]`` are comma lists on the command line; fields declared ``option(..., cli=False)``
are not exposed. A field typed ``int | str`` (a batch size: a number or ``auto``) is a string
option that the config's ``__post_init__`` parses.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from negolens.zoo import DEFAULT_MODEL

__all__ = ["verb", "config_fields", "Extra", "MODEL", "DATA", "TRANSCRIPTS", "N_TRANSCRIPTS", "FORMAT", "STRICT", "OVERWRITE", "DEVICE", "out_dir"]


@dataclasses.dataclass(frozen=True)
class Extra:
    """An option of the verb itself (not of a config): its type, default and help."""

    type: Any
    default: Any
    help: str
    argument: bool = False


MODEL = Extra(str, DEFAULT_MODEL, "zoo name, model directory, PEFT adapter directory or hub id")
DATA = Extra(Optional[Path], None, "data directory (default $NEGOLENS_DATA or ../shared/data)")
TRANSCRIPTS = Extra(str, "craigslist-dev", "craigslist-dev | craigslist-test | a transcript file (open format, "
                                           "dialogues.jsonl, AgreeMate CSV, chat log) or a folder of them")
N_TRANSCRIPTS = Extra(Optional[int], None, "first N transcripts (default all)")
DEVICE = Extra(str, "auto", "where models run: auto (CUDA when available, else CPU; $NEGOLENS_DEVICE overrides) "
                            "| cpu | cuda | cuda:N")
FORMAT = Extra(str, "auto", "transcript format: auto | open | runner | craigslist | agreemate | chat")
STRICT = Extra(bool, False, "any unreadable transcript row is an error (default: skipped, counted and reported)")
OVERWRITE = Extra(bool, False, "start afresh: delete what an earlier run wrote in --out, whatever its settings "
                               "(without it, the same settings resume and other settings are refused)")


def out_dir(default: str) -> Extra:
    """The ``--out`` option with a verb-specific default folder."""
    return Extra(Path, Path(default), "output directory")


def _unwrap_optional(tp):
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def config_fields(cls) -> list[tuple[str, Any, Any, str]]:
    """``(name, cli type, cli default, help)`` of each CLI-exposed field of config ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        tp, optional = _unwrap_optional(hints[f.name])
        if typing.get_origin(tp) is tuple:
            tp, default = str, ",".join(str(x) for x in default)
        elif typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp):
            tp, default = str, str(default)  # e.g. ``int | str`` batch sizes ("8" or "auto"): the config parses it
        elif tp not in (str, int, float, bool):
            continue  # nested configs and other structures are not command-line options
        out.append((f.name, Optional[tp] if optional else tp, default, f.metadata.get("help", "")))
    return out


def _from_cli(cls, values: dict) -> Any:
    """An instance of ``cls`` from CLI values (comma lists back to tuples)."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        tp, _ = _unwrap_optional(hints[f.name])
        if typing.get_origin(tp) is tuple and isinstance(v, str):
            elem = (typing.get_args(tp) or (str,))[0]
            v = tuple(elem(x.strip()) for x in v.split(",") if x.strip())
        kw[f.name] = v
    return cls(**kw)


def _param(name: str, tp, default, help: str, argument: bool = False) -> inspect.Parameter:
    info = typer.Argument(default, help=help) if argument else typer.Option(default, help=help)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=tp)


def verb(app: typer.Typer, *configs, name: str | None = None, **extras: Extra) -> Callable:
    """Register ``fn(*config_objects, **extras)`` on ``app`` with options derived from ``configs``.

    Parameters
    ----------
    app
        The typer app (or sub-app) to register the command on.
    *configs
        Config dataclasses; each becomes one positional argument of ``fn``, built from the options.
    name
        Command name (default: ``fn``'s name with ``_`` → ``-``).
    **extras
        The verb's own options, as :class:`Extra`.
    """
    def register(fn: Callable) -> Callable:
        params, owners = [], {}
        for key, ex in extras.items():
            params.append(_param(key, ex.type, ex.default, ex.help, ex.argument))
        for cls in configs:
            for fname, tp, default, help in config_fields(cls):
                owners.setdefault(fname, []).append(cls)
                if fname in extras or any(p.name == fname for p in params):
                    continue
                params.append(_param(fname, tp, default, help))
        # typer wants arguments first
        params.sort(key=lambda p: not isinstance(p.default, typer.models.ArgumentInfo))

        @functools.wraps(fn)
        def command(**kwargs):
            objs = [_from_cli(cls, {k: v for k, v in kwargs.items() if cls in owners.get(k, ())}) for cls in configs]
            return fn(*objs, **{k: kwargs[k] for k in extras})

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}  # real types, not fn's strings
        del command.__wrapped__  # typer must read the generated signature, not fn's
        app.command(name or fn.__name__.replace("_", "-"), help=inspect.getdoc(fn))(command)
        return fn

    return register


def with_preset(cfg, preset):
    """``preset`` with every field the user changed on the command line (≠ the plain default) kept.

    >>> from negolens.agents.runner import RunConfig
    >>> with_preset(RunConfig(seed=3), RunConfig(max_turns=4)).seed, with_preset(RunConfig(seed=3), RunConfig(max_turns=4)).max_turns
    (3, 4)
    """
    plain = type(cfg)()
    changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.init and getattr(cfg, f.name) != getattr(plain, f.name)}
    return dataclasses.replace(preset, **changed)
