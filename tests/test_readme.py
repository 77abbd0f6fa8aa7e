"""README's commands stay true: the test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    test_command = ci[-1]
    assert f"bash .ci/setup && {test_command}" in readme
    assert "bash .ci/setup" in ci
