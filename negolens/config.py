"""Config dataclasses, one source for every setting (TRL-style help on each field).

Every configurable step of negolens takes a dataclass whose fields carry their help text::

    @dataclass
    class AttentionConfig:
        role: str = option("buyer", "whose view to render: buyer | seller")

The CLI derives its options from these fields (:mod:`negolens.cli.options`), so a default or
a help text is written once. Presets (``quick``) are classmethods that change a few fields of
the component's own defaults, and the study composes them (minGPT's ``get_default_config``).

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     steps: int = option(200, "optimizer steps")
>>> help_of(Demo, "steps")
'optimizer steps'
>>> to_dict(Demo(steps=3))
{'steps': 3}
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["option", "help_of", "to_dict", "replace"]


def option(default: Any, help: str, *, cli: bool = True) -> Any:
    """A dataclass field with a default and its help text (``cli=False`` keeps it off the CLI)."""
    meta = {"help": help, "cli": cli}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def help_of(cls, name: str) -> str:
    """The help text of field ``name`` of config class ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a (possibly nested) config; tuples become lists."""
    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def replace(cfg, **changes):
    """A copy of ``cfg`` with ``changes`` (unknown names raise a clear ``TypeError``)."""
    return dataclasses.replace(cfg, **changes)
