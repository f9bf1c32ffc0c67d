"""The child-process servers without their binary: a clear error, and fixtures that skip
(or fail under CI) saying what to install."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from requestforge_testing import ProxyServer, RedisServer
from tests.inner_pytest import run_inner


@dataclass(frozen=True)
class Binary:
    """A server binary, its class, what installs it and the plugin fixtures that need it."""

    name: str
    server: type[ProxyServer] | type[RedisServer]
    install: str
    fixtures: tuple[str, ...]

    @property
    def missing(self) -> str:
        """What the class raises and the fixtures skip (or fail) with."""
        return f"{self.name} not found: {self.install}"

    def inner_tests(self) -> str:
        """A test file with one test per fixture, none of which may run."""
        return "".join(
            f"def test_needs_{fixture}({fixture}):\n    raise AssertionError('must not run')\n\n"
            for fixture in self.fixtures
        )


BINARIES = [
    pytest.param(
        Binary(
            "tinyproxy",
            ProxyServer,
            "apt-get install tinyproxy",
            ("forge_proxy", "forge_proxy_server"),
        ),
        id="tinyproxy",
    ),
    pytest.param(
        Binary(
            "redis-server",
            RedisServer,
            "apt-get install redis-server",
            ("forge_redis", "forge_redis_cluster"),
        ),
        id="redis-server",
    ),
]


@pytest.mark.parametrize("binary", BINARIES)
def test_missing_binary_is_reported(binary: Binary) -> None:
    """A binary that is not on PATH is a clear FileNotFoundError, and available() says so."""
    other = f"no-such-{binary.name}"
    assert binary.server.available()
    assert not binary.server.available(other)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{other} not found: {binary.install}")):
        binary.server(binary=other)


@pytest.mark.parametrize("binary", BINARIES)
@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_binary_skips_outside_ci(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ci: str | None,
    binary: Binary,
) -> None:
    """Without the binary on PATH each test using a fixture is skipped, saying what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(binary.inner_tests())
    result = run_inner(pytester, monkeypatch, "-rs")
    result.assert_outcomes(skipped=len(binary.fixtures))
    result.stdout.fnmatch_lines([f"*{binary.missing}*"])


@pytest.mark.parametrize("binary", BINARIES)
@pytest.mark.parametrize("ci", ["true", "1", "True", "yes"])
def test_missing_binary_fails_under_ci(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ci: str,
    binary: Binary,
) -> None:
    """Under CI a missing binary fails each test using a fixture instead of skipping it
    unnoticed."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(binary.inner_tests())
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(errors=len(binary.fixtures))
    result.stdout.fnmatch_lines([f"*{binary.missing}*"])
    assert result.ret != 0
