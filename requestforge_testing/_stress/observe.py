"""What ``forge_stress`` watches while it runs, so fetches can be pinned on threads.

- Every TCP connection a worker opens (``socket.socket.connect``, patched for the run):
  its local address, the worker, and the line of the user's code that caused it. An
  ``OAuthServer`` records each token request's client address, so its requests are
  attributed to the worker that sent them.
- A token provider given as ``forge_stress(counter=provider)`` (any
  ``TokenProviderInterface``): its ``fetch_token``/``refresh_token`` are wrapped on the
  instance for the run, and each call is recorded with its thread and call site.

Both are undone when the run ends, whatever happened.
"""

from __future__ import annotations

import itertools
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from requestforge_testing._code import call_site
from requestforge_testing._stress.registry import current_worker

__all__ = ["Fetch", "Observations", "observing"]


@dataclass(frozen=True)
class Fetch:
    """One call that reached a token endpoint, as the assertions list it."""

    kind: str
    number: int
    thread_id: int
    thread_name: str
    site: str | None
    failed: bool = False
    #: What a watched provider's call returned (None for the other kinds of fetch).
    token: object | None = field(default=None, compare=False, repr=False)


@dataclass
class Observations:
    """Connections opened and provider calls made by the workers of one run."""

    connections: dict[tuple[str, int], Fetch] = field(default_factory=dict)
    calls: list[Fetch] = field(default_factory=list)
    watched: object | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Watched calls are numbered when they start, in their own sequence (1, 2, ...), as a
    #: FakeTokenProvider numbers its calls; connections are not numbered.
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def connection_from(self, address: object) -> Fetch | None:
        """The worker connection whose local address is ``address`` (host, port), if any."""
        if not isinstance(address, tuple) or len(address) < 2:
            return None
        with self._lock:
            return self.connections.get((str(address[0]), int(address[1])))

    def _next_number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def _record(
        self, kind: str, failed: bool, frame: Any, token: object | None = None, number: int = 0
    ) -> Fetch:
        thread = threading.current_thread()
        site = call_site(frame)
        return Fetch(kind, number, thread.ident or 0, thread.name, site, failed, token)


@contextmanager
def observing(watched: object | None) -> Iterator[Observations]:
    """Watch connections, and ``watched`` if it is a token provider, for one run."""
    observations = Observations(watched=watched)
    with _connections(observations), _provider_calls(watched, observations):
        yield observations


@contextmanager
def _connections(observations: Observations) -> Iterator[None]:
    original = socket.socket.connect

    def connect(sock: Any, address: Any) -> None:
        original(sock, address)
        if current_worker() is not None:
            try:
                local = sock.getsockname()
            except OSError:
                return
            if isinstance(local, tuple) and len(local) >= 2:
                record = observations._record("connect", False, sys._getframe(1))
                with observations._lock:
                    observations.connections[(str(local[0]), int(local[1]))] = record

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield
    finally:
        if socket.socket.connect is connect:
            socket.socket.connect = original  # type: ignore[method-assign]


@contextmanager
def _provider_calls(watched: object | None, observations: Observations) -> Iterator[None]:
    from requestforge.tokens._providers import TokenProviderInterface  # noqa: PLC0415
    from requestforge_testing._providers import FakeTokenProvider  # noqa: PLC0415

    if not isinstance(watched, TokenProviderInterface) or isinstance(watched, FakeTokenProvider):
        yield  # a FakeTokenProvider records its calls itself
        return
    names = ("fetch_token", "refresh_token")
    saved = {name: watched.__dict__.get(name) for name in names}
    inside = threading.local()  # a refresh_token that calls fetch_token is one call, not two
    for name in names:
        setattr(watched, name, _watch(name, getattr(watched, name), observations, inside))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                watched.__dict__.pop(name, None)
            else:
                setattr(watched, name, value)


def _watch(
    kind: str, method: Callable[..., Any], observations: Observations, inside: threading.local
) -> Callable[..., Any]:
    def watched(*args: Any, **kwargs: Any) -> Any:
        if getattr(inside, "call", False):
            return method(*args, **kwargs)  # called by the provider's other watched method
        frame = sys._getframe(1)
        failed, result = True, None
        number = observations._next_number()
        inside.call = True
        try:
            result = method(*args, **kwargs)
            failed = False
        finally:
            inside.call = False
            record = observations._record(kind, failed, frame, result, number)
            with observations._lock:
                observations.calls.append(record)
        return result

    return watched
