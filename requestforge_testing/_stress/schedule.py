"""One round of ``forge_stress``: its workers, and the scheduler that makes races happen.

A worker *parks* at the points where a race is decided: a fake token provider's fetch
(``registry.hold()``), and, with forced interleavings on, every write to shared state in the user's
code (``trace.py``). The scheduler, in the test's own thread, lets one parked worker go on
(a seeded random choice) only when every other worker is *settled*: finished, parked
too, or waiting (``waits.py``). So the leader of a fetch is held open until everyone else
has made their decision, a check-then-act without a lock fetches in every thread, and a
lock released before the store lets the next thread in before the store — on every run,
not when the operating system happens to switch threads at the right instruction.

Waiting threads are told apart from running ones by looking at their frames, mostly
exactly (a held lock); where that cannot tell, by how long a thread has been still. A
wrong guess costs only the strength of the test, never a false alarm: the schedule is
always one the threads could have run by themselves.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, Final, Generic, TypeVar

from requestforge._clock import get_default_clock
from requestforge_testing._stress import registry
from requestforge_testing._stress.report import SessionSource, StressOutcome
from requestforge_testing._stress.trace import Preemption
from requestforge_testing._stress.waits import Wait, classify, current_frames

__all__ = ["Round", "StressTimeoutError"]

T = TypeVar("T")

#: How often the scheduler looks at the workers while one of them is parked.
POLL: Final = 0.001
#: A worker stopped in a call we cannot read (sleep, an undecoded lock) counts as waiting
#: after this long. Longer only slows a schedule; shorter may let a slow thread miss a race.
STILL: Final = 0.02
#: Before a write, a worker reading from the network is waited for this long: its response
#: usually brings it to a write of its own (a response hook counting calls).
IO_PATIENCE: Final = 0.5
#: A worker that keeps running without parking (a busy loop) is not waited for after this.
PATIENCE: Final = 1.0


class StressTimeoutError(TimeoutError):
    """A round did not finish in time; ``stuck`` are the threads still inside ``fn()``.

    They are daemon threads and are left running: free whatever they wait on, then join them.
    """

    def __init__(self, message: str, *, round: int, stuck: tuple[threading.Thread, ...]):
        super().__init__(message)
        self.round = round
        self.stuck = stuck


class _State(enum.Enum):
    STARTING = "starting"  # released by the barrier, not yet inside fn()
    RUNNING = "running"
    PARKED = "parked"
    DONE = "done"


class Worker:
    """One worker thread's scheduling state; ``ticks`` counts its traced instructions."""

    def __init__(self, round_: Round[Any], index: int) -> None:
        self.round = round_
        self.index = index
        self.state = _State.STARTING
        self.kind = ""
        self.ticks = 0
        self.preempted = False
        self.go = threading.Event()
        #: Released but not yet back from ``go.wait()``: its frames (the Event's lock, just
        #: taken) can read as blocked, yet it is running.
        self.waking = False
        # the scheduler's view of its stillness: where it was, and since when
        self.key: tuple[object, ...] | None = None
        self.since = 0.0

    def park(self, kind: str) -> None:
        """Wait here until the scheduler picks this worker (see the module docstring)."""
        self.round.park(self, kind)


