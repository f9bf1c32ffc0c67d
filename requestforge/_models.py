"""The data that flows through a request: method, request and per-request context.

``HttpRequest`` (like ``HttpResponse``, in ``_response.py``) is frozen (headers are
read-only mappings), so it can be shared between threads and hooks return new instances
instead of mutating.
``RequestContext`` is the one mutable object, and it belongs to a single request.

A method is an :class:`HttpMethod` (the standard ones) or an :class:`ExtensionMethod` (any
other RFC 9110 token, such as ``PROPFIND``); both have ``value`` and ``is_idempotent``.
"""

from __future__ import annotations

import json as jsonlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from http.cookiejar import CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from requests.auth import AuthBase

from requestforge._exceptions import (
    InvalidRequestError,
    InvalidURLError,
    RequestForgeError,
)
from requestforge._redact import (
    REDACTED,
    redact_cookies,
    redact_headers,
    redact_json,
    redact_pairs,
    redact_text,
    redact_url,
)
from requestforge._validate import valid_method, valid_timeout
from requestforge._validate_request import (
    json_problem,
    url_text,
    valid_data,
    valid_headers,
    valid_params,
    valid_request_options,
)

if TYPE_CHECKING:
    from requestforge._response import HttpResponse

__all__ = ["ExtensionMethod", "HttpMethod", "HttpRequest", "RequestContext"]

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


#: The standard methods by name, for the fast path of :func:`parse_method`.
_STANDARD: dict[str, HttpMethod] = {m.value: m for m in HttpMethod}


class ExtensionMethod(str):
    """A method outside :class:`HttpMethod`, such as WebDAV's ``PROPFIND``: any RFC 9110 token.

    It equals and prints as its name and has what the library reads from an
    :class:`HttpMethod` (``value``, ``name``, ``is_idempotent``). The name is upper-cased,
    as requests sends every method. A standard name is refused (use the
    :class:`HttpMethod` member), so each method has one spelling. Never idempotent: a
    request with an extension method is retried only when its connection never opened.
    Raises :class:`~requestforge.InvalidRequestError` for anything that is not a token.
    """

    __slots__ = ()

    def __new__(cls, name: str) -> ExtensionMethod:
        token = valid_method("method", name, error=InvalidRequestError)
        if token in _STANDARD:
            raise InvalidRequestError(f"{token} is a standard method: use HttpMethod.{token}")
        return super().__new__(cls, token)

    @property
    def value(self) -> str:
        """The method's name, as sent."""
        return str(self)

    @property
    def name(self) -> str:
        """The method's name, as sent (the same as ``value``, as for :class:`HttpMethod`)."""
        return str(self)

    @property
    def is_idempotent(self) -> bool:
        """Always False: the library cannot know what an extension method does."""
        return False

    def __repr__(self) -> str:
        return f"ExtensionMethod({str(self)!r})"


