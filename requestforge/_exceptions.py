"""Every error requestforge raises, under one root.

::

    RequestForgeError
    ├── ConfigurationError (ValueError)       bad configuration, raised at build time
    ├── InvalidRequestError (ValueError)      a request that cannot be sent as given
    │   └── InvalidURLError                   no scheme/host, or relative without a base URL
    ├── ClientClosedError (RuntimeError)      the client was used after close()
    ├── ResponseDecodeError (ValueError)      a body that is not the JSON it claims to be
    ├── StreamConsumedError (RuntimeError)    a streamed body read again after iterating it
    ├── TokenError                            getting an access token failed
    │   ├── TokenResponseError (ValueError)   the token endpoint's answer is not a token response
    │   ├── TokenEndpointError                the token endpoint refused or failed (OAuth ``error``)
    │   ├── TokenStorageError                 the token storage (or its lock) is unusable
    │   └── PipelineStepError                 one step of a TokenFetchPipeline failed
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
    from requestforge._models import HttpRequest
    from requestforge._response import HttpResponse

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
    "PipelineStepError",
    "ReadError",
    "ReadTimeoutError",
    "RequestError",
    "RequestForgeError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "StreamConsumedError",
    "TokenEndpointError",
    "TokenError",
    "TokenResponseError",
    "TokenStorageError",
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


class StreamConsumedError(RequestForgeError, RuntimeError):
    """A streamed response's body was asked for after ``iter_content()`` / ``iter_lines()``
    had already read it from the connection: it was never kept, so it is gone."""


class TokenError(RequestForgeError):
    """An access token could not be obtained, stored or parsed."""


class TokenResponseError(TokenError, ValueError):
    """The token endpoint answered, but not with a valid RFC 6749 token response.

    The message names the problem (missing ``access_token``, bad ``expires_in``...) and
    never quotes a token.
    """


class TokenEndpointError(TokenError):
    """The token endpoint refused the request or could not be reached.

    ``error`` and ``error_description`` are the OAuth 2.0 error fields (RFC 6749 section
    5.2) when the endpoint sent them; ``status_code`` is the HTTP status, if any.
    ``transient`` says whether trying again later may succeed (5xx, timeouts, connection
    errors) as opposed to a permanent refusal such as ``invalid_client``.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status_code: int | None = None,
        transient: bool = False,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.error = error
        self.error_description = error_description
        self.status_code = status_code
        self.transient = transient


class TokenStorageError(TokenError):
    """The token storage failed: unreachable, or its refresh lock could not be taken in time."""


class PipelineStepError(TokenError):
    """A step of a :class:`~requestforge.TokenFetchPipeline` failed; ``step`` names it.

    The step's own exception is ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.step = step


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
