"""Long Range Arena tasks read from user-supplied files (ListOps lives in zoo.data.listops).

- `lra-cifar10-gray` (LRA Image; also `cifar10-gray-sequential`): the CIFAR-10 binary release
  (cifar-10-batches-bin: data_batch_1..5.bin, test_batch.bin). Each 32 x 32 image becomes 1024
  steps of one grey value: gray = 0.299 R + 0.587 G + 0.114 B on [0, 1] pixels, normalised with
  mean 122.6/255 and std 61.0/255 (the S4 code base's LRA Image settings), row by row.
- `lra-imdb-char` (LRA Text): the aclImdb folder of the IMDB review release (train/pos, train/neg,
  test/pos, test/neg, one review per .txt file); byte level, token = byte + 1 (0 is padding),
  truncated to `max_len` (4096) and padded on the left.
- `lra-aan` (LRA Retrieval): the LRA release's new_aan_pairs.{train,eval,test}.tsv (label, id1, id2,
  text1, text2 per line); both documents byte level like Text, truncated to `max_len` (4000),
  inputs (2, max_len) per example for the two-document retrieval head.

The last `val_size` training examples form the validation split (LRA Retrieval has its own eval
file). Labels: CIFAR-10 classes 0-9, IMDB 0 negative / 1 positive, AAN as in the file.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.base import DataModule, MissingDataError, Split, find_file

CIFAR_HOW_TO_GET = ("Download the CIFAR-10 binary version (cifar-10-binary.tar.gz from "
                    "https://www.cs.toronto.edu/~kriz/cifar.html), unpack it and pass the folder "
                    "cifar-10-batches-bin as --data DIR")
IMDB_HOW_TO_GET = ("Download the IMDB review release (aclImdb_v1.tar.gz from "
                   "https://ai.stanford.edu/~amaas/data/sentiment/), unpack it and pass the folder aclImdb "
                   "as --data DIR")
AAN_HOW_TO_GET = ("Download the LRA release (lra_release.gz from https://github.com/google-research/long-range-arena) "
                  "and pass its tsv_data folder (new_aan_pairs.train.tsv, .eval.tsv, .test.tsv) as --data DIR")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
CIFAR_GRAY_MEAN, CIFAR_GRAY_STD = 122.6 / 255, 61.0 / 255
BYTE_VOCAB = 257  # 0 = padding, 1..256 = byte value + 1


def require_folder(data_dir: str | None, what: str, how_to_get: str) -> Path:
    if data_dir is None:
        raise MissingDataError(f"{what} is user-supplied: pass --data DIR. {how_to_get}")
    return Path(data_dir)


def encode_bytes(texts: list[str], length: int) -> torch.Tensor:
    """UTF-8 bytes + 1, truncated to `length`, padded on the left with 0: int16 (n, length)."""
    ids = torch.zeros(len(texts), length, dtype=torch.int16)
    for i, text in enumerate(texts):
        data = np.frombuffer(text.encode("utf-8")[:length], dtype=np.uint8).astype(np.int16) + 1
        if len(data):
            ids[i, length - len(data):] = torch.from_numpy(data)
    return ids


def hold_out(inputs: torch.Tensor, targets: torch.Tensor, val_size: int, transform=None) -> dict[str, Split]:
    """Split off the last `val_size` examples as the validation split."""
    if not 0 <= val_size < len(targets):
        raise ValueError(f"val_size must be in [0, {len(targets)}), got {val_size}")
    n = len(targets) - val_size
    splits = {"train": Split(inputs[:n], targets[:n], transform)}
    if val_size:
        splits["val"] = Split(inputs[n:], targets[n:], transform)
    return splits


def as_long(x: torch.Tensor) -> torch.Tensor:
    return x.long()


class CIFAR10Gray(DataModule):
    """LRA Image: grey CIFAR-10 as 1024 steps of one real value."""

    name, dataset = "lra-cifar10-gray", "lra-cifar10-gray"

    def __init__(self, data_dir: str | None = None, val_size: int = 5000):
        super().__init__({"val_size": val_size})
        folder = require_folder(data_dir, "CIFAR-10", CIFAR_HOW_TO_GET)
        parts = {}
        for split, names in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
            records = [np.fromfile(find_file(folder, [n], "CIFAR-10 binary batch", CIFAR_HOW_TO_GET), dtype=np.uint8)
                       for n in names]
            data = np.concatenate(records).reshape(-1, 3073)
            parts[split] = (torch.from_numpy(data[:, 1:].copy()), torch.from_numpy(data[:, 0].astype(np.int64)))
        self.splits = hold_out(*parts["train"], val_size, self.preprocess)
        self.splits["test"] = Split(*parts["test"], self.preprocess)

    @staticmethod
    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3072) as R, G, B planes -> float32 (B, 1024, 1)."""
        rgb = pixels.float().view(-1, 3, 1024) / 255.0
        gray = sum(w * rgb[:, c] for c, w in enumerate(GRAY_WEIGHTS))
        return ((gray - CIFAR_GRAY_MEAN) / CIFAR_GRAY_STD).unsqueeze(-1)

    def model_config(self) -> dict[str, Any]:
        return {"task": "classification", "d_input": 1, "vocab_size": 0, "n_classes": 10, "seq_len": 1024}

    def input_spec(self) -> dict[str, Any]:
        return {"type": "real", "dtype": "float32", "shape": ["batch", 1024, 1],
                "source": "CIFAR-10 binary release, 32x32 RGB, row-major",
                "preprocess": "gray = 0.299 R + 0.587 G + 0.114 B on pixel/255; (gray - mean) / std",
                "gray_weights": list(GRAY_WEIGHTS), "mean": CIFAR_GRAY_MEAN, "std": CIFAR_GRAY_STD,
                "datamodule": {"name": self.name, "options": self.options}}


