"""One rule for "is this CI?", shared by the cassettes and the Redis fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from requestforge_testing._cassette_pytest import resolve_record_mode
from requestforge_testing._env import ci_is_set

TRUE = ["true", "1", "CircleCI", "yes", "woodpecker", " True "]
FALSE = ["false", "0", "", "no", "off", " FALSE "]


@pytest.mark.parametrize("value", TRUE)
def test_any_value_but_a_false_one_is_ci(value: str) -> None:
    """CI set to true, 1, yes or a service's own name (CI=CircleCI) means CI."""
    assert ci_is_set({"CI": value})


@pytest.mark.parametrize("value", FALSE)
def test_false_values_and_empty_are_not_ci(value: str) -> None:
    """CI set to false, 0, no, off or nothing (any case, any padding) means not CI."""
    assert not ci_is_set({"CI": value})


def test_unset_is_not_ci_and_the_default_is_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without CI in the mapping it is not CI; without a mapping os.environ decides."""
    assert not ci_is_set({})
    monkeypatch.delenv("CI", raising=False)
    assert not ci_is_set()
    monkeypatch.setenv("CI", "CircleCI")
    assert ci_is_set()


@pytest.mark.parametrize(("value", "mode"), [("CircleCI", "none"), ("0", "once")])
def test_cassettes_follow_the_rule(value: str, mode: str) -> None:
    """The cassettes' default record mode is none exactly when ci_is_set() says CI."""
    assert resolve_record_mode(None, None, {"CI": value}) == mode


@pytest.mark.parametrize(("value", "outcome"), [("CircleCI", "errors"), ("off", "skipped")])
def test_redis_fixtures_follow_the_rule(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    value: str,
    outcome: str,
) -> None:
    """Without redis-server a Redis test fails under CI=CircleCI and skips under CI=off,
    as the cassettes would replay only and record respectively."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("CI", value)
    pytester.makepyfile("def test_needs_redis(forge_redis):\n    raise AssertionError\n")
    result = pytester.runpytest("-p", "requestforge_testing", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*redis-server not found: apt-get install redis-server*"])
