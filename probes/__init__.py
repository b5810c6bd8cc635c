"""negolens.probes — records and reads internals: attention on tagged tokens, linear probes.

May import the core, agents and training; never analysis or figures.
"""
