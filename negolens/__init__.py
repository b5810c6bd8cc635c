"""negolens — mechanistic interpretability for LLM negotiation agents.

Core (this package): the model zoo and fetching (:mod:`negolens.zoo`, :mod:`negolens.fetch`),
loading (:mod:`negolens.loading`), the hooked model (:class:`negolens.hooked.NegoModel`), chat
rendering (:mod:`negolens.chat`), token tagging (:mod:`negolens.tagging`) and the CLI.
Capability layers, one way: ``negolens.agents`` → ``training`` → ``probes`` → ``analysis`` →
``figures``.

>>> import negolens
>>> model = negolens.load("smollm2-135m-instruct", fetch=True)  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load", "NegoModel", "Turn", "fetch", "__version__"]


def __getattr__(name: str):
    # Lazy: `import negolens` (and the CLI) stays fast; torch loads on first real use.
    if name in ("load", "NegoModel"):
        from negolens import hooked

        return getattr(hooked, name)
    if name == "Turn":
        from negolens.chat import Turn

        return Turn
    if name == "fetch":
        from negolens.fetch import fetch

        return fetch
    raise AttributeError(f"module 'negolens' has no attribute {name!r}")
