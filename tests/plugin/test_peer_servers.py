"""The peer server classes without their servers: settings checked, missing packages named,
the fixtures' skip under a developer's run and failure under CI."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from requestforge_testing._peers import AuthlibServer, DotServer, missing_peer_packages
from tests.inner_pytest import run_inner


@pytest.mark.parametrize("lifetime", [0, -1, 1.5, True, "60"])
def test_a_bad_lifetime_is_refused(lifetime: Any) -> None:
    """A lifetime that is not a positive integer is a ValueError for both servers."""
    with pytest.raises(ValueError, match="lifetime must be an integer >= 1"):
        AuthlibServer(lifetime=lifetime)
    with pytest.raises(ValueError, match="lifetime must be an integer >= 1"):
        DotServer(lifetime=lifetime)


def test_rotation_must_be_a_bool() -> None:
    """DotServer's rotate_refresh_tokens takes True or False only."""
    with pytest.raises(TypeError, match="rotate_refresh_tokens must be a bool"):
        DotServer(rotate_refresh_tokens=1)  # type: ignore[arg-type]


def test_stopped_servers_say_so() -> None:
    """Before start() the reprs say stopped and a DOT control call is a clear error."""
    authlib, dot = AuthlibServer(), DotServer()
    assert repr(authlib) == "AuthlibServer(stopped)"
    assert repr(dot) == "DotServer(stopped)"
    assert not authlib.running
    with pytest.raises(RuntimeError, match="not running: call start"):
        dot.reset()
    with pytest.raises(RuntimeError, match="made by start"):
        _ = authlib.private_key
    authlib.stop()
    dot.stop()  # stopping a server never started is harmless


def test_the_secrets_stay_out_of_the_reprs() -> None:
    """A stopped or running peer's repr names no client secret or password."""
    for server in (AuthlibServer(), DotServer()):
        text = repr(server)
        assert "secret" not in text
        assert "password" not in text


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each peer names the distributions it cannot import, and none when all are there."""
    assert missing_peer_packages("authlib") == ()
    assert missing_peer_packages("dot") == ()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "requestforge_testing._peers._authlib.find_spec",
        lambda name: None if name in {"flask", "oauth2_provider"} else real(name),
    )
    assert AuthlibServer.missing() == ("flask",)
    assert DotServer.missing() == ("django-oauth-toolkit",)


INNER_TESTS = """
def test_needs_authlib(forge_authlib_server):
    raise AssertionError("must not run")

def test_needs_dot(forge_dot_server):
    raise AssertionError("must not run")
"""


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "errors")])
def test_missing_packages_skip_or_fail_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: str
) -> None:
    """Without the peers' packages the fixtures skip naming them; under CI they fail."""
    monkeypatch.setattr(AuthlibServer, "missing", staticmethod(lambda: ("authlib", "flask")))
    monkeypatch.setattr(DotServer, "missing", staticmethod(lambda: ("django-oauth-toolkit",)))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(INNER_TESTS)
    result = run_inner(pytester, monkeypatch, "-rs")
    result.assert_outcomes(**{outcome: 2})
    result.stdout.fnmatch_lines(
        [
            "*authlib, flask not installed: pip install 'requestforge?dev?'",
            "*django-oauth-toolkit not installed: pip install 'requestforge?dev?'",
        ]
    )
