"""What a thread that has stopped moving is waiting for, read off its innermost frame.

The scheduler lets a parked thread go on only once every other worker is *settled*: done,
parked, or waiting for something. Most waits can be told exactly, without any timing:

- ``threading.Condition.wait`` (and so ``Event``, ``Barrier``, ``Semaphore``, ``queue``,
  the token manager's flights): its ``waiter`` lock is held until a ``notify`` releases it;
- ``with lock:`` / ``lock.acquire()`` on a ``Lock``, ``RLock`` or ``Condition`` named by a
  simple expression: the lock is found again from the frame and asked whether another
  thread holds it.

A wait whose lock is free is about to end: that thread is running, not settled. A thread in
a socket read is waiting for I/O. Anything else is unknown, and the scheduler falls back on
how long the thread has been still.
"""

from __future__ import annotations

import enum
import gc
import sys
import threading
from types import FrameType
from typing import Final

from requestforge_testing._stress.bytecode import MISSING, sites

__all__ = ["Wait", "classify", "current_frames"]

_LOCK: Final = type(threading.Lock())
_RLOCK: Final = type(threading.RLock())
_CONDITION_WAIT: Final = threading.Condition.wait.__code__
_CONDITION: Final = threading.Condition
#: Calls that block until a lock is free (``Condition.__enter__`` calls ``lock.__enter__``).
_ACQUIRES: Final = frozenset({"acquire", "__enter__", "_acquire_restore"})
#: Innermost frames in these modules, stopped, are waiting for the network
#: (``requestforge._deadline`` stands in for the socket under a buffered body's reader).
_IO_MODULES: Final = (
    "socket",
    "ssl",
    "selectors",
    "select",
    "http.client",
    "urllib3",
    "redis",
    "requestforge._deadline",
)


class Wait(enum.Enum):
    """A still thread's state, as far as its frame tells."""

    BLOCKED = "blocked"  # on a lock or condition another thread holds
    WAKING = "waking"  # at a lock or condition that is free: it runs on any moment
    IO = "io"  # in a network read or write
    UNKNOWN = "unknown"  # in some other C call (sleep, an undecoded lock, a computation)


def classify(frame: FrameType, ident: int) -> Wait:
    """What the thread ``ident``, whose innermost frame is ``frame``, is waiting for."""
    code = frame.f_code
    if code is _CONDITION_WAIT:
        return _condition_wait(frame, ident)
    site = sites(code).get(frame.f_lasti)
    if (
        site is not None
        and site.receiver is not None
        and (site.method in _ACQUIRES or site.opname in ("SETUP_WITH", "BEFORE_WITH"))
    ):
        state = _lock_state(site.receiver.resolve(frame), ident)
        if state is not None:
            return state
    module = frame.f_globals.get("__name__")
    if isinstance(module, str) and any(
        module == name or module.startswith(name + ".") for name in _IO_MODULES
    ):
        return Wait.IO
    return Wait.UNKNOWN


def _condition_wait(frame: FrameType, ident: int) -> Wait:
    local = frame.f_locals
    waiter = local.get("waiter", MISSING)
    condition = local.get("self", MISSING)
    # A notify takes the waiter off the list, then releases it; the woken thread takes it
    # again, so a locked waiter alone does not tell a waiting thread from a woken one.
    waiters = getattr(condition, "_waiters", ()) if isinstance(condition, _CONDITION) else ()
    if isinstance(waiter, _LOCK) and waiter.locked() and waiter in waiters:
        return Wait.BLOCKED  # until a notify releases it
    # Notified (or not yet waiting): it goes on once it has the condition's lock again.
    state = _lock_state(condition, ident)
    return Wait.WAKING if state is None else state


def _lock_state(lock: object, ident: int) -> Wait | None:
    """BLOCKED if another thread holds ``lock``, WAKING if it is free, None if no lock."""
    if isinstance(lock, threading.Condition):
        lock = getattr(lock, "_lock", MISSING)
    if isinstance(lock, _LOCK):
        return Wait.BLOCKED if lock.locked() else Wait.WAKING
    if isinstance(lock, _RLOCK):
        # "<locked _thread.RLock object owner=140... count=1 at 0x...>" on 3.10 to 3.13
        text = repr(lock)
        if not text.startswith("<locked"):
            return Wait.WAKING
        owner = text.partition("owner=")[2].split(" ", 1)[0]
        return Wait.WAKING if owner == str(ident) else Wait.BLOCKED
    return None


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()``, without the deadlock it can cause before Python 3.12.

    There it holds the runtime's thread-list lock while it allocates; a garbage collection
    started by that allocation can free a ``threading.local`` whose cleanup takes the same
    lock, and the thread waits for itself forever (CPython gh-106883, not fixed in 3.11).
    The scheduler asks every millisecond, so a long CI run met it (one round in ~16,000).
    """
    if sys.version_info >= (3, 12):
        return sys._current_frames()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()
