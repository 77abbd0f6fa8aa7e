"""Model folders: save/load round trip, integrity, pickles, strict keys, HF cache, cards, timm."""

import json
import os
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

import zoo
from zoo.hub import IntegrityError, WeightsError, sha256_file


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = zoo.create("s4d", d_model=8, d_state=4, n_layers=2, seq_len=32)
    m(m.example_input(4))  # update BatchNorm running statistics so they are non-trivial
    return m.eval()


def test_save_then_load_is_bit_exact(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "s4d-toy", dataset="fashion-mnist",
                                 metrics={"accuracy": 0.5})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = zoo.load(str(folder))
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = model.example_input(2)
    assert torch.equal(model(x), loaded(x))
    assert not loaded.training


def test_config_json_is_timm_compatible_with_a_spikezoo_block(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "s4d" and cfg["num_classes"] == 10
    assert cfg["model_args"]["d_model"] == 8 and "pretrained_cfg" in cfg
    block = cfg["spikezoo"]
    assert block["format_version"] == 1 and block["task"] == "classification"
    assert block["input_spec"]["shape"] == ["batch", 32, 1]
    assert block["files"]["model.safetensors"]["sha256"] == sha256_file(folder / "model.safetensors")


def test_model_card_metadata(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "m", dataset="fashion-mnist", metrics={"accuracy": 0.75},
                                 paper="arXiv:2206.11893")
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "spikezoo" and "s4d" in data["tags"]
    assert data["metrics"] == ["accuracy"] and data["license"] == "apache-2.0"
    result = data["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "value": 0.75}
    assert "| `d_model` | `8` |" in card.text


def test_flipped_byte_fails_the_sha256_check(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        zoo.load(str(folder))


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt"])
def test_pickled_checkpoints_are_refused(model, tmp_path, suffix):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    os.remove(folder / "model.safetensors")
    torch.save(model.state_dict(), folder / f"pytorch_model{suffix}")
    with pytest.raises(WeightsError, match="refusing to load pickled"):
        zoo.load(str(folder))
    with pytest.raises(WeightsError, match="refusing to load pickled"):
        zoo.load(str(folder / f"pytorch_model{suffix}"))


def test_renamed_key_fails_strict_loading_naming_the_key(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["decoder.weight_renamed"] = state.pop("decoder.weight")
    save_file(state, folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["spikezoo"]["files"]["model.safetensors"]["sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"missing keys: decoder\.weight .*unexpected keys: decoder\.weight_renamed"):
        zoo.load(str(folder))


def test_corrupt_safetensors_is_a_clear_error(model, tmp_path):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file at all")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["spikezoo"]["files"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        zoo.load(str(folder))


def test_save_is_atomic_a_failed_save_keeps_the_old_folder(model, tmp_path, monkeypatch):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_card(*args, **kwargs):
        raise RuntimeError("card generation failed")

    monkeypatch.setattr("zoo.cards.make_card", broken_card)
    other = zoo.create("s4d", d_model=8, d_state=4, n_layers=2, seq_len=32)
    with pytest.raises(RuntimeError, match="card generation failed"):
        zoo.save_pretrained(other, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind


def build_hf_cache(cache: "os.PathLike", repo: str, folder, commit: str = "a" * 40, ref: str = "main"):
    """Lay out a Hugging Face cache entry (blobs, refs, snapshots) by hand, as hf_hub_download would."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / ref).write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "blobs").mkdir()
    for f in folder.iterdir():
        blob = root / "blobs" / sha256_file(f)
        shutil.copy(f, blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return snap


def test_hf_hub_name_loads_from_the_cache_offline(model, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    folder = zoo.save_pretrained(model, tmp_path / "m")
    build_hf_cache(tmp_path / "cache", "spikezoo/s4d-toy", folder)
    loaded = zoo.load("hf-hub:spikezoo/s4d-toy", cache_dir=tmp_path / "cache")
    x = model.example_input(2)
    assert torch.equal(model(x), loaded(x))
    pinned = zoo.load(f"hf-hub:spikezoo/s4d-toy@{'a' * 40}", cache_dir=tmp_path / "cache")
    assert torch.equal(model(x), pinned(x))
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        zoo.load("hf-hub:spikezoo/not-cached", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="hf-hub:org/name"):
        zoo.load("hf-hub:justaname")


def test_registered_entry_resolves_cache_then_checks_its_sha256(model, tmp_path, temp_plugin):
    folder = zoo.save_pretrained(model, tmp_path / "m")
    build_hf_cache(tmp_path / "cache", "spikezoo/s4d-toy", folder, commit="b" * 40)
    sha = sha256_file(folder / "model.safetensors")

    class Entries:
        @zoo.hookimpl
        def register_models(self, register):
            common = dict(architecture="s4d", config=model.config.to_dict(), hf_hub_id="spikezoo/s4d-toy",
                          revision="b" * 40)
            register(zoo.ModelEntry(name="s4d-toy", sha256=sha, **common))
            register(zoo.ModelEntry(name="s4d-toy-wrong-sha", sha256="0" * 64, **common))

    temp_plugin(Entries(), "entries")
    x = model.example_input(2)
    assert torch.equal(zoo.load("s4d-toy", cache_dir=tmp_path / "cache")(x), model(x))
    with pytest.raises(IntegrityError):
        zoo.load("s4d-toy-wrong-sha", cache_dir=tmp_path / "cache")


def test_loading_an_architecture_name_explains_create():
    with pytest.raises(zoo.hub.WeightsUnavailableError, match=r"architecture.*zoo.create\('s4d'\)"):
        zoo.load("s4d")


def test_timm_interop(model, tmp_path):
    import timm

    from zoo.timm_interop import register_timm

    assert "s4d" in register_timm()
    fresh = timm.create_model("s4d", d_model=8, n_layers=1)
    assert fresh.config.d_model == 8 and fresh.architecture == "s4d"
    folder = zoo.save_pretrained(model, tmp_path / "m")
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    x = model.example_input(2)
    assert torch.equal(loaded(x), model(x))
