"""Running one callable in several plain threads, for tests of per-thread state.

Shared by the test files that need real threads but not ``forge_stress``'s schedules: their
assertions are about which thread got what, and an error in a thread must reach
``pytest.raises`` in the test as itself. Not collected (its name does not start with
``test_``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")


def in_threads(count: int, work: Callable[[], T]) -> list[T]:
    """``work()`` in ``count`` threads released together by a barrier and kept alive until
    all have run it (so no thread's session can be collected and its id reused); the
    results in thread order. The first exception a thread raised is raised here."""
    start, end = threading.Barrier(count), threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            errors.append(exc)
        finally:
            end.wait()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return cast("list[T]", results)  # every slot is filled: no thread raised


def while_held(lock: threading.RLock | threading.Lock, work: Callable[[], T]) -> T:
    """``work()``'s result, run in another thread while this one holds ``lock``; fails the
    test if it has not returned within 30 s (it waited for the lock)."""
    results: list[T] = []
    with lock:
        worker = threading.Thread(target=lambda: results.append(work()))
        worker.start()
        worker.join(timeout=30)
        blocked = worker.is_alive()
    worker.join()
    assert not blocked, "the call waited for the lock"
    assert results, "the call raised (see the thread's traceback above)"
    return results[0]
