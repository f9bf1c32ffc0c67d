"""The entry-point properties at benchmark strength: examples run and failures per property.

The suite runs the property tests (``tests/test_fuzz_requests.py`` and, when present,
``tests/tokens/test_fuzz_tokens.py``) with a small number of examples; this runs the same files in
a subprocess pytest with ``FORGE_FUZZ_EXAMPLES`` set (2,000 by default), then reports for
each property the examples Hypothesis ran (passing / failing / invalid, from
``--hypothesis-show-statistics``) and pytest's outcome, with the failure's first line.
Target: every property passes, 0 failing examples (no exception outside RequestForgeError).

Run: ``.venv/bin/python benchmarks/bench_fuzz.py [--examples N] [files ...]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The property files, in the order they are reported; a missing one is skipped.
FILES = ("tests/test_fuzz_requests.py", "tests/tokens/test_fuzz_tokens.py")

_TEST_HEADER = re.compile(r"^(tests/\S+::\S+):\s*$")
_COUNTS = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid test cases")


@dataclass
class Property:
    """One property test: what Hypothesis ran and how pytest judged it."""

    name: str
    passing: int = 0
    failing: int = 0
    invalid: int = 0
    outcome: str = "?"
    detail: str = ""

    @property
    def examples(self) -> int:
        return self.passing + self.failing + self.invalid


def parse_statistics(output: str) -> dict[str, Property]:
    """Per test id, the example counts summed over Hypothesis' phases (generate, shrink...)."""
    found: dict[str, Property] = {}
    current: Property | None = None
    for line in output.splitlines():
        header = _TEST_HEADER.match(line)
        if header is not None:
            current = found.setdefault(header.group(1), Property(header.group(1)))
            continue
        counts = _COUNTS.search(line)
        if counts is not None and current is not None:
            current.passing += int(counts.group(1))
            current.failing += int(counts.group(2))
            current.invalid += int(counts.group(3))
    return found


def parse_outcomes(junit: Path, found: dict[str, Property]) -> None:
    """Fill in each test's outcome (and the first line of its failure) from a JUnit report."""
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
        path = case.get("classname", "").replace(".", "/") + ".py"
        name = f"{path}::{case.get('name')}"
        prop = found.setdefault(name, Property(name))
        problem = next(iter(case.findall("failure") + case.findall("error")), None)
        skipped = case.find("skipped")
        if problem is not None:
            prop.outcome = "FAILED"
            prop.detail = (problem.get("message") or "").strip().splitlines()[0][:110]
        elif skipped is not None:
            prop.outcome = "skipped"
            prop.detail = (skipped.get("message") or "")[:110]
        else:
            prop.outcome = "passed"


def run(files: list[str], examples: int) -> tuple[list[Property], float, int]:
    """Run pytest on ``files`` with ``examples`` per property; the properties, seconds, rc."""
    env = {**os.environ, "FORGE_FUZZ_EXAMPLES": str(examples)}
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "fuzz.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
            f"--junitxml={junit}",
            *files,
        ]
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - this interpreter running pytest
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        found = parse_statistics(done.stdout)
        if junit.exists():
            parse_outcomes(junit, found)
    return sorted(found.values(), key=lambda p: p.name), seconds, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per property")
    parser.add_argument("files", nargs="*", help=f"property files (default: {', '.join(FILES)})")
    args = parser.parse_args()
    files = args.files or [f for f in FILES if (ROOT / f).exists()]
    properties, seconds, returncode = run(files, args.examples)
    print(f"FORGE_FUZZ_EXAMPLES={args.examples}, files: {', '.join(files)}")
    print(f"{'property':<78} {'examples':>8} {'failing':>7} {'invalid':>7}  outcome")
    for prop in properties:
        short = prop.name.split("::", 1)[1] if "::" in prop.name else prop.name
        print(f"{short:<78} {prop.examples:>8} {prop.failing:>7} {prop.invalid:>7}  {prop.outcome}")
        if prop.detail:
            print(f"    {prop.detail}")
    failed = [p for p in properties if p.outcome == "FAILED"]
    total = sum(p.examples for p in properties)
    print(
        f"{len(properties)} properties, {total} examples, {len(failed)} failed, "
        f"{seconds:.0f} s (pytest exit status {returncode})"
    )
    sys.exit(1 if failed or returncode not in (0, 5) else 0)


if __name__ == "__main__":
    main()
