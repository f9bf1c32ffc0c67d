"""Every error requestforge raises, under one root.

::

    RequestForgeError
    ├── ConfigurationError (ValueError)       bad configuration, raised at build time
    ├── InvalidRequestError (ValueError)      a request that cannot be sent as given
    │   └── InvalidURLError                   no scheme/host, or relative without a base URL
    ├── ClientClosedError (RuntimeError)      the client was used after close()
    ├── ResponseDecodeError (ValueError)      a body that is not the JSON it claims to be
    └── RequestError                          something went wrong with one request
        ├── TransportError                    the HTTP exchange itself failed
        │   ├── ConnectError (ConnectionError)   nothing reached the server: safe to retry
        │   │   └── ConnectTimeoutError (also RequestTimeoutError)
        │   ├── RequestTimeoutError (TimeoutError)
        │   │   └── ReadTimeoutError             the server took too long to answer
        │   ├── ReadError                     the connection broke after the request was sent
        │   └── TooManyRedirectsError
        ├── HttpStatusError                   a response with an error status
        ├── CircuitOpenError                  the circuit breaker refused to send
        └── MaxRetryException                 retries ran out; carries the last response or error

Context is passed keyword-only: ``request=`` (an :class:`~requestforge.HttpRequest`) and
``response=`` (an :class:`~requestforge.HttpResponse`). Callers never need to catch a
``requests`` exception: the client wraps them all, keeping the original as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from requestforge._models import HttpRequest, HttpResponse

__all__ = [
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "HttpStatusError",
    "InvalidRequestError",
    "InvalidURLError",
    "MaxRetryException",
    "ReadError",
    "ReadTimeoutError",
    "RequestError",
    "RequestForgeError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "TooManyRedirectsError",
    "TransportError",
]


class RequestForgeError(Exception):
    """The root of every error requestforge raises."""

    def __init__(
        self,
        message: str,
        *,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request if request is not None or response is None else response.request
        self.response = response

    def __str__(self) -> str:
        return self.message


class ConfigurationError(RequestForgeError, ValueError):
    """The configuration is invalid; raised as early as possible, at build time."""


class InvalidRequestError(RequestForgeError, ValueError):
    """The request cannot be sent as given (unknown method, bad header value, bad URL)."""


class InvalidURLError(InvalidRequestError):
    """A URL has no scheme or host, or a relative URL was given without a base URL."""


class ClientClosedError(RequestForgeError, RuntimeError):
    """The client was used after :meth:`~requestforge.HttpClient.close`."""


class ResponseDecodeError(RequestForgeError, ValueError):
    """The response body could not be decoded as JSON."""


class RequestError(RequestForgeError):
    """Sending one request failed."""


class TransportError(RequestError):
    """The HTTP exchange failed below the HTTP layer (connection, timeout, protocol)."""


class ConnectError(TransportError, ConnectionError):
    """The connection could not be established, so the server never saw the request."""


class RequestTimeoutError(TransportError, TimeoutError):
    """A timeout expired."""


class ConnectTimeoutError(ConnectError, RequestTimeoutError):
    """Connecting took longer than the timeout; the server never saw the request."""


class ReadTimeoutError(RequestTimeoutError):
    """The server accepted the request but did not answer in time."""


class ReadError(TransportError):
    """The connection broke after the request was sent (reset, truncated body)."""


class TooManyRedirectsError(TransportError):
    """The redirect limit was exceeded."""


class HttpStatusError(RequestError):
    """A response carried an error status (see :meth:`HttpResponse.raise_for_status`)."""


class CircuitOpenError(RequestError):
    """The circuit breaker is open (or probing) and refused to send the request."""


class MaxRetryException(RequestError):
    """Retries ran out.

    ``response`` is the last response when the last attempt got one (for example a 503);
    otherwise the last transport error is ``__cause__`` and ``last_error``.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.attempts = attempts
        self.last_error = last_error
