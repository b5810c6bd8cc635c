"""negolens.agents — the negotiation world: scenarios, agents, protocol, runner, metrics.

Lowest capability layer: imports only the core (``negolens.*`` modules), never training,
probes, analysis or figures.

>>> from negolens.agents import load_scenarios, negotiate, summarize
>>> records = negotiate("rule", "rule:aggressive", load_scenarios("builtin", 4), max_turns=6, progress=False)
>>> table = summarize(records)          # one row per metric: mean, 95% CI, n
>>> int(table.loc[table.metric == "deal", "n"].item())
4
>>> from negolens.agents import extract_price
>>> extract_price("$49 is too low, I can do $55")
55.0
"""

from negolens.agents.factory import as_agent, make_agent, parse_spec
from negolens.agents.metrics import dialogue_metrics, summarize
from negolens.agents.negotiating import negotiate
from negolens.agents.oracle import ceiling, share_curve
from negolens.agents.parsing import extract_price
from negolens.agents.runner import RunConfig, read_records, run_negotiations
from negolens.agents.scenarios import Scenario, load_scenarios, split_scenarios
from negolens.agents.transcripts import Transcript, Utterance, example_transcripts, from_records, load_transcripts
from negolens.agents.formats import TranscriptFormatError, UnreadableRowsWarning, write_transcripts
from negolens.agents.scoring import metrics_table, transcript_metrics

__all__ = [
    "negotiate", "ceiling", "share_curve", "summarize", "dialogue_metrics", "load_scenarios", "split_scenarios",
    "load_transcripts", "from_records",
    "Scenario", "Transcript", "Utterance", "RunConfig", "run_negotiations", "read_records",
    "make_agent", "as_agent", "parse_spec", "extract_price", "example_transcripts",
    "write_transcripts", "metrics_table", "transcript_metrics", "TranscriptFormatError", "UnreadableRowsWarning",
]
