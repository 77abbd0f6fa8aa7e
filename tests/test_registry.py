"""Registry, configs, plugin loading and failure isolation, CLI."""

import importlib.metadata
import json
import subprocess
import sys
import warnings

import pluggy
import pytest
import torch

import zoo
from zoo import cli, hookspecs, plugins
from zoo.registry import UnknownModelError, registry


class GoodPlugin:
    @zoo.hookimpl
    def register_architectures(self, register):
        from zoo_s4d import S4D, S4DConfig

        register("toy_s4d", S4DConfig, S4D, description="a temporary test architecture")

    @zoo.hookimpl
    def register_models(self, register):
        register(zoo.ModelEntry(name="toy-s4d-nothing", architecture="toy_s4d", config={"d_model": 8},
                                reported={"accuracy": 50.0}))


class RaisingPlugin:
    @zoo.hookimpl
    def register_architectures(self, register):
        raise RuntimeError("boom in hook")


def test_list_models_patterns_and_kinds(temp_plugin):
    temp_plugin(GoodPlugin(), "good")
    assert "s4d" in zoo.list_models()
    assert zoo.list_models("toy*") == ["toy_s4d", "toy-s4d-nothing"]  # architectures first
    assert zoo.list_models("toy*", pretrained=False) == ["toy_s4d"]
    assert zoo.list_models("toy*", pretrained=True) == []  # no weights anywhere
    assert all(isinstance(n, str) for n in zoo.list_models())


def test_create_validates_overrides():
    model = zoo.create("s4d", d_model=8, n_layers=1)
    assert model.config.d_model == 8 and model.architecture == "s4d"
    with pytest.raises(ValueError, match="'d_modle'.*d_model"):
        zoo.create("s4d", d_modle=8)
    with pytest.raises(ValueError, match="'norm'"):
        zoo.create("s4d", norm="group")
    with pytest.raises(ValueError, match="'dropout'"):
        zoo.create("s4d", dropout=1.5)
    with pytest.raises(ValueError, match="'n_layers'"):
        zoo.create("s4d", n_layers="4")
    with pytest.raises(ValueError, match="'d_state'"):
        zoo.create("s4d", d_state=7)


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean 's4d'"):
        zoo.create("s4dd")
    with pytest.raises(UnknownModelError):
        zoo.load("no-such-model-anywhere")


def test_pretrained_entry_builds_and_reports_its_numbers_apart(temp_plugin):
    temp_plugin(GoodPlugin(), "good")
    model = zoo.create("toy-s4d-nothing", n_layers=1)
    assert model.config.d_model == 8
    data = zoo.info("toy-s4d-nothing")
    assert data["reported"] == {"accuracy": 50.0} and data["measured"] == {}
    assert data["weights"] == "none" and data["plugin"] == "good"
    assert data["parameters"] == sum(p.numel() for p in zoo.create("toy-s4d-nothing").parameters())
    with pytest.raises(zoo.hub.WeightsUnavailableError, match="zoo.create.*zoo train"):
        zoo.load("toy-s4d-nothing")


def test_bad_registrations_are_refused():
    from zoo.registry import Registry

    r = Registry()
    r._filled = True
    with pytest.raises(ValueError, match="snake_case"):
        r.add_architecture("p", "Bad-Name", zoo.ModelConfig, object)
    r.add_architecture("p", "ok", zoo.ModelConfig, object)
    with pytest.raises(ValueError, match="kebab-case"):
        r.add_model("p", zoo.ModelEntry(name="Bad_Name", architecture="ok"))
    with pytest.raises(ValueError, match="40-hex"):
        r.add_model("p", zoo.ModelEntry(name="ok-x", architecture="ok", revision="main"))
    with pytest.raises(ValueError, match="unknown config key"):
        r.add_model("p", zoo.ModelEntry(name="ok-y", architecture="ok", config={"widht": 3}))


def test_plugin_raising_in_hook_is_skipped_and_others_work(temp_plugin):
    temp_plugin(GoodPlugin(), "good")
    temp_plugin(RaisingPlugin(), "raiser")
    with pytest.warns(plugins.PluginWarning, match="raiser.*boom in hook"):
        names = zoo.list_models()
    assert "toy_s4d" in names and "s4d" in names
    status = {s.name: s for s in plugins.plugin_status()}
    assert status["raiser"].status == "broken" and "boom in hook" in status["raiser"].error
    assert status["good"].status == "loaded"


