"""Profiler overhead: one counted forward pass against a plain forward pass, per architecture."""

import warnings

import torch

from run import timed

import zoo
from zoo_profiler import registered_rules
from zoo_profiler.counter import count

TITLE = "Profiler overhead: counted forward (zoo.profile) vs plain forward, per architecture"


def run(quick: bool) -> list[dict]:
    d_model, n_layers, length = (16, 1, 128) if quick else (64, 2, 1024)
    rules = registered_rules()
    rows = []
    for name in zoo.list_models(pretrained=False):
        torch.manual_seed(0)
        model = zoo.create(name, d_model=d_model, n_layers=n_layers).eval()
        x = model.example_input(batch=1, length=length)
        with torch.no_grad():
            t_forward = timed(lambda: model(x))
            t_count = timed(lambda: count(model, x, rules))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_profile = timed(lambda: zoo.profile(model, x), repeat=1)
        rows.append({
            "architecture": name, "H x layers x L": f"{d_model}x{n_layers}x{length}",
            "forward (ms)": 1e3 * t_forward, "counted forward (ms)": 1e3 * t_count,
            "zoo.profile (ms)": 1e3 * t_profile, "counted / forward": t_count / t_forward,
        })
    return rows
