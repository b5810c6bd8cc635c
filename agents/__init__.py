"""negolens.agents — the negotiation world: scenarios, agents, protocol, runner, metrics.

Lowest capability layer: imports only the core (``negolens.*`` modules), never training,
probes, analysis or figures.
"""
