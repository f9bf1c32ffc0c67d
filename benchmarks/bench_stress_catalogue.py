"""forge_stress on its defaults: how often each user bug of the catalogue is caught.

Runs ``tests/plugin/catalogue_of_user_bugs.py`` as a user's test file, in a fresh pytest
process with only the plugin loaded, under ``--forge-stress-repeat``: every bug
``--bug-runs`` times and every correct twin ``--twin-runs`` times, each repetition on new
random schedules. Reported per test: caught (bugs) or false alarms (twins) per runs, and
the median and slowest seconds per test (setup, call and teardown). Targets: every bug
caught in every run, no false alarm, every test under 2 s.

Run: ``.venv/bin/python benchmarks/bench_stress_catalogue.py [--bug-runs 100] [--twin-runs 1000]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

CATALOGUE = Path(__file__).parents[1] / "tests" / "plugin" / "catalogue_of_user_bugs.py"
REPETITION = re.compile(r"stress-\d+-of-\d+-?|-stress-\d+-of-\d+")


def run(selection: str, runs: int) -> tuple[dict[str, list[tuple[bool, float]]], float]:
    """Outcomes (failed, seconds) per test for ``runs`` repetitions, and the wall time."""
    with tempfile.TemporaryDirectory() as directory:
        shutil.copy(CATALOGUE, Path(directory) / "test_catalogue.py")
        junit = Path(directory) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "requestforge_testing",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "--tb=no",
            f"--junitxml={junit}",
            f"--forge-stress-repeat={runs}",
            "-k",
            selection,
            "test_catalogue.py",
        ]
        environment = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        began = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own interpreter and arguments
            command, cwd=directory, env=environment, check=False, capture_output=True
        )
        wall = time.perf_counter() - began
        results: dict[str, list[tuple[bool, float]]] = defaultdict(list)
        for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
            name = REPETITION.sub("", case.get("name", "")).replace("[]", "")  # one id per test
            failed = case.find("failure") is not None or case.find("error") is not None
            results[name].append((failed, float(case.get("time", "0"))))
    return results, wall


def table(title: str, results: dict[str, list[tuple[bool, float]]], *, bugs: bool) -> None:
    print(f"\n{title}")
    print(f"  {'test':<72} {'caught' if bugs else 'false alarms':>12} {'median s':>9} {'max s':>7}")
    for name, outcomes in sorted(results.items()):
        failed = sum(f for f, _ in outcomes)
        seconds = [s for _, s in outcomes]
        print(
            f"  {name:<72} {f'{failed}/{len(outcomes)}':>12} "
            f"{statistics.median(seconds):>9.3f} {max(seconds):>7.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bug-runs", type=int, default=100)
    parser.add_argument("--twin-runs", type=int, default=1000)
    args = parser.parse_args()
    bugs, bug_wall = run("bug", args.bug_runs)
    twins, twin_wall = run("fixed", args.twin_runs)
    table(f"bugs, {args.bug_runs} runs each ({bug_wall:.0f} s)", bugs, bugs=True)
    table(f"correct twins, {args.twin_runs} runs each ({twin_wall:.0f} s)", twins, bugs=False)
    missed = sum(not f for outcomes in bugs.values() for f, _ in outcomes)
    alarms = sum(f for outcomes in twins.values() for f, _ in outcomes)
    slowest = max(s for results in (bugs, twins) for o in results.values() for _, s in o)
    print(
        f"\n{len(bugs)} bugs: {missed} missed runs; {len(twins)} twins: {alarms} false alarms; "
        f"slowest test {slowest:.2f} s (targets: 0, 0, < 2 s)"
    )


if __name__ == "__main__":
    main()
