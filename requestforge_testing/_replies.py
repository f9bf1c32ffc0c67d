"""What the loopback server answers (``Reply``) and what it saw (``RecordedRequest``).

A ``Reply`` builds its wire bytes once, not on every request; a streamed reply
(``stream=``) sends the chunks its callable yields, as they come, with chunked framing.
"""

from __future__ import annotations

import enum
import json as _json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, Final

from requestforge._redact import REDACTED, is_secret_field, redact_headers, redact_text

__all__ = ["UNSET", "RecordedRequest", "Reply"]

# RFC 9110: these statuses never carry a body, so they get neither a body nor Content-Length.
_NO_BODY_STATUSES: Final = frozenset({204, 304})
# The server frames every response itself; letting a script set these would break keep-alive.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})


class _Unset(enum.Enum):
    """Type of ``UNSET``: ``Reply.json`` needs a default distinct from JSON ``null``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET


@dataclass(frozen=True)
class Reply:
    """One scripted response; the wire bytes are built once here, not on every request.

    Give ``body`` (str is sent as UTF-8 text) or ``json``, not both. ``delay`` really sleeps
    in the server thread, to play a slow remote; ``drop=True`` closes the connection
    without answering, so the client sees a transport error.

    ``stream`` instead of a body: a callable called for each request, whose chunks are
    sent as it yields them (``Transfer-Encoding: chunked``), so a test can hold a body
    back on an event, or a benchmark can send a gigabyte without holding it. A client
    that hangs up mid-stream is not a server error.
    """

    status: int = 200
    body: bytes | str | None = None
    json: object = UNSET
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    stream: Callable[[], Iterable[bytes]] | None = None
    _head: bytes = field(init=False, repr=False, compare=False)
    _payload: bytes = field(init=False, repr=False, compare=False)
    _closes: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status must be a final status 200-599, got {self.status}")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"delay must be a finite number >= 0, got {self.delay}")
        if self.body is not None and self.json is not UNSET:
            raise ValueError("give Reply a body or json, not both")
        if self.stream is not None and (self.body is not None or self.json is not UNSET):
            raise ValueError("give Reply a stream or a body, not both")
        headers = dict(self.headers)
        object.__setattr__(self, "headers", MappingProxyType(headers))

        payload, content_type = _encode(self.body, self.json)
        if self.status in _NO_BODY_STATUSES and payload:
            raise ValueError(f"a {self.status} response cannot have a body")

        lines = [f"HTTP/1.1 {self.status} {_reason(self.status)}"]
        lowered = {name.lower() for name in headers}
        if content_type is not None and "content-type" not in lowered:
            lines.append(f"Content-Type: {content_type}")
        for name, value in headers.items():
            if name.lower() in _FRAMING_HEADERS:
                raise ValueError(f"the server sets {name} itself; do not script it")
            if any(c in name or c in value for c in "\r\n") or ":" in name or not name:
                raise ValueError(f"invalid header {name!r}: {value!r}")
            lines.append(f"{name}: {value}")
        if self.stream is not None:
            lines.append("Transfer-Encoding: chunked")
        elif self.status not in _NO_BODY_STATUSES:
            lines.append(f"Content-Length: {len(payload)}")
        head = "".join(line + "\r\n" for line in lines).encode("latin-1")
        closes = any(
            name.lower() == "connection" and value.strip().lower() == "close"
            for name, value in headers.items()
        )
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_payload", payload)
        object.__setattr__(self, "_closes", closes)


def _encode(body: bytes | str | None, json: object) -> tuple[bytes, str | None]:
    """The payload bytes and the Content-Type they get unless the script sets one."""
    if json is not UNSET:
        return _json.dumps(json, separators=(",", ":")).encode(), "application/json"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    if body is not None:
        return bytes(body), "application/octet-stream"
    return b"", None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class RequestHeaders(Mapping[str, str]):
    """Request headers as received, looked up case-insensitively the way HTTP means them."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        store: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in store:  # repeated header: RFC 9110 allows joining with ", "
                store[key] = (store[key][0], f"{store[key][1]}, {value}")
            else:
                store[key] = (name, value)
        self._items = store

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Shown in failed assertions and CI logs: credentials are hidden, by name and by
        # what the library was told is secret.
        return f"Headers({redact_headers(dict(self.items()))!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it, for assertions after the fact.

    ``headers`` is case-insensitive. ``thread_name`` names the server thread that served
    it and ``connection`` numbers the TCP connection it came on: both show keep-alive reuse.
    ``client`` is the (host, port) the connection came from: ``forge_stress`` pins a
    request on the worker thread that opened that connection. ``client_cert_subject`` is
    the subject of the certificate the client presented over TLS, as attribute name to
    value (``{"commonName": "forge-client", ...}``), or None: it proves mTLS happened.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    thread_name: str
    connection: int = 0
    client: tuple[str, int] | None = None
    client_cert_subject: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        # Shown in failed assertions and CI logs: secret headers and query values hidden,
        # the body's declared secrets and query-like secrets too (compare fields to see more).
        query = {k: ([REDACTED] if is_secret_field(k) else v) for k, v in self.query.items()}
        body = redact_text(self.body.decode("utf-8", "replace"))
        return (
            f"RecordedRequest(method={self.method!r}, path={redact_text(self.path)!r}, "
            f"query={query!r}, headers={self.headers!r}, body={body!r}, "
            f"thread_name={self.thread_name!r}, connection={self.connection})"
        )

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)
