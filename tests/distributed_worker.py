"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2``: the sharded work of
one process; the main process saves what every process got back."""

import pickle
import sys
from pathlib import Path

import negolens
from negolens.agents import example_transcripts
from negolens.agents.builtin import builtin_scenarios
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.analysis import decision_points
from negolens.analysis.sweep import LogitDiff, effects_fast
import torch.distributed as dist

from negolens.distributed import gather, is_main, shard, sharded, shutdown
from negolens.probes.attention import AttentionRecorder


def work(model_dir: str, out: Path, device: str = "cpu") -> dict:
    """The same calls the test makes in one process."""
    model = negolens.load(model_dir, device=device)
    records = run_negotiations(builtin_scenarios()[:5], LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=6),
                               RuleAgent("seller"), RunConfig(max_turns=4, seed=5, batch_size=2), out=out, progress=False)
    items = example_transcripts(5)
    scores = AttentionRecorder(model).record(items, "buyer", batch_size=2, progress=False)
    points = decision_points(model, items, "buyer", "accept", limit=5)
    effects = effects_fast(model, points, LogitDiff.accept_vs_counter(model), batch_size=2, progress=False)
    return {"records": records, "tagged": scores.tagged, "effects": effects}


if __name__ == "__main__":
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    device = sys.argv[3] if len(sys.argv) > 3 else "cpu"  # "auto": the test's $NEGOLENS_DEVICE
    with sharded() as w:
        got = work(model_dir, out / "negotiations", device)
        split = gather([(w.rank, [i for i, _ in shard(list(range(5)))])], w.size)  # who did which rows
    main = is_main()
    shutdown()  # what the atexit hook would do; calling it again at exit is a no-op
    if main:
        (out / "result.pkl").write_bytes(pickle.dumps({**got, "size": w.size, "split": split,
                                                       "left": not dist.is_initialized()}))
