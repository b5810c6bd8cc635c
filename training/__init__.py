"""negolens.training — makes better agents: SFT (full, LoRA, QLoRA) and RLVR/GRPO.

May import ``negolens.agents`` and the core; never probes, analysis or figures.
"""
