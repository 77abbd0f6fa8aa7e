"""`zoo push`: folder validation (every failure names its problem) and the upload through
huggingface_hub's HfApi, with the Hub's methods replaced by fakes (no network here)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file, save_file

import zoo
from zoo.cli import main
from zoo.publish import FolderError, push_folder, validate_folder
from zoo.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
MODEL_CARDS = sorted(p for p in (ROOT / "model_cards").glob("*") if p.is_dir())
FILES = {"config.json", "model.safetensors", "README.md"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = zoo.create("s4d", d_model=8, d_state=4, n_layers=1, seq_len=16)
    return zoo.save_pretrained(model, tmp_path_factory.mktemp("saved") / "s4d-push-test",
                               dataset="fashion-mnist", metrics={"accuracy": 0.5}, paper="arXiv:2206.11893")


@pytest.fixture
def folder(saved, tmp_path) -> Path:
    """A fresh copy of a valid folder that a test may break."""
    return Path(shutil.copytree(saved, tmp_path / saved.name))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_config(folder: Path, change) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def record_weights_sha(folder: Path) -> None:
    """Record the current weights' hash, so that a test reaches the checks after the hash check."""
    sha = sha256(folder / "model.safetensors")
    edit_config(folder, lambda c: c["spikezoo"]["files"]["model.safetensors"].update(sha256=sha))


def edit_card(folder: Path, pattern: str, replacement: str) -> None:
    card = folder / "README.md"
    text, n = re.subn(pattern, replacement, card.read_text(), count=1, flags=re.M)
    assert n == 1, f"the card has no {pattern!r}"
    card.write_text(text)


def push_cli(capsys, folder: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["push", str(folder), "--repo", "org/s4d-push-test", *extra])
    out, err = capsys.readouterr()
    return code, out, err


# ---- validation ---------------------------------------------------------------------------------
def test_dry_run_passes_and_prints_a_registrable_entry(folder, capsys):
    code, out, err = push_cli(capsys, folder, "--dry-run")
    assert code == 0, err
    assert "dry run: nothing uploaded" in out
    weights_sha = sha256(folder / "model.safetensors")
    assert f"model.safetensors  sha256 {weights_sha}" in out
    entry = eval(out[out.index("zoo.ModelEntry("):], {"zoo": zoo})
    assert (entry.name, entry.architecture, entry.hf_hub_id, entry.revision) == (
        "s4d-push-test", "s4d", "org/s4d-push-test", None)
    assert entry.sha256 == weights_sha and entry.measured == {"accuracy": 0.5}
    assert entry.config == zoo.load(folder).config.to_dict()
    assert (entry.dataset, entry.license, entry.paper) == ("fashion-mnist", "apache-2.0", "arXiv:2206.11893")
    registry = Registry()
    registry.fill()
    registry.add_model("test", entry)  # the registry accepts it as printed


@pytest.mark.parametrize("card", MODEL_CARDS, ids=[p.name for p in MODEL_CARDS])
def test_dry_run_passes_on_every_published_folder(card, capsys):
    code, out, err = push_cli(capsys, card, "--dry-run")
    assert code == 0, err
    check = validate_folder(card)
    assert check.bundled and check.name == card.name


def break_card_license(f):
    edit_card(f, r"^license: .*\n", "")


def break_card_model_index(f):
    edit_card(f, r"^model-index:\n(  .*\n|- .*\n)*", "")


def break_card_library(f):
    edit_card(f, r"^library_name: spikezoo$", "library_name: timm")


def break_card_metric_value(f):
    edit_card(f, r"value: 0\.5$", "value: 0.9")


def break_card_yaml(f):
    edit_card(f, r"^model-index:\n", "model-index: [unclosed\n")


def corrupt_weights(f):
    data = bytearray((f / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (f / "model.safetensors").write_bytes(bytes(data))


def truncate_weights_recorded(f):
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])
    record_weights_sha(f)


