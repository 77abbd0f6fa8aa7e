"""What every data module offers the trainer: splits that batch by index, the model keys the data
fixes, and an input spec that lets an independent program reproduce the preprocessing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch


class MissingDataError(FileNotFoundError):
    """A data set's files are not where they were looked for. The message names the files, where
    they go, and where to get them; it is one line so the CLI can print it as is."""


class Split:
    """One split held in memory: `batch(indices)` returns (inputs, targets) ready for the model.

    `inputs` are stored compactly (e.g. uint8 pixels); `transform` turns a batch of them into the
    model's input, so the preprocessing lives in exactly one place.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
        self.inputs, self.targets = inputs, targets
        self.transform = transform or (lambda x: x)

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.inputs[indices]), self.targets[indices]

    def subset(self, indices: torch.Tensor) -> "Split":
        return Split(self.inputs[indices], self.targets[indices], self.transform)


class StreamSplit(Split):
    """A token stream cut into consecutive windows for language modelling: window i is
    stream[i*L : i*L + L] with targets shifted by one token."""

    def __init__(self, stream: torch.Tensor, seq_len: int):
        if stream.dim() != 1 or len(stream) < seq_len + 1:
            raise ValueError(f"a language-model split needs a 1-D stream of at least {seq_len + 1} tokens, "
                             f"got shape {tuple(stream.shape)}")
        self.stream, self.seq_len = stream, seq_len
        self.n = (len(stream) - 1) // seq_len

    def __len__(self) -> int:
        return self.n

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = indices.unsqueeze(1) * self.seq_len + torch.arange(self.seq_len + 1)  # (B, L+1)
        window = self.stream[offsets].long()
        return window[:, :-1], window[:, 1:]

    def subset(self, indices: torch.Tensor) -> "Split":
        inputs, targets = self.batch(indices)
        return Split(inputs, targets)


class DataModule:
    """Base of all data modules. Subclasses set the attributes and fill `splits`.

    name: the data module's registry name (e.g. "sfmnist"); dataset: the card's data set name
    (e.g. "fashion-mnist"); task: "classification", "lm" or "retrieval"; metric: the headline metric
    ("accuracy", or "bits_per_token" for language models); options: the keyword arguments that
    rebuild this module (stored in the input spec).
    """

    name: str = ""
    dataset: str = ""
    task: str = "classification"
    metric: str = "accuracy"

    def __init__(self, options: dict[str, Any]):
        self.options = options
        self.splits: dict[str, Split] = {}

    def split(self, name: str) -> Split:
        """The named split ("train", "val" or "test"); KeyError naming the ones that exist."""
        if name not in self.splits:
            raise KeyError(f"{self.name} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]

    def model_config(self) -> dict[str, Any]:
        """Config keys the data fixes (d_input or vocab_size, n_classes, seq_len, task)."""
        raise NotImplementedError

    def input_spec(self) -> dict[str, Any]:
        """The preprocessing, complete enough for an independent program; includes `datamodule`
        (name and options) so `zoo eval` can rebuild this module from a model folder."""
        raise NotImplementedError

    def tokenizer(self) -> dict[str, Any] | None:
        """tokenizer.json content for token inputs, or None."""
        return None

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        return f"{self.name} ({self.dataset}): {sizes}"


def find_file(folder: str | os.PathLike, names: list[str], what: str, how_to_get: str) -> Path:
    """The first of `names` that exists in `folder`; otherwise MissingDataError naming the files
    expected, the folder they go in, and how to get them."""
    folder = Path(folder)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MissingDataError(
        f"{what} not found: expected {' or '.join(names)} in {folder}. {how_to_get}")
