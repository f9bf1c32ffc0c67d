"""What an instruction does to shared state, read from the bytecode (CPython 3.10 to 3.13).

Two questions need it. The tracer asks where a thread is about to *write* shared state (a
store to an attribute, item, global or closure cell, or a call of a mutating method such as
``set``/``append``): that is where it parks. The scheduler asks what a thread stuck in a C
call is waiting for: at ``with self._lock:`` or ``self._lock.acquire()`` the lock object can
be found again from the frame, and asked whether it is held.

Only simple receivers are followed (a local, global or closure variable, then plain
attributes): anything else reads as unknown, never as a wrong answer.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import sys
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Final

__all__ = ["MISSING", "Receiver", "Site", "sites"]

MISSING: Final = object()

#: Opcodes that write to an object other threads may see (STORE_FAST writes a local).
WRITE_OPS: Final = frozenset(
    {
        "STORE_ATTR",
        "STORE_SUBSCR",
        "STORE_SLICE",
        "STORE_GLOBAL",
        "STORE_DEREF",
        "DELETE_ATTR",
        "DELETE_SUBSCR",
        "DELETE_SLICE",
        "DELETE_GLOBAL",
        "DELETE_DEREF",
    }
)
#: Method names that mutate their receiver in the standard containers and in caches and
#: token storages (``storage.set(key, token)`` after a lock is released is a store too).
WRITE_METHODS: Final = frozenset(
    {
        "__delitem__",
        "__setitem__",
        "add",
        "append",
        "appendleft",
        "clear",
        "delete",
        "discard",
        "extend",
        "insert",
        "invalidate",
        "pop",
        "popitem",
        "popleft",
        "put",
        "put_nowait",
        "remove",
        "save",
        "set",
        "setdefault",
        "store",
        "update",
        "write",
    }
)
_WITH_OPS: Final = frozenset({"SETUP_WITH", "BEFORE_WITH"})
_CALL_OPS: Final = frozenset(
    {"CALL", "CALL_METHOD", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_KW"}
)
_KW_CALLS: Final = frozenset({"CALL_FUNCTION_KW", "CALL_KW"})
_NOT_ARGUMENTS: Final = frozenset({"PRECALL", "KW_NAMES", "EXTENDED_ARG", "CACHE", "NOP"})
_LOCALS: Final = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLOSURE"})
_GLOBALS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_METHOD_LOADS: Final = frozenset({"LOAD_METHOD", "LOAD_ATTR"})
#: From 3.11 (LOAD_GLOBAL) and 3.12 (LOAD_ATTR) the low bit of the argument means "also
#: push NULL or self for a call": such a load starts a call, not a plain value.
_FLAGGED: Final = {"LOAD_GLOBAL": (3, 11), "LOAD_ATTR": (3, 12)}


@dataclass(frozen=True)
class Receiver:
    """A simple expression (``name.attr.attr``) that can be evaluated again in its frame."""

    scope: str  # "local" or "global"
    name: str
    attributes: tuple[str, ...]

    def resolve(self, frame: FrameType) -> object:
        """The object the expression names now, or MISSING; never runs user code."""
        if self.scope == "local":
            value = frame.f_locals.get(self.name, MISSING)
        else:
            value = frame.f_globals.get(self.name, MISSING)
            if value is MISSING:
                value = getattr(builtins, self.name, MISSING)
        for attribute in self.attributes:
            if value is MISSING:
                break
            value = inspect.getattr_static(value, attribute, MISSING)
            if hasattr(type(value), "__get__"):  # a property or method: do not call it
                return MISSING
        return value


@dataclass(frozen=True)
class Site:
    """One instruction of interest: a ``with``, or a call and the method it calls."""

    opname: str
    method: str | None
    receiver: Receiver | None

    @property
    def writes(self) -> bool:
        """Whether the instruction is a store, or a call of a mutating method."""
        return self.opname in WRITE_OPS or (
            self.method is not None and self.method in WRITE_METHODS
        )


_SITES: dict[int, tuple[CodeType, dict[int, Site]]] = {}


def sites(code: CodeType) -> dict[int, Site]:
    """The sites of ``code`` by instruction offset (``frame.f_lasti``); cached per code."""
    cached = _SITES.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    found = _scan(list(dis.get_instructions(code)))
    _SITES[id(code)] = (code, found)  # holding the code keeps its id from being reused
    return found


def _scan(instructions: list[dis.Instruction]) -> dict[int, Site]:
    found: dict[int, Site] = {}
    for index, instruction in enumerate(instructions):
        name = instruction.opname
        if name in WRITE_OPS:
            found[instruction.offset] = Site(name, None, None)
        elif name in _WITH_OPS:
            found[instruction.offset] = Site(name, None, _receiver(instructions, index - 1))
        elif name in _CALL_OPS:
            callee = _callee(instructions, index)
            if callee is not None and instructions[callee].opname in _METHOD_LOADS:
                method = str(instructions[callee].argval)
                receiver = _receiver(instructions, callee - 1)
                found[instruction.offset] = Site(name, method, receiver)
    return found


def _callee(instructions: list[dis.Instruction], index: int) -> int | None:
    """Index of the instruction that loaded the called object, found by walking back over
    the arguments until their net stack effect is the argument count."""
    call = instructions[index]
    needed = (call.arg or 0) + (1 if call.opname in _KW_CALLS else 0)
    position = index - 1
    while position >= 0 and instructions[position].opname in _NOT_ARGUMENTS:
        position -= 1
    total = 0
    while total < needed:
        if position < 0 or instructions[position].is_jump_target:
            return None  # a branch inside the arguments: not a simple call
        instruction = instructions[position]
        try:
            total += dis.stack_effect(instruction.opcode, _oparg(instruction), jump=False)
        except ValueError:
            return None
        position -= 1
    return position if position >= 0 and total == needed else None


def _receiver(instructions: list[dis.Instruction], index: int) -> Receiver | None:
    attributes: list[str] = []
    while index >= 0 and instructions[index].opname == "LOAD_ATTR":
        if _flagged(instructions[index]):
            return None
        attributes.insert(0, str(instructions[index].argval))
        index -= 1
    if index < 0:
        return None
    base = instructions[index]
    if base.opname in _LOCALS:
        scope = "local"
    elif base.opname in _GLOBALS and not _flagged(base):
        scope = "global"
    else:
        return None
    return Receiver(scope, str(base.argval), tuple(attributes))


def _flagged(instruction: dis.Instruction) -> bool:
    since = _FLAGGED.get(instruction.opname)
    return since is not None and sys.version_info >= since and bool((instruction.arg or 0) & 1)


def _oparg(instruction: dis.Instruction) -> int | None:
    return instruction.arg if instruction.opcode >= dis.HAVE_ARGUMENT else None