class Round(Generic[T]):
    """One round's workers and outcome slots; ``run()`` drives it from the calling thread."""

    def __init__(
        self,
        fn: Callable[[], T],
        name: str,
        number: int,
        threads: int,
        sessions: Sequence[SessionSource],
        *,
        rng: random.Random,
        preemption: Preemption | None,
        schedule: int | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.number = number
        self.threads = threads
        self.sessions = tuple(sessions)
        self.rng = rng
        self.preemption = preemption  # None: no forced interleavings
        self.schedule = schedule
        self.start = threading.Barrier(threads)
        self.over = threading.Event()
        self.slots: list[StressOutcome[T] | None] = [None] * threads
        #: Errors of the harness's own code in a worker (not of fn): raised after the round.
        self.failures: list[tuple[int, BaseException]] = []
        self.untraced = 0  # workers that had a tracer already: no forced interleavings
        self.decisions = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._abandoned = False
        self.workers = [Worker(self, i) for i in range(threads)]
        self._idents: dict[int, int] = {}

    # -- the calling thread ----------------------------------------------------------------

    def run(self, timeout: float) -> tuple[StressOutcome[T], ...]:
        """Start the workers, schedule them until all are done, and return their outcomes."""
        deadline = time.monotonic() + timeout
        threads = [
            threading.Thread(target=self._work, args=(i,), name=f"{self.name}-t{i}", daemon=True)
            for i in range(self.threads)
        ]
        try:
            for thread in threads:
                thread.start()
            self._schedule(deadline)
        except BaseException as exc:
            stuck = self._abandon()
            for i, thread in enumerate(threads):
                if i not in stuck and thread.ident is not None:
                    thread.join()
            if not isinstance(exc, _RoundTimeout):
                raise
            blocked = tuple(threads[i] for i in sorted(stuck))
            names = ", ".join(f"{t.name} (thread id {t.ident})" for t in blocked)
            raise StressTimeoutError(
                f"forge_stress round {self.number} did not finish in {timeout:g}s: "
                f"{len(stuck)} of {self.threads} threads still inside fn(): "
                f"{names or 'none (they never started)'}. They are left running as daemon "
                "threads.",
                round=self.number,
                stuck=blocked,
            ) from None
        self.over.set()
        for thread in threads:
            thread.join()
        if self.failures:
            index, error = self.failures[0]
            _add_note(error, f"raised by forge_stress itself in worker {threads[index].name}")
            raise error
        return tuple(slot for slot in self.slots if slot is not None)

    def _schedule(self, deadline: float) -> None:
        seen_version, changed_at = -1, time.perf_counter()
        while True:
            with self._lock:
                if all(w.state is _State.DONE for w in self.workers):
                    return
                parked = [w for w in self.workers if w.state is _State.PARKED]
                version = self._version
                if not parked:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _RoundTimeout
                    self._changed.wait(min(remaining, 0.05))
                    continue
            now = time.perf_counter()
            if version != seen_version:
                seen_version, changed_at = version, now
            strict = any(w.kind == "write" for w in parked)
            if self._settled(now, strict) or now - changed_at > PATIENCE:
                with self._lock:
                    # A worker that parked while _settled looked is missing from ``parked``:
                    # choose only from an up-to-date list, or the same seed chooses differently.
                    if self._version != version:
                        continue
                    chosen = self.rng.choice(parked)
                self._release(chosen)
                continue
            if time.monotonic() > deadline:
                raise _RoundTimeout
            with self._lock:
                if self._version == version:
                    self._changed.wait(POLL)

    def _settled(self, now: float, strict: bool) -> bool:
        """Whether no worker outside the parked ones can still make progress by itself."""
        # Before the frames are taken: a worker still waking when they were taken would be
        # judged by the frames of the wait it has just left (a lock it has just taken again).
        if any(w.state is _State.RUNNING and w.waking for w in self.workers):
            return False
        frames = current_frames()
        try:
            for worker in self.workers:
                state = worker.state
                if state is _State.STARTING:
                    return False
                if state is _State.RUNNING and not self._waiting(worker, frames, now, strict):
                    return False
            return True
        finally:
            del frames

    def _waiting(
        self, worker: Worker, frames: Mapping[int, FrameType], now: float, strict: bool
    ) -> bool:
        ident = self._ident(worker)
        frame = frames.get(ident)
        if not isinstance(frame, FrameType):
            # None, or (seen once on CPython 3.11, in a worker under settrace) not a frame
            return False
        wait = classify(frame, ident)
        if wait is Wait.BLOCKED:
            return True  # it cannot move before another thread releases its lock
        key = (frame, frame.f_lasti, worker.ticks)
        if key != worker.key:
            worker.key, worker.since = key, now
            return False
        if wait is Wait.WAKING:
            return False
        still = now - worker.since
        if wait is Wait.IO:
            return not strict or still >= IO_PATIENCE
        return still >= STILL

    def _release(self, worker: Worker) -> None:
        with self._lock:
            if worker.state is _State.PARKED:
                worker.state = _State.RUNNING
                worker.key = None
                worker.waking = True
                self.decisions += 1
                self._version += 1
                worker.go.set()

    def _abandon(self) -> frozenset[int]:
        """Stop the round: release every waiting worker; return who is still inside fn()."""
        with self._lock:
            self._abandoned = True
            stuck = frozenset(
                w.index for w in self.workers if w.state in (_State.RUNNING, _State.PARKED)
            )
            for worker in self.workers:
                worker.go.set()
        self.start.abort()
        self.over.set()
        return stuck

    def _ident(self, worker: Worker) -> int:
        return self._idents.get(worker.index, 0)

    # -- the workers -----------------------------------------------------------------------

    def park(self, worker: Worker, kind: str) -> None:
        with self._lock:
            if self._abandoned or worker.state is not _State.RUNNING:
                return
            worker.state, worker.kind = _State.PARKED, kind
            worker.go.clear()
            self._version += 1
            self._changed.notify_all()
        worker.go.wait()
        worker.waking = False

    def _work(self, index: int) -> None:
        worker = self.workers[index]
        ident = registry.register(worker)
        self._idents[index] = ident
        try:
            self._run_worker(worker)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            with self._lock:
                self.failures.append((index, exc))
        finally:
            registry.unregister(ident)
            with self._lock:
                worker.state = _State.DONE
                self._version += 1
                self._changed.notify_all()
            self.over.wait()

    def _run_worker(self, worker: Worker) -> None:
        try:
            self.start.wait()
        except threading.BrokenBarrierError:
            return  # abandoned before it began
        me = threading.current_thread()
        seen = [[source.session] for source in self.sessions]
        with self._lock:
            if self._abandoned:
                return
            worker.state = _State.RUNNING
            self._version += 1
        began = time.perf_counter()
        result: T | None = None
        error: BaseException | None = None
        preemption = self.preemption
        token = None if preemption is None else preemption.begin(worker)
        if preemption is not None and token is None:
            with self._lock:
                self.untraced += 1
        try:
            result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - every outcome is reported, none lost
            error = exc
        finally:
            if preemption is not None:
                preemption.end(worker, token)
        elapsed = time.perf_counter() - began
        returned_at = get_default_clock().now()
        for source, sessions in zip(self.sessions, seen, strict=True):
            sessions.append(source.session)
        outcome = StressOutcome(
            self.number,
            worker.index,
            me.ident or 0,
            me.name,
            result,
            error,
            elapsed,
            tuple(tuple(s) for s in seen),
            returned_at,
            self.schedule,
        )
        with self._lock:
            self.slots[worker.index] = outcome


class _RoundTimeout(Exception):
    """The round's deadline passed."""


def _add_note(error: BaseException, note: str) -> None:
    add_note = getattr(error, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)
