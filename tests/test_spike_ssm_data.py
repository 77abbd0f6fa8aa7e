"""WikiText-103 reader: missing-file errors, vocabulary order, encoding, windows, cache, tokenizer."""

import json

import pytest
import torch

from zoo.data.base import MissingDataError
from zoo.data.wikitext103 import FILES, WikiText103, WordTokenizer, check_folder, load

TRAIN = " = Title = \n\n the cat sat on the mat \n the dog <unk> \n"
VALID = " the cat ran \n"
TEST = " a dog sat \n\n"


def write_corpus(folder, files=("train", "val", "test")):
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"train": TRAIN, "val": VALID, "test": TEST}
    for split in files:
        (folder / FILES[split]).write_text(texts[split], encoding="utf-8")
    return folder


def test_missing_folder_names_every_file_and_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        check_folder(tmp_path / "nowhere")
    message = str(error.value)
    assert isinstance(error.value, MissingDataError)
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens", "wikitext-103-v1"):
        assert name in message
    with pytest.raises(MissingDataError, match="--data DIR"):
        check_folder(None)


def test_incomplete_folder_names_exactly_the_missing_files(tmp_path):
    folder = write_corpus(tmp_path / "wt", files=("train",))
    with pytest.raises(MissingDataError) as error:
        WikiText103(str(folder), seq_len=4)
    message = str(error.value)
    assert "lacks wiki.valid.tokens, wiki.test.tokens." in message and "wiki.train.tokens," not in message
    write_corpus(tmp_path / "parent" / "wikitext-103")
    with pytest.raises(MissingDataError, match="pass that folder"):
        check_folder(tmp_path / "parent")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "wiki.train.raw").write_text("x")
    with pytest.raises(MissingDataError, match="raw release"):
        check_folder(raw)


def test_vocabulary_and_streams_follow_the_transformer_xl_pipeline(tmp_path):
    tokenizer, streams = load(write_corpus(tmp_path / "wt"))
    # <eos> first, then counts over train+valid+test: the 5, cat/dog/sat 3... ties by first appearance
    counts = {}
    for text in (TRAIN, VALID, TEST):
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    by_count = sorted(counts, key=lambda w: -counts[w])  # stable: first appearance breaks ties
    assert tokenizer.words == ["<eos>"] + by_count
    assert tokenizer.words[:3] == ["<eos>", "the", "="] and tokenizer.words.index("<unk>") > 0
    eos = tokenizer.eos_id
    expected_train = []
    for line in TRAIN.splitlines():  # every line, empty ones too, ends with <eos>
        expected_train += [tokenizer.index[w] for w in line.split()] + [eos]
    assert streams["train"].tolist() == expected_train and streams["train"].dtype == torch.int32
    assert streams["test"].tolist() == [tokenizer.index["a"], tokenizer.index["dog"], tokenizer.index["sat"], eos, eos]


def test_data_module_windows_and_model_keys(tmp_path):
    data = WikiText103(str(write_corpus(tmp_path / "wt")), seq_len=3)
    x, y = data.split("train").batch(torch.tensor([0, 2]))
    stream = data.split("train").stream.tolist()
    assert x.dtype == torch.int64 and x.tolist() == [stream[0:3], stream[6:9]]
    assert y.tolist() == [stream[1:4], stream[7:10]]
    assert data.model_config() == {"task": "lm", "vocab_size": len(data.tokenizer()["vocab"]), "seq_len": 3}
    assert data.input_spec()["datamodule"] == {"name": "wikitext103", "options": {"seq_len": 3}}
    assert WordTokenizer.from_dict(json.loads(json.dumps(data.tokenizer()))).words == data.tokenizer()["vocab"]


def test_cache_is_reused_and_invalidated(tmp_path):
    folder = write_corpus(tmp_path / "wt")
    tokenizer, streams = load(folder, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "wikitext103" / "train.npy").is_file()
    (tmp_path / "cache" / "wikitext103" / "test.npy").write_bytes(b"not numpy")  # would break a re-read
    (folder / FILES["test"]).write_text(" new words here \n")  # the source changed: cache ignored
    tokenizer2, streams2 = load(folder, cache_dir=tmp_path / "cache")
    assert "new" in tokenizer2.index and len(streams2["test"]) == 4
    tokenizer3, streams3 = load(folder, cache_dir=tmp_path / "cache")  # now from the cache
    assert tokenizer3.words == tokenizer2.words and torch.equal(streams3["train"], streams2["train"])


def test_tokenizer_round_trip_and_errors():
    tokenizer = WordTokenizer(["<eos>", "<unk>", "the", "cat"])
    ids = tokenizer.encode("the cat\nthe dog\n\nthe")
    assert ids == [2, 3, 0, 2, 1, 0, 0, 2]
    assert tokenizer.decode(ids) == "the cat\nthe <unk>\n\nthe"
    assert tokenizer.encode(tokenizer.decode(ids)) == ids
    with pytest.raises(ValueError, match="outside"):
        tokenizer.decode([9])
    with pytest.raises(ValueError, match="<unk>"):
        WordTokenizer(["<eos>", "a"])
    with pytest.raises(ValueError, match="twice"):
        WordTokenizer(["<eos>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="vocab"):
        WordTokenizer.from_dict({"type": "bpe"})
