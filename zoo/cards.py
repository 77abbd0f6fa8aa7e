"""Model cards (README.md with YAML metadata) made with huggingface_hub's ModelCard."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

DATASET_IDS = {
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "wikitext-103": "Salesforce/wikitext",
    "listops": "lra-listops",
}


def make_card(model: nn.Module, cfg: dict[str, Any], *, license: str, paper: str,
              extra_sections: dict[str, str]) -> str:
    """Card text: metadata (library_name spikezoo, tags, datasets, metrics, model-index) and body.

    The body lists the configuration, every option the architecture exposes, the architecture's
    own `card_notes` (what is verified, what is reconstructed), and measured metrics.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    block = cfg["spikezoo"]
    name, task, dataset, metrics = block["name"], block["task"], block["dataset"], block["metrics"]
    arch = cfg["architecture"]
    pipeline = "text-generation" if task == "lm" else "sequence-classification"
    eval_results = [
        EvalResult(task_type=pipeline, dataset_type=DATASET_IDS.get(dataset, dataset or "unknown"),
                   dataset_name=dataset or "unknown", metric_type=metric, metric_value=float(value))
        for metric, value in metrics.items()
    ]
    data = ModelCardData(
        library_name="spikezoo",
        license=license,
        tags=["spikezoo", "spiking-neural-network", "state-space-model", arch, task],
        datasets=[DATASET_IDS.get(dataset, dataset)] if dataset else None,
        metrics=sorted(metrics) or None,
        model_name=name,
        eval_results=eval_results or None,
        pipeline_tag=None,
    )
    if paper:
        data.paper = paper  # extra metadata key, kept by ModelCardData
    config_rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in cfg["model_args"].items())
    options = ""
    config_cls = type(getattr(model, "config", None))
    if hasattr(config_cls, "describe"):
        options = "\n".join(f"| `{r['key']}` | `{r['default']}` | {', '.join(map(str, r['choices'] or [])) or '-'} "
                            f"| {r['doc']} |" for r in config_cls.describe())
    metric_rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items()) or "| (none measured) | |"
    notes = getattr(type(model), "card_notes", "").strip()
    sections = [
        f"# {name}\n\nA `{arch}` model from [spikezoo](https://pypi.org/project/spikezoo/), task "
        f"`{task}`{f', dataset `{dataset}`' if dataset else ''}.",
        "## Use\n\n```python\nimport zoo\nmodel = zoo.load(\"" + name + "\")  # or zoo.load(\"path/to/folder\")\n```",
        "## Measured metrics\n\nMeasured by this project with these weights.\n\n| metric | value |\n|---|---|\n"
        + metric_rows,
        "## Configuration\n\n| key | value |\n|---|---|\n" + config_rows,
    ]
    if options:
        sections.append("## Options of this architecture\n\n| key | default | choices | meaning |\n"
                        "|---|---|---|---|\n" + options)
    if notes:
        sections.append("## Architecture notes\n\n" + notes)
    sections += [f"## {title}\n\n{text.strip()}" for title, text in extra_sections.items()]
    sections.append("## Input\n\n```json\n" + _json(block["input_spec"]) + "\n```")
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return str(ModelCard(content))


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=2)
