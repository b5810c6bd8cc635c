"""negolens.analysis — intervenes: head ablation, activation patching, steering, statistics.

May import every layer below it; never figures.
"""
