"""negolens.probes — records and reads internals: attention on tagged tokens, linear probes.

May import the core, agents and training; never analysis or figures.

* :mod:`~negolens.probes.transcripts` — Craigslist / runner transcripts, rendered per speaker;
* :mod:`~negolens.probes.attention` — streaming per-head attention scores vs matched controls;
* :mod:`~negolens.probes.activations`, :mod:`~negolens.probes.labels`,
  :mod:`~negolens.probes.linear`, :mod:`~negolens.probes.sweep` — cached activations, labels,
  the ``LinearProbe`` estimator and per-layer curves with baselines and control tasks.
"""
