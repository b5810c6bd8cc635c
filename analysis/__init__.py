"""negolens.analysis — intervenes: head ablation, activation patching, steering, statistics.

May import every layer below it; never figures. Models are addressed through their site table
(:mod:`negolens.sites`) and changed through :mod:`negolens.interventions`.

>>> from negolens.analysis import sweep_heads, decision_points  # doctest: +SKIP
>>> table = sweep_heads(model, decision_points(model, transcripts), "accept", kind="mean")  # doctest: +SKIP
>>> result = run_ablation(model, transcripts, AblationConfig.quick(metric="offer"))  # doctest: +SKIP
>>> result.tables()["top_heads"]  # doctest: +SKIP
"""

from negolens.analysis.ablation import ABLATION_KINDS, ablated, reference_means
from negolens.analysis.behaviour import greedy_offer, offer_effects, offer_sweep, rerun, steer, steering_curve
from negolens.analysis.anchoring import (AnchoringEffect, AnchorPair, AnchorPairs, anchoring_effect, anchoring_pairs,
                                         rewrite_price)
from negolens.analysis.anchoring_study import AnchoringConfig, AnchoringResult, anchoring_final, run_anchoring
from negolens.analysis.belief_study import BeliefStudy, run_belief_study
from negolens.analysis.beliefs import CausalConfig, ConcessionPair, belief_effects, concession_pairs
from negolens.analysis.battery import measure_checkpoint
from negolens.analysis.checkpoints import (Checkpoint, CheckpointConfig, checkpoint_battery, list_checkpoints, run_phases,
                                           tracked_heads)
from negolens.analysis.decisions import DecisionPoint, decision_points
from negolens.analysis.leading import LeadResult, leading_indicator
from negolens.analysis.mediation import mediating_set, mediation_screen, offer_shares
from negolens.analysis.experiment import AblationConfig, AblationResult, logit_diff_values, run_ablation, top_heads
from negolens.analysis.screening import SCREENS, atp, atp_star, screen_scores
from negolens.analysis.partial import CleanForward
from negolens.analysis.patched_decoding import COMPONENT_KINDS, Component, Lockstep, greedy_digits, offer_value, pair_spans
from negolens.analysis.patching import budget_pairs, patch_heads
from negolens.analysis.sweep import (LogitDiff, attribution, effects_fast, effects_naive, layer_effects,
                                     summarize_effects, sweep_heads)

__all__ = [
    "decision_points", "DecisionPoint", "sweep_heads", "run_ablation", "AblationConfig", "AblationResult",
    "patch_heads", "budget_pairs", "steering_curve", "steer", "rerun", "greedy_offer", "offer_effects",
    "offer_sweep", "LogitDiff", "logit_diff_values", "reference_means", "ablated", "ABLATION_KINDS",
    "layer_effects", "attribution", "effects_fast", "effects_naive", "summarize_effects", "top_heads",
    "CleanForward", "atp", "atp_star", "screen_scores", "SCREENS",
    "CausalConfig", "ConcessionPair", "concession_pairs", "belief_effects", "BeliefStudy", "run_belief_study",
    "anchoring_pairs", "anchoring_effect", "rewrite_price", "AnchorPair", "AnchorPairs", "AnchoringEffect",
    "mediation_screen", "offer_shares", "mediating_set", "Component", "COMPONENT_KINDS", "Lockstep", "greedy_digits",
    "offer_value", "pair_spans", "AnchoringConfig", "AnchoringResult", "run_anchoring", "anchoring_final",
    "CheckpointConfig", "Checkpoint", "checkpoint_battery", "list_checkpoints", "run_phases", "tracked_heads",
    "leading_indicator", "LeadResult", "measure_checkpoint",
]
