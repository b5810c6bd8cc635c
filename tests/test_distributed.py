"""Several processes (torchrun, two CPU processes with gloo) split negotiations, attention and head
sweeps between them and get the same results as one process; outside ``sharded`` nothing is split."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from negolens.distributed import World, gather, shard

HERE = Path(__file__).parent


def _texts(records):
    return [(r["id"], [(t["role"], t["utterance"], t["price"]) for t in r["turns"]]) for r in records]


def test_one_process_does_every_row():
    assert shard(list("abc")) == [(0, "a"), (1, "b"), (2, "c")]
    assert gather([(1, "b"), (0, "a")], 2) == ["a", "b"]
    assert World(1, 2).main is False


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.needs("cuda"))])
def test_two_processes_split_the_work_and_agree_with_one(tiny_dirs, tmp_path, device):
    """cpu: two CPU processes over gloo. cuda: two processes that share whatever GPUs there are
    (on a machine with one, both on cuda:0, over gloo) agree with one process on the GPU."""
    sys.path.insert(0, str(HERE))
    from distributed_worker import work

    one = work(str(tiny_dirs["llama"]), tmp_path / "one", device)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEGOLENS_DEVICE": device}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "distributed_worker.py"), str(tiny_dirs["llama"]), str(tmp_path / "two"), "auto"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    two = pickle.loads((tmp_path / "two" / "result.pkl").read_bytes())
    assert two["size"] == 2 and two["split"] == [[0, 2, 4], [1, 3]] and two["left"]  # the group was left
    assert _texts(two["records"]) == _texts(one["records"])
    np.testing.assert_allclose(two["tagged"], one["tagged"], atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(two["effects"], one["effects"], atol=1e-4, equal_nan=True)
    folder = tmp_path / "two" / "negotiations"
    lines = (folder / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and not list(folder.glob("dialogues.rank*.jsonl"))  # parts merged, then removed
    assert (folder / "run.json").is_file()


def test_every_rank_picks_the_same_backend(monkeypatch):
    """Two processes on one GPU: rank 0 used to join NCCL while rank 1 (no GPU of its own) waited
    in gloo, and both hung. Every rank now takes the same backend; NCCL only with a GPU each."""
    import torch
    import torch.distributed as dist

    import negolens.distributed as nd

    picked = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda name, rank, world_size: picked.append((rank, name)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: picked.append((i, "set_device")))
    monkeypatch.delenv("NEGOLENS_DEVICE", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for gpus, want in ((1, "gloo"), (2, "nccl")):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        picked.clear()
        for rank in (0, 1):
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("LOCAL_RANK", str(rank))
            nd.init()
        assert [name for _, name in picked if name != "set_device"] == [want, want]
        assert [r for r, name in picked if name == "set_device"] == ([0, 1] if want == "nccl" else [])
    monkeypatch.setenv("WORLD_SIZE", "4")  # two machines of two GPUs: NCCL on all four ranks
    picked.clear()
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank % 2))
        nd.init()
    assert [name for _, name in picked if name != "set_device"] == ["nccl"] * 4
    monkeypatch.setenv("NEGOLENS_DEVICE", "cpu")  # CPU tensors, whatever the machine has
    picked.clear()
    nd.init()
    assert picked == [(3, "gloo")]
