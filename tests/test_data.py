"""Data modules: IDX reading, Fashion-MNIST preprocessing and permutation, ListOps against an
independent evaluator, the tiny text corpus, LRA readers on small hand-made files, and the errors
for missing files."""

import gzip
import json
import math
import random
import statistics
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.data import MissingDataError, from_input_spec, get_datamodule, listops
from zoo.data import text as textmod
from zoo.data.images import FASHION_MNIST_DIR, STATS, make_permutation, read_idx

HAVE_FMNIST = Path(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Debian package dataset-fashion-mnist is not installed "
                                                          f"({FASHION_MNIST_DIR} missing)")


# ---- IDX ----------------------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    array = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    write_idx(tmp_path / f"x{suffix}", array)
    np.testing.assert_array_equal(read_idx(tmp_path / f"x{suffix}"), array)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x00")
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")


def test_tiny_mnist_folder_is_read_in_order(tmp_path):
    """A user-supplied MNIST folder: sequences equal the hand-computed preprocessing."""
    rng = np.random.default_rng(1)
    images = {"train": rng.integers(0, 256, (12, 28, 28)), "t10k": rng.integers(0, 256, (4, 28, 28))}
    for prefix, imgs in images.items():
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", imgs)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(len(imgs)) % 10)
    data = get_datamodule("psmnist", str(tmp_path), val_size=2, permutation_kind="random", permutation_seed=3)
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [10, 2, 4]
    x, y = data.split("val").batch(torch.tensor([1]))
    mean, std = STATS["mnist"]
    perm = make_permutation("random", 3)
    expected = [(images["train"][11].reshape(-1)[p] / 255 - mean) / std for p in perm]
    np.testing.assert_allclose(x[0, :, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert y.tolist() == [11 % 10]


def test_bitreversal_order_by_hand():
    perm = make_permutation("bitreversal")
    assert sorted(perm) == list(range(784))
    # 10-bit reversal: 1 = 0000000001 -> 1000000000 = 512, 2 -> 256, 3 -> 768; 1023 -> 1023 is dropped
    assert perm[:6] == [0, 512, 256, 768, 128, 640]
    with pytest.raises(ValueError, match="permutation kind"):
        make_permutation("spiral")


# ---- Fashion-MNIST ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sfmnist():
    return get_datamodule("sfmnist")


@needs_fmnist
def test_sfmnist_shapes_and_splits(sfmnist):
    assert [len(sfmnist.split(s)) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    x, y = sfmnist.split("test").batch(torch.arange(5))
    assert x.shape == (5, 784, 1) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) <= set(range(10))
    assert sfmnist.model_config() == {"task": "classification", "d_input": 1, "vocab_size": 0,
                                      "n_classes": 10, "seq_len": 784}


@needs_fmnist
def test_sfmnist_stats_and_preprocessing_match_the_raw_files(sfmnist):
    with gzip.open(Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(60000, 784) / 255.0
    mean, std = STATS["fashion-mnist"]
    assert abs(raw.mean() - mean) < 1e-4 and abs(raw.std() - std) < 1e-4
    x, _ = sfmnist.split("val").batch(torch.tensor([0, 4999]))
    np.testing.assert_allclose(x[:, :, 0].numpy(), (raw[[55000, 59999]] - mean) / std, rtol=1e-5, atol=1e-5)


@needs_fmnist
def test_psfmnist_permutation_is_fixed_by_its_seed_and_stored_in_the_spec():
    a = get_datamodule("psfmnist", permutation_seed=7)
    b = get_datamodule("psfmnist", permutation_seed=7)
    assert a.permutation == b.permutation and sorted(a.permutation) == list(range(784))
    assert a.permutation != get_datamodule("psfmnist", permutation_seed=8).permutation
    spec = json.loads(json.dumps(a.input_spec()))  # as it travels in config.json
    assert spec["permutation"] == a.permutation
    rebuilt = from_input_spec(spec)
    ids = torch.tensor([0, 3, 9])
    torch.testing.assert_close(rebuilt.split("test").batch(ids)[0], a.split("test").batch(ids)[0], rtol=0, atol=0)
    seq = get_datamodule("sfmnist").split("test").batch(ids)[0]
    torch.testing.assert_close(a.split("test").batch(ids)[0][:, :, 0], seq[:, a.permutation, 0], rtol=0, atol=0)


# ---- missing data -------------------------------------------------------------------------------
def test_missing_fashion_mnist_names_files_and_the_package(tmp_path):
    with pytest.raises(MissingDataError) as info:
        get_datamodule("sfmnist", str(tmp_path))
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message


@pytest.mark.parametrize("name, needed", [("psmnist", "MNIST IDX files"), ("lra-listops", "lra_release")])
def test_user_supplied_data_sets_say_what_to_download(tmp_path, name, needed):
    for folder in (None, str(tmp_path)):
        with pytest.raises(MissingDataError, match=needed):
            get_datamodule(name, folder)


def test_unknown_data_set_and_option():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        get_datamodule("cifar")
    with pytest.raises(ValueError, match="bogus"):
        get_datamodule("listops", bogus=1)


# ---- ListOps ------------------------------------------------------------------------------------
def evaluate_by_stack(tokens: list[str]) -> int:
    """An independent evaluator: one left-to-right pass with an explicit stack (no recursion)."""
    stack: list[list] = []
    result = None
    for token in tokens:
        if token.startswith("["):
            stack.append([token])
        elif token == "]":
            op, *args = stack.pop()
            if op == "[MIN":
                value = min(args)
            elif op == "[MAX":
                value = max(args)
            elif op == "[MED":
                value = math.floor(statistics.median(args))
            else:
                value = sum(args) % 10
            if stack:
                stack[-1].append(value)
            else:
                result = value
        else:
            stack[-1].append(int(token))
    assert not stack
    return result


def depth_and_widths(tokens: list[str]) -> tuple[int, int]:
    depth = deepest = widest = 0
    counts = []
    for token in tokens:
        if token.startswith("["):
            if counts:
                counts[-1] += 1
            depth += 1
            deepest = max(deepest, depth)
            counts.append(0)
        elif token == "]":
            depth -= 1
            widest = max(widest, counts.pop())
        else:
            counts[-1] += 1
    return deepest, widest


@pytest.mark.parametrize("text, value", [
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9), ("[MED 1 2 3 4 ]", 2), ("[MED 7 1 3 ]", 3), ("[SM 5 6 7 ]", 8),
    ("[MIN [SM 9 9 ] [MAX 0 1 ] ]", 1),
])
def test_independent_evaluator_by_hand(text, value):
    assert evaluate_by_stack(text.split()) == value


@pytest.mark.parametrize("op, args, value", [
    ("[MIN", [4, 7, 2], 2), ("[MAX", [4, 7, 2], 7), ("[MED", [1, 2, 3, 4], 2), ("[MED", [8, 1, 3], 3),
    ("[MED", [9, 8], 8), ("[SM", [5, 6, 7], 8), ("[SM", [9, 1], 0),
])
def test_listops_operators_by_hand(op, args, value):
    assert listops.apply(op, args) == value


def test_generated_listops_labels_match_an_independent_evaluator():
    examples = listops.generate(300, seed=5, min_len=20, max_len=300, max_depth=6, max_args=5)
    for tokens, value in examples:
        assert 20 <= len(tokens) <= 300
        assert evaluate_by_stack(tokens) == value
        depth, width = depth_and_widths(tokens)
        assert depth <= 6 and 2 <= width <= 5
    assert len({v for _, v in examples}) == 10  # every class occurs


def test_lra_length_listops_in_range_and_deterministic():
    examples = listops.generate(20, seed="x")
    assert all(500 <= len(t) <= 2000 and evaluate_by_stack(t) == v for t, v in examples)
    assert examples == listops.generate(20, seed="x") and examples != listops.generate(20, seed="y")


def test_listops_module_splits_are_independent_of_each_other():
    small = dict(min_len=10, max_len=64, max_depth=4, max_args=4)
    a = get_datamodule("listops", n_train=16, n_val=4, n_test=8, **small)
    b = get_datamodule("listops", n_train=32, n_val=4, n_test=8, **small)
    torch.testing.assert_close(a.split("test").inputs, b.split("test").inputs, rtol=0, atol=0)
    x, y = a.split("test").batch(torch.arange(8))
    assert x.shape == (8, 64) and x.dtype == torch.int64
    for row, label in zip(x, y):
        tokens = [listops.VOCAB[i] for i in row.tolist() if i != listops.PAD]
        assert row[-1] == listops.CLOSE and evaluate_by_stack(tokens) == int(label)
        assert (row[:64 - len(tokens)] == listops.PAD).all()  # padded on the left
    assert a.model_config()["vocab_size"] == len(listops.VOCAB)


def test_lra_listops_tsv_reader(tmp_path):
    rows = [("( ( [MAX 2 9 ) [MIN 4 7 ] 0 ) ]", 9), ("[SM 5 6 7 ]", 8)]
    for split in ("train", "val", "test"):
        with open(tmp_path / f"basic_{split}.tsv", "w") as f:
            f.write("Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    data = get_datamodule("lra-listops", str(tmp_path), max_len=16)
    x, y = data.split("train").batch(torch.arange(2))
    assert y.tolist() == [9, 8]
    first = [listops.VOCAB[i] for i in x[0].tolist() if i]
    assert first == "[MAX 2 9 [MIN 4 7 ] 0 ]".split()


def test_random_expressions_fuzz():
    rng = random.Random(11)
    for _ in range(200):
        sample = listops.generate_expression(rng, max_depth=5, max_args=6, budget=400)
        if sample is not None:
            assert evaluate_by_stack(sample[0]) == sample[1]


# ---- tiny text ----------------------------------------------------------------------------------
def test_tiny_text_windows_from_a_user_folder(tmp_path):
    text = "The Devil's Dictionary.\nABSURDITY, n. A statement ... é" * 40
    (tmp_path / "devil.dict").write_text(text)
    data = get_datamodule("tiny-text", str(tmp_path), seq_len=16)
    train = data.split("train")
    n = len(text)
    assert len(train.stream) == int(0.9 * n) and sum(len(data.split(s).stream) for s in ("train", "val", "test")) == n
    x, y = train.batch(torch.tensor([0, 2]))
    assert x.shape == (2, 16) and x.dtype == torch.int64
    assert textmod.decode_ids(x[0].tolist()) == text[:16]
    assert textmod.decode_ids(x[1].tolist()) == text[32:48]
    torch.testing.assert_close(y[:, :-1], x[:, 1:], rtol=0, atol=0)  # next-character targets
    assert textmod.encode_text("é\n~ ").tolist() == [0, 1, 96, 2]
    assert data.model_config()["vocab_size"] == 97 == len(data.tokenizer()["vocab"])


def test_tiny_text_missing_names_the_package(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install dict-devil"):
        get_datamodule("tiny-text", str(tmp_path))


# ---- LRA from user files ------------------------------------------------------------------------
def test_lra_cifar10_gray_from_binary_batches(tmp_path):
    rng = np.random.default_rng(2)
    records = {}
    for name, n in [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]:
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1).astype(np.uint8)
        rec.tofile(tmp_path / name)
        records[name] = rec
    data = get_datamodule("cifar10-gray-sequential", str(tmp_path), val_size=2)
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [8, 2, 3]
    x, y = data.split("test").batch(torch.tensor([2]))
    rec = records["test_batch.bin"][2]
    r, g, b = (rec[1 + 1024 * c:1 + 1024 * (c + 1)] / 255.0 for c in range(3))
    expected = ((0.299 * r + 0.587 * g + 0.114 * b) - 122.6 / 255) / (61.0 / 255)
    assert x.shape == (1, 1024, 1) and int(y) == rec[0]
    np.testing.assert_allclose(x[0, :, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    _, y_val = data.split("val").batch(torch.arange(2))
    assert y_val.tolist() == records["data_batch_5.bin"][:, 0].tolist()


def test_lra_imdb_bytes_truncated_and_left_padded(tmp_path):
    reviews = {"pos": ["great film", "loved it, é"], "neg": ["dull", "bad acting all along"]}
    for split in ("train", "test"):
        for sentiment, texts in reviews.items():
            (tmp_path / split / sentiment).mkdir(parents=True)
            for i, text in enumerate(texts):
                (tmp_path / split / sentiment / f"{i}_1.txt").write_text(text, encoding="utf-8")
    data = get_datamodule("lra-imdb-char", str(tmp_path), max_len=12)
    x, y = data.split("test").batch(torch.arange(4))
    assert x.shape == (4, 12) and x.dtype == torch.int64 and sorted(y.tolist()) == [0, 0, 1, 1]
    decoded = {bytes(v - 1 for v in row.tolist() if v).decode("utf-8", "replace"): int(label)
               for row, label in zip(x, y)}
    assert decoded == {"great film": 1, "loved it, \u00e9": 1, "dull": 0, "bad acting a": 0}
    dull = next(row for row in x if int((row != 0).sum()) == 4)
    assert (dull[:8] == 0).all()  # left padding


def test_lra_aan_pairs_feed_the_retrieval_head(tmp_path):
    rows = [("1", "a", "b", "first paper", "second"), ("0", "c", "d", "x" * 30, "y")]
    for split in ("train", "eval", "test"):
        (tmp_path / f"new_aan_pairs.{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    data = get_datamodule("lra-aan", str(tmp_path), max_len=16)
    x, y = data.split("val").batch(torch.arange(2))
    assert x.shape == (2, 2, 16) and y.tolist() == [1, 0]
    assert bytes(v - 1 for v in x[0, 1].tolist() if v) == b"second"
    model = zoo.create("s4d", d_model=8, n_layers=1, d_state=4, **data.model_config())
    assert model(x).shape == (2, 2)


@pytest.mark.parametrize("name, hint", [("lra-cifar10-gray", "cifar-10-binary.tar.gz"),
                                        ("lra-imdb-char", "aclImdb_v1.tar.gz"), ("lra-aan", "new_aan_pairs")])
def test_lra_files_missing(tmp_path, name, hint):
    for folder in (None, str(tmp_path)):
        with pytest.raises(MissingDataError, match=hint):
            get_datamodule(name, folder)
