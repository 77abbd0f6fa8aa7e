"""A tiny character-level language-modelling corpus that exists offline.

`tiny-text`: Ambrose Bierce, *The Devil's Dictionary* (1911; public domain, copyright expired), from
the Debian package `dict-devil` (/usr/share/dictd/devil.dict.dz, a gzip-compatible dictzip file,
384 KB of English). The text is cut into contiguous train / val / test parts (the first 90 %, the
next 5 %, the last 5 %) and into windows of `seq_len` characters.

Vocabulary (97 ids): 0 = any other character, 1 = newline, 2..96 = the printable ASCII characters
32..126 (space to '~'), in order. It is written to tokenizer.json with the model.
"""

from __future__ import annotations

import gzip
from typing import Any

import torch

from zoo.data.base import DataModule, StreamSplit, find_file

DEVIL_DIR = "/usr/share/dictd"
HOW_TO_GET = ("Install the Debian package: apt-get install dict-devil (The Devil's Dictionary, public domain), "
              "or pass --data DIR with devil.dict.dz or devil.dict in it")
VOCAB = ["<unk>", "\n"] + [chr(c) for c in range(32, 127)]
CHAR_ID = {ch: i for i, ch in enumerate(VOCAB)}


def encode_text(text: str) -> torch.Tensor:
    """Character ids (uint8, one per character) under VOCAB; unknown characters map to 0."""
    return torch.tensor([CHAR_ID.get(ch, 0) for ch in text], dtype=torch.uint8)


def decode_ids(ids: list[int]) -> str:
    return "".join(VOCAB[i] if i else "?" for i in ids)


class TinyText(DataModule):
    """Character-level LM on The Devil's Dictionary. Options: seq_len (window length)."""

    name, dataset, task, metric = "tiny-text", "devils-dictionary", "lm", "bits_per_token"
    fractions = (0.90, 0.05, 0.05)

    def __init__(self, data_dir: str | None = None, seq_len: int = 256):
        super().__init__({"seq_len": seq_len})
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {seq_len}")
        self.seq_len = seq_len
        path = find_file(data_dir or DEVIL_DIR, ["devil.dict.dz", "devil.dict"], "The Devil's Dictionary", HOW_TO_GET)
        if path.suffix == ".dz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
        ids = encode_text(raw.decode("utf-8", errors="replace"))
        a = int(len(ids) * self.fractions[0])
        b = a + int(len(ids) * self.fractions[1])
        self.splits = {"train": StreamSplit(ids[:a], seq_len), "val": StreamSplit(ids[a:b], seq_len),
                       "test": StreamSplit(ids[b:], seq_len)}

    def model_config(self) -> dict[str, Any]:
        return {"task": "lm", "vocab_size": len(VOCAB), "seq_len": self.seq_len, "bidirectional": False}

    def tokenizer(self) -> dict[str, Any]:
        return {"type": "char-level", "vocab": VOCAB, "unk_id": 0}

    def input_spec(self) -> dict[str, Any]:
        return {
            "type": "tokens", "dtype": "int64", "shape": ["batch", self.seq_len], "vocab_size": len(VOCAB),
            "source": "The Devil's Dictionary (Debian dict-devil, devil.dict.dz, decoded as UTF-8)",
            "preprocess": "one id per character under tokenizer.json's vocab (unknown -> 0); contiguous "
                          "splits 90/5/5 %; windows of seq_len characters, targets shifted by one",
            "datamodule": {"name": self.name, "options": self.options},
        }