def test_strict_mode_reraises(temp_plugin, monkeypatch):
    monkeypatch.setenv("SPIKEZOO_STRICT_PLUGINS", "1")
    temp_plugin(RaisingPlugin(), "raiser")
    with pytest.raises(RuntimeError, match="boom in hook"):
        zoo.list_models()


@pytest.fixture
def fresh_plugin_manager(monkeypatch):
    """A plugin manager that has loaded nothing yet, restored afterwards."""
    pm = pluggy.PluginManager("spikezoo")
    pm.add_hookspecs(hookspecs)
    monkeypatch.setattr(plugins, "pm", pm)
    monkeypatch.setattr(plugins, "_status", {})
    monkeypatch.setattr(plugins, "_loaded", False)
    registry.reset()
    yield pm
    registry.reset()


def fake_entry_points(*eps):
    def entry_points(group):
        assert group == "spikezoo"
        return list(eps)
    return entry_points


def test_plugin_failing_at_import_is_skipped(fresh_plugin_manager, monkeypatch):
    good = importlib.metadata.EntryPoint("s4d", "zoo_s4d", "spikezoo")
    broken = importlib.metadata.EntryPoint("broken", "zoo_no_such_module_xyz", "spikezoo")
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", fake_entry_points(broken, good))
    monkeypatch.delenv("SPIKEZOO_PLUGINS")
    with pytest.warns(plugins.PluginWarning, match="'broken'.*import"):
        assert zoo.list_models(pretrained=False) == ["s4d"]
    status = {s.name: s.status for s in plugins.plugin_status()}
    assert status == {"broken": "broken", "s4d": "loaded"}


def test_spikezoo_plugins_env_selects_plugins(fresh_plugin_manager, monkeypatch):
    good = importlib.metadata.EntryPoint("s4d", "zoo_s4d", "spikezoo")
    broken = importlib.metadata.EntryPoint("broken", "zoo_no_such_module_xyz", "spikezoo")
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", fake_entry_points(broken, good))
    monkeypatch.setenv("SPIKEZOO_PLUGINS", "s4d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.list_models(pretrained=False) == ["s4d"]
    assert [s.name for s in plugins.plugin_status()] == ["s4d"]


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_list_info_plugins_json(capsys, temp_plugin):
    temp_plugin(GoodPlugin(), "good")
    assert cli.main(["list", "toy*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["weights"] for r in rows} == {"toy-s4d-nothing": "none", "toy_s4d": ""}
    assert cli.main(["info", "toy-s4d-nothing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reported"] == {"accuracy": 50.0}
    assert cli.main(["plugins", "--json"]) == 0
    assert {"good", "s4d"} <= {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert cli.main(["info", "s4d"]) == 0
    assert "parameters:" in capsys.readouterr().out


def test_cli_error_is_one_line_without_traceback(capsys):
    assert cli.main(["info", "s4dd"]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "did you mean 's4d'" in err and "Traceback" not in err


def test_import_zoo_does_not_import_heavy_libraries():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import zoo; zoo.list_models()"],
                         capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "torch" in imported  # the check itself works
    assert not imported & {"timm", "torchvision", "fvcore"}


def test_config_roundtrip_and_describe():
    model = zoo.create("s4d", d_model=8, mixing="linear")
    config = type(model.config).from_dict(json.loads(json.dumps(model.config.to_dict())))
    assert config == model.config
    keys = {row["key"] for row in type(model.config).describe()}
    assert {"d_model", "d_state", "n_layers", "dropout", "bidirectional", "prenorm", "mixing"} <= keys


def test_model_input_errors_name_the_problem():
    model = zoo.create("s4d", d_model=8, n_layers=1, d_input=2)
    with pytest.raises(ValueError, match=r"shape \(batch, length, 2\)"):
        model(torch.zeros(1, 10, 3))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 10, 2, dtype=torch.long))
    lm = zoo.create("s4d", d_model=8, n_layers=1, task="lm", vocab_size=5)
    with pytest.raises(ValueError, match="token id 7 is outside the vocabulary"):
        lm(torch.tensor([[1, 7]]))


class HalfBadPlugin:
    @zoo.hookimpl
    def register_architectures(self, register):
        from zoo_s4d import S4D, S4DConfig

        register("half_ok", S4DConfig, S4D)
        register("Half-Bad", S4DConfig, S4D)  # an invalid name: the whole plugin is refused


def test_plugin_failing_part_way_leaves_nothing_registered(temp_plugin):
    temp_plugin(HalfBadPlugin(), "halfbad")
    with pytest.warns(plugins.PluginWarning, match="halfbad.*snake_case"):
        names = zoo.list_models(pretrained=False)
    assert "half_ok" not in names and "s4d" in names
