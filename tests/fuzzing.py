"""How hard the property tests over public entry points push: one number for all of them.

The suite keeps it small; ``benchmarks/bench_fuzz.py`` sets ``FORGE_FUZZ_EXAMPLES`` (2,000
or more) to run the same properties at benchmark strength.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per property: small in the suite, large when the benchmark asks.
EXAMPLES = int(os.environ.get("FORGE_FUZZ_EXAMPLES", "100"))

#: The settings every entry-point property uses.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
