"""One attempt on a ``requests.Session``, and the translation of ``requests`` errors.

This is the only module that catches ``requests`` exceptions. Each becomes a
:class:`~requestforge.RequestForgeError` subclass chosen by *what it means for a retry*:
``ConnectError`` (the server never saw the request) versus ``ReadError`` /
``ReadTimeoutError`` (it may have). Messages name the request with its URL redacted.
"""

from __future__ import annotations

from types import MappingProxyType

import requests
from requests import exceptions as rex
from urllib3.exceptions import ConnectTimeoutError as Urllib3ConnectTimeout
from urllib3.exceptions import MaxRetryError, NewConnectionError

from requestforge._clock import get_default_clock
from requestforge._exceptions import (
    ConnectError,
    ConnectTimeoutError,
    InvalidRequestError,
    InvalidURLError,
    ReadError,
    ReadTimeoutError,
    RequestForgeError,
    RequestTimeoutError,
    TooManyRedirectsError,
    TransportError,
)
from requestforge._models import HttpRequest, HttpResponse
from requestforge._redact import redact_url

__all__ = ["send_once", "translate_error"]


def send_once(session: requests.Session, request: HttpRequest, timeout: float) -> HttpResponse:
    """Send ``request`` once and read the whole body; raise only requestforge errors."""
    clock = get_default_clock()
    started = clock.monotonic()
    try:
        response = session.request(
            request.method.value,
            request.url,
            params=request.params or None,
            data=request.data,
            json=request.json_data,
            headers=request.headers,
            timeout=request.timeout or timeout,
        )
        content = response.content
    except requests.RequestException as exc:
        raise translate_error(exc, request) from exc
    return HttpResponse(
        status_code=response.status_code,
        headers=MappingProxyType(response.headers),
        content=content,
        url=response.url,
        elapsed_ms=(clock.monotonic() - started) * 1000.0,
        request=request,
        reason=response.reason or "",
        encoding=response.encoding,
    )


def translate_error(exc: requests.RequestException, request: HttpRequest) -> RequestForgeError:
    """Map a ``requests`` exception onto the requestforge hierarchy."""
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
        kind = ConnectError if _never_connected(exc) else ReadError
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
