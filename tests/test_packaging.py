"""What `pip install requestforge` brings: requests alone; the plugin's needs are an extra.

The same promises are proven on a real fresh virtualenv by `.ci/newcomer/plain_install.py`,
which `.ci/run` runs; here they are checked against this installation's metadata.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import requires

import pytest

#: Modules of the testing extra (and its dependencies, and freezegun, which it replaced).
TESTING_MODULES = (
    "pytest",
    "_pytest",
    "pluggy",
    "responses",
    "vcr",
    "yaml",
    "time_machine",
    "trustme",
    "cryptography",
    "freezegun",
)


def requirements(extra: str | None) -> dict[str, str]:
    """requestforge's declared requirements for ``extra`` (None: the base install), by name."""
    found = {}
    for line in requires("requestforge") or []:
        requirement, _, marker = line.partition(";")
        wanted = re.search(r"""extra\s*==\s*["']([\w-]+)["']""", marker)
        if (wanted.group(1) if wanted else None) == extra:
            name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
            assert name is not None, line
            found[name.group(0).lower()] = requirement.strip()
    return found


def test_a_plain_install_requires_requests_alone() -> None:
    """`pip install requestforge` installs requests and nothing else of ours."""
    assert list(requirements(None)) == ["requests"]


def test_the_testing_extra_holds_what_the_plugin_needs() -> None:
    """`requestforge[testing]` brings pytest, responses, vcrpy, time-machine (>= 3.5, the
    newest for Python 3.10) and trustme (the TLS fixtures' certificates); freezegun is gone."""
    testing = requirements("testing")
    assert sorted(testing) == ["pytest", "responses", "time-machine", "trustme", "vcrpy"]
    assert testing["time-machine"] == "time-machine>=3.5"


def test_the_dev_extra_includes_testing() -> None:
    """`pip install -e '.[dev]'` (the README's commands) installs the testing extra too."""
    assert requirements("testing").items() <= requirements("dev").items()


def test_importing_requestforge_imports_no_test_library(pytester: pytest.Pytester) -> None:
    """`import requestforge` (the whole public API) loads none of the testing extra."""
    code = f"import sys, requestforge; print(sorted(set({TESTING_MODULES!r}) & set(sys.modules)))"
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()
    assert result.outlines == ["[]"]
