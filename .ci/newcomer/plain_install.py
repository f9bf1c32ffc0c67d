"""What a plain `pip install <repo>` gives a newcomer, proven in a fresh virtualenv.

.ci/run runs it with that virtualenv's python, twice:

- ``client``, right after ``pip install .``: the installed distributions are requestforge,
  requests and what requests needs, nothing else; ``import requestforge`` loads no test
  library; ``requestforge_testing``'s classes import, and freezing the wall clock names the
  extra to install.
- ``plugin``, after ``pip install pytest`` alone: pytest's autoload of the plugin leaves the
  user's own tests alone; a test using a forge fixture fails with the one line naming
  ``pip install 'requestforge[testing]'``; ``pytest -p requestforge_testing`` stops at
  start-up with exactly that line.

Only the standard library: the virtualenv has nothing else to offer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from importlib.metadata import distributions
from pathlib import Path

HINT = "pip install 'requestforge[testing]'"
TESTING_MODULES = {"pytest", "_pytest", "pluggy", "responses", "vcr", "yaml", "time_machine"}
INSTALLER = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, list[str]]:
    """Each installed distribution, by canonical name, with its unconditional requirements."""
    found = {}
    for dist in distributions():
        needs = []
        for line in dist.requires or []:
            requirement, _, marker = line.partition(";")
            if "extra" not in marker:
                match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
                needs.append(canonical(match.group(0)) if match else "")
        found[canonical(dist.metadata["Name"])] = needs
    return found


def closure(roots: list[str], graph: dict[str, list[str]]) -> set[str]:
    """``roots`` and everything they require, transitively, among what is installed."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in graph and name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def check_client() -> None:
    graph = installed()
    assert {"requestforge", "requests"} <= set(graph), sorted(graph)
    extra = set(graph) - INSTALLER - closure(["requestforge"], graph)
    assert not extra, f"installed beyond requestforge's needs: {sorted(extra)}"
    assert closure(["requestforge"], graph) == {"requestforge"} | closure(["requests"], graph)
    code = f"import sys, requestforge; print(sorted({TESTING_MODULES!r} & set(sys.modules)))"
    imported = run(sys.executable, "-c", code, cwd=Path.cwd())
    assert (imported.returncode, imported.stdout.strip()) == (0, "[]"), imported
    code = (
        "from requestforge_testing import ApiServer, FakeClock\n"
        "try:\n"
        "    FakeClock().freeze_wall_clock().__enter__()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    freeze = run(sys.executable, "-c", code, cwd=Path.cwd())
    assert freeze.returncode == 0, freeze
    assert HINT in freeze.stdout, freeze
    others = sorted(closure(["requests"], graph) - {"requests"})
    print(f"plain install: requestforge, requests and its {', '.join(others)}; nothing else")


USERS_OWN = "def test_the_users_own():\n    assert 1 + 1 == 2\n"
USES_THE_PLUGIN = "def test_retries(forge_api_server, forge_clock):\n    pass\n"


def check_plugin() -> None:
    graph = installed()
    assert "pytest" in graph
    assert not {"responses", "vcrpy", "time-machine"} & set(graph), sorted(graph)
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "test_users_own.py").write_text(USERS_OWN)
        (here / "test_uses_the_plugin.py").write_text(USES_THE_PLUGIN)
        pytest = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}

        own = run(*pytest, "test_users_own.py", cwd=here, env=env)
        assert own.returncode == 0, own.stdout + own.stderr
        assert HINT not in own.stdout + own.stderr, own.stdout

        both = run(*pytest, "-q", cwd=here, env=env)
        assert both.returncode == 1, both.stdout + both.stderr
        assert "1 passed, 1 error" in both.stdout, both.stdout
        assert HINT in both.stdout, both.stdout

        named = run(*pytest, "-p", "requestforge_testing", "test_users_own.py", cwd=here, env=env)
        lines = [line for line in named.stderr.splitlines() if line.strip()]
        assert named.returncode == 4, named.stdout + named.stderr
        assert len(lines) == 1, lines
        assert lines[0].startswith("ERROR: "), lines
        assert HINT in lines[0], lines
    print("pytest alone: the user's tests pass, the plugin's fail with one line:")
    print(f"  {lines[0]}")


if __name__ == "__main__":
    {"client": check_client, "plugin": check_plugin}[sys.argv[1]]()
