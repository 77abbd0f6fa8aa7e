"""A tiny synthetic task for the training tests, and the worker the two-process DDP test launches.

Task: a sequence of 32 Gaussian values; the label says whether their sum is positive.
"""

import os
import sys

import torch

from zoo.data.base import DataModule, Split


class ToyData(DataModule):
    name, dataset = "toy", "toy"

    def __init__(self, data_dir=None, n_train: int = 256, n_val: int = 32, n_test: int = 64, length: int = 32,
                 seed: int = 0):
        super().__init__({"n_train": n_train, "n_val": n_val, "n_test": n_test, "length": length, "seed": seed})
        self.length = length
        g = torch.Generator().manual_seed(seed)
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            x = torch.randn(n, length, 1, generator=g)
            y = (x.sum((1, 2)) > 0).long()
            if n:
                self.splits[split] = Split(x, y)

    def model_config(self):
        return {"task": "classification", "d_input": 1, "vocab_size": 0, "n_classes": 2, "seq_len": self.length}

    def input_spec(self):
        return {"type": "real", "dtype": "float32", "shape": ["batch", self.length, 1],
                "datamodule": {"name": self.name, "options": self.options}}


TINY = {"d_model": 8, "n_layers": 1, "d_state": 4, "norm": "layer"}


def main(out_dir: str) -> None:
    """DDP worker: train on ToyData, then save this rank's parameters to out_dir/rank<R>.safetensors."""
    from safetensors.torch import save_file

    from zoo.train import TrainConfig, train

    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, warmup_steps=2, seed=3, eval_batch_size=32)
    result = train("s4d", ToyData(n_train=64), config=config, overrides=TINY, progress=False)
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, os.path.join(out_dir, f"rank{os.environ['RANK']}.safetensors"),
              metadata={"world_size": os.environ["WORLD_SIZE"], "test_accuracy": str(result.metrics["accuracy"])})


if __name__ == "__main__":
    main(sys.argv[1])