def drop_weight_recorded(f):
    state = load_file(str(f / "model.safetensors"))
    del state["decoder.weight"]
    save_file(state, str(f / "model.safetensors"))
    record_weights_sha(f)


def nan_weight_recorded(f):
    state = load_file(str(f / "model.safetensors"))
    state["decoder.weight"][0, 0] = float("nan")
    save_file(state, str(f / "model.safetensors"))
    record_weights_sha(f)


def card_paper_differs(f):
    edit_card(f, r"^paper: arXiv:2206\.11893$", "paper: arXiv:0000.00000")


def card_names_another_model(f):
    edit_card(f, r"^- name: s4d-push-test$", "- name: another-model")


def card_without_spikezoo_tag(f):
    edit_card(f, r"^- spikezoo$", "- other")


def format_from_the_future(f):
    edit_config(f, lambda c: c["spikezoo"].update(format_version=99))


def records_a_missing_file(f):
    edit_config(f, lambda c: c["spikezoo"]["files"].update({"tokenizer.json": {"sha256": "0" * 64}}))


def odd_d_state(f):
    edit_config(f, lambda c: c["model_args"].update(d_state=5))


def misspelt_key(f):
    edit_config(f, lambda c: c["model_args"].update(d_modle=8))


def unknown_architecture(f):
    edit_config(f, lambda c: c.update(architecture="nope") or c["pretrained_cfg"].update(architecture="nope"))


def no_metrics(f):
    edit_config(f, lambda c: c["spikezoo"].update(metrics={}))


def no_dataset(f):
    edit_config(f, lambda c: c["spikezoo"].pop("dataset"))


def no_recorded_sha(f):
    edit_config(f, lambda c: c["spikezoo"]["files"].clear())


def invalid_json(f):
    (f / "config.json").write_text("{not json")


def pickle_beside(f):
    torch.save({}, f / "pytorch_model.bin")


def extra_file(f):
    (f / "train.log").write_text("step 1\n")


def no_card(f):
    (f / "README.md").unlink()


