"""The data that flows through a request: method, request, response and per-request context.

``HttpRequest`` and ``HttpResponse`` are frozen (headers are read-only mappings), so they
can be shared between threads and hooks return new instances instead of mutating.
``RequestContext`` is the one mutable object, and it belongs to a single request.
"""

from __future__ import annotations

import json as jsonlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from requestforge._exceptions import HttpStatusError, ResponseDecodeError
from requestforge._redact import (
    redact_headers,
    redact_json,
    redact_pairs,
    redact_url,
)

__all__ = ["HttpMethod", "HttpRequest", "HttpResponse", "RequestContext"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    """The shared empty read-only mapping; a factory, as dataclasses reject unhashable defaults."""
    return _EMPTY


class HttpMethod(str, Enum):
    """An HTTP method; compares equal to its upper-case name."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"
    TRACE = "TRACE"

    @classmethod
    def _missing_(cls, value: object) -> HttpMethod | None:
        """Accept any case: ``HttpMethod("get") is HttpMethod.GET``."""
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        return None

    @property
    def is_idempotent(self) -> bool:
        """RFC 9110 §9.2.2: repeating the request has the same effect as sending it once."""
        return self in _IDEMPOTENT

    def __str__(self) -> str:
        return self.value


_IDEMPOTENT = frozenset(
    {
        HttpMethod.GET,
        HttpMethod.HEAD,
        HttpMethod.PUT,
        HttpMethod.DELETE,
        HttpMethod.OPTIONS,
        HttpMethod.TRACE,
    }
)


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Merge header mappings; a name in ``extra`` replaces any spelling of it in ``base``."""
    if not extra:
        return dict(base)
    lowered = {k.lower() for k in extra}
    merged = {k: v for k, v in base.items() if k.lower() not in lowered}
    merged.update(extra)
    return merged


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not mapping:
        return _EMPTY
    if isinstance(mapping, MappingProxyType):
        return mapping
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, repr=False)
class HttpRequest:
    """One HTTP request, immutable. ``url`` is absolute once the client has resolved it."""

    method: HttpMethod
    url: str
    headers: Mapping[str, str] = field(default_factory=_empty)
    params: Mapping[str, Any] = field(default_factory=_empty)
    json_data: Any = None
    data: Any = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, HttpMethod):
            object.__setattr__(self, "method", HttpMethod(str(self.method).upper()))
        object.__setattr__(self, "headers", _freeze(self.headers))
        object.__setattr__(self, "params", _freeze(self.params))

    def with_headers(self, headers: Mapping[str, str]) -> HttpRequest:
        """Return a copy with ``headers`` added (replacing same-named headers, any case)."""
        return replace(self, headers=MappingProxyType(merge_headers(self.headers, headers)))

    def header(self, name: str, default: str | None = None) -> str | None:
        """Look a header up by name, ignoring case."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def has_replayable_body(self) -> bool:
        """Whether the body can be sent again: no body, bytes/str/form data, or a seekable file."""
        data = self.data
        if data is None or isinstance(data, bytes | bytearray | str | Mapping | list | tuple):
            return True
        seekable = getattr(data, "seekable", None)
        return bool(seekable and seekable() and hasattr(data, "tell"))

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """A plain-dict view for logging and debugging; secrets are redacted unless asked not to."""
        return {
            "method": self.method.value,
            "url": redact_url(self.url) if redact else self.url,
            "headers": redact_headers(self.headers) if redact else dict(self.headers),
            "params": dict(redact_pairs(_pairs(self.params)) if redact else _pairs(self.params)),
            "json": redact_json(self.json_data) if redact else self.json_data,
            "data": _redacted_body(self.data) if redact else self.data,
            "timeout": self.timeout,
        }

    def to_curl(self) -> str:
        """A ``curl`` command line reproducing this request, with every credential redacted."""
        url = self.url
        if self.params:
            url += ("&" if "?" in url else "?") + urlencode(_pairs(self.params))
        parts = ["curl", "-X", self.method.value, redact_url(url)]
        headers = redact_headers(self.headers)
        body: str | None = None
        if self.json_data is not None:
            body = jsonlib.dumps(redact_json(self.json_data), separators=(",", ":"))
            if self.header("Content-Type") is None:
                headers["Content-Type"] = "application/json"
        elif self.data is not None:
            body = _redacted_body(self.data)
        for name, value in headers.items():
            parts += ["-H", f"{name}: {value}"]
        if body is not None:
            parts += ["--data-raw", body]
        return " ".join(shlex.quote(p) for p in parts)

    def __repr__(self) -> str:
        return f"HttpRequest(method={self.method.value!r}, url={redact_url(self.url)!r})"


def _pairs(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten query parameters the way ``requests`` does (list values repeat the key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(v)) for v in values if v is not None]
    return pairs


def _redacted_body(data: Any) -> str:  # noqa: PLR0911 - one return per body kind reads best
    """Render a form or raw body for display, redacting secret fields of form bodies."""
    if isinstance(data, Mapping):
        return urlencode(redact_pairs(_pairs(data)))
    if isinstance(data, list | tuple):
        return urlencode(redact_pairs([(str(k), str(v)) for k, v in data]))
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError:
            return f"<{len(data)} bytes>"
    if isinstance(data, str):
        if "=" in data and not data.lstrip().startswith(("{", "[")):
            return urlencode(redact_pairs(parse_qsl(data, keep_blank_values=True)))
        try:
            return jsonlib.dumps(redact_json(jsonlib.loads(data)), separators=(",", ":"))
        except ValueError:
            return data
    return f"<{type(data).__name__} body>"


@dataclass(frozen=True, slots=True, repr=False)
class HttpResponse:
    """One HTTP response, immutable, with the body already read."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    elapsed_ms: float = 0.0
    request: HttpRequest | None = None
    reason: str = ""
    encoding: str | None = None

    @property
    def text(self) -> str:
        """The body decoded with the charset the server declared (UTF-8 when it declared none)."""
        try:
            return self.content.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know: fall back like requests does
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`ResponseDecodeError` if it is not JSON."""
        try:
            return jsonlib.loads(self.content)
        except ValueError as exc:
            raise ResponseDecodeError(
                f"response from {redact_url(self.url)} is not valid JSON: {exc}", response=self
            ) from exc

    def json_or_none(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return jsonlib.loads(self.content) if self.content else None
        except ValueError:
            return None

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        """3xx (redirects that ``requests`` did not follow)."""
        return 300 <= self.status_code < 400

    @property
    def is_client_error(self) -> bool:
        """4xx."""
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        """5xx."""
        return 500 <= self.status_code < 600

    def raise_for_status(self) -> HttpResponse:
        """Raise :class:`HttpStatusError` for a 4xx/5xx response; return ``self`` otherwise."""
        if self.status_code >= 400:
            kind = "client error" if self.is_client_error else "server error"
            reason = f" ({self.reason})" if self.reason else ""
            raise HttpStatusError(
                f"{self.status_code} {kind}{reason} for {redact_url(self.url)}", response=self
            )
        return self

    def __repr__(self) -> str:
        method = self.request.method.value if self.request else "?"
        return f"<HttpResponse [{self.status_code}] {method} {redact_url(self.url)}>"


@dataclass(slots=True)
class RequestContext:
    """Mutable state of one logical request across its attempts; never shared between threads.

    ``attempt`` counts retries already made (0 on the first try). Hooks may keep per-request
    data in ``metadata`` instead of on themselves, which keeps them safe to share.
    """

    request: HttpRequest
    attempt: int = 0
    max_retries: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    last_response: HttpResponse | None = None
    last_error: BaseException | None = None

    def increment_attempt(self) -> int:
        """Count one more retry and return the new attempt number."""
        self.attempt += 1
        return self.attempt

    @property
    def is_retry(self) -> bool:
        """Whether the current attempt is a retry."""
        return self.attempt > 0
