"""negolens.probes — records and reads internals: attention on tagged tokens, linear probes.

May import the core, agents and training; never analysis or figures.

Entry points, one call each, returning their result:

* :func:`record_attention` — per-head attention on verbs and prices vs matched controls, as a
  tidy table per (score, layer, head) with effect, CI, p and q (:class:`AttentionConfig`);
* :func:`fit_probes` — linear probes for negotiation state at every layer, with baselines,
  control tasks and CIs, and the fitted probe of each label (:class:`ProbeConfig`,
  :class:`ProbeResult`).

Modules: :mod:`~negolens.probes.views` (a transcript rendered from one speaker's view),
:mod:`~negolens.probes.pairs` and :mod:`~negolens.probes.attention` (streaming attention
scores), :mod:`~negolens.probes.visual` (offline circuitsvis pages),
:mod:`~negolens.probes.activations`, :mod:`~negolens.probes.labels`,
:mod:`~negolens.probes.linear`, :mod:`~negolens.probes.sweep` and :mod:`~negolens.probes.fit`
(cached activations, labels, the ``LinearProbe`` estimator, per-layer curves).

>>> from negolens.probes import PROBE_LABELS
>>> PROBE_LABELS["own_target_ratio"]
('before_reply', 'regression')
"""

from negolens.probes.activations import ActivationSet, collect
from negolens.probes.attention import (
    AttentionConfig,
    AttentionRecorder,
    AttentionScores,
    claim,
    record_attention,
    summarize_heads,
)
from negolens.probes.beliefs import (BELIEF_LABELS, BeliefConfig, BeliefProbes, fit_beliefs, mask_seller_prices,
                                     varied_cost_dialogues)
from negolens.probes.fit import ProbeConfig, ProbeResult, fit_probes
from negolens.probes.labels import PROBE_LABELS, label_table
from negolens.probes.linear import LinearProbe
from negolens.probes.pairs import SCORES
from negolens.probes.store import DiskActivations, LayerStore
from negolens.probes.sweep import layer_sweep
from negolens.probes.views import View, render_view
from negolens.probes.visual import attention_html

__all__ = [
    "record_attention",
    "fit_probes",
    "AttentionConfig",
    "ProbeConfig",
    "ProbeResult",
    "PROBE_LABELS",
    "SCORES",
    "AttentionRecorder",
    "AttentionScores",
    "summarize_heads",
    "claim",
    "attention_html",
    "LinearProbe",
    "ActivationSet",
    "collect",
    "label_table",
    "layer_sweep",
    "render_view",
    "View",
    "BELIEF_LABELS",
    "BeliefConfig",
    "BeliefProbes",
    "fit_beliefs",
    "mask_seller_prices",
    "varied_cost_dialogues",
    "DiskActivations",
    "LayerStore",
]
