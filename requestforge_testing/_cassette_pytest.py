"""The pytest side of cassettes: where a test's cassette lives and which record mode applies.

Kept apart from ``_cassettes`` so that ``ForgeCassette`` works without pytest installed.

- **Path**: ``<test dir>/cassettes/<module>/<test>.yaml``, where ``<test>`` is the test's
  name with its class (``TestFlows.test_refresh[basic]``); the marker's ``path`` overrides
  it, relative to the test file's directory.
- **Record mode**: ``--forge-record-mode`` when given on the command line; else the marker's
  ``record_mode``; else ``none`` when the ``CI`` environment variable is true (CI must never
  record: a missing cassette fails) and ``once`` otherwise. The command line wins so that a
  cassette pinned by its marker can still be recorded again on purpose.
- **Rules** (``scrub_headers``, ``scrub_fields``, ``match_on``): a ``forge_cassette_config``
  fixture of the user's (module, class or conftest) returns them as a dict for many tests;
  the marker's own keywords come on top: its names are added to the fixture's (so a
  secret listed once is never let through by a test that lists another), its ``match_on``
  replaces the fixture's. Checked before the test runs; a mistake fails it at setup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from requestforge._exceptions import ConfigurationError
from requestforge_testing._cassette_errors import MissingCassetteError
from requestforge_testing._cassette_rules import RULE_OPTIONS, CassetteRules
from requestforge_testing._cassettes import RECORD_MODES, ForgeCassette
from requestforge_testing._clock import FakeClock
from requestforge_testing._env import ci_is_set

__all__ = [
    "CALL_FAILED",
    "CONFIG_FIXTURE",
    "cassette_path",
    "ci_is_set",
    "close_for_test",
    "open_for_test",
    "resolve_record_mode",
]

#: Set by the plugin's ``pytest_runtest_makereport``: whether the test body failed, in which
#: case its recording is not saved and the cassette's own refusals are not raised again.
CALL_FAILED: Final = pytest.StashKey[bool]()
#: Characters that are not allowed (or not wise) in a file name on some system.
_UNSAFE = re.compile(r'[\\/:*?"<>|\s]+')
_MARKER_OPTIONS: Final = frozenset({"path", "record_mode", *RULE_OPTIONS})
#: The user's fixture that gives the rules of every cassette in its scope.
CONFIG_FIXTURE: Final = "forge_cassette_config"
_SIGNATURE: Final = (
    "forge_cassette(path=None, *, record_mode=None, scrub_headers=(), scrub_fields=(), "
    "match_on=None)"
)


def resolve_record_mode(option: str | None, marker: str | None, environ: Mapping[str, str]) -> str:
    """The record mode: command line, then marker, then ``none`` under CI, else ``once``."""
    if option is not None:
        return option
    if marker is not None:
        return marker
    return "none" if ci_is_set(environ) else "once"


def cassette_path(item: pytest.Item, override: str | os.PathLike[str] | None = None) -> Path:
    """Where ``item``'s cassette lives (see the module docstring)."""
    test_dir = item.path.parent
    if override is not None:
        return test_dir / Path(override)
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return test_dir / "cassettes" / item.path.stem / f"{_UNSAFE.sub('_', name)}.yaml"


def open_for_test(request: pytest.FixtureRequest) -> ForgeCassette:
    """Open the cassette of the test ``request`` belongs to, or fail the test clearly."""
    item = request.node
    path, marker_mode, marker_rules = _marker_options(item)
    rules = _extend(CassetteRules(), f"{CONFIG_FIXTURE} fixture", _config(request))
    rules = _extend(rules, "forge_cassette marker", marker_rules)
    option = request.config.getoption("forge_record_mode")
    mode = resolve_record_mode(option, marker_mode, os.environ)
    clock = None
    if "forge_clock" in request.fixturenames:
        value = request.getfixturevalue("forge_clock")
        clock = value if isinstance(value, FakeClock) else None
    cassette = ForgeCassette(
        cassette_path(item, path),
        record_mode=mode,
        clock=clock,
        scrub_headers=rules.scrub_headers,
        scrub_fields=rules.scrub_fields,
        match_on=rules.match_on,
    )
    try:
        cassette.open()
    except MissingCassetteError as exc:
        pytest.fail(
            f"forge_cassette: {exc}\n  e.g. pytest --forge-record-mode=once '{item.nodeid}'",
            pytrace=False,
        )
    return cassette


def close_for_test(request: pytest.FixtureRequest, cassette: ForgeCassette) -> None:
    """Close the cassette, saving it unless the test body failed."""
    cassette.close(failed=request.node.stash.get(CALL_FAILED, False))


def _config(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """The user's ``forge_cassette_config`` fixture's value, or no options without one."""
    try:
        config = request.getfixturevalue(CONFIG_FIXTURE)
    except pytest.FixtureLookupError as exc:
        if exc.argname != CONFIG_FIXTURE:
            raise  # the user's fixture exists and asks for one that does not
        return {}
    if not isinstance(config, Mapping):
        pytest.fail(
            f"the {CONFIG_FIXTURE} fixture must return a dict of the options "
            f"{', '.join(RULE_OPTIONS)}, got {type(config).__name__}",
            pytrace=False,
        )
    return config


def _extend(rules: CassetteRules, source: str, options: Mapping[str, Any]) -> CassetteRules:
    try:
        return rules.extended(options)
    except ConfigurationError as exc:
        problem = str(exc)
    pytest.fail(f"{source}: {problem}", pytrace=False)  # outside: no "during handling" chain


def _marker_options(item: pytest.Item) -> tuple[str | None, str | None, dict[str, Any]]:
    marker = item.get_closest_marker("forge_cassette")
    if marker is None:
        return None, None, {}
    unknown = set(marker.kwargs) - _MARKER_OPTIONS
    if len(marker.args) > 1 or unknown or (marker.args and "path" in marker.kwargs):
        pytest.fail(
            f"forge_cassette marker takes {_SIGNATURE}, got "
            f"args {marker.args!r} and keywords {sorted(marker.kwargs)!r}",
            pytrace=False,
        )
    path = marker.args[0] if marker.args else marker.kwargs.get("path")
    mode = marker.kwargs.get("record_mode")
    if path is not None and not isinstance(path, str | os.PathLike):
        pytest.fail(f"forge_cassette path must be a path, got {path!r}", pytrace=False)
    if mode is not None and mode not in RECORD_MODES:
        pytest.fail(
            f"forge_cassette record_mode must be one of {', '.join(RECORD_MODES)}, got {mode!r}",
            pytrace=False,
        )
    rules = {name: marker.kwargs[name] for name in RULE_OPTIONS if name in marker.kwargs}
    if rules.get("match_on", ()) is None:
        del rules["match_on"]  # as in the signature: None leaves it to the fixture or default
    return (None if path is None else os.fspath(path)), mode, rules
