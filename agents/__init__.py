"""negolens.agents — the negotiation world: scenarios, agents, protocol, runner, metrics.

Lowest capability layer: imports only the core (``negolens.*`` modules), never training,
probes, analysis or figures.

>>> from negolens.agents import extract_price
>>> extract_price("$49 is too low, I can do $55")
55.0
"""

from negolens.agents.parsing import extract_price

__all__ = ["extract_price"]
