"""Every bundled model loads offline and reproduces the accuracy its card records on the check
subset (the first test examples), with the batch size recorded beside it."""

import json
import os

import pytest

import zoo
from zoo.data import MissingDataError, from_input_spec
from zoo.hub import bundled_folder, sha256_file
from zoo.registry import registry
from zoo.train import bundled_models, evaluate

BUNDLED = bundled_models()


def test_the_dense_baseline_is_bundled_and_listed_first():
    sfmnist = bundled_models("sfmnist")
    assert sfmnist[0] == "s4d-sfmnist" and all(registry.entry(n).dataset == "sfmnist" for n in sfmnist)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_reproduces_its_recorded_check(name):
    entry = registry.entry(name)
    folder = bundled_folder(name)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) in (
        ["README.md", "config.json", "model.safetensors"],
        ["README.md", "config.json", "model.safetensors", "tokenizer.json"])
    assert entry.sha256 == sha256_file(folder / "model.safetensors")
    block = json.loads((folder / "config.json").read_text())["spikezoo"]
    recorded = block["evaluation"]
    # the registry's measured numbers are the card's
    assert entry.measured["accuracy"] == block["metrics"]["accuracy"] == recorded["accuracy"]
    model = zoo.load(name)  # offline: HF_HUB_OFFLINE=1 (conftest)
    try:
        data = from_input_spec(block["input_spec"])
    except MissingDataError as error:
        pytest.skip(f"data set for {name} not installed: {error}")
    check = recorded["check"]
    start, stop = map(int, check["indices"].split(":"))
    assert start == 0
    result = evaluate(model, data.split(check["split"]), batch_size=check["batch_size"], limit=stop,
                      seed=check.get("seed", 0))
    assert result["n"] == stop
    assert result["accuracy"] == check["accuracy"]
    assert result["loss"] == pytest.approx(check["loss"], rel=1e-5)
    card = (folder / "README.md").read_text()
    assert f"{recorded['accuracy']:.4f}" in card and "Wall time" in card


def test_zoo_eval_cli_confirms_the_recorded_check(capsys):
    from zoo import cli
    from zoo.data.images import FASHION_MNIST_DIR

    if not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"Debian package dataset-fashion-mnist is not installed ({FASHION_MNIST_DIR} missing)")
    assert cli.main(["eval", "s4d-sfmnist", "--limit", "200"]) == 0
    out = capsys.readouterr().out
    assert "matches the recorded accuracy on the first 200 test examples" in out