@pytest.mark.parametrize("break_folder, message", [
    (break_card_license, r"README\.md: card metadata lacks license"),
    (break_card_model_index, r"README\.md: card metadata lacks model-index"),
    (break_card_library, r"README\.md: library_name is 'timm'"),
    (break_card_metric_value, r"README\.md: model-index gives accuracy=0\.9, config\.json measured 0\.5"),
    (break_card_yaml, r"README\.md: metadata cannot be parsed"),
    (corrupt_weights, r"model\.safetensors: sha256 [0-9a-f]{64} does not match the [0-9a-f]{64} recorded"),
    (truncate_weights_recorded, r"model\.safetensors: .*not a valid safetensors file"),
    (drop_weight_recorded, r"model\.safetensors: weights do not match .*missing keys: decoder\.weight"),
    (nan_weight_recorded, r"model\.safetensors: non-finite values in decoder\.weight"),
    (card_paper_differs, r"README\.md: paper 'arXiv:0000\.00000' differs from 'arXiv:2206\.11893' in config\.json"),
    (card_names_another_model, r"README\.md: model-index names 'another-model', config\.json names 's4d-push-test'"),
    (card_without_spikezoo_tag, r"README\.md: tags lack 'spikezoo'"),
    (format_from_the_future, r"config\.json: spikezoo\.format_version 99 is not one this spikezoo writes"),
    (records_a_missing_file, r"config\.json: spikezoo\.files records tokenizer\.json, which the folder lacks"),
    (odd_d_state, r"config\.json: model_args do not build a 's4d' model: .*'d_state'.* must be even"),
    (misspelt_key, r"config\.json: model_args do not build .*unknown config key 'd_modle'.*d_model"),
    (unknown_architecture, r"config\.json: architecture 'nope' is not registered"),
    (no_metrics, r"config\.json: spikezoo\.metrics is empty"),
    (no_dataset, r"config\.json lacks 'spikezoo\.dataset'"),
    (no_recorded_sha, r"config\.json: spikezoo\.files has no sha256 for model\.safetensors"),
    (invalid_json, r"config\.json is not valid JSON"),
    (pickle_beside, r"pickled checkpoint pytorch_model\.bin cannot be published"),
    (extra_file, r"unexpected train\.log"),
    (no_card, r"missing README\.md"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_dry_run_names_the_problem(folder, capsys, break_folder, message):
    break_folder(folder)
    with pytest.raises(FolderError, match=message):
        validate_folder(folder)
    code, out, err = push_cli(capsys, folder, "--dry-run")
    assert code == 1 and out == ""
    assert err.startswith("zoo: error: ") and err.count("\n") == 1  # one line
    assert re.search(message, err)


def test_a_card_without_paper_is_a_note_not_an_error(tmp_path, capsys):
    model = zoo.create("s4d", d_model=8, d_state=4, n_layers=1, seq_len=16)
    folder = zoo.save_pretrained(model, tmp_path / "s4d-no-paper", dataset="fashion-mnist",
                                 metrics={"accuracy": 0.5})
    code, out, err = push_cli(capsys, folder, "--dry-run")
    assert code == 0, err
    assert "note: README.md names no paper" in out and "paper=''" in out


def test_a_language_model_needs_its_tokenizer(tmp_path):
    model = zoo.create("s4d", task="lm", vocab_size=16, d_model=8, d_state=4, n_layers=1, seq_len=16)
    bare = zoo.save_pretrained(model, tmp_path / "s4d-lm-test", dataset="tiny", metrics={"loss": 2.7})
    with pytest.raises(FolderError, match="a language model needs tokenizer.json"):
        validate_folder(bare)
    tokenizer = {"type": "characters", "vocab": [chr(97 + i) for i in range(16)]}
    full = zoo.save_pretrained(model, tmp_path / "s4d-lm-test", dataset="tiny", metrics={"loss": 2.7},
                               tokenizer=tokenizer)
    assert set(validate_folder(full).files) == FILES | {"tokenizer.json"}


def test_bad_repo_id_is_refused(folder, capsys):
    code = main(["push", str(folder), "--repo", "no-slash", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1 and "--repo must look like 'org/name', got 'no-slash'" in err


# ---- upload -------------------------------------------------------------------------------------
class FakeHub:
    """Stands in for the Hub behind HfApi: records every call, returns a commit."""

    def __init__(self, monkeypatch, *, fail: Exception | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.tokens: list[str] = []
        self.fail = fail
        for method in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, method, self.recorder(method))

    def recorder(self, method):
        def call(api, *args, **kwargs):
            if self.fail is not None:
                raise self.fail
            self.tokens.append(api.token)
            self.calls.append((method, {"args": args, **kwargs}))
            if method == "upload_folder":
                return CommitInfo(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/{COMMIT}",
                                  commit_message=kwargs["commit_message"], commit_description="", oid=COMMIT)
        return call


def test_push_creates_the_repo_and_uploads_the_checked_files_in_one_commit(folder, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    (folder / ".DS_Store").write_bytes(b"junk")  # hidden files are not part of the model
    hub = FakeHub(monkeypatch)
    code, out, err = push_cli(capsys, folder, "--revision", "v1", "--private")
    assert code == 0, err
    assert [name for name, _ in hub.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert set(hub.tokens) == {"hf_test_token"}
    create, branch, upload = (kwargs for _, kwargs in hub.calls)
    assert create == {"args": ("org/s4d-push-test",), "private": True, "exist_ok": True}
    assert branch == {"args": ("org/s4d-push-test",), "branch": "v1", "exist_ok": True}
    assert upload["repo_id"] == "org/s4d-push-test" and upload["revision"] == "v1"
    assert Path(upload["folder_path"]) == folder
    assert upload["commit_message"] == f"Upload s4d-push-test with spikezoo {zoo.__version__}"
    # the files upload_folder sends: its folder listing filtered by the patterns we passed
    listing = [p.name for p in folder.iterdir()]
    sent = set(filter_repo_objects(listing, allow_patterns=upload["allow_patterns"]))
    assert sent == FILES
    assert f"pushed s4d-push-test to org/s4d-push-test: commit {COMMIT}" in out
    entry = eval(out[out.index("zoo.ModelEntry("):], {"zoo": zoo})
    assert entry.revision == COMMIT and entry.hf_hub_id == "org/s4d-push-test"
    assert entry.sha256 == sha256(folder / "model.safetensors")


def test_push_to_main_creates_no_branch(folder, monkeypatch):
    hub = FakeHub(monkeypatch)
    result = push_folder(folder, "org/s4d-push-test", token="hf_explicit")
    assert [name for name, _ in hub.calls] == ["create_repo", "upload_folder"]
    assert hub.calls[0][1]["private"] is False and set(hub.tokens) == {"hf_explicit"}
    assert result.commit == COMMIT and hub.calls[1][1]["revision"] is None


def test_upload_folder_sends_exactly_the_files_on_disk(folder, monkeypatch):
    """Run huggingface_hub's own upload_folder down to create_commit and inspect the operations."""
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)  # the single-commit path
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda *a, **k: None)  # asks the Hub to check the card
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: None)
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    commits = []

    def create_commit(api, **kwargs):
        commits.append(kwargs)
        return CommitInfo(commit_url=f"https://huggingface.co/org/x/commit/{COMMIT}",
                          commit_message=kwargs["commit_message"], commit_description="", oid=COMMIT)

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    result = push_folder(folder, "org/s4d-push-test", token="hf_test_token")
    assert len(commits) == 1 and result.commit == COMMIT
    ops = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in commits[0]["operations"]}
    assert set(ops) == FILES
    for name, data in ops.items():
        assert data == (folder / name).read_bytes()
    recorded = json.loads(ops["config.json"])["spikezoo"]["files"]["model.safetensors"]["sha256"]
    assert hashlib.sha256(ops["model.safetensors"]).hexdigest() == recorded


def test_a_folder_that_fails_validation_never_reaches_the_hub(folder, capsys, monkeypatch):
    hub = FakeHub(monkeypatch)
    corrupt_weights(folder)
    code, _, err = push_cli(capsys, folder)
    assert code == 1 and "does not match" in err and hub.calls == []


def test_no_token_is_one_clear_line(folder, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    hub = FakeHub(monkeypatch)
    code, _, err = push_cli(capsys, folder)
    assert code == 1 and hub.calls == []
    assert err == "zoo: error: no Hugging Face token: set HF_TOKEN or log in with `hf auth login`\n"


def test_offline_is_one_clear_line(folder, capsys, monkeypatch):
    """Unmocked: HF_HUB_OFFLINE=1 (tests/conftest.py) makes huggingface_hub itself refuse."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    code, _, err = push_cli(capsys, folder)
    assert code == 1
    assert err == ("zoo: error: cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE is set); "
                   "unset it to push org/s4d-push-test\n")


@pytest.mark.parametrize("error, message", [
    (httpx2.ConnectError("[Errno -2] Name or service not known"),
     "cannot reach the Hugging Face Hub at https://huggingface.co: [Errno -2] Name or service not known"),
    (huggingface_hub.errors.HfHubHTTPError(
        "401 Client Error: Unauthorized\nmore detail",
        response=httpx2.Response(401, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))),
     "the Hugging Face Hub refused the token (401 unauthorized)"),
    (huggingface_hub.errors.HfHubHTTPError(
        "403 Client Error: Forbidden",
        response=httpx2.Response(403, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))),
     "the token may not write to org/s4d-push-test (403 forbidden)"),
], ids=["unreachable", "401", "403"])
def test_hub_failures_are_one_clear_line(folder, capsys, monkeypatch, error, message):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    FakeHub(monkeypatch, fail=error)
    code, out, err = push_cli(capsys, folder)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("zoo: error: " + message)
