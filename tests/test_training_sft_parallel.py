"""Data-parallel SFT: two processes (torchrun, gloo on the CPU), each a share of every batch, train
the same adapter as one process — the gradients are summed token-exactly — and write it once."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent


def test_two_processes_train_what_one_trains(tiny_dirs, tmp_path):
    base = str(tiny_dirs["llama"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, str(HERE / "sft_worker.py"), base, str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(HERE / "sft_worker.py"), base, str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    moved = [k for k in a if "lora_B" in k and a[k].abs().max() > 0]
    assert moved  # lora_B starts at zero: training moved it
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    import json

    manifest = json.loads((tmp_path / "two" / "negolens_manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["examples_seen"] == 12
