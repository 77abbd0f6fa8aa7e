"""`zoo new-plugin`: the generated package installs with pip, its entry point makes it appear in
`zoo plugins` and `zoo list`, and create, save/load, push --dry-run and profile work on it.

The package is installed into this environment once for the module (no network: --no-index
--no-deps --no-build-isolation) and always uninstalled afterwards. Everything that needs the entry
point runs in a subprocess, with SPIKEZOO_PLUGINS naming the built-ins plus the new plugin.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.template import PluginNames, new_plugin

LAYERS, WIDTH, STATE, LENGTH = 2, 16, 8, 32  # the entry's n_layers; the rest are overrides

# Runs in the subprocess: argv = model name, model folder, output JSON path.
SCRIPT = """
import contextlib, io, json, sys
import torch
import zoo
from zoo.cli import COMMANDS, main

model_name, folder, out_path = sys.argv[1:4]
WIDTH, STATE, LENGTH = {width}, {state}, {length}


def cli(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


seen = {{}}
seen["plugins"] = json.loads(cli("plugins", "--json")[1])
seen["list"] = json.loads(cli("list", "--json")[1])
torch.manual_seed(0)
model = zoo.create(model_name, d_model=WIDTH, d_state=STATE, seq_len=LENGTH).eval()
spikes = []
for m in model.modules():
    if getattr(type(m), "spiking_neuron", False):
        m.register_forward_hook(lambda mod, args, out: spikes.append(out))
x = model.example_input(2)
with torch.no_grad():
    y = model(x)
seen["model"] = {{"module": type(model).__module__, "output": list(y.shape),
                  "spike_values": sorted(set(torch.cat([s.flatten() for s in spikes]).tolist()))}}
zoo.save_pretrained(model, folder, dataset="fashion-mnist", metrics={{"accuracy": 0.1}})
loaded = zoo.load(folder)
with torch.no_grad():
    seen["load_max_difference"] = float((loaded(x) - y).abs().max())
seen["load_module"] = type(loaded).__module__
seen["push_dry_run"] = cli("push", folder, "--repo", "org/" + model_name, "--dry-run")
if "profile" in COMMANDS:
    report_path = out_path + ".profile.json"
    code, _ = cli("profile", model_name, "--length", str(LENGTH), "--set", f"d_model={{WIDTH}}",
                  "--set", f"d_state={{STATE}}", "--hardware", "45nm-fp32,loihi", "--json", report_path)
    seen["profile"] = {{"code": code, "report": json.load(open(report_path)) if code == 0 else None}}
else:
    seen["profile"] = None
json.dump(seen, open(out_path, "w"))
"""


def pip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}
    return subprocess.run([sys.executable, "-m", "pip", *args, "-q"], check=check, env=env,
                          capture_output=True, text=True)


def remove_stale_installs() -> None:
    """Uninstall packages this test left behind in a run that was killed before its clean-up."""
    for dist in importlib.metadata.distributions():
        match = re.fullmatch(r"spikezoo-zt(\d+)-lif", dist.metadata["Name"] or "")
        if match and not Path(f"/proc/{match.group(1)}").exists():
            pip("uninstall", "-y", dist.metadata["Name"], check=False)


def plugin_env(names: PluginNames) -> dict[str, str]:
    env = dict(os.environ)
    env["SPIKEZOO_PLUGINS"] = f"{env['SPIKEZOO_PLUGINS']},{names.arch}"  # built-ins (conftest) + this one
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """(names, project folder) of a generated plugin installed into this environment."""
    remove_stale_installs()
    names = PluginNames.from_name(f"zt{os.getpid()}_lif")  # unique: runs in parallel do not collide
    parent = tmp_path_factory.mktemp("plugin")
    assert main(["new-plugin", names.arch, "--dir", str(parent)]) == 0
    project = parent / names.dist
    try:
        pip("install", "--no-index", "--no-deps", "--no-build-isolation", str(project))
        yield names, project
    finally:
        pip("uninstall", "-y", names.dist, check=False)


@pytest.fixture(scope="module")
def seen(plugin, tmp_path_factory) -> dict:
    """What the subprocess observed through the installed plugin."""
    names, _ = plugin
    work = tmp_path_factory.mktemp("use")
    script = SCRIPT.format(width=WIDTH, state=STATE, length=LENGTH)
    run = subprocess.run([sys.executable, "-c", script, names.model_name, str(work / names.model_name),
                          str(work / "seen.json")], env=plugin_env(names), cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads((work / "seen.json").read_text())


# ---- the generated files ------------------------------------------------------------------------
def test_generated_project_declares_the_entry_point(plugin):
    names, project = plugin
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == names.dist
    assert meta["project"]["entry-points"]["spikezoo"] == {names.arch: names.package}
    assert (project / names.package / "__init__.py").is_file()
    assert (project / "tests" / f"test_{names.package}.py").is_file()
    assert f"zoo push out/{names.model_name}" in (project / "README.md").read_text()


def test_the_generated_tests_pass(plugin):
    names, project = plugin
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                         env=plugin_env(names), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b5 passed\b", run.stdout), run.stdout


# ---- the installed plugin, through zoo ----------------------------------------------------------
def test_plugin_is_listed_as_loaded(plugin, seen):
    names, _ = plugin
    status = {p["name"]: p for p in seen["plugins"]}
    assert status[names.arch]["status"] == "loaded" and status[names.arch]["version"] == "0.1.0"
    assert status[names.arch]["module"] == names.package


def test_architecture_and_entry_are_listed(plugin, seen):
    names, _ = plugin
    rows = {r["name"]: r for r in seen["list"]}
    assert rows[names.arch]["kind"] == "architecture"
    assert rows[names.model_name]["kind"] == "pretrained"
    assert rows[names.model_name]["architecture"] == names.arch
    assert rows[names.model_name]["weights"] == "none"


def test_create_save_load_and_push_dry_run(plugin, seen):
    names, _ = plugin
    assert seen["model"]["module"] == names.package == seen["load_module"]
    assert seen["model"]["output"] == [2, 10]
    assert seen["model"]["spike_values"] == [0.0, 1.0]  # binary, and the neurons do fire
    assert seen["load_max_difference"] == 0.0
    code, out = seen["push_dry_run"]
    assert code == 0 and f"name='{names.model_name}'" in out and f"architecture='{names.arch}'" in out


def test_profile(plugin, seen):
    if seen["profile"] is None:
        pytest.skip("`zoo profile` (the profiler plugin) is not there yet")
    names, _ = plugin
    assert seen["profile"]["code"] == 0
    report = seen["profile"]["report"]
    totals = report["totals"]
    # one neuron update per output element of each LIF module: n_layers x batch 1 x H x L
    assert totals["neuron_updates"] == LAYERS * 1 * WIDTH * LENGTH
    assert 0.0 < totals["firing_rate"] < 1.0
    assert totals["acs"] > 0  # the GLU after the neuron reads binary spikes: accumulates only
    assert report["model"]["architecture"] == names.arch


# ---- refusals (no install needed) ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["LIF", "1lif", "lif s4d", "lif__s4d", "lif-", "_lif", "class", ""])
def test_bad_names_are_refused(name, tmp_path, capsys):
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: plugin name {name!r}") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_taken_architecture_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="architecture 's4d' already exists"):
        new_plugin("s4d", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_not_overwritten(tmp_path, capsys):
    existing = tmp_path / "spikezoo-lif-demo"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    assert main(["new-plugin", "lif-demo", "--dir", str(tmp_path)]) == 1
    assert "already exists; refusing to overwrite it" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spikezoo-lif-demo"]  # no temporary left
