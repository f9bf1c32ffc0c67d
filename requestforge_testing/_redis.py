"""``RedisServer``: a throwaway ``redis-server`` on 127.0.0.1 for tests, demos and benchmarks.

A real server, not a fake: leases (``PX``), Lua scripts and cluster hash slots behave as in
production only there. It keeps nothing on disk (``--save "" --appendonly no``) and lives in
a temporary directory removed by ``stop()``. Needs the ``redis-server`` binary
(``apt-get install redis-server``) and the ``redis`` package; neither is imported or run
until a server is started.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

__all__ = ["RedisServer"]

_HOST: Final = "127.0.0.1"
#: All 16384 hash slots: a single-node cluster serves every key itself.
_LAST_SLOT: Final = 16383


class RedisServer:
    """A ``redis-server`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    ``cluster=True`` starts a single-node Redis Cluster with every slot assigned to it, so
    ``redis.cluster.RedisCluster`` (see :meth:`cluster_client`) works against it.
    """

    #: How long start-up may take before it is an error: redis starts in milliseconds, but a
    #: loaded CI machine may be slow.
    START_TIMEOUT: Final = 15.0
    #: How long ``stop()`` waits after SIGTERM before it kills the server.
    STOP_TIMEOUT: Final = 5.0
    #: Ports can be taken between choosing one and the server binding it: retry this often.
    START_ATTEMPTS: Final = 3
    #: Pause between readiness checks (real time).
    POLL_INTERVAL: Final = 0.01

    def __init__(self, *, binary: str | None = None, cluster: bool = False) -> None:
        found = shutil.which(binary or "redis-server")
        if found is None:
            raise FileNotFoundError(
                f"{binary or 'redis-server'} not found: apt-get install redis-server"
            )
        self._binary = found
        self._cluster = cluster
        self._pause = threading.Event()  # never set: waiting on it is a plain delay
        self._dir = Path(tempfile.mkdtemp(prefix="requestforge-redis-"))
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def available(binary: str | None = None) -> bool:
        """True if the ``redis-server`` binary (or ``binary``) is on ``PATH``."""
        return shutil.which(binary or "redis-server") is not None

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return _HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for ``redis.Redis.from_url`` or a storage."""
        return f"redis://{_HOST}:{self._port}/0"

    @property
    def cluster(self) -> bool:
        """True for a single-node cluster."""
        return self._cluster

    def client(self, **kwargs: object) -> Redis:
        """A new ``redis.Redis`` connected to this server (close it when done)."""
        from redis import Redis  # noqa: PLC0415 - optional dependency

        return Redis(host=_HOST, port=self._port, **kwargs)  # type: ignore[arg-type]

    def cluster_client(self, **kwargs: object) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` for a ``cluster=True`` server (close it)."""
        if not self._cluster:
            raise RuntimeError("cluster_client() needs RedisServer(cluster=True)")
        from redis.cluster import RedisCluster  # noqa: PLC0415 - optional dependency

        return RedisCluster(host=_HOST, port=self._port, **kwargs)  # type: ignore[arg-type]

    def flushall(self) -> None:
        """Delete every key; loaded Lua scripts stay (they are not data)."""
        with self.client() as client:
            client.flushall()

    def stop(self) -> None:
        """Terminate the server and remove its directory; stopping twice is harmless."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._process is not None else "stopped"
        kind = ", cluster" if self._cluster else ""
        return f"RedisServer({self.url!r}{kind}, {state})"

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        for attempt in range(1, self.START_ATTEMPTS + 1):
            self._port = _free_cluster_port() if self._cluster else _free_port()
            self._process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                self._command(),
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_ready():
                break
            self._process.kill()
            self._process.wait()
            self._process = None
            if attempt == self.START_ATTEMPTS:
                raise RuntimeError(f"redis-server did not start: {self._log_tail()}")
        if self._cluster:
            with self.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, _LAST_SLOT)
                self._poll(lambda: client.cluster("INFO").get("cluster_state") == "ok" or None)

    def _command(self) -> list[str]:
        command = [self._binary, "--port", str(self._port), "--bind", _HOST]
        command += ["--dir", str(self._dir), "--save", "", "--appendonly", "no"]
        command += ["--logfile", str(self._dir / "redis.log"), "--daemonize", "no"]
        if self._cluster:
            command += ["--cluster-enabled", "yes", "--cluster-announce-ip", _HOST]
            command += ["--cluster-config-file", str(self._dir / "nodes.conf")]
        return command

    def _wait_until_ready(self) -> bool:
        """Poll with PING until the server answers (True) or its process exits (False)."""
        process = self._process
        assert process is not None  # noqa: S101 - set by the caller

        def ready() -> bool | None:
            if process.poll() is not None:
                return False  # exited: the port was taken, or the config was refused
            try:
                with socket.create_connection((_HOST, self._port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(64).startswith(b"+PONG")
            except OSError:
                return None  # not listening yet

        return self._poll(ready)

    def _poll(self, check: Callable[[], bool | None]) -> bool:
        """Call ``check()`` until it returns True or False; None means "not yet"."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            outcome = check()
            if outcome is not None:
                return outcome
            self._pause.wait(self.POLL_INTERVAL)
        raise RuntimeError(
            f"redis-server was not ready within {self.START_TIMEOUT:g}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = (self._dir / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too: Redis refuses
    a cluster port above 55535, which the kernel's ephemeral range often hands out."""
    rng = random.Random()  # noqa: S311 - picking a port, not a secret
    for _ in range(100):
        port = rng.randint(20000, 55535)
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind((_HOST, port))
                bus.bind((_HOST, port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis cluster node")
