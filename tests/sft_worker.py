"""Run by tests/test_training_sft_parallel.py under ``torchrun --nproc-per-node 2``: data-parallel SFT
(``BASE OUT [MODE ddp|fsdp]``)."""

import sys

import negolens
from negolens.agents import example_transcripts
from negolens.distributed import sharded
from negolens.training.data import build_examples
from negolens.training.sft import SFTConfig, train_sft

if __name__ == "__main__":
    base, out = sys.argv[1], sys.argv[2]
    mode, fsdp = (sys.argv[3], sys.argv[4] == "fsdp") if len(sys.argv) > 4 else ("lora", False)
    with sharded():
        model = negolens.load(base, device="auto", dtype="float32")  # $NEGOLENS_DEVICE: the test's choice
        examples = build_examples(model, example_transcripts(6), "buyer")
        cfg = SFTConfig(model=base, steps=3, batch_size=4, eval_every=3, lr=1e-3 if mode == "lora" else 1e-4,
                        mode=mode, fsdp=fsdp)
        train_sft(model, cfg, examples, examples[:2], out, progress=False)
