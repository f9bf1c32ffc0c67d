"""Every error requestforge raises, under one root.

::

    RequestForgeError
    ├── ConfigurationError (ValueError, TypeError)   bad configuration, raised at build time
    ├── InvalidRequestError (ValueError, TypeError)  a request that cannot be sent as given
    │   └── InvalidURLError                   no scheme/host, or relative without a base URL
    ├── HookError                             a hook raised, or returned nothing usable
    ├── ClientClosedError (RuntimeError)      the client was used after close()
    ├── ResponseDecodeError (ValueError)      a body that is not the JSON it claims to be
    ├── StreamConsumedError (RuntimeError)    a streamed body read again after iterating it
    ├── RedactedCause                         only chained: a lower layer's error, redacted
    ├── TokenError                            getting an access token failed
    │   ├── TokenResponseError (ValueError)   the token endpoint's answer is not a token response
    │   ├── TokenEndpointError                the token endpoint refused or failed (OAuth ``error``)
    │   ├── TokenStorageError                 the token storage (or its lock) is unusable
    │   ├── InsufficientScopeError            the API wants a scope the token lacks (RFC 6750)
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
``requests`` exception: the client wraps them all, chaining as ``__cause__`` a copy of the
original of the same type whose text is redacted (``_scrub``): requests and urllib3 quote
the URL's query in their messages. Every message is redacted too (``_redact.redact_text``).

``ConfigurationError`` and ``InvalidRequestError`` are both ``ValueError`` and ``TypeError``:
a wrong value and a wrong type are one kind of mistake to the caller, and code written
against the built-in exception Python raised before (``except TypeError`` around
``with_headers(None)``, ``HttpClient(config=...)``, ``json=object()``) keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from requestforge._redact import redact_text

if TYPE_CHECKING:
    from requestforge._models import HttpRequest
    from requestforge._response import HttpResponse

__all__ = [
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "HookError",
    "HttpStatusError",
    "InsufficientScopeError",
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
        # Every message we build is scrubbed here, once: a URL's secret query parameters,
        # declared secret values, server text quoting them (see _redact.redact_text).
        message = redact_text(message) if isinstance(message, str) else message
        super().__init__(message)
        self.message = message
        self.request = request if request is not None or response is None else response.request
        self.response = response

    def __str__(self) -> str:
        return self.message


class ConfigurationError(RequestForgeError, ValueError, TypeError):
    """The configuration is invalid; raised as early as possible, at build time.

    The message names the setting and what is wrong with it, never a secret value.
    """


class InvalidRequestError(RequestForgeError, ValueError, TypeError):
    """The request cannot be sent as given (unknown method, bad header value, bad URL,
    a keyword of the wrong type); raised before anything is sent."""


class InvalidURLError(InvalidRequestError):
    """A URL has no scheme or host, or a relative URL was given without a base URL."""


class HookError(RequestForgeError):
    """A hook (request, response, error or auth hook) raised an exception that is not a
    :class:`RequestForgeError`, or returned something other than what it must return
    (a hook that forgot its ``return`` gives ``None``).

    ``hook`` is the hook object and ``method`` the method that failed (``"before_request"``
    ...); the hook's own exception, if any, is ``__cause__``. A ``RequestForgeError`` a hook
    raises passes through unchanged. The message names the hook's class, never the text of
    the hook's exception (it may quote a credential).
    """

    def __init__(
        self,
        message: str,
        *,
        hook: object,
        method: str,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.hook = hook
        self.method = method


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


class InsufficientScopeError(TokenError):
    """The API refused the token for a scope it lacks: a ``WWW-Authenticate`` challenge
    (``Bearer`` or ``DPoP``) with ``error="insufficient_scope"`` (RFC 6750 section 3.1).

    A new token would lack it too, so nothing is renewed. ``scope`` is the challenge's
    ``scope`` (the scopes the API needs, space-separated) or None when it names none;
    ``error_description`` is the server's text, if any; ``response`` is the refusal.
    """

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        error_description: str | None = None,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.scope = scope
        self.error_description = error_description


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
