"""Models on a device (issue #11): device/dtype resolution, tensors on the model's device, and
GRPO runs that fail loudly instead of training on rollouts that all crashed.

On a CPU-only machine the device-placement tests check the CPU path and the clear errors; with
``NEGOLENS_TEST_DEVICE=cuda`` the same tests run with every model on the GPU (see conftest.py).
"""

import pytest
import torch

import negolens
from negolens.agents.builtin import builtin_scenarios
from negolens.agents.decoding import Request, TurnDecoder
from negolens.agents.protocol import Negotiation
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.scenarios import load_scenarios
from negolens.errors import NegolensError
from negolens.loading import resolve_device, resolve_dtype
from negolens.training.grpo import GRPORunConfig, read_steps, train_grpo
from negolens.training.rollouts import ErrorWitness, agent_errors, check_agent_errors
from negolens.training.devices import autocast, check_device

GPU_ERROR = "Expected a 'cuda' device type for generator but found 'cpu'"  # the H200 failure of issue #11


# -- resolving devices and dtypes --------------------------------------------------------------
def test_auto_device_follows_the_environment_then_cuda_then_cpu(monkeypatch):
    monkeypatch.setenv("NEGOLENS_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.delenv("NEGOLENS_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_without_a_gpu_and_unknown_devices_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NegolensError, match="no usable CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(NegolensError, match="unknown device"):
        resolve_device("gpu-please")


def test_auto_dtype_is_bfloat16_only_on_cuda():
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_dtype("float32", torch.device("cuda")) is torch.float32  # the default stays float32


def test_load_puts_the_model_on_the_device_asked(tiny_dirs, monkeypatch):
    model = negolens.load(tiny_dirs["llama"], device="cpu", dtype="auto")
    assert model.device == torch.device("cpu") and model.dtype is torch.float32
    monkeypatch.setenv("NEGOLENS_DEVICE", "cpu")
    assert negolens.load(tiny_dirs["qwen2"]).device == torch.device("cpu")
    assert model.to(device="cpu").device == torch.device("cpu")


# -- the turn decoder: sampling where the logits are ----------------------------------------------
def test_decoder_samples_with_a_generator_on_the_logits_device(tiny_llama, monkeypatch):
    seen = []
    make = TurnDecoder.generator

    def spy(row, device):
        gen = make(row, device)
        seen.append((device, gen.device))
        return gen

    monkeypatch.setattr(TurnDecoder, "generator", staticmethod(spy))
    dec = TurnDecoder(tiny_llama, max_utterance_tokens=6, temperature=1.0)
    negs = [Negotiation(s) for s in builtin_scenarios()[:3]]
    from negolens.agents.llm_agent import LLMAgent

    agent = LLMAgent(tiny_llama, "buyer")
    reqs = [Request(tiny_llama.render(agent.messages(n), add_generation_prompt=True).input_ids,
                    n.legal_acts("buyer"), seed=7 + i) for i, n in enumerate(negs)]
    first = dec.decode(reqs)
    assert seen and all(d == g == tiny_llama.device for d, g in seen)
    assert dec.digits.device == dec.dots.device == tiny_llama.device
    again = TurnDecoder(tiny_llama, max_utterance_tokens=6, temperature=1.0).decode(reqs)
    assert [(d.utterance, d.act, d.price) for d in first] == [(d.utterance, d.act, d.price) for d in again]


# -- training: batches on the model's device, autocast of the model's device type ----------------
def test_a_batch_on_another_device_than_the_model_is_a_clear_error(tiny_llama):
    ids = torch.zeros((1, 4), dtype=torch.long, device="meta")
    with pytest.raises(NegolensError, match="model is on .* but a training batch is on meta"):
        check_device(tiny_llama.hf, ids)
    assert check_device(tiny_llama.hf, torch.zeros((1, 4), dtype=torch.long, device=tiny_llama.device)) == tiny_llama.device


def test_autocast_follows_the_models_device_type():
    x = torch.ones(2, 2)
    with autocast("bfloat16", "cpu"):
        assert (x @ x).dtype is torch.bfloat16
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        with autocast("bfloat16", "cuda"):  # a CUDA autocast leaves CPU matmuls alone
            assert (x @ x).dtype is torch.float32


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- GRPO stops when its rollouts crash ------------------------------------------------------
def test_agent_errors_are_counted_and_checked():
    ok = {"turns": [{"failure": None}, {"failure": "no_action"}]}
    bad = {"turns": [{"failure": "agent_error: RuntimeError: x"}]}
    assert agent_errors([ok, bad, ok]) == ["agent_error: RuntimeError: x"]
    check_agent_errors([ok, bad, ok], 0.5, step=1)  # one in three: tolerated at 0.5
    with pytest.raises(NegolensError, match="1/3 rollouts"):
        check_agent_errors([ok, bad, ok], 0.0, step=1)
    with pytest.raises(NegolensError, match=r"(?s)2/2 rollouts ended in an agent error \(all of them\).*\nthe traceback"):
        check_agent_errors([bad, bad], 1.0, step=4, first_traceback="the traceback")
    with pytest.raises(NegolensError, match="between 0 and 1"):
        GRPORunConfig(max_failure_share=1.5)


def test_error_witness_keeps_the_first_traceback_and_reraises():
    class Boom:
        def config(self):
            return {"kind": "boom"}

        def act(self, neg):
            raise RuntimeError(GPU_ERROR)

    w = ErrorWitness(Boom())
    assert not hasattr(w, "act_batch") and w.config() == {"kind": "boom"}
    with pytest.raises(RuntimeError):
        w.act(None)
    assert "Traceback" in w.first and GPU_ERROR in w.first


def _grpo(tiny_dirs, tmp_path, **kw):
    start = str(tiny_dirs["llama"])
    cfg = GRPORunConfig(model=start, steps=2, products_per_step=2, group_size=4, max_turns=4, save_every=1,
                        max_utterance_tokens=6, **kw)
    return train_grpo(negolens.load(start), cfg, load_scenarios("builtin", 4), tmp_path / "grpo", progress=False)


def test_grpo_stops_when_the_buyers_sampler_fails_like_on_the_gpu(tiny_dirs, tmp_path, monkeypatch):
    """The issue's failure mode, simulated: sampling raises the GPU's generator-device error in every
    rollout. Before, the run finished with an untrained adapter; now step 1 stops it."""
    def fail(self, row, logits, allowed):
        raise RuntimeError(GPU_ERROR)

    monkeypatch.setattr(TurnDecoder, "_choose", fail)
    with pytest.raises(NegolensError, match=r"(?s)GRPO step 1: 8/8 rollouts ended in an agent error.*Traceback.*"
                                            + GPU_ERROR):
        _grpo(tiny_dirs, tmp_path)
    steps = read_steps(tmp_path / "grpo")
    assert [s["step"] for s in steps] == [1] and steps[0]["agent_error_rate"] == 1.0
    assert steps[0]["protocol_failure_rate"] == 1.0
    assert not (tmp_path / "grpo" / "final").exists()


def test_grpo_stops_when_the_seller_always_raises(tiny_dirs, tmp_path, monkeypatch):
    def fail(self, neg):
        raise ValueError("the seller exploded")

    monkeypatch.setattr(RuleAgent, "act", fail)
    with pytest.raises(NegolensError, match=r"(?s)GRPO step 1: \d/8 rollouts ended in an agent error.*"
                                            r"ValueError: the seller exploded"):
        _grpo(tiny_dirs, tmp_path, max_failure_share=0.0)
    assert read_steps(tmp_path / "grpo")[0]["agent_error_rate"] > 0
    assert not (tmp_path / "grpo" / "final").exists()
