"""``RedisServer``: a throwaway ``redis-server`` on 127.0.0.1 for tests, demos and benchmarks.

A real server, not a fake: leases (``PX``), Lua scripts and cluster hash slots behave as in
production only there. It keeps nothing on disk (``--save "" --appendonly no``) and lives in
a temporary directory removed by ``stop()``. Needs the ``redis-server`` binary
(``apt-get install redis-server``) and the ``redis`` package; neither is imported or run
until a server is started.
"""

from __future__ import annotations

import os
import random
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from requestforge_testing._child import HOST, ChildServer, free_port

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

__all__ = ["RedisServer"]

#: All 16384 hash slots: a single-node cluster serves every key itself.
_LAST_SLOT: Final = 16383


class RedisServer(ChildServer):
    """A ``redis-server`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    ``cluster=True`` starts a single-node Redis Cluster with every slot assigned to it, so
    ``redis.cluster.RedisCluster`` (see :meth:`cluster_client`) works against it.
    """

    _BINARY = "redis-server"
    _INSTALL = "apt-get install redis-server"
    _DIR_PREFIX = "requestforge-redis-"
    _LOG_NAME = "redis.log"

    def __init__(self, *, binary: str | None = None, cluster: bool = False) -> None:
        self._cluster = cluster
        super().__init__(binary=binary)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for ``redis.Redis.from_url`` or a storage."""
        return f"redis://{HOST}:{self._port}/0"

    @property
    def cluster(self) -> bool:
        """True for a single-node cluster."""
        return self._cluster

    def client(self, **kwargs: object) -> Redis:
        """A new ``redis.Redis`` connected to this server (close it when done)."""
        from redis import Redis  # noqa: PLC0415 - optional dependency

        return Redis(host=HOST, port=self._port, **kwargs)  # type: ignore[arg-type]

    def cluster_client(self, **kwargs: object) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` for a ``cluster=True`` server (close it)."""
        if not self._cluster:
            raise RuntimeError("cluster_client() needs RedisServer(cluster=True)")
        from redis.cluster import RedisCluster  # noqa: PLC0415 - optional dependency

        return RedisCluster(host=HOST, port=self._port, **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Freeze the server (SIGSTOP) inside the block, as a Redis stuck in a long command or
        a paused VM: connections open and commands go unanswered. It resumes (SIGCONT) when
        the block ends, however it ends."""
        process = self._process
        if process is None:
            raise RuntimeError("stalled() needs a running server")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(process.pid, signal.SIGCONT)

    def flushall(self) -> None:
        """Delete every key; loaded Lua scripts stay (they are not data)."""
        with self.client() as client:
            client.flushall()

    def __repr__(self) -> str:
        kind = ", cluster" if self._cluster else ""
        return f"RedisServer({self.url!r}{kind}, {self._state})"

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        super()._start()
        if self._cluster:
            with self.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, _LAST_SLOT)
                self._poll(lambda: client.cluster("INFO").get("cluster_state") == "ok" or None)

    def _choose_port(self) -> int:
        return _free_cluster_port() if self._cluster else free_port()

    def _command(self) -> list[str]:
        command = [self._binary, "--port", str(self._port), "--bind", HOST]
        command += ["--dir", str(self._dir), "--save", "", "--appendonly", "no"]
        command += ["--logfile", str(self._log), "--daemonize", "no"]
        if self._cluster:
            command += ["--cluster-enabled", "yes", "--cluster-announce-ip", HOST]
            command += ["--cluster-config-file", str(self._dir / "nodes.conf")]
        return command

    def _answers(self) -> bool:
        """PING answered with PONG."""
        with socket.create_connection((HOST, self._port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too: Redis refuses
    a cluster port above 55535, which the kernel's ephemeral range often hands out."""
    rng = random.Random()  # noqa: S311 - picking a port, not a secret
    for _ in range(100):
        port = rng.randint(20000, 55535)
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind((HOST, port))
                bus.bind((HOST, port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis cluster node")
