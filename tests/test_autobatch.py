"""batch_size="auto" and out-of-memory back-off: retried chunks give the same results, other
errors are not swallowed, and an out-of-memory error is never recorded as an agent failure."""

import pytest
import torch

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.autobatch import check_batch_size, map_chunks, start_size
from negolens.errors import NegolensError

ITEMS = builtin_scenarios()[:7]


class Roomy:
    """Wraps an agent on a "device" that holds at most ``fits`` dialogues per call."""

    def __init__(self, inner, fits):
        self.inner, self.fits, self.sizes = inner, fits, []
        self.model = getattr(inner, "model", None)

    def config(self):
        return self.inner.config()

    def act_batch(self, negs, seeds):
        self.sizes.append(len(negs))
        if len(negs) > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.act_batch(negs, seeds)


def _texts(records):
    return {r["id"]: [(t["role"], t["utterance"], t["price"], t["failure"]) for t in r["turns"]] for r in records}


def test_map_chunks_backs_off_and_keeps_order():
    seen = []

    def run(chunk):
        seen.append(len(chunk))
        if len(chunk) > 3:
            raise RuntimeError("CUDA error: out of memory")
        return list(chunk)

    said = []
    out = map_chunks(run, list(range(10)), "auto", device="cuda", log=said.append)
    assert [x for part in out for x in part] == list(range(10))
    assert seen[:5] == [10, 5, 2, 2, 2]  # 64 → capped by the items, then 32 … 2 … kept at 2
    assert said and all("batch_size" in s for s in said)


def test_other_errors_are_not_retried():
    def run(chunk):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        map_chunks(run, [1, 2, 3], 2)


def test_one_row_that_does_not_fit_is_a_clear_error():
    def run(chunk):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(NegolensError, match="one row per batch"):
        map_chunks(run, [1, 2, 3], 4)


@pytest.mark.parametrize("bad", [0, -2, "many", 2.5])
def test_bad_batch_sizes_say_what_to_do(bad):
    with pytest.raises(NegolensError, match="'auto'"):
        check_batch_size(bad)
    with pytest.raises(NegolensError):
        RunConfig(batch_size=bad)


def test_auto_start_depends_on_the_device():
    assert start_size("auto", "cpu", 8) == 8 and start_size("auto", "cuda", 8) > 8
    assert RunConfig(batch_size="auto").batch_size == "auto" and RunConfig(batch_size="3").batch_size == 3


def test_runner_backs_off_and_gives_the_same_transcripts(tiny_llama, tmp_path):
    cfg = RunConfig(max_turns=4, seed=3, batch_size=1)
    reference = run_negotiations(ITEMS, LLMAgent(tiny_llama, "buyer", temperature=1.0, max_utterance_tokens=6),
                                 RuleAgent("seller"), cfg, progress=False)
    buyer = Roomy(LLMAgent(tiny_llama, "buyer", temperature=1.0, max_utterance_tokens=6), fits=2)
    records = run_negotiations(ITEMS, buyer, RuleAgent("seller"), RunConfig(max_turns=4, seed=3, batch_size="auto"),
                               out=tmp_path, progress=False)
    assert buyer.sizes[0] == len(ITEMS) and max(buyer.sizes[2:]) <= 2  # all at once, then fewer
    assert not any("agent_error" in str(t["failure"]) for r in records for t in r["turns"])
    assert _texts(records) == _texts(reference)
    lines = (tmp_path / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ITEMS)  # nothing written twice after a retry


class OneAtATime:
    """A model whose bridge 'runs out of memory' on batches of more than one dialogue."""

    def __init__(self, model):
        self.model, self.calls = model, []
        bridge = model.bridge
        self.original = bridge.run_with_hooks

    def __enter__(self):
        def run(input_ids, *a, **kw):
            self.calls.append(input_ids.shape[0])
            if input_ids.shape[0] > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return self.original(input_ids, *a, **kw)

        self.model.bridge.run_with_hooks = run
        return self

    def __exit__(self, *exc):
        del self.model.bridge.run_with_hooks  # back to the class's method


def test_attention_and_activations_back_off_to_the_same_numbers(tiny_llama):
    import numpy as np

    from negolens.agents import example_transcripts
    from negolens.probes.activations import collect
    from negolens.probes.attention import AttentionRecorder

    items = example_transcripts(3)
    rec = AttentionRecorder(tiny_llama)
    want_att = rec.record(items, "buyer", batch_size=3, progress=False)
    want_act = collect(tiny_llama, items, batch_size=3, progress=False)
    with OneAtATime(tiny_llama) as spy:
        got_att = rec.record(items, "buyer", batch_size="auto", progress=False)
        got_act = collect(tiny_llama, items, batch_size="auto", progress=False)
    assert spy.calls[0] == 3 and 1 in spy.calls
    np.testing.assert_allclose(got_att.tagged, want_att.tagged, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got_act.acts, want_act.acts, rtol=2e-3, atol=1e-3)  # stored as float16: one ulp
    assert got_act.meta.equals(want_act.meta)


def test_head_sweeps_and_offers_back_off_to_the_same_numbers(tiny_llama):
    import numpy as np

    from negolens.agents import example_transcripts
    from negolens.analysis import decision_points, greedy_offer, reference_means
    from negolens.analysis.sweep import LogitDiff, effects_fast, layer_effects

    points = decision_points(tiny_llama, example_transcripts(4), "buyer", "accept", limit=4)
    offers = decision_points(tiny_llama, example_transcripts(4), "buyer", "offer", limit=4)
    metric = LogitDiff.accept_vs_counter(tiny_llama)
    want = (effects_fast(tiny_llama, points, metric, batch_size=4, progress=False),
            layer_effects(tiny_llama, points, metric, batch_size=4), greedy_offer(tiny_llama, offers, batch_size=4),
            reference_means(tiny_llama, points, batch_size=4).numpy())
    calls = []
    original = type(tiny_llama.hf).forward

    def forward(self, input_ids=None, *a, **kw):
        ids = input_ids if input_ids is not None else kw.get("inputs_embeds")
        calls.append(ids.shape[0])
        if ids.shape[0] > 1 and ids.shape[1] > 1:  # prefills of more than one row "do not fit"
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(self, input_ids, *a, **kw)

    type(tiny_llama.hf).forward = forward
    try:
        got = (effects_fast(tiny_llama, points, metric, batch_size="auto", progress=False),
               layer_effects(tiny_llama, points, metric, batch_size="auto"), greedy_offer(tiny_llama, offers, "auto"),
               reference_means(tiny_llama, points, batch_size="auto").numpy())
    finally:
        type(tiny_llama.hf).forward = original
    assert any(c > 1 for c in calls)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4, equal_nan=True)
