"""Data modules for training and evaluation, found by name.

    from zoo.data import get_datamodule
    data = get_datamodule("sfmnist")                    # Debian's dataset-fashion-mnist
    x, y = data.split("train").batch(torch.arange(8))   # (8, 784, 1), (8,)

Names: sfmnist / psfmnist (sequential / permuted Fashion-MNIST, offline), smnist / psmnist (MNIST,
user-supplied IDX files), listops (our generator of the LRA ListOps task, offline), lra-listops
(the LRA release's ListOps TSV files, user-supplied), lra-cifar10-gray / lra-imdb-char / lra-aan
(LRA Image, Text and Retrieval from their user-supplied release files), tiny-text (The Devil's Dictionary from the
Debian package dict-devil, character level), wikitext103 (user-supplied word-level token files).
A data module that needs files raises MissingDataError naming them, where they go and where to get
them. `ALIASES` maps the data-set names that pretrained entries use to these modules.
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo.data.base import DataModule, MissingDataError, Split, StreamSplit

# name -> "module:Class"; modules are imported only when their data set is asked for
DATAMODULES: dict[str, str] = {
    "sfmnist": "zoo.data.images:SequentialFashionMNIST",
    "psfmnist": "zoo.data.images:PermutedFashionMNIST",
    "smnist": "zoo.data.images:SequentialMNIST",
    "psmnist": "zoo.data.images:PermutedMNIST",
    "listops": "zoo.data.listops:GeneratedListOps",
    "lra-listops": "zoo.data.listops:LRAListOps",
    "lra-cifar10-gray": "zoo.data.lra:CIFAR10Gray",
    "lra-imdb-char": "zoo.data.lra:IMDBChars",
    "lra-aan": "zoo.data.lra:AANRetrieval",
    "tiny-text": "zoo.data.text:TinyText",
    "wikitext103": "zoo.data.wikitext103:WikiText103",
}


# the data-set names pretrained entries use, for the data modules that read them
ALIASES: dict[str, str] = {
    "fashion-mnist-sequential": "sfmnist", "fashion-mnist-permuted": "psfmnist",
    "mnist-sequential": "smnist", "mnist-permuted": "psmnist", "cifar10-gray-sequential": "lra-cifar10-gray",
}


def datamodule_names() -> list[str]:
    return sorted(DATAMODULES)


def get_datamodule(name: str, data_dir: str | None = None, **options: Any) -> DataModule:
    """Build the data module `name` reading files from `data_dir` (None: its default location).

    Raises ValueError for an unknown name or option, MissingDataError when its files are absent.
    """
    name = ALIASES.get(name, name)
    if name not in DATAMODULES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(datamodule_names())}")
    module, cls_name = DATAMODULES[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        return cls(data_dir=data_dir, **options)
    except TypeError as error:
        if "unexpected keyword" in str(error):
            raise ValueError(f"data set {name!r}: {error}") from None
        raise


def from_input_spec(spec: dict[str, Any], data_dir: str | None = None) -> DataModule:
    """Rebuild the data module recorded in a model folder's input spec (config.json).

    Raises ValueError when the spec records no data module.
    """
    recorded = spec.get("datamodule")
    if not recorded:
        raise ValueError("the model's input spec records no data module; pass the data set explicitly")
    return get_datamodule(recorded["name"], data_dir, **recorded.get("options", {}))


__all__ = ["ALIASES", "DATAMODULES", "DataModule", "MissingDataError", "Split", "StreamSplit", "datamodule_names",
           "from_input_spec", "get_datamodule"]
