"""WikiText-103, word level, from a user-supplied folder: vocabulary, token streams, LM windows.

The folder holds the three standard files of the word-level release `wikitext-103-v1`:
wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens (already tokenised text, rare words already
replaced by the literal word `<unk>`). Tokenisation follows Transformer-XL's WikiText-103 pipeline,
which the S4 and SpikingSSMs language models use: every line (empty ones too) is split on whitespace
and ends with `<eos>`; no lowercasing; the vocabulary is `<eos>` followed by every word of
train + valid + test by descending count (ties in order of first appearance), 267,735 types in all.
That order is what the adaptive softmax cutoffs (19997, 39997, 199997) assume.

For the trainer (`zoo train`):

    from zoo.data.wikitext103 import WikiText103
    data = WikiText103(data_dir="/data/wikitext-103", seq_len=8192, cache_dir="~/.cache/spikezoo")
    x, y = data.split("train").batch(torch.arange(2))   # (2, 8192) int64 inputs, next-token targets
    data.model_config()   # {"task": "lm", "vocab_size": 267735, "seq_len": 8192}
    data.tokenizer()      # tokenizer.json content, to ship with the weights

`WikiText103(data_dir, seq_len=8192, cache_dir=None)` raises MissingDataError (a FileNotFoundError)
naming the missing files, the folder, and where to get them. Reading and encoding the 103M training
tokens takes a few minutes in Python; with `cache_dir` the vocabulary and the encoded streams are
stored there (JSON and .npy, no pickles) and reused while the source files are unchanged.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from zoo.data.base import DataModule, MissingDataError, StreamSplit

FILES = {"train": "wiki.train.tokens", "val": "wiki.valid.tokens", "test": "wiki.test.tokens"}
HOW_TO_GET = (
    "Get the word-level WikiText-103 release `wikitext-103-v1.zip` (Merity et al. 2016; the S3 bucket "
    "s3.amazonaws.com/research.metamind.io/wikitext/ that once served it, or any mirror of that zip), unzip "
    "it and pass the folder `wikitext-103` that holds the three files; or export the Hugging Face data set "
    "Salesforce/wikitext, config wikitext-103-v1, writing the `text` column of each split unchanged, one "
    "row per line, to these three file names. The raw release (wiki.*.raw, wikitext-103-raw-v1) is the "
    "untokenised variant and does not fit")
EOS, UNK = "<eos>", "<unk>"
TOKENIZER_TYPE = "spikezoo-word-level"
PAPER_VOCAB_SIZE = 267_735


# ---- tokenizer ----------------------------------------------------------------------------------
class WordTokenizer:
    """Word-level vocabulary: text splits on whitespace, a line break is `<eos>`, unknown words are
    `<unk>`. `to_dict()` is the content of tokenizer.json; `from_dict` reads it back.
    """

    def __init__(self, words: list[str], eos: str = EOS, unk: str = UNK):
        if len(set(words)) != len(words):
            raise ValueError("the vocabulary lists a word twice")
        for special in (eos, unk):
            if special not in words:
                raise ValueError(f"the vocabulary has no {special!r} token")
        if any(not w or any(c.isspace() for c in w) for w in words):
            raise ValueError("vocabulary words must be non-empty and contain no whitespace")
        self.words, self.eos, self.unk = list(words), eos, unk
        self.index = {w: i for i, w in enumerate(self.words)}
        self.eos_id, self.unk_id = self.index[eos], self.index[unk]

    @classmethod
    def build(cls, lines: Iterable[str]) -> "WordTokenizer":
        """`<eos>` first, then the words of `lines` by descending count (ties: first appearance);
        `<unk>` is appended if the text never contains it."""
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(line.split())
        counts.pop(EOS, None)
        words = [EOS] + [w for w, _ in counts.most_common()]
        if UNK not in counts:
            words.append(UNK)
        return cls(words)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: its words, and `<eos>` at the end of every line that ends with a line
        break (so a prompt without a final newline gets no `<eos>`)."""
        ids = []
        for line in text.splitlines(keepends=True):
            ids.extend(self.index.get(w, self.unk_id) for w in line.split())
            if line.endswith(("\n", "\r")):
                ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Words joined by spaces, `<eos>` as a line break. Raises ValueError for an id out of range."""
        lines, line = [], []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.words):
                raise ValueError(f"token id {i} is outside the vocabulary [0, {len(self.words)})")
            if i == self.eos_id:
                lines.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(self.words[i])
        return "".join(lines) + " ".join(line)

    def to_dict(self) -> dict[str, Any]:
        return {"type": TOKENIZER_TYPE, "version": 1, "eos": self.eos, "unk": self.unk, "lowercase": False,
                "split": "whitespace; a line break is <eos>", "vocab": self.words}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WordTokenizer":
        """Read tokenizer.json content. Raises ValueError when it is not a word-level tokenizer dict."""
        if not isinstance(data, dict) or data.get("type") != TOKENIZER_TYPE or not isinstance(data.get("vocab"), list):
            kind = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"expected a {TOKENIZER_TYPE!r} tokenizer dict with a 'vocab' list, got type {kind!r}")
        return cls(data["vocab"], data.get("eos", EOS), data.get("unk", UNK))


# ---- files --------------------------------------------------------------------------------------
def check_folder(folder: str | os.PathLike | None) -> dict[str, Path]:
    """The three token files of `folder` by split name ("train", "val", "test").

    Raises MissingDataError (a FileNotFoundError) naming every missing file, the folder, and how to
    get the files; it also points at a `wikitext-103` subfolder or raw-release files if it sees them.
    """
    if folder is None:
        raise MissingDataError(f"WikiText-103 needs a folder (--data DIR) with {', '.join(FILES.values())}. "
                               f"{HOW_TO_GET}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MissingDataError(f"WikiText-103 folder {folder} does not exist; it must hold "
                               f"{', '.join(FILES.values())}. {HOW_TO_GET}")
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        hint = ""
        if all((folder / "wikitext-103" / name).is_file() for name in FILES.values()):
            hint = f" They are in {folder / 'wikitext-103'}: pass that folder."
        elif any(folder.glob("wiki.*.raw")):
            hint = " The folder holds the raw release (wiki.*.raw); the word-level one is needed."
        raise MissingDataError(f"WikiText-103 folder {folder} lacks {', '.join(missing)}.{hint} {HOW_TO_GET}")
    return {split: folder / name for split, name in FILES.items()}


def read_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        yield from f


def encode_file(path: Path, tokenizer: WordTokenizer, chunk: int = 1 << 20) -> torch.Tensor:
    """The whole file as one int32 stream (every line's words, then `<eos>`), built in chunks so
    that 100M tokens do not pass through a Python list at once."""
    parts, buf = [], []
    index, unk, eos = tokenizer.index, tokenizer.unk_id, tokenizer.eos_id
    for line in read_lines(path):
        buf.extend(index.get(w, unk) for w in line.split())
        buf.append(eos)
        if len(buf) >= chunk:
            parts.append(np.asarray(buf, dtype=np.int32))
            buf = []
    parts.append(np.asarray(buf, dtype=np.int32))
    return torch.from_numpy(np.concatenate(parts))


def load(folder: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None
         ) -> tuple[WordTokenizer, dict[str, torch.Tensor]]:
    """The tokenizer (built over train + valid + test) and the three encoded int32 streams.

    With `cache_dir`, both are read from / written to it, keyed by the files' sizes and mtimes.
    Raises MissingDataError as `check_folder` does.
    """
    files = check_folder(folder)
    stamp = {split: [p.stat().st_size, int(p.stat().st_mtime)] for split, p in files.items()}
    cache = Path(cache_dir).expanduser() / "wikitext103" if cache_dir else None
    if cache and (cache / "stamp.json").is_file() and json.loads((cache / "stamp.json").read_text()) == stamp:
        tokenizer = WordTokenizer.from_dict(json.loads((cache / "tokenizer.json").read_text()))
        streams = {s: torch.from_numpy(np.load(cache / f"{s}.npy", allow_pickle=False)) for s in files}
        return tokenizer, streams
    tokenizer = WordTokenizer.build(line for split in ("train", "val", "test") for line in read_lines(files[split]))
    streams = {split: encode_file(path, tokenizer) for split, path in files.items()}
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        for split, ids in streams.items():
            np.save(cache / f"{split}.npy", ids.numpy(), allow_pickle=False)
        (cache / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict()))
        (cache / "stamp.json").write_text(json.dumps(stamp))  # last: marks the cache complete
    return tokenizer, streams


# ---- data module --------------------------------------------------------------------------------
class WikiText103(DataModule):
    """Language modelling on WikiText-103: splits "train", "val", "test" of consecutive windows of
    `seq_len` tokens with next-token targets (zoo.data.base.StreamSplit)."""

    name, dataset, task, metric = "wikitext103", "wikitext-103", "lm", "perplexity"

    def __init__(self, data_dir: str | None = None, seq_len: int = 8192, cache_dir: str | None = None):
        super().__init__({"seq_len": seq_len})
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.seq_len = seq_len
        self._tokenizer, streams = load(data_dir, cache_dir)
        self.splits = {split: StreamSplit(ids, seq_len) for split, ids in streams.items()}

    def model_config(self) -> dict[str, Any]:
        return {"task": "lm", "vocab_size": len(self._tokenizer), "seq_len": self.seq_len}

    def input_spec(self) -> dict[str, Any]:
        return {
            "type": "tokens", "dtype": "int64", "shape": ["batch", self.seq_len],
            "vocab_size": len(self._tokenizer),
            "source": "WikiText-103 word-level token files (wikitext-103-v1)",
            "preprocess": "each line: whitespace split, then <eos>; ids from tokenizer.json (<eos> first, "
                          "then words by descending count over train+valid+test); windows of seq_len "
                          "consecutive tokens, targets shifted by one",
            "datamodule": {"name": self.name, "options": self.options},
        }

    def tokenizer(self) -> dict[str, Any]:
        return self._tokenizer.to_dict()
