"""The project's promises to a newcomer: the README's two commands and what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None, "README must start with a sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands() -> None:
    """The first code block holds two commands: run the demo, run the tests."""
    text = (ROOT / "README.md").read_text()
    assert text.index("```sh") < text.index("\n\n", text.index("# requestforge") + 2) + 3
    demo, tests = readme_commands()
    assert demo.endswith("demo.py")
    assert "pytest" in tests


def test_ci_runs_both_readme_commands() -> None:
    """.ci/run contains the README's demo and test commands verbatim."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in readme_commands():
        assert command in lines


def test_pytest_plugin_entry_point_name() -> None:
    """The pytest11 entry point is exactly requestforge_testing = "requestforge_testing"."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.entry-points.pytest11]")[1].split("[")[0]
    assert section.strip() == 'requestforge_testing = "requestforge_testing"'


def test_ci_proves_what_a_plain_install_gives() -> None:
    """.ci/run gives the newcomer's test file the testing extra, and checks a plain
    `pip install .` (requests alone) and then pytest alone with plain_install.py."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    newcomer = next(line for line in lines if 'newcomer/venv/bin/pip" install' in line)
    assert newcomer.endswith("install -q '.[testing]'")
    plain = lines.index('python3 -m venv "$plain/venv" && "$plain/venv/bin/pip" install -q .')
    assert lines[plain + 1 : plain + 4] == [
        '"$plain/venv/bin/python" .ci/newcomer/plain_install.py client',
        '"$plain/venv/bin/pip" install -q pytest',
        '"$plain/venv/bin/python" .ci/newcomer/plain_install.py plugin',
    ]
