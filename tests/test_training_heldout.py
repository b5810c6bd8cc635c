"""Held-out evaluation of buyers: sampled play, and the utterance cap the rollouts used."""

from negolens.agents.scenarios import load_scenarios


def test_heldout_play_samples_with_a_temperature_and_reruns_alike(tiny_dirs, tmp_path):
    """Sampled evaluation: seeded (a rerun gives the same dialogues), recorded as the buyer's
    setting (another temperature is another evaluation), and not the greedy play."""
    from negolens.training.heldout import play

    items = load_scenarios("builtin", 3)
    start, models = str(tiny_dirs["llama"]), {}
    words = lambda recs: [[t["utterance"] for t in r["turns"]] for r in recs]
    greedy = play(start, items, max_turns=4, progress=False, models=models)
    sampled = play(start, items, max_turns=4, progress=False, models=models, temperature=1.0, out=tmp_path / "s")
    assert words(play(start, items, max_turns=4, progress=False, models=models, temperature=1.0)) == words(sampled)
    assert words(sampled) != words(greedy)
    assert all(r["buyer"]["temperature"] == 1.0 for r in sampled)
    again = play(start, items, max_turns=4, progress=False, models=models, out=tmp_path / "s")  # greedy now: replayed
    assert words(again) == words(greedy)


def test_heldout_play_caps_the_buyers_words_as_the_rollouts_did(tiny_dirs, tmp_path):
    """``max_utterance_tokens`` reaches the buyer: its messages are shorter, the setting is
    recorded with the buyer (a GRPO policy is evaluated the way its rollouts were played), and a
    rerun into the folder with another cap plays again instead of returning the old dialogues."""
    from negolens.training.heldout import play

    items = load_scenarios("builtin", 2)
    start, models = str(tiny_dirs["llama"]), {}
    buyer_tokens = lambda recs: [t["new_tokens"] for r in recs for t in r["turns"] if t["role"] == "buyer"]
    short = play(start, items, max_turns=4, progress=False, models=models, max_utterance_tokens=2, out=tmp_path / "e")
    assert all(r["buyer"]["max_utterance_tokens"] == 2 for r in short)
    full = play(start, items, max_turns=4, progress=False, models=models, out=tmp_path / "e")
    assert all(r["buyer"]["max_utterance_tokens"] == 40 for r in full)
    assert max(buyer_tokens(short)) < max(buyer_tokens(full))
