"""ListOps (Nangia & Bowman 2018) as used in Long Range Arena (Tay et al., arXiv 2011.04006).

A sequence is a nested list expression over the digits 0-9 with four operators, e.g.
`[MAX 2 9 [MIN 4 7 ] 0 ]` = 9; the label (10 classes) is its value.

    MIN, MAX   the smallest / largest argument
    MED        the median; for an even count the floor of the mean of the two middle values
    SM         SUM_MOD: the sum modulo 10

Two data modules:
- `listops`: our own generator, deterministic from a seed, with the LRA settings as defaults:
  expressions of 500 to 2,000 tokens, nesting depth at most 10, at most 10 arguments per operator,
  96,000 / 2,000 / 2,000 train / val / test examples. Each split has its own random stream, so the
  test set does not depend on the size of the training set.
- `lra-listops`: the LRA release's TSV files (basic_train.tsv, basic_val.tsv, basic_test.tsv with
  columns Source and Target; the parentheses in Source are layout only and are dropped).

Tokens: 0 pad, 1-10 the digits 0-9, 11 [MIN, 12 [MAX, 13 [MED, 14 [SM, 15 ]. A sequence is padded
on the left to `max_len`, so a causal model reads the whole expression before its last step.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import torch

from zoo.data.base import DataModule, MissingDataError, Split, find_file

PAD = 0
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
VOCAB = ["<pad>"] + [str(d) for d in range(10)] + list(OPERATORS) + ["]"]
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}
CLOSE = TOKEN_ID["]"]
LRA_SIZES = {"train": 96000, "val": 2000, "test": 2000}
LRA_HOW_TO_GET = ("Download the LRA release (lra_release.gz from https://github.com/google-research/long-range-arena) "
                  "and pass its listops-1000 folder as --data DIR")


def apply(op: str, values: list[int]) -> int:
    """The value of operator `op` (one of OPERATORS) on its arguments."""
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def generate_expression(rng: random.Random, max_depth: int = 10, max_args: int = 10,
                        branch_p: float = 0.25, budget: int = 2000) -> tuple[list[str], int] | None:
    """One random expression (tokens, value), or None when it grows past `budget` tokens.

    Every argument is an operator with probability `branch_p` (while the depth allows), else a digit;
    an operator takes 2..max_args arguments; the root is always an operator.
    """
    tokens: list[str] = []

    def node(depth: int) -> int | None:
        if len(tokens) > budget:
            return None
        if depth > 1 and (depth >= max_depth or rng.random() >= branch_p):
            digit = rng.randrange(10)
            tokens.append(str(digit))
            return digit
        op = OPERATORS[rng.randrange(len(OPERATORS))]
        tokens.append(op)
        values = []
        for _ in range(rng.randint(2, max_args)):
            value = node(depth + 1)
            if value is None:
                return None
            values.append(value)
        tokens.append("]")
        return apply(op, values)

    value = node(1)
    return None if value is None else (tokens, value)


def generate(n: int, seed: int | str, min_len: int = 500, max_len: int = 2000, max_depth: int = 10,
             max_args: int = 10, branch_p: float = 0.25) -> list[tuple[list[str], int]]:
    """n expressions whose token counts lie in [min_len, max_len] (rejection sampling), from `seed`."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"ListOps lengths need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        sample = generate_expression(rng, max_depth, max_args, branch_p, budget=max_len)
        if sample is not None and min_len <= len(sample[0]) <= max_len:
            out.append(sample)
    return out


def encode(examples: list[tuple[list[str], int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (n, length) padded on the left with PAD, and labels (n,).

    Raises ValueError when an expression is longer than `length`.
    """
    ids = torch.full((len(examples), length), PAD, dtype=torch.int64)
    for i, (tokens, _) in enumerate(examples):
        if len(tokens) > length:
            raise ValueError(f"ListOps example {i} has {len(tokens)} tokens, more than the length {length}")
        ids[i, length - len(tokens):] = torch.tensor([TOKEN_ID[t] for t in tokens])
    return ids, torch.tensor([value for _, value in examples], dtype=torch.int64)


class ListOpsBase(DataModule):
    dataset = "listops"
    task = "classification"
    metric = "accuracy"

    def model_config(self) -> dict[str, Any]:
        return {"task": "classification", "vocab_size": len(VOCAB), "n_classes": 10,
                "seq_len": self.max_len}

    def tokenizer(self) -> dict[str, Any]:
        return {"type": "word-level", "split": "whitespace", "vocab": VOCAB, "pad_id": PAD,
                "padding": "left", "drop_tokens": ["(", ")"]}

    def input_spec(self) -> dict[str, Any]:
        return {
            "type": "tokens", "dtype": "int64", "shape": ["batch", self.max_len], "vocab_size": len(VOCAB),
            "vocab": VOCAB, "preprocess": "split the expression on whitespace, drop '(' and ')', map tokens to "
                                          "ids with vocab, pad on the left with 0 to the length",
            "datamodule": {"name": self.name, "options": self.options},
        }


class GeneratedListOps(ListOpsBase):
    """ListOps from our generator (offline). Options: seed, the split sizes, and the LRA settings."""

    name = "listops"

    def __init__(self, data_dir: str | None = None, seed: int = 0, n_train: int = LRA_SIZES["train"],
                 n_val: int = LRA_SIZES["val"], n_test: int = LRA_SIZES["test"], min_len: int = 500,
                 max_len: int = 2000, max_depth: int = 10, max_args: int = 10, branch_p: float = 0.25):
        options = {"seed": seed, "n_train": n_train, "n_val": n_val, "n_test": n_test, "min_len": min_len,
                   "max_len": max_len, "max_depth": max_depth, "max_args": max_args, "branch_p": branch_p}
        super().__init__(options)
        self.max_len = max_len
        settings = dict(min_len=min_len, max_len=max_len, max_depth=max_depth, max_args=max_args, branch_p=branch_p)
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            if n:
                self.splits[split] = Split(*encode(generate(n, f"listops-{seed}-{split}", **settings), max_len))


def read_lra_tsv(path: Path) -> list[tuple[list[str], int]]:
    """(tokens, label) pairs from an LRA ListOps TSV file (header Source, Target)."""
    examples = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            tokens = [t for t in row["Source"].split() if t not in ("(", ")")]
            examples.append((tokens, int(row["Target"])))
    return examples


class LRAListOps(ListOpsBase):
    """The LRA release's ListOps files (user-supplied folder `listops-1000`)."""

    name = "lra-listops"

    def __init__(self, data_dir: str | None = None, max_len: int = 2000):
        super().__init__({"max_len": max_len})
        self.max_len = max_len
        if data_dir is None:
            raise MissingDataError(f"LRA ListOps needs --data DIR (basic_train.tsv, basic_val.tsv, "
                                   f"basic_test.tsv). {LRA_HOW_TO_GET}")
        for split in ("train", "val", "test"):
            path = find_file(data_dir, [f"basic_{split}.tsv"], "LRA ListOps", LRA_HOW_TO_GET)
            self.splits[split] = Split(*encode(read_lra_tsv(path), max_len))
