"""`zoo new-plugin NAME`: write an installable architecture plugin from the files in `files/`.

The template files carry `$placeholders` (string.Template) for the names derived from NAME; they end
in `.tmpl` so that no tool mistakes them for the project's own Python or tests.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import string
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9]*([_-][a-z0-9]+)*$")

# template file (relative to files/) -> path in the generated project; "PACKAGE" is the import name
TEMPLATE_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "PACKAGE/__init__.py",
    "tests/test_plugin.py.tmpl": "tests/test_PACKAGE.py",
}


@dataclass(frozen=True)
class PluginNames:
    """Every name the template needs, derived from the one NAME the user gives."""

    arch: str  # architecture and entry-point name, snake_case: lif_s4d
    package: str  # import name: zoo_lif_s4d
    dist: str  # distribution and folder name: spikezoo-lif-s4d
    camel: str  # class-name prefix: LifS4d
    model_name: str  # the registered pretrained entry, kebab-case: lif-s4d-sfmnist

    @classmethod
    def from_name(cls, name: str) -> "PluginNames":
        """Raise ValueError unless `name` is a lower-case identifier-like name (`lif_s4d`, `lif-s4d`)."""
        if not PLUGIN_NAME.match(name):
            raise ValueError(
                f"plugin name {name!r} must start with a lower-case letter and contain only lower-case "
                f"letters, digits and single '_' or '-' between them (e.g. 'lif_s4d')")
        arch = name.replace("-", "_")
        if keyword.iskeyword(arch):
            raise ValueError(f"plugin name {name!r} is a Python keyword")
        kebab = arch.replace("_", "-")
        return cls(arch=arch, package=f"zoo_{arch}", dist=f"spikezoo-{kebab}",
                   camel="".join(part[:1].upper() + part[1:] for part in arch.split("_")),
                   model_name=f"{kebab}-sfmnist")

    def substitutions(self) -> dict[str, str]:
        return {"arch": self.arch, "package": self.package, "dist": self.dist, "camel": self.camel,
                "model_name": self.model_name}


def new_plugin(name: str, directory: str | os.PathLike = ".") -> Path:
    """Write the plugin project `spikezoo-<name>/` into `directory` and return its path.

    Raises ValueError for a bad name or one that an installed architecture or package already
    uses, FileExistsError if the project folder exists (nothing is overwritten).
    """
    names = PluginNames.from_name(name)
    check_free(names)
    target = Path(directory) / names.dist
    if target.exists():
        raise FileExistsError(f"{target} already exists; refusing to overwrite it (choose another --dir or name)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed into place, so a failure leaves no half-written project.
    tmp = Path(tempfile.mkdtemp(prefix=f".{names.dist}.", dir=target.parent))
    try:
        for source, dest in TEMPLATE_FILES.items():
            out = tmp / dest.replace("PACKAGE", names.package)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(source, names))
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def render(source: str, names: PluginNames) -> str:
    """The template file `source` with the names filled in."""
    text = (resources.files(__name__) / "files" / source).read_text()
    return string.Template(text).substitute(names.substitutions())


def check_free(names: PluginNames) -> None:
    """Raise ValueError if the architecture name or the import name is already taken."""
    from zoo.registry import registry

    registry.fill()
    if names.arch in registry.architectures:
        raise ValueError(f"architecture {names.arch!r} already exists (plugin "
                         f"{registry.architectures[names.arch].plugin!r}); choose another name")
    if find_spec(names.package) is not None:
        raise ValueError(f"a Python package named {names.package!r} is already installed; choose another name")
