"""negolens — mechanistic interpretability for LLM negotiation agents.

Core (this package): the model zoo and fetching (:mod:`negolens.zoo`, :mod:`negolens.fetching`),
loading (:mod:`negolens.loading`), the hooked model (:class:`negolens.hooked.NegoModel`) with its
site table (:mod:`negolens.sites`) and interventions (:mod:`negolens.interventions`), chat
rendering (:mod:`negolens.chat`), token tagging (:mod:`negolens.tagging`) and configs
(:mod:`negolens.config`). Capability layers, one way: ``negolens.agents`` → ``training`` →
``probes`` → ``analysis`` → ``figures``; the command line, the study and the benchmarks sit on
top (``negolens.cli``).

>>> import negolens
>>> model = negolens.load("smollm2-135m-instruct")  # doctest: +SKIP  (a zoo name is fetched on first use)
"""

from __future__ import annotations

from negolens.zoo import DEFAULT_MODEL

__version__ = "0.1.0"
__all__ = ["load", "NegoModel", "Turn", "fetch", "DEFAULT_MODEL", "__version__"]


def __getattr__(name: str):
    # Lazy: `import negolens` (and the CLI) stays fast; torch loads on first real use. No module
    # of the package is named like these attributes, so importing one never shadows them.
    if name in ("load", "NegoModel"):
        from negolens import hooked

        return getattr(hooked, name)
    if name == "Turn":
        from negolens.chat import Turn

        return Turn
    if name == "fetch":
        from negolens.fetching import fetch

        return fetch
    raise AttributeError(f"module 'negolens' has no attribute {name!r}")
