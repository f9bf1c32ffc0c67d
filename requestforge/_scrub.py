"""Scrubbing what lower layers write: chained exceptions and urllib3's log records.

requests and urllib3 quote the request's path and query in their messages
(``Max retries exceeded with url: /api?access_token=...``) and urllib3 logs every
request line at DEBUG. requestforge chains a *scrubbed copy* of such an exception as the
``__cause__`` of the error it raises, and filters urllib3's log records, so neither a
traceback nor a DEBUG log shows a secret. Both use :func:`~requestforge._redact.redact_text`.

The copy keeps what code tests for: it is an instance of the original's own class
whenever that class can be built without calling its ``__init__`` (every requests,
urllib3, redis-py and OSError type can), with the original's traceback, its ``args``
scrubbed (strings redacted, exceptions copied the same way), its plain attributes kept
(numbers, flags; strings redacted) and every other attribute (``request``, ``response``,
``pool``) set to ``None``, and its own chain scrubbed the same way. Where a copy cannot be
made, the cause is a :class:`RedactedCause` naming the original type.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from requestforge._exceptions import RequestForgeError
from requestforge._redact import redact_text

# install_log_redaction and redacted_cause are for the library and its pytest plugin only.
__all__ = ["RedactedCause", "RedactingFilter"]

#: How deep a chain (``__cause__``/``__context__``/args) is copied; deeper links are dropped.
_MAX_DEPTH: Final = 8
#: Attribute values a copy keeps as they are: they cannot carry text.
_PLAIN = (int, float, bool, type(None))


class RedactedCause(RequestForgeError):
    """Stands in, as a chained ``__cause__``, for a lower layer's exception that could not
    be copied with its text redacted (most are copied as their own type instead).

    ``original_type`` is the original's class (for ``issubclass`` checks); the message is
    ``"<module>.<class>: <its message, redacted>"``. Never raised on its own.
    """

    def __init__(self, original_type: type[BaseException], message: str) -> None:
        super().__init__(message)
        self.original_type = original_type


def redacted_cause(exc: BaseException) -> BaseException:
    """The exception to chain (``raise ... from redacted_cause(exc)``) in place of ``exc``.

    Our own errors are already clean and returned as they are; anything else is copied
    with its text redacted (see the module docstring).
    """
    return _scrubbed(exc, 0, {})


def _scrubbed(exc: BaseException, depth: int, seen: dict[int, BaseException]) -> BaseException:
    if isinstance(exc, RequestForgeError):
        return exc
    done = seen.get(id(exc))
    if done is not None:
        return done
    try:
        copy = _copy(exc, depth, seen)
    except Exception:  # noqa: BLE001 - an exotic exception type: name it, quote it redacted
        copy = _stand_in(exc)
        seen[id(exc)] = copy
    return copy


def _copy(exc: BaseException, depth: int, seen: dict[int, BaseException]) -> BaseException:
    kind = type(exc)
    copy: BaseException = kind.__new__(kind)
    seen[id(exc)] = copy
    copy.args = tuple(_clean(arg, depth, seen) for arg in exc.args)
    for name, value in vars(exc).items():
        if name == "__notes__" and isinstance(value, list):
            copy.__notes__ = [redact_text(str(note)) for note in value]  # type: ignore[attr-defined]
        else:
            setattr(copy, name, _clean_attribute(value, depth, seen))
    str(copy)  # a __str__ that needs what the copy lacks fails here, not in a traceback
    copy.__traceback__ = exc.__traceback__
    if depth < _MAX_DEPTH:
        if exc.__cause__ is not None:
            copy.__cause__ = _scrubbed(exc.__cause__, depth + 1, seen)
        if exc.__context__ is not None:
            copy.__context__ = _scrubbed(exc.__context__, depth + 1, seen)
    copy.__suppress_context__ = exc.__suppress_context__
    return copy


def _clean(value: object, depth: int, seen: dict[int, BaseException]) -> object:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, BaseException):
        return _scrubbed(value, depth + 1, seen) if depth < _MAX_DEPTH else None
    return redact_text(value if isinstance(value, str) else str(value))


def _clean_attribute(value: object, depth: int, seen: dict[int, BaseException]) -> object:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str | BaseException):
        return _clean(value, depth, seen)
    return None  # a request, a response, a connection pool: not for a traceback


def _stand_in(exc: BaseException) -> RedactedCause:
    kind = type(exc)
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ tells nothing anyway
        text = ""
    stand_in = RedactedCause(kind, f"{kind.__module__}.{kind.__qualname__}: {redact_text(text)}")
    stand_in.__traceback__ = exc.__traceback__
    return stand_in


# -- log records ---------------------------------------------------------------------------


class _RedactedMessage:
    """A record's message, formatted and redacted when a handler first asks for it."""

    __slots__ = ("_args", "_hide", "_msg", "_text")

    def __init__(self, msg: object, args: Any, hide: Callable[[str], str]) -> None:
        self._msg, self._args, self._hide = msg, args, hide
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            text = str(self._msg)
            if self._args:
                try:
                    text = text % self._args
                except (TypeError, ValueError, KeyError):
                    text = f"{text} {self._args!r}"  # as logging would show a broken record
            self._text = self._hide(text)
            self._msg = self._args = None  # the unredacted parts are not kept
        return self._text


class RedactingFilter(logging.Filter):
    """Redacts query secrets and declared secret values in every record it sees.

    The message is formatted lazily (only if a handler emits the record) and ``args``
    emptied, so handlers and formatters that read ``record.args`` see nothing secret; a
    traceback or stack is formatted and redacted the same way. ``hide`` adds a redaction
    of the caller's after :func:`~requestforge._redact.redact_text` (the test plugin's
    cassettes add what they have scrubbed).
    """

    def __init__(self, hide: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._extra = hide

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted form; never drop the record."""
        if isinstance(record.msg, _RedactedMessage):
            return True
        record.msg = _RedactedMessage(record.msg, self.shown_args(record.args), self.hide)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.hide(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.hide(record.stack_info)
        return True

    def hide(self, text: str) -> str:
        """``text`` redacted: by knowledge and rules, then by ``hide``."""
        text = redact_text(text)
        return self._extra(text) if self._extra is not None else text

    def shown_args(self, args: Any) -> Any:
        """The record's ``args`` as they may be formatted; a subclass redacts structure."""
        return args


#: The loggers of urllib3's modules that log requests, created here if not yet imported.
URLLIB3_LOGGERS: Final = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.contrib.socks",
)

_FILTER: Final = RedactingFilter()
_installed = False
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Put the redacting filter on urllib3's loggers, once per process (idempotent).

    A filter on a logger sees only that logger's own records, so it goes on each module's
    logger: those in :data:`URLLIB3_LOGGERS` and any other ``urllib3.*`` logger that exists.
    """
    global _installed  # noqa: PLW0603 - once per process
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        existing = [name for name in logging.root.manager.loggerDict if name.startswith("urllib3")]
        for name in {*URLLIB3_LOGGERS, *existing, "urllib3"}:
            target = logging.getLogger(name)
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)
        _installed = True