class ByteTextMixin:
    max_len: int

    def tokenizer(self) -> dict[str, Any]:
        return {"type": "byte-level", "offset": 1, "pad_id": 0, "padding": "left", "vocab_size": BYTE_VOCAB}


class IMDBChars(ByteTextMixin, DataModule):
    """LRA Text: IMDB sentiment at byte level."""

    name, dataset = "lra-imdb-char", "lra-imdb-char"

    def __init__(self, data_dir: str | None = None, max_len: int = 4096, val_size: int = 0):
        super().__init__({"max_len": max_len, "val_size": val_size})
        self.max_len = max_len
        folder = require_folder(data_dir, "IMDB (aclImdb)", IMDB_HOW_TO_GET)
        parts = {}
        for split in ("train", "test"):
            texts, labels = [], []
            for label, sentiment in ((0, "neg"), (1, "pos")):
                sub = folder / split / sentiment
                files = sorted(sub.glob("*.txt")) if sub.is_dir() else []
                if not files:
                    raise MissingDataError(f"IMDB reviews not found: expected *.txt files in {sub}. {IMDB_HOW_TO_GET}")
                texts += [f.read_text(encoding="utf-8", errors="replace") for f in files]
                labels += [label] * len(files)
            # a fixed shuffle so that the held-out tail has both classes
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
            parts[split] = (encode_bytes(texts, max_len)[order], torch.tensor(labels)[order])
        self.splits = hold_out(*parts["train"], val_size, as_long)
        self.splits["test"] = Split(*parts["test"], as_long)

    def model_config(self) -> dict[str, Any]:
        return {"task": "classification", "vocab_size": BYTE_VOCAB, "n_classes": 2, "seq_len": self.max_len}

    def input_spec(self) -> dict[str, Any]:
        return {"type": "tokens", "dtype": "int64", "shape": ["batch", self.max_len], "vocab_size": BYTE_VOCAB,
                "preprocess": "UTF-8 bytes of the review, id = byte + 1, first max_len bytes, left-padded with 0",
                "datamodule": {"name": self.name, "options": self.options}}


class AANRetrieval(ByteTextMixin, DataModule):
    """LRA Retrieval: do two ACL papers cite each other? Two byte-level documents per example."""

    name, dataset, task = "lra-aan", "lra-aan", "retrieval"
    files = (("train", "new_aan_pairs.train.tsv"), ("val", "new_aan_pairs.eval.tsv"),
             ("test", "new_aan_pairs.test.tsv"))

    def __init__(self, data_dir: str | None = None, max_len: int = 4000):
        super().__init__({"max_len": max_len})
        self.max_len = max_len
        folder = require_folder(data_dir, "LRA Retrieval (AAN)", AAN_HOW_TO_GET)
        csv.field_size_limit(sys.maxsize)  # the documents are long
        for split, name in self.files:
            path = find_file(folder, [name], "LRA Retrieval (AAN)", AAN_HOW_TO_GET)
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f, delimiter="\t") if r]
            labels = torch.tensor([int(float(r[0])) for r in rows])
            docs = torch.stack([encode_bytes([r[3] for r in rows], max_len),
                                encode_bytes([r[4] for r in rows], max_len)], dim=1)  # (n, 2, L)
            self.splits[split] = Split(docs, labels, as_long)

    def model_config(self) -> dict[str, Any]:
        return {"task": "retrieval", "vocab_size": BYTE_VOCAB, "n_classes": 2, "seq_len": self.max_len}

    def input_spec(self) -> dict[str, Any]:
        return {"type": "tokens", "dtype": "int64", "shape": ["batch", 2, self.max_len], "vocab_size": BYTE_VOCAB,
                "preprocess": "each document: UTF-8 bytes, id = byte + 1, first max_len bytes, left-padded with 0",
                "datamodule": {"name": self.name, "options": self.options}}
