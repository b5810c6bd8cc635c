"""Several processes (torchrun, two CPU processes with gloo) split negotiations, attention and head
sweeps between them and get the same results as one process; outside ``sharded`` nothing is split."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from negolens.distributed import World, gather, shard

HERE = Path(__file__).parent


def _texts(records):
    return [(r["id"], [(t["role"], t["utterance"], t["price"]) for t in r["turns"]]) for r in records]


def test_one_process_does_every_row():
    assert shard(list("abc")) == [(0, "a"), (1, "b"), (2, "c")]
    assert gather([(1, "b"), (0, "a")], 2) == ["a", "b"]
    assert World(1, 2).main is False


def test_two_processes_split_the_work_and_agree_with_one(tiny_dirs, tmp_path):
    sys.path.insert(0, str(HERE))
    from distributed_worker import work

    one = work(str(tiny_dirs["llama"]), tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "distributed_worker.py"), str(tiny_dirs["llama"]), str(tmp_path / "two")]
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
