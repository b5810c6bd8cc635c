"""GRPO made cheaper on a CPU: TRL's fused head scores only the completion, and a bfloat16 frozen base."""

import contextlib

import pytest
import torch
import trl.trainer.utils as trl_utils

import negolens
from negolens.agents.scenarios import load_scenarios
from negolens.errors import NegolensError
from negolens.training.environment import NegotiationRollout
from negolens.training.fused_head import scored_positions_only
from negolens.training.grpo import GRPORunConfig, read_steps, train_grpo


def _count_rows(monkeypatch, backbone=None) -> list:
    """Record how many positions each call of TRL's chunked head scores (with ``backbone``: and
    how many positions the backbone's last call produced, as ``(scored, positions)``)."""
    real = trl_utils._ChunkedLogProbFunction
    rows, seen = [], [None]
    if backbone is not None:  # the model is the test's own: the hook goes with it
        backbone.register_forward_hook(lambda mod, args, out: seen.__setitem__(0, out.last_hidden_state.shape))

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0] if backbone is None else (hidden.shape[0], seen[0][0] * (seen[0][1] - 1)))
            return real.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    return rows


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_the_head_scores_only_labelled_positions_with_the_same_log_probs_and_gradients(family, tiny_dirs,
                                                                                       monkeypatch):
    """Inside :func:`scored_positions_only` the CPU head projects the labelled positions alone
    (not the prompt's), and their log-probabilities, entropies and the gradients are those of
    the every-position head; outside it TRL scores every position, as before."""
    rows = _count_rows(monkeypatch)
    hf = negolens.load(str(tiny_dirs[family]), device="cpu").hf  # the CPU's head, whatever the test device
    trl_utils.add_fused_lm_head(hf, outputs=("log_probs", "entropy"))
    ids = torch.randint(0, hf.config.vocab_size, (3, 14), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :9] = -100  # the prompt
    labels[2, 12:] = -100  # a shorter completion
    results = []
    for compact in (False, True):
        hf.zero_grad()
        with scored_positions_only() if compact else contextlib.nullcontext():
            out = hf(input_ids=ids, labels=labels, fused_lm_head=True)
            out.log_probs.sum().backward()
        results.append((out.log_probs.detach(), out.entropy.detach(), [p.grad.clone() for p in hf.parameters()]))
    assert rows == [3 * 13, int((labels[:, 1:] != -100).sum())]  # every shifted position, then the labelled ones
    (lp_all, ent_all, g_all), (lp, ent, g) = results
    scored = labels[:, 1:] != -100
    torch.testing.assert_close(lp[scored], lp_all[scored], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[scored], ent_all[scored], rtol=1e-5, atol=1e-5)
    assert not lp[~scored].any() and not lp_all[~scored].any()
    for a, b in zip(g, g_all):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert trl_utils._use_triton(torch.device("cpu")) is False  # the block restored TRL's choice


def test_only_the_heads_choice_of_positions_reads_the_switched_name():
    """The swap is safe only while the position choice is the one reader of ``_use_triton`` in
    ``trl.trainer.utils`` (TRL's kernels read their own copy): a TRL that reads it elsewhere
    there would take a Triton path on the CPU, and this test says so."""
    import inspect

    source = inspect.getsource(trl_utils)
    assert source.count("_use_triton(") == 1 and "compact = _use_triton(" in source


def test_lora_grpo_on_a_bfloat16_base_scores_the_completion_only(tiny_dirs, tmp_path, monkeypatch):
    """``base_dtype="bfloat16"``: the starting model's weights are cast in place (buffers stay
    float32), the policy plays its rollouts itself, the float32 adapters learn, and on the CPU
    TRL's head scores only the buyer's dialogue, not the prompt."""
    start = str(tiny_dirs["llama"])
    scen = load_scenarios("builtin", 2)
    model = negolens.load(start, device="cpu")  # the CPU path, whatever the test device
    rows = _count_rows(monkeypatch, backbone=model.hf.model)
    cfg = GRPORunConfig(model=start, steps=1, products_per_step=2, group_size=2, max_turns=4, save_every=1,
                        max_utterance_tokens=8, lr=1e-3, seed=2, dtype="bfloat16", rollout_dtype="bfloat16",
                        base_dtype="bfloat16")
    played = []
    real = NegotiationRollout.sampler
    monkeypatch.setattr(NegotiationRollout, "sampler", lambda self, m: played.append(real(self, m)) or played[-1])
    final = train_grpo(model, cfg, scen, tmp_path / "run", progress=False)
    frozen = [p for n, p in model.hf.named_parameters() if "lora_" not in n]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    freqs = [b for n, b in model.hf.named_buffers() if n.endswith("inv_freq")]
    assert freqs and all(b.dtype == torch.float32 for b in freqs)
    assert played and all(m is played[0] for m in played)  # the policy itself: its frozen weights are bfloat16
    adapters = [p for n, p in played[0].named_parameters() if "lora_" in n]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    assert read_steps(tmp_path / "run")[0]["dialogues"] == 4
    trained = negolens.load(final).hf.parameters()
    assert max((a - b).abs().max().item() for a, b in zip(trained, negolens.load(start).hf.parameters())) > 0
    assert rows and all(0 < scored < positions for scored, positions in rows)  # never the prompt's positions
    for bad in (dict(dtype="float32"), dict(mode="full", dtype="bfloat16")):
        with pytest.raises(NegolensError, match="base_dtype"):
            GRPORunConfig(base_dtype="bfloat16", **bad)
    with pytest.raises(NegolensError, match="base_dtype"):
        GRPORunConfig(base_dtype="float16", dtype="bfloat16")
