"""MemcachedServer and the forge_memcached fixtures: a real server per session, flushed per test."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from requestforge_testing import MemcachedServer
from tests.inner_pytest import run_inner

#: A TTL read back within this many seconds of a write: memcached's clock ticks once a
#: second, and only a test stalled for most of a minute would read less.
STALL = 60


def store(server: MemcachedServer, key: str, value: bytes, exptime: int) -> None:
    """Write ``key`` with memcached's text protocol, as any client would."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), exptime, len(value), value))
        assert sock.recv(64) == b"STORED\r\n"


def test_forge_memcached_is_a_running_server(forge_memcached: MemcachedServer) -> None:
    """forge_memcached answers on 127.0.0.1, on TCP, at the location Django's LOCATION takes."""
    assert forge_memcached.location == f"127.0.0.1:{forge_memcached.port}"
    assert forge_memcached.host == "127.0.0.1"
    with socket.create_connection((forge_memcached.host, forge_memcached.port), timeout=5) as sock:
        sock.sendall(b"version\r\n")
        assert re.fullmatch(rb"VERSION \d+\.\d+\.\d+\r\n", sock.recv(64))
    assert "running" in repr(forge_memcached)


def test_ttl_reads_what_memcached_keeps(forge_memcached: MemcachedServer) -> None:
    """ttl() is the seconds left, -1 for an item that never expires and None for a missing one."""
    store(forge_memcached, "short", b"1", 100)
    store(forge_memcached, "forever", b"1", 0)
    left = forge_memcached.ttl("short")
    assert left is not None
    assert 100 - STALL < left <= 100
    assert forge_memcached.ttl("forever") == -1
    assert forge_memcached.ttl("missing") is None


@pytest.mark.parametrize("key", ["", "has space", "new\nline", "caf\u00e9"])
def test_ttl_rejects_keys_memcached_would_refuse(
    forge_memcached: MemcachedServer, key: str
) -> None:
    """A key memcached's text protocol cannot carry is a ValueError, not a garbled command."""
    with pytest.raises(ValueError, match="not a memcached key"):
        forge_memcached.ttl(key)


def test_flushall_deletes_every_item(forge_memcached: MemcachedServer) -> None:
    """After flushall() no item is left, and items written afterwards are kept."""
    store(forge_memcached, "k", b"1", 0)
    forge_memcached.flushall()
    assert forge_memcached.ttl("k") is None
    store(forge_memcached, "k", b"2", 0)
    assert forge_memcached.ttl("k") == -1


def test_every_test_gets_a_flushed_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items written by one test are gone in the next, though the server is shared."""
    pytester.makepyfile(
        """
        import socket

        PORTS = []

        def test_first(forge_memcached):
            PORTS.append(forge_memcached.port)
            with socket.create_connection((forge_memcached.host, forge_memcached.port)) as s:
                s.sendall(b"set leftover 0 0 1\\r\\nx\\r\\n")
                assert s.recv(64) == b"STORED\\r\\n"
            assert forge_memcached.ttl("leftover") == -1

        def test_second(forge_memcached):
            assert forge_memcached.port == PORTS[0]
            assert forge_memcached.ttl("leftover") is None
        """
    )
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=2)


def test_server_stops_and_cleans_up() -> None:
    """stop() ends the process (the port refuses connections) and removes its directory."""
    server = MemcachedServer()
    directory = server._dir
    assert directory.is_dir()
    server.stop()
    server.stop()  # twice is harmless
    assert not directory.exists()
    assert "stopped" in repr(server)
    with pytest.raises(RuntimeError, match="stopped"):
        server.flushall()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((server.host, server.port), timeout=2),
    ):
        pass


def test_server_is_a_context_manager() -> None:
    """Leaving the with block stops the server."""
    with MemcachedServer() as server:
        server.flushall()
        port = server.port
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass


def test_two_servers_get_different_ports() -> None:
    """Each server picks its own free port and keeps its own items."""
    with MemcachedServer() as first, MemcachedServer() as second:
        assert first.port != second.port
        store(first, "k", b"1", 0)
        assert first.ttl("k") == -1
        assert second.ttl("k") is None


def test_missing_binary_is_reported() -> None:
    """A binary that is not on PATH is a clear FileNotFoundError, and available() says so."""
    assert MemcachedServer.available()
    assert not MemcachedServer.available("no-such-memcached")
    with pytest.raises(
        FileNotFoundError, match="no-such-memcached not found: apt-get install memcached"
    ):
        MemcachedServer(binary="no-such-memcached")


INNER_TESTS = """
def test_needs_forge_memcached(forge_memcached):
    raise AssertionError("must not run")

def test_needs_forge_memcached_server(forge_memcached_server):
    raise AssertionError("must not run")
"""


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "errors")])
def test_missing_binary_skips_or_fails_under_ci(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ci: str | None,
    outcome: str,
) -> None:
    """Without memcached on PATH the fixtures skip saying what to install; under CI they fail."""
    monkeypatch.setenv("PATH", str(tmp_path))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(INNER_TESTS)
    result = run_inner(pytester, monkeypatch, "-rs")
    result.assert_outcomes(**{outcome: 2})
    result.stdout.fnmatch_lines(["*memcached not found: apt-get install memcached*"])