def parse_method(
    value: object, *, error: type[RequestForgeError] = InvalidRequestError
) -> HttpMethod | ExtensionMethod:
    """The :class:`HttpMethod` or :class:`ExtensionMethod` named by ``value`` (any case)."""
    if isinstance(value, HttpMethod | ExtensionMethod):
        return value
    standard = _STANDARD.get(value) if isinstance(value, str) else None
    if standard is not None:
        return standard
    token = valid_method("method", value, error=error)
    return _STANDARD.get(token) or ExtensionMethod(token)


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
    """One HTTP request, immutable. ``url`` is absolute once the client has resolved it.

    ``method`` may be given as a string in any case; it becomes an :class:`HttpMethod` or,
    for any other RFC 9110 token, an :class:`ExtensionMethod`. ``timeout`` is seconds for
    connect and read, or a ``(connect, read)`` tuple, each finite and > 0; ``None`` means
    the client's default. Anything else raises :class:`~requestforge.InvalidRequestError`,
    as does every argument of a type or value requests could not send (see
    ``_validate_request``): headers, params, ``data``, ``files`` and the keywords. Whether
    ``json_data`` encodes is checked once per send, and by :meth:`to_curl`.
    """

    method: HttpMethod | ExtensionMethod
    url: str
    headers: Mapping[str, str] = field(default_factory=_empty)
    params: Mapping[str, Any] = field(default_factory=_empty)
    json_data: Any = None
    data: Any = None
    timeout: float | tuple[float, float] | None = None
    cookies: Mapping[str, str] | CookieJar | None = None
    files: Any = None
    auth: tuple[str, str] | AuthBase | None = None
    allow_redirects: bool = True
    proxies: Mapping[str, str] | None = None
    verify: bool | str | None = None
    cert: str | tuple[str, str] | None = None
    stream: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.method, HttpMethod):
            set_(self, "method", parse_method(self.method))
        if type(self.url) is not str:
            set_(self, "url", url_text("url", self.url, error=InvalidURLError))
        set_(self, "headers", _freeze(valid_headers("headers", self.headers, sending=False)))
        set_(self, "params", _freeze(valid_params("params", self.params)))
        if self.data is not None:
            valid_data(self.data, files=self.files)
        if self.timeout is not None:
            set_(self, "timeout", valid_timeout("timeout", self.timeout, error=InvalidRequestError))
        if (
            self.cookies is None
            and self.files is None
            and self.auth is None
            and self.allow_redirects is True
            and self.stream is False
            and self.proxies is None
            and self.verify is None
            and self.cert is None
        ):
            return  # the common case: nothing more to check
        valid_request_options(
            cookies=self.cookies,
            files=self.files,
            auth=self.auth,
            allow_redirects=self.allow_redirects,
            stream=self.stream,
            proxies=self.proxies,
            verify=self.verify,
            cert=self.cert,
            error=InvalidRequestError,
        )
        if isinstance(self.cookies, Mapping) and not isinstance(self.cookies, CookieJar):
            set_(self, "cookies", _freeze(self.cookies))
        if self.proxies is not None:
            set_(self, "proxies", _freeze(self.proxies))

    def with_headers(self, headers: Mapping[str, str]) -> HttpRequest:
        """Return a copy with ``headers`` added (replacing same-named headers, any case)."""
        merged = MappingProxyType(merge_headers(self.headers, headers))
        if type(self) is not HttpRequest:
            return replace(self, headers=merged)
        # Every other field was checked and frozen when this request was made (checking it
        # again gives the same values): only the headers are new. ``replace`` would check all.
        clone = object.__new__(HttpRequest)
        for name in _FIELD_NAMES:
            object.__setattr__(clone, name, getattr(self, name))
        object.__setattr__(
            clone, "headers", _freeze(valid_headers("headers", merged, sending=False))
        )
        return clone

    def header(self, name: str, default: str | None = None) -> str | None:
        """Look a header up by name, ignoring case."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def has_replayable_body(self) -> bool:
        """Whether the body can be sent again: no body, bytes/str/form data, a seekable file,
        or ``files=`` whose every file is bytes/str or seekable. Generators and other
        one-shot bodies are not."""
        if not _replayable(self.data, forms=True):
            return False
        return all(_replayable(f) for f in upload_files(self.files))

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
            "cookies": redact_cookies(self.cookies) if redact else self.cookies,
            "files": _files_summary(self.files),
            "auth": (REDACTED if redact else self.auth) if self.auth is not None else None,
            "allow_redirects": self.allow_redirects,
            "proxies": (
                {k: redact_url(v) if redact and v else v for k, v in self.proxies.items()}
                if self.proxies is not None
                else None
            ),
            "verify": self.verify,
            "cert": self.cert,
            "stream": self.stream,
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
            problem = json_problem(self.json_data)
            if problem is not None:
                raise InvalidRequestError(f"to_curl(): json {problem}", request=self)
            body = jsonlib.dumps(redact_json(self.json_data), separators=(",", ":"))
            if self.header("Content-Type") is None:
                headers["Content-Type"] = "application/json"
        elif self.data is not None:
            body = _redacted_body(self.data)
        for name, value in headers.items():
            parts += ["-H", f"{name}: {value}"]
        cookies = redact_cookies(self.cookies)
        if cookies:
            parts += ["-b", "; ".join(f"{k}={v}" for k, v in cookies.items())]
        if self.auth is not None:
            parts += ["-u", f"{REDACTED}:{REDACTED}"]
        for name, filename in _files_summary(self.files).items():
            parts += ["-F", f"{name}=@{filename}"]
        if body is not None:
            parts += ["--data-raw", body]
        return " ".join(shlex.quote(p) for p in parts)

    def __repr__(self) -> str:
        return f"HttpRequest(method={self.method.value!r}, url={redact_url(self.url)!r})"


#: HttpRequest's fields, for the copy ``with_headers`` makes.
_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(HttpRequest))


def upload_files(files: Any) -> list[Any]:
    """The file objects (or bytes/str contents) of a ``files=`` argument, as requests reads it:
    a mapping or a list of ``(field, value)`` pairs, each value the content or a tuple
    ``(filename, content[, content_type[, headers]])``."""
    if not files:
        return []
    pairs = files.items() if isinstance(files, Mapping) else files
    return [value[1] if isinstance(value, tuple | list) else value for _, value in pairs]


def _replayable(body: Any, *, forms: bool = False) -> bool:
    if body is None or isinstance(body, bytes | bytearray | str):
        return True
    if forms and isinstance(body, Mapping | list | tuple):
        return True
    seekable = getattr(body, "seekable", None)
    return bool(seekable and seekable() and hasattr(body, "tell"))


def _files_summary(files: Any) -> dict[str, str]:
    """Each upload field with its file name (never its content)."""
    if not files:
        return {}
    pairs = files.items() if isinstance(files, Mapping) else files
    summary: dict[str, str] = {}
    for name, value in pairs:
        filename = value[0] if isinstance(value, tuple | list) else getattr(value, "name", name)
        summary[str(name)] = str(filename)
    return summary


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
        except (ValueError, RecursionError):
            return redact_text(data)  # plain text: declared values and quoted secrets
    return f"<{type(data).__name__} body>"


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
