"""One attempt on a ``requests.Session``, and the translation of ``requests`` errors.

This is the only module that catches ``requests`` exceptions. Each becomes a
:class:`~requestforge.RequestForgeError` subclass chosen by *what it means for a retry*:
``ConnectError`` (the server never saw the request) versus ``ReadError`` /
``ReadTimeoutError`` (it may have). Messages name the request with its URL redacted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from http.cookiejar import CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import requests
import requests.cookies
import requests.hooks
import requests.sessions
import requests.utils
from requests import exceptions as rex
from urllib3.exceptions import ConnectTimeoutError as Urllib3ConnectTimeout
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

from requestforge._clock import get_default_clock
from requestforge._deadline import attempt_budget, bound_body, deadline_timeout
from requestforge._exceptions import (
    ConnectError,
    ConnectTimeoutError,
    InvalidRequestError,
    InvalidURLError,
    ReadError,
    ReadTimeoutError,
    RequestForgeError,
    RequestTimeoutError,
    StreamConsumedError,
    TooManyRedirectsError,
    TransportError,
)
from requestforge._models import HttpRequest
from requestforge._redact import redact_url
from requestforge._response import HttpResponse
from requestforge._scrub import redacted_cause

if TYPE_CHECKING:
    pass

__all__ = ["StreamedBody", "send_once", "translate_error"]


def send_once(
    session: requests.Session, request: HttpRequest, timeout: float | tuple[float, float]
) -> HttpResponse:
    """Send ``request`` once, never following a redirect; raise only requestforge errors.

    The body is read before returning unless ``request.stream``. ``timeout`` is the
    client's default, used when the request has none of its own.
    """
    clock = get_default_clock()
    started = clock.monotonic()
    chosen = request.timeout if request.timeout is not None else timeout
    if request.stream:
        try:
            response = _request(session, request, chosen)
        except requests.RequestException as exc:
            raise translate_error(exc, request) from redacted_cause(exc)
    else:
        response = _buffered(session, request, chosen)
    fields: dict[str, Any] = {
        "status_code": response.status_code,
        "headers": MappingProxyType(response.headers),
        "url": response.url,
        "elapsed_ms": (clock.monotonic() - started) * 1000.0,
        "request": request,
        "reason": response.reason or "",
        "encoding": response.encoding,
        "raw_response": response,
    }
    if request.stream:
        return HttpResponse.streamed(StreamedBody(response, request), **fields)
    return HttpResponse(content=response.content, **fields)


def _buffered(
    session: requests.Session, request: HttpRequest, timeout: float | tuple[float, float]
) -> requests.Response:
    """Send ``request`` and read its body, the whole attempt within the timeout's budget
    (see ``_deadline``): a server that drips its body cannot hold the call past it."""
    budget = attempt_budget(timeout)
    deadline = time.monotonic() + budget
    guard = None
    try:
        response = _request(session, request, deadline_timeout(timeout, budget), stream=True)
        guard = bound_body(response, deadline)
        response.content  # noqa: B018 - reads the body now, inside this try
    except requests.RequestException as exc:
        error = translate_error(exc, request)
        if isinstance(error, ReadTimeoutError) and (
            (guard is not None and guard.expired) or time.monotonic() >= deadline
        ):
            error = ReadTimeoutError(
                f"{request.method.value} {redact_url(request.url)} failed: the attempt's "
                f"deadline passed (timeout={timeout!r}: {budget:g}s for connect, headers "
                "and body together)",
                request=request,
            )
        raise error from redacted_cause(exc)
    return response


def _request(
    session: requests.Session, request: HttpRequest, timeout: Any, *, stream: bool | None = None
) -> requests.Response:
    try:
        return session.request(
            request.method.value,
            request.url,
            params=request.params or None,
            data=request.data,
            json=request.json_data,
            headers=request.headers,
            timeout=timeout,
            cookies=_cookies(request.cookies),
            files=request.files,
            auth=request.auth,
            allow_redirects=False,  # followed one hop at a time by _redirects
            # A copy: requests (and the environment merge) add to the mapping it is given.
            proxies=dict(request.proxies) if request.proxies is not None else None,
            stream=request.stream if stream is None else stream,
            verify=request.verify,
            cert=request.cert,
        )
    except rex.TooManyRedirects as exc:
        # Even without following, requests works the next hop out (for Response.next),
        # which counts against max_redirects = 0: the response is all we wanted.
        if exc.response is None:
            raise
        return exc.response
    except UnicodeError as exc:  # the same, on a session of the caller's, for a bad Location
        raise InvalidURLError(
            f"{request.method.value} {redact_url(request.url)}: the redirect's Location is "
            "neither UTF-8 nor ASCII",
            request=request,
        ) from redacted_cause(exc)


class StreamedBody:
    """The unread body of a ``stream=True`` response, read with requests' errors translated.

    A lock keeps two threads that read one response's ``content`` from reading the
    connection at once; iterating one body from two threads is the caller's race.
    """

    __slots__ = ("_lock", "_request", "_response")

    def __init__(self, response: requests.Response, request: HttpRequest) -> None:
        self._response = response
        self._request = request
        self._lock = threading.Lock()

    def read(self) -> bytes:
        """The rest of the body (requests keeps it, so a second call returns it again)."""
        with self._lock:
            try:
                return self._response.content
            except requests.RequestException as exc:
                raise translate_error(exc, self._request) from redacted_cause(exc)
            except RuntimeError as exc:  # requests: "content ... was already consumed"
                raise _consumed(self._request) from redacted_cause(exc)

    def iter_content(self, chunk_size: int | None) -> Iterator[bytes]:
        """The body as it arrives; the connection is released when it ends."""
        try:
            yield from self._response.iter_content(chunk_size)
        except rex.StreamConsumedError as exc:
            raise _consumed(self._request) from redacted_cause(exc)
        except requests.RequestException as exc:
            raise translate_error(exc, self._request) from redacted_cause(exc)

    def close(self) -> None:
        """Drop the rest of the body and give the connection back."""
        self._response.close()


def _consumed(request: HttpRequest) -> StreamConsumedError:
    return StreamConsumedError(
        f"the streamed body of {request.method.value} {redact_url(request.url)} was already "
        "read by iter_content() or iter_lines()",
        request=request,
    )


def _cookies(cookies: Mapping[str, str] | CookieJar | None) -> Any:
    """``cookies=`` as requests takes it: a jar as given, a mapping as a new dict."""
    if cookies is None or isinstance(cookies, CookieJar):
        return cookies
    return dict(cookies)


def translate_error(exc: requests.RequestException, request: HttpRequest) -> RequestForgeError:
    """Map a ``requests`` exception onto the requestforge hierarchy.

    Raise the result ``from redacted_cause(exc)``: requests' and urllib3's messages quote
    the URL's path and query, so the chained cause is a scrubbed copy (``_scrub``).
    """
    kind: type[RequestForgeError]
    if isinstance(exc, rex.ConnectTimeout):
        kind = ConnectTimeoutError
    elif isinstance(exc, rex.ReadTimeout):
        kind = ReadTimeoutError
    elif isinstance(exc, rex.Timeout):
        kind = RequestTimeoutError
    elif isinstance(exc, rex.SSLError | rex.ProxyError):
        kind = ConnectError
    elif isinstance(exc, rex.ConnectionError):
        kind = ConnectError if _never_connected(exc) else _read_failure(exc)
    elif isinstance(exc, rex.ChunkedEncodingError | rex.ContentDecodingError):
        kind = ReadError
    elif isinstance(exc, rex.TooManyRedirects):
        kind = TooManyRedirectsError
    elif isinstance(exc, rex.InvalidURL | rex.MissingSchema | rex.InvalidSchema | rex.URLRequired):
        kind = InvalidURLError
    elif isinstance(exc, ValueError):  # InvalidHeader, InvalidJSONError
        kind = InvalidRequestError
    else:
        kind = TransportError
    return kind(
        f"{request.method.value} {redact_url(request.url)} failed: {_reason(exc)}",
        request=request,
    )


def _read_failure(exc: rex.ConnectionError) -> type[RequestForgeError]:
    """A streamed body that stops arriving is a read timeout (requests wraps it as a
    ConnectionError); anything else after connecting is a broken connection."""
    cause = exc.args[0] if exc.args else None
    return ReadTimeoutError if isinstance(cause, Urllib3ReadTimeout) else ReadError


def _never_connected(exc: rex.ConnectionError) -> bool:
    """Whether the connection failed before any byte of the request was sent."""
    cause = exc.args[0] if exc.args else None
    reason = cause.reason if isinstance(cause, MaxRetryError) else cause
    return isinstance(reason, NewConnectionError | Urllib3ConnectTimeout)


def _reason(exc: requests.RequestException) -> str:
    """The underlying cause, without the URL that urllib3 puts in its messages."""
    cause = exc.args[0] if exc.args else exc
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    if not isinstance(cause, BaseException):
        cause = exc
    return f"{type(cause).__name__}: {cause}"
