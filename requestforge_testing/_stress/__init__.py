"""``forge_stress``: many threads, a schedule that makes their races happen, and a report.

One concept in several modules, read in this order:

- ``runner``: ``forge_stress`` itself, its arguments, seeds and schedules, the marker;
- ``schedule``: one round's workers and the scheduler that parks and releases them;
- ``trace``: forced interleavings, parking before every write in the user's code;
- ``waits``, ``bytecode``: telling a waiting thread from a running one by its frame;
- ``registry``: which threads are workers (``hold()`` for fake providers);
- ``report``, ``fetches``, ``tokens``, ``counting``, ``text``: the report and its
  assertions;
- ``observe``: the connections and provider calls watched during a run.
"""

from __future__ import annotations

from requestforge_testing._stress.counting import StressCounter
from requestforge_testing._stress.report import (
    FetchCounter,
    HasFetchCount,
    SessionSource,
    StressOutcome,
    StressReport,
    StressRound,
)
from requestforge_testing._stress.runner import (
    DEFAULT_MARKER_THREADS,
    DEFAULTS,
    ForgeStressWarning,
    StressRunner,
    forge_stress,
    run_stress_marker,
)
from requestforge_testing._stress.schedule import StressTimeoutError

__all__ = [
    "DEFAULTS",
    "DEFAULT_MARKER_THREADS",
    "FetchCounter",
    "ForgeStressWarning",
    "HasFetchCount",
    "SessionSource",
    "StressCounter",
    "StressOutcome",
    "StressReport",
    "StressRound",
    "StressRunner",
    "StressTimeoutError",
    "forge_stress",
    "run_stress_marker",
]
