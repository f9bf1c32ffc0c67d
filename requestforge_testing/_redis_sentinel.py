"""``RedisSentinelDeployment``: a master, its replicas and Redis Sentinels, for failover tests.

A real Sentinel deployment on 127.0.0.1, started from Debian's ``redis-server`` and
``redis-sentinel`` binaries: every process a :class:`RedisServer` or a :class:`RedisSentinel`
(each a child process in its own temporary directory). :meth:`RedisSentinelDeployment.failover`
forces a failover with ``SENTINEL FAILOVER`` and returns once every sentinel names the
promoted replica and the old master replicates from it, so a test can run one failover after
another. Nothing is kept on disk.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from requestforge_testing._child import HOST, ChildServer
from requestforge_testing._redis import RedisServer

if TYPE_CHECKING:
    from redis import Redis
    from redis.sentinel import Sentinel

__all__ = ["RedisSentinel", "RedisSentinelDeployment"]

_T = TypeVar("_T")

#: A master waits 5 s by default before a diskless full sync, for more replicas to join:
#: every start and failover would wait that long.
_NO_SYNC_DELAY: Final = ("--repl-diskless-sync-delay", "0")


class RedisSentinel(ChildServer):
    """One ``redis-sentinel`` child process monitoring ``service_name`` at a master's port."""

    _BINARY = "redis-sentinel"
    _INSTALL = "apt-get install redis-sentinel"
    _DIR_PREFIX = "requestforge-sentinel-"
    _LOG_NAME = "sentinel.log"

    def __init__(
        self,
        service_name: str,
        master_port: int,
        *,
        quorum: int = 1,
        down_after: float = 1.0,
        failover_timeout: float = 10.0,
        binary: str | None = None,
    ) -> None:
        self._service_name = service_name
        self._master_port = master_port
        self._quorum = quorum
        self._down_after_ms = round(down_after * 1000)
        self._failover_timeout_ms = round(failover_timeout * 1000)
        super().__init__(binary=binary)

    def client(self, **kwargs: Any) -> Redis:
        """A new ``redis.Redis`` connected to this sentinel (close it when done)."""
        from redis import Redis  # noqa: PLC0415 - optional dependency

        return Redis(host=HOST, port=self._port, decode_responses=True, **kwargs)

    def master_address(self) -> tuple[str, int] | None:
        """Where this sentinel says the master is now, once no failover is in progress
        (``SENTINEL MASTER``, what redis-py's ``Sentinel.discover_master`` reads), else None.

        ``GET-MASTER-ADDR-BY-NAME`` names the promoted replica earlier, while the failover is
        still in progress; clients asking then would still be sent to the old master."""
        with self.client() as client:
            fields = _fields(client.execute_command("SENTINEL", "MASTER", self._service_name))
        flags = fields.get("flags", "").split(",")
        if "master" not in flags or "failover_in_progress" in flags:
            return None
        return fields["ip"], int(fields["port"])

    def __repr__(self) -> str:
        return f"RedisSentinel({HOST}:{self._port}, {self._service_name!r}, {self._state})"

    def _command(self) -> list[str]:
        # Sentinel rewrites its configuration file (what it learnt), so it gets its own file.
        config = self._dir / "sentinel.conf"
        name = self._service_name
        config.write_text(
            "\n".join(
                [
                    f"port {self._port}",
                    f"bind {HOST}",
                    "daemonize no",
                    f"dir {self._dir}",
                    f"logfile {self._log}",
                    f"sentinel announce-ip {HOST}",
                    f"sentinel monitor {name} {HOST} {self._master_port} {self._quorum}",
                    f"sentinel down-after-milliseconds {name} {self._down_after_ms}",
                    f"sentinel failover-timeout {name} {self._failover_timeout_ms}",
                    f"sentinel parallel-syncs {name} 1",
                    "",
                ]
            )
        )
        return [self._binary, str(config)]

    def _answers(self) -> bool:
        with socket.create_connection((HOST, self._port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


class RedisSentinelDeployment:
    """A Redis master, ``replicas`` replicas and ``sentinels`` sentinels on 127.0.0.1.

    Ready when it returns: every replica in sync and every sentinel knowing every replica
    and the other sentinels. :meth:`sentinel` gives a ``redis.sentinel.Sentinel`` over all
    sentinels and :meth:`master_client` a client that follows the master through failovers
    (``Sentinel.master_for``). ``stop()`` (or the ``with`` block) ends every process.
    """

    #: The name the sentinels monitor the master under.
    SERVICE_NAME: Final = "forge-master"
    #: How long a failover (or start-up's synchronisation) may take before it is an error:
    #: a failover takes one to a few seconds; a loaded CI machine may be slower.
    TIMEOUT: Final = 30.0
    #: Pause between checks while waiting (real time).
    POLL_INTERVAL: Final = 0.02

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        binary: str | None = None,
        sentinel_binary: str | None = None,
    ) -> None:
        if replicas < 1 or sentinels < 1:
            raise ValueError("a Sentinel deployment needs at least one replica and one sentinel")
        if not RedisSentinel.available(sentinel_binary):
            raise FileNotFoundError(RedisSentinel._not_found(sentinel_binary))
        self._servers: list[RedisServer] = []
        self._sentinels: list[RedisSentinel] = []
        self._master_index = 0
        self._clients: list[Sentinel] = []
        self._pause = threading.Event()  # never set: waiting on it is a plain delay
        try:
            master = RedisServer(binary=binary, extra_args=_NO_SYNC_DELAY)
            self._servers.append(master)
            for _ in range(replicas):
                replica_of = [*_NO_SYNC_DELAY, "--replicaof", HOST, str(master.port)]
                self._servers.append(RedisServer(binary=binary, extra_args=replica_of))
            quorum = sentinels // 2 + 1
            for _ in range(sentinels):
                sentinel = RedisSentinel(
                    self.SERVICE_NAME, master.port, quorum=quorum, binary=sentinel_binary
                )
                self._sentinels.append(sentinel)
            self._wait_until_settled()
        except BaseException:
            self.stop()
            raise

    # -- what a test uses ------------------------------------------------------------------

    @property
    def master(self) -> RedisServer:
        """The server that is master now (after :meth:`failover`, the promoted replica)."""
        return self._servers[self._master_index]

    @property
    def replicas(self) -> list[RedisServer]:
        """The servers that replicate from the master now."""
        return [s for i, s in enumerate(self._servers) if i != self._master_index]

    @property
    def servers(self) -> list[RedisServer]:
        """Every Redis server, master and replicas, in start order."""
        return list(self._servers)

    @property
    def sentinels(self) -> list[RedisSentinel]:
        """The sentinel processes."""
        return list(self._sentinels)

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``[(host, port), ...]`` of the sentinels, for ``redis.sentinel.Sentinel``."""
        return [(HOST, sentinel.port) for sentinel in self._sentinels]

    @property
    def service_name(self) -> str:
        """The master's name for ``Sentinel.master_for``."""
        return self.SERVICE_NAME

    def sentinel(self, **kwargs: Any) -> Sentinel:
        """A new ``redis.sentinel.Sentinel`` over every sentinel; its clients are closed by
        ``stop()``. ``kwargs`` go to each sentinel connection (``socket_timeout=``, ...)."""
        from redis.sentinel import Sentinel  # noqa: PLC0415 - optional dependency

        options = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, **kwargs}
        sentinel = Sentinel(self.sentinel_addresses, **options)  # type: ignore[no-untyped-call]
        self._clients.append(sentinel)
        return sentinel

    def master_client(self, **kwargs: Any) -> Redis:
        """A new client for the master, found through the sentinels and followed through
        failovers (``Sentinel.master_for``); ``kwargs`` go to ``master_for``. Close it."""
        master: Redis = self.sentinel().master_for(  # type: ignore[no-untyped-call]
            self.SERVICE_NAME, **kwargs
        )
        return master

    def flushall(self) -> None:
        """Delete every key (on the master; the replicas follow) and wait until replicated."""
        with self.master.client() as client:
            client.flushall()
            client.execute_command("WAIT", len(self.replicas), round(self.TIMEOUT * 1000))

    def failover(self) -> RedisServer:
        """Force a failover (``SENTINEL FAILOVER``) and return the new master once every
        sentinel names it, it answers as master and the old master replicates from it.

        Writes the old master had not yet sent to a replica would be lost, as in
        production; this method first waits until the replicas have everything (``WAIT``),
        so a test sees what Sentinel does with data that was replicated. Once the sentinels
        name the new master it points the old one at it (``REPLICAOF``) itself, as Sentinel
        would on its next check of the old master up to 10 s later: clients still connected
        to the old master get ``READONLY`` errors from then on, which make redis-py's
        Sentinel client look the master up again.
        """
        from redis.exceptions import ResponseError  # noqa: PLC0415 - optional dependency

        old = self.master
        with old.client() as client:
            client.execute_command("WAIT", len(self.replicas), round(self.TIMEOUT * 1000))

        def started() -> bool | None:
            # NOGOODSLAVE until the sentinel has seen a replica healthy since the last
            # failover (its check of a replica runs every 1 to 10 s).
            with self._sentinels[0].client() as client:
                try:
                    client.execute_command("SENTINEL", "FAILOVER", self.SERVICE_NAME)
                except ResponseError as exc:
                    if str(exc).startswith(("NOGOODSLAVE", "INPROG")):
                        return None
                    raise
            return True

        self._poll(started, "the sentinel to start a failover")

        def promoted() -> RedisServer | None:
            seen = {sentinel.master_address() for sentinel in self._sentinels}
            if len(seen) != 1:
                return None
            address = seen.pop()
            if address is None or address[1] == old.port:
                return None
            return next(s for s in self._servers if s.port == address[1])

        new = self._poll(promoted, "every sentinel to name a new master")
        self._master_index = self._servers.index(new)
        with old.client() as client:
            client.execute_command("REPLICAOF", HOST, new.port)
        self._poll(self._replicas_in_sync, "the old master to replicate from the new one")
        return new

    def stop(self) -> None:
        """Stop every sentinel and server; stopping twice is harmless."""
        for sentinel_client in self._clients:
            for connection in sentinel_client.sentinels:
                connection.close()
        self._clients.clear()
        for process in [*self._sentinels, *self._servers]:
            process.stop()

    def __enter__(self) -> RedisSentinelDeployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        master = self._servers[self._master_index].port if self._servers else None
        return (
            f"RedisSentinelDeployment(master={HOST}:{master}, replicas={len(self.replicas)}, "
            f"sentinels={len(self._sentinels)})"
        )

    # -- waiting ---------------------------------------------------------------------------

    def _wait_until_settled(self) -> None:
        """Until each replica is in sync with the master, which says so itself, and every
        sentinel knows the master, each replica (as healthy) and the other sentinels."""
        master_port = self.master.port
        replica_ports = {server.port for server in self.replicas}

        def sentinels_agree() -> bool | None:
            for sentinel in self._sentinels:
                if sentinel.master_address() != (HOST, master_port):
                    return None
                with sentinel.client() as client:
                    known = client.execute_command("SENTINEL", "REPLICAS", self.SERVICE_NAME)
                    others = client.execute_command("SENTINEL", "SENTINELS", self.SERVICE_NAME)
                healthy = {
                    int(fields["port"])
                    for fields in map(_fields, known)
                    if fields["flags"] == "slave" and fields.get("master-link-status") == "ok"
                }
                if not replica_ports <= healthy or len(others) != len(self._sentinels) - 1:
                    return None
            return True

        self._poll(self._replicas_in_sync, "the replicas to sync with the master")
        self._poll(sentinels_agree, "every sentinel to see the master and its replicas")

    def _replicas_in_sync(self) -> bool | None:
        """True once the master says it is one and each replica is connected to it."""
        if _role(self.master)[0] != b"master":
            return None
        for server in self.replicas:
            answer = _role(server)
            if answer[0] != b"slave" or answer[2] != self.master.port or answer[3] != b"connected":
                return None
        return True

    def _poll(self, check: Callable[[], _T | None], what: str) -> _T:
        """``check()``'s first answer other than None (or False), within ``TIMEOUT``."""
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            outcome = check()
            if outcome is not None and outcome is not False:
                return outcome
            if time.monotonic() >= deadline:
                raise RuntimeError(f"timed out after {self.TIMEOUT:g}s waiting for {what}")
            self._pause.wait(self.POLL_INTERVAL)


def _role(server: RedisServer) -> list[Any]:
    """``ROLE``: ``[b"master", ...]`` or ``[b"slave", host, port, state, offset]``."""
    with server.client() as client:
        answer: list[Any] = client.execute_command("ROLE")
    return answer


def _fields(flat: Any) -> dict[str, str]:
    """``SENTINEL REPLICAS`` answers each replica as a flat list (RESP2) or a dict."""
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
