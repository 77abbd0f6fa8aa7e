"""Training: schedule, learning on a tiny task, exact resumption, atomic checkpoints, the final model
folder, CLI errors for missing data, and two-process DDP staying in sync."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from toy_train import TINY, ToyData
from zoo import cli
from zoo.data import DATAMODULES
from zoo.train import (README_MARKERS, TrainConfig, evaluate, evaluate_pretrained, lr_factor, replace_results_block,
                       results, results_markdown, save_checkpoint, spike_rates, train)

TESTS = Path(__file__).parent


def small_config(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, lr=1e-2, warmup_steps=3, seed=1, eval_batch_size=64, log_every=1000)
    return TrainConfig(**{**base, **kw})


def test_lr_schedule_warmup_then_cosine():
    total, warmup = 110, 10
    assert [lr_factor(s, total, warmup, 0.0) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_factor(warmup, total, warmup, 0.0) == pytest.approx(1.0)
    assert lr_factor(warmup + 50, total, warmup, 0.0) == pytest.approx(0.5)  # half way down the cosine
    assert lr_factor(total, total, warmup, 0.2) == pytest.approx(0.2)
    after = [lr_factor(s, total, warmup, 0.0) for s in range(warmup, total)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert lr_factor(warmup + 25, total, warmup, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


class Heaviside(torch.nn.Module):
    spiking_neuron = True

    def forward(self, x):
        return (x > 0).to(x.dtype)


def test_spike_rates_count_every_output_by_hand():
    linear = torch.nn.Linear(3, 3)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([1.0, -1.0, 1.0]))
    model = torch.nn.Sequential(Heaviside(), linear, Heaviside())
    rates = spike_rates(model, torch.tensor([[1.0, -1.0, 2.0], [0.0, 3.0, -4.0]]))
    assert rates["modules"] == {"0": 3 / 6, "2": 4 / 6}
    assert rates["overall"] == pytest.approx(7 / 12)
    assert spike_rates(torch.nn.Linear(3, 3), torch.ones(1, 3)) == {"overall": None, "modules": {}}


def test_bad_train_options_are_value_errors():
    with pytest.raises(ValueError, match="'epochs'"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="'lr'"):
        TrainConfig(lr=-1.0)


def test_training_lowers_the_loss():
    data = ToyData(n_train=256)
    torch.manual_seed(1)
    before = evaluate(zoo.create("s4d", **TINY, **data.model_config()), data.split("train"))
    result = train("s4d", data, config=small_config(epochs=6, lr=0.05), overrides=TINY, progress=False)
    after = evaluate(result.model, data.split("train"))
    assert result.finished and result.step == 6 * 256 // 16
    assert after["loss"] < 0.7 * before["loss"], (before, after)
    assert after["accuracy"] > 0.8
    assert result.metrics["n"] == 64 and len(result.history) == 6  # test set evaluated, val every epoch


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """Stopping after 5 steps and resuming gives bit-identical weights (optimizer state, schedule,
    data order and dropout masks all continue where they were)."""
    data = ToyData(n_train=96)
    overrides = {**TINY, "dropout": 0.2, "norm": "batch"}
    straight = train("s4d", data, config=small_config(), overrides=overrides,
                     checkpoint=tmp_path / "a.safetensors", progress=False)
    part = train("s4d", data, config=small_config(stop_after_steps=5), overrides=overrides,
                 checkpoint=tmp_path / "b.safetensors", progress=False)
    assert not part.finished and part.step == 5
    saved = load_file(tmp_path / "b.safetensors")
    assert any(k.startswith("optim/") for k in saved) and any(k.startswith("model/") for k in saved)
    resumed = train("s4d", data, config=small_config(), overrides=overrides,
                    checkpoint=tmp_path / "b.safetensors", progress=False)
    assert resumed.finished and resumed.step == straight.step == 12
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not part.model.state_dict()["encoder.weight"].equal(a["encoder.weight"])  # the part was mid-way
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*.tmp"))


def test_resume_refuses_other_settings(tmp_path):
    data = ToyData(n_train=32)
    ckpt = tmp_path / "c.safetensors"
    train("s4d", data, config=small_config(stop_after_steps=1), overrides=TINY, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different train config: lr"):
        train("s4d", data, config=small_config(lr=0.5), overrides=TINY, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="does not fit this model"):
        train("s4d", data, config=small_config(), overrides={**TINY, "d_model": 12}, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different train config: model config"):  # same shapes, other key
        train("s4d", data, config=small_config(), overrides={**TINY, "dt_max": 0.2}, checkpoint=ckpt, progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = zoo.create("s4d", **TINY)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, {"step": 1})
    first = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, {"step": 2})
    assert path.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]


def test_final_model_folder_loads_and_records_its_check(tmp_path, monkeypatch, capsys):
    data = ToyData(n_train=64, n_test=40)
    out = tmp_path / "toy-model"
    result = train("s4d", data, config=small_config(), overrides=TINY, out=out, model_name="s4d-toy",
                   command="zoo train s4d --dataset toy", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())["spikezoo"]
    assert cfg["metrics"]["accuracy"] == result.metrics["accuracy"]
    check = cfg["evaluation"]["check"]
    assert check["indices"] == "0:40" and check["batch_size"] == 64
    loaded = zoo.load(out)
    again = evaluate(loaded, data.split("test"), batch_size=check["batch_size"], limit=40)
    assert again["accuracy"] == check["accuracy"] and again["loss"] == pytest.approx(check["loss"], rel=1e-6)
    card = (out / "README.md").read_text()
    assert "zoo train s4d --dataset toy" in card and "Wall time" in card and "library_name: spikezoo" in card
    assert "no spiking neurons" in card
    # `zoo eval` rebuilds the data module from the input spec and compares with the record
    monkeypatch.setitem(DATAMODULES, "toy", "toy_train:ToyData")
    full = evaluate_pretrained(str(out))
    assert full["matches"] and full["recorded"] == result.metrics["accuracy"] and full["n"] == 40
    assert cli.main(["eval", str(out), "--limit", "40"]) == 0
    assert "matches the recorded test accuracy" in capsys.readouterr().out
    # the results table: evaluation plus profiler counts and energy, relative to the dense baseline
    rows = results([str(out)])
    assert rows[0]["accuracy"] == result.metrics["accuracy"] and rows[0]["card_accuracy"] == rows[0]["accuracy"]
    assert rows[0]["macs"] > 0 and rows[0]["energy_45nm-fp32_j"] > 0 and rows[0]["energy_loihi_j"] > 0
    table = results_markdown(rows)
    assert table.splitlines()[0].startswith("| model | data set | test accuracy") and "(1.00x)" in table
    assert table.splitlines()[2].startswith("| s4d-toy | toy | ")  # the name recorded in the folder
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_MARKERS[0]}\nold table\n{README_MARKERS[1]}\n\nafter\n")
    replace_results_block(readme, table)
    assert readme.read_text() == f"# title\n\n{README_MARKERS[0]}\n{table}\n{README_MARKERS[1]}\n\nafter\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no results block"):
        replace_results_block(readme, table)


def test_training_continues_from_a_model_folder(tmp_path, monkeypatch):
    """A model folder as NAME: its weights are the starting point and its input spec the data."""
    monkeypatch.setitem(DATAMODULES, "toy", "toy_train:ToyData")
    out = tmp_path / "first"
    train("s4d", ToyData(n_train=32), config=small_config(), overrides=TINY, out=out, progress=False)
    frozen = train(str(out), config=small_config(lr=0.0, weight_decay=0.0), overrides={"ssm_lr": 0.0}, progress=False)
    loaded = zoo.load(out).state_dict()
    for key, value in frozen.model.state_dict().items():
        assert torch.equal(value, loaded[key]), key
    moved = train(str(out), config=small_config(), progress=False)
    assert not torch.equal(moved.model.state_dict()["encoder.weight"], loaded["encoder.weight"])


def test_train_cli_on_missing_data_gives_one_clear_error(tmp_path, capsys):
    code = cli.main(["train", "s4d", "--dataset", "sfmnist", "--data", str(tmp_path / "nowhere"),
                     "--checkpoint", str(tmp_path / "ck.safetensors"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "train-images-idx3-ubyte.gz" in err and "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "ck.safetensors").exists()


def test_train_cli_needs_a_data_set_for_an_architecture(capsys):
    assert cli.main(["train", "s4d"]) == 1
    assert "names no data set" in capsys.readouterr().err


def test_two_process_ddp_stays_in_sync_and_matches_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TESTS / "toy_train.py"), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # the same global batches on one process: averaged gradients equal the full-batch gradient
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, warmup_steps=2, seed=3, eval_batch_size=32)
    single = train("s4d", ToyData(n_train=64), config=config, overrides=TINY, progress=False)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(3)
    init = zoo.create("s4d", **TINY, **ToyData(n_train=64).model_config()).state_dict()
    assert not torch.equal(init["encoder.weight"], rank0["encoder.weight"])  # it did train
