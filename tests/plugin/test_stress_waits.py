"""``waits.classify``: what a worker that does not move is waiting for, read off its frame."""

from __future__ import annotations

import dis
import gc
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

import pytest

from requestforge_testing._stress.waits import Wait, classify, current_frames

# -- waits.classify: what a still thread waits for ----------------------------------------------


def frame_when(thread: threading.Thread, ready: Callable[[FrameType], bool]) -> FrameType:
    """The innermost frame of ``thread`` once ``ready(frame)`` holds (polled for up to 10 s)."""
    deadline = time.monotonic() + 10
    pause = threading.Event()
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        if frame is not None and ready(frame):
            return frame
        pause.wait(0.001)
    raise AssertionError(f"{thread.name} never reached the expected instruction")


def blocking_offset(code: CodeType, method: str | None = None) -> int:
    """Offset of the ``with`` in ``code``, or of the call of ``method``."""
    instructions = list(dis.get_instructions(code))
    for index, instruction in enumerate(instructions):
        if method is None and instruction.opname in ("SETUP_WITH", "BEFORE_WITH"):
            return instruction.offset
        if method is not None and instruction.argval == method:
            return next(i.offset for i in instructions[index:] if i.opname.startswith("CALL"))
    raise LookupError(method)


def at(code: CodeType, offset: int) -> Callable[[FrameType], bool]:
    return lambda frame: frame.f_code is code and frame.f_lasti == offset


@contextmanager
def running(target: Callable[[], object]) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=target, name="classified", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(timeout=10)
        assert not thread.is_alive()


class Holder:
    def __init__(self, lock: Any) -> None:
        self.lock = lock


def enter_with(holder: Holder) -> None:
    with holder.lock:
        pass


def call_acquire(holder: Holder) -> None:
    holder.lock.acquire()
    holder.lock.release()


@pytest.mark.parametrize("make_lock", [threading.Lock, threading.RLock], ids=["Lock", "RLock"])
@pytest.mark.parametrize("enter", [enter_with, call_acquire], ids=["with", "acquire"])
def test_a_thread_at_a_lock_another_thread_holds_is_blocked(
    make_lock: Callable[[], Any], enter: Callable[[Holder], None]
) -> None:
    """``with lock:`` or ``lock.acquire()`` on a Lock or RLock held by another thread: BLOCKED."""
    holder = Holder(make_lock())
    code = enter.__code__
    offset = blocking_offset(code, None if enter is enter_with else "acquire")
    holder.lock.acquire()
    with running(lambda: enter(holder)) as thread:
        try:
            frame = frame_when(thread, at(code, offset))
            assert classify(frame, thread.ident or 0) is Wait.BLOCKED
        finally:
            holder.lock.release()


def test_an_rlock_held_by_the_thread_itself_is_not_a_wait() -> None:
    """An RLock owned by the thread asked about reads as WAKING (re-entering it cannot block),
    the same lock asked about for another thread as BLOCKED."""
    holder = Holder(threading.RLock())
    offset = blocking_offset(enter_with.__code__)
    holder.lock.acquire()
    with running(lambda: enter_with(holder)) as thread:
        try:
            frame = frame_when(thread, at(enter_with.__code__, offset))
            assert classify(frame, threading.get_ident()) is Wait.WAKING
            assert classify(frame, thread.ident or 0) is Wait.BLOCKED
        finally:
            holder.lock.release()


def _event() -> tuple[Callable[[], object], Any, Callable[[], object]]:
    event = threading.Event()
    return event.wait, vars(event)["_cond"], event.set


def _condition() -> tuple[Callable[[], object], Any, Callable[[], object]]:
    condition = threading.Condition()
    flag: list[bool] = []

    def wait() -> None:
        with condition:
            condition.wait_for(lambda: flag)

    def notify() -> None:
        with condition:
            flag.append(True)
            condition.notify_all()

    return wait, condition, notify


def _semaphore() -> tuple[Callable[[], object], Any, Callable[[], object]]:
    semaphore = threading.Semaphore(0)
    return semaphore.acquire, vars(semaphore)["_cond"], semaphore.release


def _queue() -> tuple[Callable[[], object], Any, Callable[[], object]]:
    box: queue.Queue[int] = queue.Queue()
    return box.get, box.not_empty, lambda: box.put(1)


def _barrier() -> tuple[Callable[[], object], Any, Callable[[], object]]:
    barrier = threading.Barrier(2, timeout=10)
    return barrier.wait, vars(barrier)["_cond"], barrier.wait


@pytest.mark.parametrize("make", [_event, _condition, _semaphore, _queue, _barrier])
def test_a_thread_waiting_for_a_notify_is_blocked(
    make: Callable[[], tuple[Callable[[], object], Any, Callable[[], object]]],
) -> None:
    """Event.wait, Condition.wait_for, Semaphore.acquire, Queue.get and Barrier.wait all wait
    in Condition.wait for a notify: BLOCKED until another thread gives one."""
    wait, condition, release = make()
    waiters = vars(condition)["_waiters"]
    with running(wait) as thread:
        try:
            frame = frame_when(
                thread, lambda f: f.f_code is threading.Condition.wait.__code__ and bool(waiters)
            )
            assert classify(frame, thread.ident or 0) is Wait.BLOCKED
        finally:
            release()


def test_a_wait_left_after_a_notify_is_not_blocked() -> None:
    """The frame of a Condition.wait its thread has left after a notify (its waiter lock taken
    again, so still locked) reads WAKING, not BLOCKED: the scheduler may look at such a frame
    just after the worker left it."""
    condition = threading.Condition(threading.Lock())
    waiters = vars(condition)["_waiters"]

    def wait() -> None:
        with condition:
            condition.wait()

    with running(wait) as thread:
        frame = frame_when(
            thread, lambda f: f.f_code is threading.Condition.wait.__code__ and bool(waiters)
        )
        assert classify(frame, thread.ident or 0) is Wait.BLOCKED
        with condition:
            condition.notify()
    assert frame.f_locals["waiter"].locked()
    assert classify(frame, thread.ident or 0) is Wait.WAKING


def test_a_thread_reading_a_socket_waits_for_io_and_a_raw_c_call_is_unknown() -> None:
    """A read stopped in the socket module is IO; a recv called straight from the user's code
    leaves no Python frame to tell, and reads as UNKNOWN (the scheduler then uses stillness)."""
    left, right = socket.socketpair()
    reader = left.makefile("rb")

    def raw_recv() -> None:
        left.recv(1)

    try:
        readinto = socket.SocketIO.readinto.__code__
        with running(lambda: reader.read(1)) as thread:
            try:
                frame = frame_when(thread, lambda f: f.f_code is readinto)
                assert classify(frame, thread.ident or 0) is Wait.IO
            finally:
                right.sendall(b"x")
        offset = blocking_offset(raw_recv.__code__, "recv")
        with running(raw_recv) as thread:
            try:
                frame = frame_when(thread, at(raw_recv.__code__, offset))
                assert classify(frame, thread.ident or 0) is Wait.UNKNOWN
            finally:
                right.sendall(b"y")
    finally:
        reader.close()
        left.close()
        right.close()


@pytest.mark.parametrize("enabled", [True, False])
def test_current_frames_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    """current_frames() gives every thread's frame, and the garbage collector is enabled
    (or disabled) afterwards exactly as before, whatever it does around the call."""
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        frames = current_frames()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    caller = frames[threading.get_ident()].f_back  # the innermost frame is current_frames
    assert caller is not None
    assert caller.f_code is test_current_frames_leaves_the_collector_as_it_found_it.__code__
