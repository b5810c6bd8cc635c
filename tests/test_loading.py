import pytest
import torch

import negolens
from negolens.errors import ModelNotFetchedError, UnknownModelError
from negolens.loading import resolve, unwrap_peft


def test_unknown_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGOLENS_CACHE", str(tmp_path))
    with pytest.raises(UnknownModelError, match="smollm2-135m-instruct"):
        resolve("definitely-not-a-model")
    with pytest.raises(ModelNotFetchedError, match="negolens models fetch gemma3-270m"):
        resolve("gemma3-270m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownModelError, match="no config.json"):
        resolve(tmp_path / "empty")


def test_local_dir_loads(tiny_dirs):
    model = negolens.load(tiny_dirs["gemma3"])
    assert model.shape.n_layers == 2 and model.shape.d_head == 16
    assert "2 layers × 4 heads" in repr(model)


def test_peft_adapter_dir_loads_merged(tiny_dirs, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = negolens.load(tiny_dirs["llama"])
    batch = base.batch([base.render([{"role": "user", "content": "Would you take $250?"}])])
    before = base.logits(batch)
    torch.manual_seed(0)
    peft = get_peft_model(base.hf, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        want = peft(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert not torch.allclose(want, before, atol=1e-3)  # the adapter does something
    peft.save_pretrained(tmp_path / "adapter")
    assert unwrap_peft(peft) is peft.base_model.model
    merged = negolens.load(tmp_path / "adapter")
    assert type(merged.hf).__name__ == "LlamaForCausalLM"  # plain layers: hooks see no LoRA wrappers
    assert torch.allclose(merged.logits(batch), want, atol=1e-4)
    assert torch.allclose(merged.bridge_logits(batch), want, atol=1e-4)


def test_zoo_names_are_fetched_by_default(tiny_dirs, tmp_path, monkeypatch):
    import negolens.loading as loading

    monkeypatch.setenv("NEGOLENS_CACHE", str(tmp_path))
    fetched = []
    monkeypatch.setattr(loading, "fetch", lambda name: fetched.append(name) or tiny_dirs["gemma3"])
    model = negolens.load("gemma3-270m")
    assert fetched == ["gemma3-270m"] and model.shape.n_layers == 2
    with pytest.raises(ModelNotFetchedError):
        negolens.load("gemma3-270m", fetch=False)
    negolens.NegoModel.load("gemma3-270m", fetch=True)
    assert fetched == ["gemma3-270m"] * 2


def test_package_fetch_is_the_function_even_after_use():
    import inspect

    import negolens
    from negolens import fetching

    first = negolens.fetch
    assert inspect.isfunction(first) and first is fetching.fetch
    assert negolens.fetch is first  # importing negolens.fetching did not rebind it to the module
