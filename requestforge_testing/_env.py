"""What the environment says: whether this is a CI run, and whether the testing extra is in.

One rule each, shared by the cassettes (record mode ``none`` under CI), the Redis fixtures
(a missing ``redis-server`` fails under CI instead of skipping) and the plugin's guard for
a missing ``requestforge[testing]`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.util import find_spec
from typing import Final

__all__ = ["TESTING_EXTRA", "ci_is_set", "missing_testing_extra", "testing_extra_hint"]

#: Values of ``CI`` that mean "not CI". Anything else counts: services set ``true`` or
#: ``1``, and some their own name (``CI=woodpecker``), so a list of true values would miss
#: one; a list of false values cannot.
_FALSE_VALUES: Final = frozenset({"", "0", "false", "no", "off"})

#: The ``requestforge[testing]`` extra: the module each distribution provides, by name.
TESTING_EXTRA: Final = {
    "pytest": "pytest",
    "responses": "responses",
    "vcrpy": "vcr",
    "time-machine": "time_machine",
    "trustme": "trustme",
}


def ci_is_set(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CI`` (in ``environ``, default ``os.environ``) says this is a CI run."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in _FALSE_VALUES


def missing_testing_extra() -> tuple[str, ...]:
    """The distributions of the testing extra that cannot be imported here, by name.

    ``find_spec`` only locates a module: nothing is imported, so nothing is patched.
    """
    return tuple(dist for dist, module in TESTING_EXTRA.items() if find_spec(module) is None)


def testing_extra_hint(missing: tuple[str, ...]) -> str:
    """The one line every "the extra is missing" error says."""
    return (
        f"requestforge_testing needs the testing extra ({', '.join(missing)} not installed): "
        "pip install 'requestforge[testing]'"
    )
