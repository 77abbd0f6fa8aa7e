"""Pixel-sequence classification: sequential and permuted Fashion-MNIST and MNIST.

An image of 28 x 28 uint8 pixels becomes a sequence of 784 steps with one pixel per step
(d_input 1), read row by row, or in a fixed permuted order. Preprocessing, in this order:
scale to [0, 1] (pixel / 255), normalise with the training set's mean and std, then reorder:
`sequence[t] = image.flatten()[permutation[t]]`. The input spec stores the constants and the full
permutation, so no other program has to regenerate it.

Fashion-MNIST comes from the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist);
MNIST is user-supplied (the same four IDX files). Permuted Fashion-MNIST uses a seeded random order;
permuted MNIST defaults to the S4 code base's bit-reversal order (`permutation_kind`). The last
`val_size` training images form the validation split; the test split is the full 10,000-image test set.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.base import DataModule, MissingDataError, Split, find_file

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_HOW_TO_GET = ("Install the Debian package: apt-get install dataset-fashion-mnist (files land in "
                      f"{FASHION_MNIST_DIR}), or download the four IDX files from "
                      "https://github.com/zalandoresearch/fashion-mnist and pass --data DIR")
MNIST_HOW_TO_GET = ("Download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from https://yann.lecun.com/exdb/mnist/ "
                    "or a mirror into one folder and pass it as --data DIR")
# Mean and std of the training images after scaling to [0, 1] (all 60,000 images, all pixels);
# tests/test_data.py recomputes them from the files.
STATS = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}
N_PIXELS = 784


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its declared shape.

    Raises ValueError when the header is not an unsigned-byte IDX header or the size does not match.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header declares shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def make_permutation(kind: str = "random", seed: int = 0) -> list[int]:
    """The fixed pixel order of a permuted task: "random" (a permutation of 0..783 drawn from `seed`)
    or "bitreversal" (the indices 0..1023 in 10-bit bit-reversed order, keeping those below 784; the
    order the S4 code base uses for psMNIST). Raises ValueError for another kind."""
    if kind == "random":
        return torch.randperm(N_PIXELS, generator=torch.Generator().manual_seed(seed)).tolist()
    if kind == "bitreversal":
        bits = (N_PIXELS - 1).bit_length()
        reversed_indices = (int(format(i, f"0{bits}b")[::-1], 2) for i in range(1 << bits))
        return [r for r in reversed_indices if r < N_PIXELS]
    raise ValueError(f"permutation kind must be 'random' or 'bitreversal', got {kind!r}")


class PixelSequences(DataModule):
    """Sequential (row by row) or permuted pixel sequences of a 28 x 28 image data set.

    Options: data_dir (the folder with the IDX files), val_size (the last val_size training images
    are held out), permutation (None = sequential; a list of 784 indices), permutation_kind and
    permutation_seed (how the permutation was made, recorded for provenance).
    """

    task = "classification"
    metric = "accuracy"
    source = "fashion-mnist"
    how_to_get = FASHION_HOW_TO_GET
    default_dir: str | None = FASHION_MNIST_DIR

    def __init__(self, data_dir: str | None = None, val_size: int = 5000,
                 permutation: list[int] | None = None, permutation_kind: str | None = None,
                 permutation_seed: int | None = None):
        super().__init__({"val_size": val_size, "permutation": permutation, "permutation_kind": permutation_kind,
                          "permutation_seed": permutation_seed})
        folder = data_dir or self.default_dir
        if folder is None:
            raise MissingDataError(f"{self.source} needs --data DIR. {self.how_to_get}")
        if permutation is not None and sorted(permutation) != list(range(N_PIXELS)):
            raise ValueError(f"permutation must be a permutation of 0..{N_PIXELS - 1}")
        if not 0 <= val_size < 60000:
            raise ValueError(f"val_size must be in [0, 60000), got {val_size}")
        self.permutation = permutation
        self.mean, self.std = STATS[self.source]
        arrays = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            for kind, suffix in (("images", "idx3"), ("labels", "idx1")):
                stem = f"{prefix}-{kind}-{suffix}-ubyte"
                path = find_file(folder, [stem + ".gz", stem], f"{self.source} {split} {kind}", self.how_to_get)
                arrays[split, kind] = read_idx(path)
        train_x = torch.from_numpy(arrays["train", "images"].reshape(-1, N_PIXELS).copy())  # (60000, 784) uint8
        train_y = torch.from_numpy(arrays["train", "labels"].astype(np.int64))
        test_x = torch.from_numpy(arrays["test", "images"].reshape(-1, N_PIXELS).copy())
        test_y = torch.from_numpy(arrays["test", "labels"].astype(np.int64))
        n_train = len(train_x) - val_size
        self.splits = {"train": Split(train_x[:n_train], train_y[:n_train], self.preprocess)}
        if val_size:
            self.splits["val"] = Split(train_x[n_train:], train_y[n_train:], self.preprocess)
        self.splits["test"] = Split(test_x, test_y, self.preprocess)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 784) -> float32 (B, 784, 1): scale, normalise, reorder."""
        x = (pixels.float() / 255.0 - self.mean) / self.std
        if self.permutation is not None:
            x = x[:, torch.tensor(self.permutation)]
        return x.unsqueeze(-1)

    def model_config(self) -> dict[str, Any]:
        return {"task": "classification", "d_input": 1, "vocab_size": 0, "n_classes": 10, "seq_len": N_PIXELS}

    def input_spec(self) -> dict[str, Any]:
        order = "permuted" if self.permutation is not None else "row-major"
        spec = {
            "type": "real", "dtype": "float32", "shape": ["batch", N_PIXELS, 1],
            "source": f"{self.source} 28x28 uint8 images (IDX files), {order} pixel order, one pixel per step",
            "preprocess": "x = (pixel / 255 - mean) / std; sequence[t] = x.flatten()[permutation[t]] "
                          "(row-major flatten; no permutation = identity)",
            "scale": 1 / 255, "mean": self.mean, "std": self.std,
            "permutation": self.permutation, "permutation_kind": self.options["permutation_kind"],
            "permutation_seed": self.options["permutation_seed"],
            "datamodule": {"name": self.name, "options": self.options},
        }
        return spec


class SequentialFashionMNIST(PixelSequences):
    name, dataset = "sfmnist", "fashion-mnist"


class PermutedFashionMNIST(PixelSequences):
    name, dataset = "psfmnist", "fashion-mnist"

    def __init__(self, data_dir: str | None = None, val_size: int = 5000, permutation: list[int] | None = None,
                 permutation_kind: str = "random", permutation_seed: int = 0):
        permutation = permutation or make_permutation(permutation_kind, permutation_seed)
        super().__init__(data_dir, val_size, permutation, permutation_kind, permutation_seed)


class SequentialMNIST(PixelSequences):
    name, dataset, source = "smnist", "mnist", "mnist"
    how_to_get, default_dir = MNIST_HOW_TO_GET, None


class PermutedMNIST(PixelSequences):
    name, dataset, source = "psmnist", "mnist", "mnist"
    how_to_get, default_dir = MNIST_HOW_TO_GET, None

    def __init__(self, data_dir: str | None = None, val_size: int = 5000, permutation: list[int] | None = None,
                 permutation_kind: str = "bitreversal", permutation_seed: int = 0):
        permutation = permutation or make_permutation(permutation_kind, permutation_seed)
        super().__init__(data_dir, val_size, permutation, permutation_kind, permutation_seed)
