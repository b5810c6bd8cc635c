"""GRPO rollouts in bfloat16 (``rollout_dtype``): a copy of the policy that follows it, token in, token out."""

import pytest
import torch

import negolens
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.agents.scenarios import load_scenarios
from negolens.errors import NegolensError
from negolens.training.grpo import GRPORunConfig, read_steps, train_grpo
from negolens.training.rollouts import buyer_sequence


def test_rollout_dtype_plays_a_bfloat16_copy_that_follows_the_policy(tiny_dirs, tmp_path):
    """``rollout_dtype="bfloat16"``: the rollouts sample from a bfloat16 copy whose parameters are
    the policy's at every step (buffers such as the rotary frequencies stay float32), and the
    float32 policy is trained on exactly the ids the copy sampled (token in, token out)."""
    from negolens.hooked import NegoModel
    from negolens.training.environment import NegotiationRollout

    start = str(tiny_dirs["llama"])
    scen = load_scenarios("builtin", 2)
    policy = negolens.load(start)
    env = NegotiationRollout(GRPORunConfig(model=start, rollout_dtype="bfloat16"), {s.id: s for s in scen},
                             policy.tokenizer, tmp_path / "a", start)
    copy = env.sampler(policy.hf)
    assert copy is not policy.hf and all(p.dtype == torch.bfloat16 for p in copy.parameters())
    freqs = [b for n, b in copy.named_buffers() if n.endswith("inv_freq")]
    assert freqs and all(b.dtype == torch.float32 for b in freqs)
    with torch.no_grad():
        for p in policy.hf.parameters():
            p.add_(0.01)  # a training step
    assert env.sampler(policy.hf) is copy  # made once, refreshed every step
    for mine, theirs in zip(copy.parameters(), policy.hf.parameters(), strict=True):
        assert torch.equal(mine, theirs.to(torch.bfloat16))
    same = NegotiationRollout(GRPORunConfig(model=start), {}, policy.tokenizer, tmp_path / "b", start)
    assert same.sampler(policy.hf) is policy.hf  # the default: the policy plays itself
    half = copy.to(torch.bfloat16)  # a bfloat16 policy (e.g. on a GPU) plays itself: no second copy
    assert NegotiationRollout(GRPORunConfig(model=start, rollout_dtype="bfloat16"), {}, policy.tokenizer,
                              tmp_path / "c", start).sampler(half) is half
    player = NegoModel(copy, policy.tokenizer, start)
    recs = run_negotiations(scen, LLMAgent(player, "buyer", temperature=1.0, max_utterance_tokens=8),
                            RuleAgent("seller"), RunConfig(max_turns=4, seed=3), progress=False)
    for rec in recs:
        _, completion, mask = buyer_sequence(policy, rec)
        sampled = [i for t in rec["turns"] if t["role"] == "buyer" for i, f in zip(t["token_ids"], t["sampled"]) if f]
        assert [t for t, m in zip(completion, mask) if m] == sampled
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(copy, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    assert any(p.dtype == torch.float32 for p in lora.parameters())  # PEFT keeps adapters in float32 …
    assert NegotiationRollout(GRPORunConfig(model=start, rollout_dtype="bfloat16"), {}, policy.tokenizer,
                              tmp_path / "d", start).sampler(lora) is lora  # … on a bfloat16 base: it plays itself
    cfg = GRPORunConfig(model=start, steps=1, products_per_step=2, group_size=2, max_turns=4, save_every=1,
                        max_utterance_tokens=8, lr=1e-3, seed=2, rollout_dtype="bfloat16")
    played = []
    real = NegotiationRollout.sampler
    NegotiationRollout.sampler = lambda self, model: played.append(real(self, model)) or played[-1]
    try:
        final = negolens.load(train_grpo(negolens.load(start), cfg, scen, tmp_path / "run", progress=False))
    finally:
        NegotiationRollout.sampler = real
    assert played and all(next(m.parameters()).dtype == torch.bfloat16 for m in played)  # the copy played
    assert read_steps(tmp_path / "run")[0]["dialogues"] == 4
    assert max((a - b).abs().max().item() for a, b in zip(final.hf.parameters(), negolens.load(start).hf.parameters())) > 0
    with pytest.raises(NegolensError, match="rollout_dtype"):
        GRPORunConfig(rollout_dtype="float16")
