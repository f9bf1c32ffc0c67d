"""Real worker processes for the cross-process token tests (one redis-server, one OAuth server).

:class:`Workers` spawns processes that share nothing but what the test hands them (Redis, the
local OAuth2 server in the test process, cross-process barriers). Each one runs a handler
object built in the child by a module-level factory and answers one command at a time over
its pipe. Every command carries the parent's fake time: the child's ``FakeClock`` is set to
it first, so expiry crossings are exact in every process and nobody sleeps.

:class:`TokenWorker` is the handler the tests use: a ``TokenManager`` over its own
``RedisTokenStorage`` (as one gunicorn or Celery worker would have), a
``ClientCredentialsTokenProvider`` and an ``HttpClient`` with token auth.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from multiprocessing.connection import Connection, wait
from types import TracebackType
from typing import TYPE_CHECKING, Any

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    RedisTokenStorage,
    TokenManager,
)
from requestforge_testing import FakeClock, forge_stress

if TYPE_CHECKING:  # ForkServerContext does not exist on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext


def _context() -> ForkServerContext | SpawnContext:
    """Never fork the multi-threaded pytest process (the child can deadlock): a fork server
    that imported this module once forks every worker (cheap), else each worker is spawned
    and imports everything itself (about a second of CPU each)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


#: The context every worker process, barrier and event of these tests comes from.
CONTEXT = _context()
#: Seconds a child waits at a barrier, and the parent for a child's answer or exit.
PATIENCE = 30.0


class WorkerError(Exception):
    """A command raised in a worker process (its type and message; the traceback stayed there)."""


def _serve(
    conn: Connection, index: int, factory: Callable[..., Any], options: dict[str, Any]
) -> None:
    """A worker process's main loop: build the handler, then run commands until None."""
    clock = FakeClock()
    clock.install()
    handler = factory(index, **options)
    try:
        while (message := conn.recv()) is not None:
            now, command, command_args = message
            clock.set(datetime.fromisoformat(now))
            try:
                conn.send(("ok", getattr(handler, command)(*command_args)))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        handler.close()


class Workers:
    """``count`` spawned processes, each serving ``factory(index, **options)``'s methods."""

    def __init__(self, count: int, factory: Callable[..., Any], **options: Any) -> None:
        # Kept for the processes' lifetime: Process.start() drops its args, and a barrier
        # collected here before a child has unpickled it is gone for the child too.
        self._options = options
        self._pipes = [CONTEXT.Pipe() for _ in range(count)]
        self._processes = [
            CONTEXT.Process(target=_serve, args=(child, index, factory, options), daemon=True)
            for index, (_, child) in enumerate(self._pipes)
        ]

    def __enter__(self) -> Workers:
        for process in self._processes:
            process.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for parent, _ in self._pipes:
            with suppress(OSError):  # the process is gone already
                parent.send(None)
        for process in self._processes:
            process.join(PATIENCE)
            if process.is_alive():
                process.kill()
                process.join(PATIENCE)

    def __len__(self) -> int:
        return len(self._processes)

    @property
    def exitcodes(self) -> list[int | None]:
        """Each process's exit code (None while it runs): 0 once it left cleanly."""
        return [process.exitcode for process in self._processes]

    def send(self, index: int, now: datetime, command: str, *args: Any) -> None:
        """Have worker ``index`` run ``command(*args)`` at fake time ``now``; do not wait."""
        self._pipes[index][0].send((now.isoformat(), command, args))

    def receive(self, index: int) -> Any:
        """Worker ``index``'s answer to the command sent last; :class:`WorkerError` if it raised."""
        parent = self._pipes[index][0]
        process = self._processes[index]
        if not wait([parent, process.sentinel], PATIENCE) or not parent.poll():
            state = "did not answer" if process.is_alive() else f"exited ({process.exitcode})"
            raise WorkerError(f"worker {index} {state} within {PATIENCE:g}s")
        status, value = parent.recv()
        if status != "ok":
            raise WorkerError(f"worker {index}: {value}")
        return value

    def ask_all(self, now: datetime, command: str, *args: Any) -> list[Any]:
        """Send ``command`` to every worker at once, then collect the answers in order."""
        for index in range(len(self)):
            self.send(index, now, command, *args)
        return [self.receive(index) for index in range(len(self))]


class _Messages(logging.Handler):
    """Keeps the formatted messages of every record it handles."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.messages.append(record.getMessage())


class TokenWorker:
    """One worker process's token setup: a manager over its own ``RedisTokenStorage``.

    ``barriers`` maps a thread count ``n`` to a barrier for ``n`` threads in *every*
    worker (made by the parent: barriers cross processes only when handed over at spawn).
    ``lock_leases[index]`` is this worker's storage's lease (None or missing: the default).
    """

    def __init__(
        self,
        index: int,
        *,
        redis_url: str,
        token_url: str,
        api_url: str,
        barriers: Mapping[int, Any],
        lock_leases: Sequence[float | None] = (),
    ) -> None:
        self.index = index
        self._barriers = barriers
        self._log = _Messages()
        logging.getLogger("requestforge.tokens").addHandler(self._log)
        self.provider = ClientCredentialsTokenProvider(token_url, "forge-client", "forge-secret")
        lease = lock_leases[index] if index < len(lock_leases) else None
        self.storage = (
            RedisTokenStorage(redis_url)
            if lease is None
            else RedisTokenStorage(redis_url, lock_lease=lease)
        )
        self.manager = TokenManager(self.provider, self.storage)
        config = HttpClientConfigBuilder().with_base_url(api_url).with_token_auth(self.manager)
        self.client = HttpClient(config.build())

    def close(self) -> None:
        """Close the client, the provider and the storage's Redis connections."""
        self.client.close()
        self.provider.close()
        self.storage.close()

    def _together(self, threads: int, call: Callable[[], object]) -> list[str]:
        """``call()`` from ``threads`` threads, released once every thread of every worker
        is at the barrier; each outcome as a string (``"error: ..."`` for an exception)."""
        barrier = self._barriers[threads]

        def released() -> object:
            barrier.wait(PATIENCE)
            return call()

        report = forge_stress(released, threads=threads)
        return [
            f"error: {type(o.error).__name__}: {o.error}" if o.error else str(o.result)
            for o in report.outcomes
        ]

    def tokens(self, threads: int) -> list[str]:
        """The access token ``get_token()`` returns to each of ``threads`` threads at once."""
        return self._together(threads, lambda: self.manager.get_token().access_token)

    def statuses(self, threads: int) -> list[str]:
        """The final status of a GET of this worker's API path from each of ``threads`` threads."""
        return self._together(threads, lambda: self.client.get(self.path).status_code)

    @property
    def path(self) -> str:
        """This worker's path under the protected API (the server's records tell them apart)."""
        return f"/worker-{self.index}"

    def token(self) -> str:
        """One ``get_token()`` from the calling thread."""
        return self.manager.get_token().access_token

    def stored(self) -> str | None:
        """The access token in Redis as this worker's storage reads it (a round trip)."""
        token = self.storage.get(self.manager.cache_key)
        return None if token is None else token.access_token

    def warnings(self) -> list[str]:
        """Every warning the token code of this process has logged so far."""
        return list(self._log.messages)
