"""Data-parallel SFT: two processes (torchrun, gloo on the CPU), each a share of every batch, train
the same adapter as one process — the gradients are summed token-exactly — and write it once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.needs("cuda"))])
def test_two_processes_train_what_one_trains(tiny_dirs, tmp_path, device):
    """cpu: two CPU processes over gloo. cuda: two processes that share whatever GPUs there are
    (one GPU: both on it, gradients summed over gloo) train what one process on the GPU trains."""
    base = str(tiny_dirs["llama"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEGOLENS_DEVICE": device}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, str(HERE / "sft_worker.py"), base, str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(HERE / "sft_worker.py"), base, str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    moved = [k for k in a if "lora_B" in k and a[k].abs().max() > 0]
    assert moved  # lora_B starts at zero: training moved it
    atol = 1e-5 if device == "cpu" else 5e-5  # CUDA, float32: its one GPU run differed by up to 1.5e-5
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=atol)
    import json

    manifest = json.loads((tmp_path / "two" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["processes"] == 2 and manifest["examples_seen"] == 12


def _run(args, env):
    res = subprocess.run(args, env=env, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def test_fsdp_shards_and_trains_what_one_process_trains(tiny_dirs, tmp_path):
    """FSDP2 across two processes (each holds half of every parameter, gradient and optimizer
    state) trains the same model as one process, for a full fine-tune and for LoRA, and the
    main process writes the whole (gathered) checkpoint."""
    import json

    base = str(tiny_dirs["llama"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEGOLENS_DEVICE": "cpu"}  # CPU processes: gloo
    env.pop("WORLD_SIZE", None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    for mode, weights in (("full", "model.safetensors"), ("lora", "adapter_model.safetensors")):
        _run([sys.executable, str(HERE / "sft_worker.py"), base, str(tmp_path / f"one-{mode}"), mode, "ddp"], env)
        _run(torchrun + [str(HERE / "sft_worker.py"), base, str(tmp_path / f"fsdp-{mode}"), mode, "fsdp"], env)
        a = load_file(str(tmp_path / f"one-{mode}" / weights))
        b = load_file(str(tmp_path / f"fsdp-{mode}" / weights))
        assert a.keys() == b.keys()
        start = load_file(str(Path(base) / "model.safetensors")) if mode == "full" else {}
        moved = [k for k in a if (k in start and not torch.equal(a[k], start[k])) or ("lora_B" in k and a[k].abs().max() > 0)]
        assert moved  # training changed the weights
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
        manifest = json.loads((tmp_path / f"fsdp-{mode}" / "negolens_manifest.json").read_text(encoding="utf-8"))
        assert manifest["processes"] == 2 and manifest["fsdp"] is True
