"""Production-like Redis for tests: RedisServer's TLS, ACL and restart options, a Sentinel
deployment that fails over, and a Cluster of several masters whose slots can move."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError
from redis.retry import Retry

from requestforge_testing import (
    CertificateAuthority,
    RedisClusterDeployment,
    RedisSentinelDeployment,
    RedisServer,
)
from tests.inner_pytest import run_inner


def _once(port: int, **options: object) -> redis.Redis:
    """A client to 127.0.0.1:``port`` that tries once: redis-py 6+ retries a refused
    connection three times with backoff by default, seconds each."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        **options,  # type: ignore[arg-type]
    )


def _redirect(error: BaseException) -> str | None:
    """``ASK`` or ``MOVED`` for a cluster redirection error (redis-py 5 raises it from a plain
    client as a ResponseError naming it; later ones as MovedError, a subclass of AskError)."""
    if isinstance(error, MovedError) or str(error).startswith("MOVED "):
        return "MOVED"
    if isinstance(error, AskError) or str(error).startswith("ASK "):
        return "ASK"
    return None


def _refuses(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# -- TLS ----------------------------------------------------------------------------------


def test_tls_server_speaks_tls_only(forge_redis_tls: RedisServer) -> None:
    """The TLS server's URL is rediss:// with the CA, its client verifies it, and a plaintext
    client or one that does not trust the CA is refused."""
    assert forge_redis_tls.tls
    assert forge_redis_tls.url.startswith(f"rediss://127.0.0.1:{forge_redis_tls.port}/0?")
    with forge_redis_tls.client() as client:
        assert client.ping()
    with redis.Redis.from_url(forge_redis_tls.url) as client:
        assert client.ping()
    plain = _once(forge_redis_tls.port)
    untrusted = _once(forge_redis_tls.port, ssl=True)
    for refused in (plain, untrusted):
        with refused, pytest.raises(redis.ConnectionError):
            refused.ping()


def test_tls_server_can_require_client_certificates(forge_tls: CertificateAuthority) -> None:
    """client_certificates=True refuses a TLS client without a certificate from the CA."""
    with RedisServer(tls=forge_tls, client_certificates=True) as server:
        with server.client() as client:
            assert client.ping()
        anonymous = _once(server.port, ssl=True, ssl_ca_certs=forge_tls.ca_bundle)
        with anonymous, pytest.raises(redis.ConnectionError):
            anonymous.ping()
        assert "ssl_certfile=" in server.url


# -- ACL ----------------------------------------------------------------------------------


def test_acl_server_admits_only_its_user(forge_redis_acl: RedisServer) -> None:
    """The ACL server admits its user with its password; a wrong password, no credentials
    and the disabled default user are refused."""
    assert forge_redis_acl.username == "forge-user"
    password = forge_redis_acl.password
    assert password
    with forge_redis_acl.client() as client:
        assert client.acl_whoami() in ("forge-user", b"forge-user")
    with redis.Redis.from_url(forge_redis_acl.url) as client:
        assert client.ping()
    port = forge_redis_acl.port
    wrong = _once(port, username="forge-user", password=password + "x")
    default = _once(port, username="default", password=password)
    anonymous = _once(port)
    for refused in (wrong, default):
        with refused, pytest.raises(redis.AuthenticationError):
            refused.ping()
    with anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.ping()


def test_acl_server_repr_hides_the_password(forge_redis_acl: RedisServer) -> None:
    """The repr names the user, not the password; the URL carries both for a client."""
    password = forge_redis_acl.password
    assert password
    assert password not in repr(forge_redis_acl)
    assert "user 'forge-user'" in repr(forge_redis_acl)
    assert f"forge-user:{password}@127.0.0.1" in forge_redis_acl.url


def test_password_alone_sets_requirepass() -> None:
    """password= without username= protects the default user (requirepass)."""
    with RedisServer(password="pw-only") as server:
        assert server.url == f"redis://:pw-only@127.0.0.1:{server.port}/0"
        with server.client() as client:
            assert client.acl_whoami() in ("default", b"default")
        with _once(server.port) as anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()


def test_the_password_never_reaches_the_command_line() -> None:
    """The ACL lines go to a private file, so ``ps`` never shows the password."""
    with RedisServer(username="ops", password="not-on-argv") as server:
        process = server._process
        assert process is not None
        argv = [str(arg) for arg in process.args]  # type: ignore[union-attr]
        assert not any("not-on-argv" in arg for arg in argv)
        proc_cmdline = Path(f"/proc/{process.pid}/cmdline")
        if proc_cmdline.exists():
            assert b"not-on-argv" not in proc_cmdline.read_bytes()
        users = next(Path(arg) for arg in argv if arg.endswith("users.conf"))
        assert users.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_certificates": True}, "needs tls="),
        ({"username": "ops"}, "needs a non-empty password"),
        ({"username": "ops", "password": "has space"}, "without whitespace"),
        ({"password": ""}, "non-empty"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    """Options that cannot work are a ValueError before any process starts."""
    with pytest.raises(ValueError, match=message):
        RedisServer(**options)  # type: ignore[arg-type]


# -- restart ------------------------------------------------------------------------------


def test_restart_comes_back_empty_on_the_same_port() -> None:
    """restart() is a new process on the same port with no keys; clients reconnect."""
    with RedisServer() as server:
        port = server.port
        client = server.client()
        try:
            client.set("k", "1")
            pid = client.info("server")["process_id"]
            server.restart()
            assert server.port == port
            assert client.get("k") is None  # redis-py reconnects once after the drop
            assert client.info("server")["process_id"] != pid
        finally:
            client.close()


def test_down_refuses_connections_until_the_block_ends() -> None:
    """Inside down() the port refuses connections; afterwards the server answers again,
    also when the block raised."""
    with RedisServer() as server:
        refused: list[bool] = []

        def fail_while_down() -> None:
            with server.down():
                refused.append(_refuses(server.port))
                raise KeyError("the block failed")

        with pytest.raises(KeyError):
            fail_while_down()
        assert refused == [True]
        with server.client() as client:
            assert client.ping()
        assert "running" in repr(server)


def test_restart_needs_a_running_server() -> None:
    """restart() after stop() is a clear error."""
    server = RedisServer()
    server.stop()
    with pytest.raises(RuntimeError, match="need a running server"):
        server.restart()


# -- Sentinel -----------------------------------------------------------------------------


def test_sentinel_deployment_replicates_and_knows_its_master(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """Every sentinel names the master; a write there reaches the replica."""
    master = forge_redis_sentinel.master
    assert len(forge_redis_sentinel.replicas) == 1
    assert len(forge_redis_sentinel.sentinels) == 3
    for sentinel in forge_redis_sentinel.sentinels:
        assert sentinel.master_address() == ("127.0.0.1", master.port)
    client = forge_redis_sentinel.master_client()
    try:
        client.set("k", "1")
        client.wait(1, 5000)
    finally:
        client.close()
    with forge_redis_sentinel.replicas[0].client() as replica:
        assert replica.get("k") == b"1"
        assert replica.execute_command("ROLE")[0] == b"slave"


def test_failover_promotes_the_replica_and_keeps_the_data(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """failover() returns the promoted replica: it is master, has the data, the old master
    replicates from it, and a Sentinel client follows it."""
    old = forge_redis_sentinel.master
    client = forge_redis_sentinel.master_client()
    try:
        client.set("k", "before")
        new = forge_redis_sentinel.failover()
        assert new is not old
        assert forge_redis_sentinel.master is new
        assert forge_redis_sentinel.replicas == [old]
        with new.client() as promoted, old.client() as demoted:
            assert promoted.execute_command("ROLE")[0] == b"master"
            assert demoted.execute_command("ROLE")[:3] == [b"slave", b"127.0.0.1", new.port]
            assert promoted.get("k") == b"before"
        client.connection_pool.disconnect()  # a fresh connection asks the sentinels again
        client.set("k", "after")
        with new.client() as promoted:
            assert promoted.get("k") == b"after"
    finally:
        client.close()
    for sentinel in forge_redis_sentinel.sentinels:
        assert sentinel.master_address() == ("127.0.0.1", new.port)


def test_sentinel_deployment_stops_every_process() -> None:
    """stop() ends the master, replica and sentinel processes (ports refuse connections)."""
    deployment = RedisSentinelDeployment(sentinels=1)
    ports = [server.port for server in deployment.servers]
    ports += [sentinel.port for sentinel in deployment.sentinels]
    assert "sentinels=1" in repr(deployment)
    deployment.stop()
    deployment.stop()  # twice is harmless
    assert all(_refuses(port) for port in ports)


def test_sentinel_deployment_needs_a_replica_and_a_sentinel() -> None:
    """A deployment with nothing to fail over to is a ValueError."""
    with pytest.raises(ValueError, match="at least one replica"):
        RedisSentinelDeployment(replicas=0)


def test_sentinel_fixture_skips_without_redis_sentinel(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With redis-server but no redis-sentinel on PATH the Sentinel fixtures skip, saying
    what to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink("/usr/bin/redis-server", bin_dir / "redis-server")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(
        "def test_needs_sentinel(forge_redis_sentinel):\n    raise AssertionError('ran')\n"
    )
    result = run_inner(pytester, monkeypatch, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*redis-sentinel not found: apt-get install redis-sentinel*"])


# -- Cluster ------------------------------------------------------------------------------


def test_cluster_has_three_masters_sharing_the_slots(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """Three masters own the slots: keys of different slots land on different nodes,
    hash-tagged keys on one, and RedisCluster reads them all back."""
    masters = forge_redis_sharded_cluster.masters()
    assert len(masters) == 3
    keys = [f"key-{n}" for n in range(30)]
    assert len({forge_redis_sharded_cluster.node_for(key).port for key in keys}) == 3
    tagged = ["requestforge:{svc}:token", "requestforge:{svc}:lock"]
    assert len({key_slot(key.encode()) for key in tagged}) == 1
    cluster = forge_redis_sharded_cluster.cluster_client()
    try:
        for key in [*keys, *tagged]:
            cluster.set(key, key)
        assert [cluster.get(key) for key in [*keys, *tagged]] == [
            key.encode() for key in [*keys, *tagged]
        ]
    finally:
        cluster.close()
    owner = forge_redis_sharded_cluster.node_for(tagged[0])
    with owner.client() as direct:
        assert direct.mget(tagged) == [key.encode() for key in tagged]  # one slot, one node


def test_migrating_redirects_with_ask_then_moved(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """Inside migrating() the old owner answers ASK for the moved key; afterwards MOVED, and
    the key with its TTL lives on the new owner."""
    key = "requestforge:{svc}:token"
    source = forge_redis_sharded_cluster.node_for(key)
    with source.client() as client:
        client.set(key, "v", px=600_000)
    with forge_redis_sharded_cluster.migrating(key) as target:
        assert target is not source
        with source.client() as client, pytest.raises(redis.ResponseError) as asked:
            client.get(key)
        assert _redirect(asked.value) == "ASK"
    assert forge_redis_sharded_cluster.node_for(key) is target
    with source.client() as client, pytest.raises(redis.ResponseError) as moved:
        client.get(key)
    assert _redirect(moved.value) == "MOVED"
    with target.client() as client:
        assert client.get(key) == b"v"
        assert 0 < client.pttl(key) <= 600_000


def test_migrate_slot_refuses_the_current_owner(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """Migrating a slot to the node that already owns it is a ValueError."""
    owner = forge_redis_sharded_cluster.node_for("k")
    with pytest.raises(ValueError, match="already serves"):
        forge_redis_sharded_cluster.migrate_slot("k", to=owner)


def test_cluster_deployment_needs_two_masters() -> None:
    """A one-master "cluster" is RedisServer(cluster=True), not a deployment."""
    with pytest.raises(ValueError, match="at least 2 masters"):
        RedisClusterDeployment(masters=1)


def test_cluster_deployment_stops_every_node() -> None:
    """stop() ends every node (ports refuse connections)."""
    deployment = RedisClusterDeployment(masters=2)
    ports = [node.port for node in deployment.nodes]
    deployment.stop()
    assert all(_refuses(port) for port in ports)


def test_deployment_fixtures_are_flushed_per_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key left by one test is gone in the next, for the Sentinel and Cluster fixtures."""
    pytester.makepyfile(
        """
        def _write(sentinel, cluster):
            client = sentinel.master_client()
            client.set("left", "1")
            client.close()
            nodes = cluster.cluster_client()
            nodes.set("left", "1")
            nodes.close()

        def _count(sentinel, cluster):
            client = sentinel.master_client()
            size = client.dbsize()
            client.close()
            return size + sum(node.client().dbsize() for node in cluster.nodes)

        def test_first(forge_redis_sentinel, forge_redis_sharded_cluster):
            _write(forge_redis_sentinel, forge_redis_sharded_cluster)
            assert _count(forge_redis_sentinel, forge_redis_sharded_cluster) == 2

        def test_second(forge_redis_sentinel, forge_redis_sharded_cluster):
            assert _count(forge_redis_sentinel, forge_redis_sharded_cluster) == 0
        """
    )
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=2)
