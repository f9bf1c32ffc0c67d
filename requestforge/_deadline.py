"""Whole-attempt deadlines for buffered (non-streamed) requests.

``requests`` applies its read timeout to each socket read, so a server that drips its body
one byte per second never trips a 1 s timeout. For a buffered request the timeout is
instead a budget for the whole attempt -- connect, headers and body:

* ``timeout=t``: the attempt ends ``t`` seconds after it started.
* ``timeout=(connect, read)``: it ends ``connect + read`` seconds after it started (each
  phase keeps its own limit as well: connecting at most ``connect``, each read at most
  ``read``).

The headers are bounded through urllib3's ``Timeout(total=...)``: the wait for them never
exceeds what is left of the budget once connected. The body is bounded by standing in for
the socket under the response's reader (see :class:`_DeadlineSocket`): every read of it
waits at most until the deadline, however many reads the body takes. Streamed responses
keep requests' per-read timeouts: their caller decides how long a body may take.
"""

from __future__ import annotations

import functools
import socket
import time
from typing import Any

import requests
import urllib3
from urllib3.util import Timeout

__all__ = ["DEADLINE_READS", "attempt_budget", "bound_body", "deadline_timeout"]

#: Whether the body can be bounded. urllib3 2.x sets a pooled socket's timeout again before
#: it reuses the connection, so the timeout a deadline leaves on it never leaks into the next
#: request; urllib3 1.x does not, so there the body keeps per-read timeouts.
DEADLINE_READS = int(str(getattr(urllib3, "__version__", "1")).split(".", 1)[0]) >= 2


def attempt_budget(timeout: float | tuple[float, float]) -> float:
    """Seconds the whole attempt may take: ``timeout``, or ``connect + read`` for a tuple."""
    if isinstance(timeout, tuple):
        return float(timeout[0]) + float(timeout[1])
    return float(timeout)


@functools.lru_cache(maxsize=64)
def deadline_timeout(timeout: float | tuple[float, float], budget: float) -> Any:
    """``timeout`` as urllib3 takes it, with ``budget`` as the total for connect + headers.

    requests passes a urllib3 ``Timeout`` through as given (it builds the same object from
    a number or a tuple itself). One object per value: urllib3 clones it for each request
    and times the clone, never the object it was given.
    """
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return Timeout(connect=connect, read=read, total=budget)


class _DeadlineSocket:
    """Stands in for the socket under one response's body reader (``socket.SocketIO``):
    each read waits at most until ``deadline`` (``time.monotonic()``), then times out.

    Everything but ``recv_into`` is the real socket's. The reader is the response's own and
    is dropped when the body ends, so the connection goes back to the pool with its real
    socket; urllib3 sets that socket's timeout again before the connection's next request.
    """

    __slots__ = ("_deadline", "_sock", "expired")

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self.expired = False

    def recv_into(self, buffer: Any, *args: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise TimeoutError("the attempt's deadline passed")
        self._sock.settimeout(remaining)
        try:
            received: int = self._sock.recv_into(buffer, *args)
        except TimeoutError:
            self.expired = True
            raise
        return received

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def bound_body(response: requests.Response, deadline: float) -> _DeadlineSocket | None:
    """Make every read of ``response``'s unread body end by ``deadline``.

    ``None`` when the body's socket is not reachable (urllib3 1.x, a replayed cassette, an
    adapter of the caller's, a body already complete): the body then keeps per-read timeouts.
    The path is urllib3's response -> http.client's response -> its buffered reader ->
    ``socket.SocketIO`` -> the socket (an ``SSLSocket`` for https).
    """
    if not DEADLINE_READS:
        return None
    reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
    stream = getattr(reader, "raw", None)
    if type(stream) is not socket.SocketIO:
        return None
    sock = getattr(stream, "_sock", None)
    if sock is None or not hasattr(sock, "settimeout"):
        return None
    guard = _DeadlineSocket(sock, deadline)
    stream._sock = guard  # type: ignore[attr-defined]
    return guard
