"""Which threads are ``forge_stress`` workers right now, and how code parks one of them.

Kept apart from the scheduler so that the fake token provider can call ``hold()`` without
importing the whole harness.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["Parkable", "current_worker", "hold", "register", "unregister"]


class Parkable(Protocol):
    """A worker: parking it waits until the round's scheduler lets it go on."""

    def park(self, kind: str) -> None: ...


_workers: dict[int, Parkable] = {}  # thread id -> the worker running in that thread
_lock = threading.Lock()


def register(worker: Parkable) -> int:
    """Make the calling thread ``worker``; returns its thread id."""
    ident = threading.get_ident()
    with _lock:
        _workers[ident] = worker
    return ident


def unregister(ident: int) -> None:
    with _lock:
        _workers.pop(ident, None)


def current_worker() -> Parkable | None:
    """The worker running in the calling thread, or None outside ``forge_stress``."""
    return _workers.get(threading.get_ident())


def hold(kind: str = "fetch") -> None:
    """Park the calling thread if it is a ``forge_stress`` worker; else return at once.

    A fake token provider calls this inside every fetch, so inside a stress round the
    fetch stays open until every other worker has finished or is waiting for something.
    Outside ``forge_stress`` it does nothing.
    """
    worker = _workers.get(threading.get_ident())
    if worker is not None:
        worker.park(kind)
