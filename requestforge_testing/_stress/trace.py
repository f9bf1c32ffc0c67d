"""Forced interleavings: a worker parks before every write to shared state in the user's code.

Before a store to an attribute, item, global or closure cell, or a call of a mutating
method, in the user's code only (see ``requestforge_testing._code``), the worker parks, and
the scheduler lets it go on only once every other worker has reached a write of its own,
finished, or is waiting. Every thread has then read what it read before anyone writes: a
read-modify-write (``x += 1``), a check-then-act, a lock released before the store, all
race on every run instead of once in a while.

Two mechanisms, one behaviour:

- Python 3.12 and later: ``sys.monitoring`` (PEP 669). ``PY_START`` finds each code object
  once; the user's get ``INSTRUCTION`` events, and every offset that is not a write is
  switched off after its first event, so only the writes cost anything. The standard
  library, installed packages and requestforge run uninstrumented. It coexists with
  coverage.py and debuggers, which use other tool ids.
- Python 3.10 and 3.11: ``sys.settrace`` with ``f_trace_opcodes`` in each worker thread.
  A thread that already has a trace function (a debugger, coverage.py's tracer) is left
  alone and runs without forced interleavings.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, Final, Protocol

from requestforge_testing._code import is_user_code
from requestforge_testing._stress.bytecode import sites
from requestforge_testing._stress.registry import current_worker

__all__ = ["Parker", "Preemption"]

TraceFunction = Callable[[FrameType, str, Any], Any]

#: Python 3.12's settrace drops opcode events (3.12.1 sends none): use sys.monitoring there.
MONITORING: Final = sys.version_info >= (3, 12)


class Parker(Protocol):
    """The worker the interleaving runs in: counts progress, parks at writes."""

    ticks: int
    preempted: bool

    def park(self, kind: str) -> None: ...


_OFFSETS: dict[tuple[int, tuple[str, ...]], tuple[CodeType, frozenset[int] | None]] = {}


def _write_offsets(
    code: CodeType, module: object, include: tuple[str, ...]
) -> frozenset[int] | None:
    """Offsets of the writes in ``code``, or None when it is not the user's code."""
    key = (id(code), include)
    cached = _OFFSETS.get(key)
    if cached is not None and cached[0] is code:
        return cached[1]
    offsets = None
    if is_user_code(code, module if isinstance(module, str) else "", include):
        offsets = frozenset(offset for offset, site in sites(code).items() if site.writes)
    _OFFSETS[key] = (code, offsets)  # holding the code keeps its id from being reused
    return offsets


class Preemption:
    """Forced interleavings for one ``forge_stress`` run: a context around the whole run,
    and ``begin``/``end`` around each worker's call of ``fn``."""

    def __init__(self, include: tuple[str, ...]) -> None:
        self.include = include
        self._monitor: _Monitor | None = None

    def __enter__(self) -> Preemption:
        if MONITORING:
            self._monitor = _Monitor.acquire(self.include)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._monitor is not None:
            self._monitor.release()
            self._monitor = None

    def begin(self, worker: Parker) -> object | None:
        """Interleave the calling worker thread from now on; returns what ``end`` needs,
        or None when it cannot be interleaved (monitoring busy, a tracer already set)."""
        if MONITORING:
            if self._monitor is None:
                return None
            worker.preempted = True
            return self._monitor
        tracer = _Tracer(worker, self.include)
        return tracer if tracer.install() else None

    def end(self, worker: Parker, token: object | None) -> None:
        worker.preempted = False
        if isinstance(token, _Tracer):
            token.uninstall()


