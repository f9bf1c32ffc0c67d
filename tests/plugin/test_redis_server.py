"""RedisServer and the forge_redis fixtures: a real server per session, flushed per test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from redis.crc import key_slot

from requestforge_testing import RedisServer
from tests.inner_pytest import run_inner


def test_forge_redis_is_a_running_server(forge_redis: RedisServer) -> None:
    """forge_redis answers on 127.0.0.1 and keeps nothing on disk."""
    assert forge_redis.url == f"redis://127.0.0.1:{forge_redis.port}/0"
    with forge_redis.client() as client:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_every_test_gets_a_flushed_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys written by one test are gone in the next, though the server is shared."""
    pytester.makepyfile(
        """
        PORTS = []

        def test_first(forge_redis):
            PORTS.append(forge_redis.port)
            with forge_redis.client() as client:
                client.set("leftover", "1")

        def test_second(forge_redis):
            assert forge_redis.port == PORTS[0]
            with forge_redis.client() as client:
                assert client.dbsize() == 0
        """
    )
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=2)


def test_server_stops_and_cleans_up() -> None:
    """stop() ends the process (the port refuses connections) and removes its directory."""
    server = RedisServer()
    with server.client() as client:
        directory = Path(client.config_get("dir")["dir"])
    assert directory.is_dir()
    assert "running" in repr(server)
    server.stop()
    server.stop()  # twice is harmless
    assert not directory.exists()
    assert "stopped" in repr(server)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((server.host, server.port), timeout=2),
    ):
        pass


def test_server_is_a_context_manager() -> None:
    """Leaving the with block stops the server."""
    with RedisServer() as server:
        with server.client() as client:
            assert client.ping()
        port = server.port
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass


def test_two_servers_get_different_ports() -> None:
    """Each server picks its own free port, so tests and benchmarks can run several."""
    with RedisServer() as first, RedisServer() as second:
        assert first.port != second.port
        with first.client() as one, second.client() as two:
            one.set("k", "1")
            assert two.get("k") is None


def test_cluster_client_needs_a_cluster(forge_redis: RedisServer) -> None:
    """cluster_client() on a plain server is a clear error, not a hanging client."""
    assert not forge_redis.cluster
    with pytest.raises(RuntimeError, match="cluster=True"):
        forge_redis.cluster_client()


def test_forge_redis_cluster_serves_every_slot(forge_redis_cluster: RedisServer) -> None:
    """The cluster fixture is a healthy single-node cluster that RedisCluster can use."""
    assert forge_redis_cluster.cluster
    with forge_redis_cluster.client() as client:
        info = client.cluster("INFO")
    assert info["cluster_state"] == "ok"
    assert info["cluster_slots_assigned"] == "16384"
    cluster = forge_redis_cluster.cluster_client()
    try:
        assert key_slot(b"a") != key_slot(b"b")
        cluster.set("a", "1")
        cluster.set("b", "2")  # another slot, same node
        assert (cluster.get("a"), cluster.get("b")) == (b"1", b"2")
    finally:
        cluster.close()