class _Monitor:
    """The process's one ``sys.monitoring`` tool, shared by the runs using it."""

    _lock = threading.Lock()
    _current: _Monitor | None = None

    def __init__(self, tool: int, include: tuple[str, ...]) -> None:
        self.tool = tool
        self.include = include
        self.users = 0
        self.instrumented: dict[int, tuple[CodeType, frozenset[int]]] = {}

    @classmethod
    def acquire(cls, include: tuple[str, ...]) -> _Monitor | None:
        with cls._lock:
            monitor = cls._current
            if monitor is None:
                tool = _free_tool()
                if tool is None:
                    return None
                monitor = cls._current = _Monitor(tool, include)
                monitor._start()
            monitor.users += 1
            return monitor

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self._stop()
                type(self)._current = None

    def _start(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        events = monitoring.events
        monitoring.use_tool_id(self.tool, "requestforge_testing forge_stress")
        monitoring.register_callback(self.tool, events.PY_START, self._on_start)
        monitoring.register_callback(self.tool, events.INSTRUCTION, self._on_instruction)
        monitoring.set_events(self.tool, events.PY_START)

    def _stop(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        events = monitoring.events
        monitoring.set_events(self.tool, 0)
        for code, _ in self.instrumented.values():
            monitoring.set_local_events(self.tool, code, 0)
        self.instrumented.clear()
        # The DISABLE returned for every code object and offset outlives free_tool_id: without
        # this, the next run (whatever its preempt_packages) and the next owner of the tool id
        # never see PY_START for code this run saw.
        monitoring.restart_events()
        monitoring.register_callback(self.tool, events.PY_START, None)
        monitoring.register_callback(self.tool, events.INSTRUCTION, None)
        monitoring.free_tool_id(self.tool)

    def _on_start(self, code: CodeType, offset: int) -> object:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        module = sys._getframe(1).f_globals.get("__name__")
        offsets = _write_offsets(code, module, self.include)
        if offsets and id(code) not in self.instrumented:
            self.instrumented[id(code)] = (code, offsets)
            monitoring.set_local_events(self.tool, code, monitoring.events.INSTRUCTION)
        return monitoring.DISABLE  # each code object needs to be seen once

    def _on_instruction(self, code: CodeType, offset: int) -> object:
        entry = self.instrumented.get(id(code))
        if entry is None or entry[0] is not code or offset not in entry[1]:
            return sys.monitoring.DISABLE  # type: ignore[attr-defined]
        worker = current_worker()
        if worker is not None and getattr(worker, "preempted", False):
            worker.park("write")
        return None


def _free_tool() -> int | None:
    monitoring = sys.monitoring  # type: ignore[attr-defined]
    for tool in (4, 3, 5):  # after the debugger (0), coverage (1) and profiler (2) ids
        if monitoring.get_tool(tool) is None:
            return tool
    return None


class _Tracer:
    """The trace function of one worker thread (Python 3.10 and 3.11)."""

    def __init__(self, worker: Parker, include: tuple[str, ...]) -> None:
        self._worker = worker
        self._include = include
        self._locals: dict[int, tuple[CodeType, TraceFunction | None]] = {}
        self.installed = False

    def install(self) -> bool:
        """Trace the calling thread from now on; False if it already had a tracer."""
        if sys.gettrace() is not None:
            return False
        self._worker.preempted = True
        sys.settrace(self._on_call)
        self.installed = True
        return True

    def uninstall(self) -> None:
        if self.installed:
            sys.settrace(None)
            self.installed = False

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        if event != "call":
            return None
        code = frame.f_code
        cached = self._locals.get(id(code))
        if cached is not None and cached[0] is code:
            local = cached[1]
        else:
            offsets = _write_offsets(code, frame.f_globals.get("__name__"), self._include)
            local = None if offsets is None else self._local_for(offsets)
            self._locals[id(code)] = (code, local)
        if local is not None:
            frame.f_trace = local  # opcode tracing only starts on a frame that has f_trace
            frame.f_trace_lines = False
            frame.f_trace_opcodes = True
        return local

    def _local_for(self, offsets: frozenset[int]) -> TraceFunction:
        worker = self._worker

        def local(frame: FrameType, event: str, arg: Any) -> TraceFunction:
            if event == "opcode":
                worker.ticks += 1
                if frame.f_lasti in offsets:
                    worker.park("write")
            return local

        return local
