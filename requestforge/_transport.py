"""One attempt on a ``requests.Session``, the session our client creates, and the translation
of ``requests`` errors.

This is the only module that catches ``requests`` exceptions. Each becomes a
:class:`~requestforge.RequestForgeError` subclass chosen by *what it means for a retry*:
``ConnectError`` (the server never saw the request) versus ``ReadError`` /
``ReadTimeoutError`` (it may have). Messages name the request with its URL redacted.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from http.cookiejar import CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests import exceptions as rex
from requests.auth import AuthBase
from requests.sessions import merge_setting as _untyped_merge_setting
from requests.utils import get_environ_proxies, get_netrc_auth
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
    from requests.sessions import _Settings

__all__ = ["CachedEnvironmentSession", "StreamedBody", "send_once", "translate_error"]

_Credentials = tuple[str, str]
#: requests' merge of a request-level setting over the session's (untyped in the stubs).
_merge_setting: Callable[[Any, Any], Any] = _untyped_merge_setting


class _NoNetrcEntry(AuthBase):
    """The auth a session applies for a host without a ``.netrc`` entry: exactly what
    requests does when there is no auth at all (credentials in the URL, if it has any).

    It is truthy where ``None`` is not, which stops ``Session.prepare_request`` from
    looking ``.netrc`` up again.
    """

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_auth(None)
        return r


_NO_NETRC_ENTRY = _NoNetrcEntry()


def _has_authorization(headers: Any) -> bool:
    return bool(headers) and any(
        isinstance(name, str) and name.lower() == "authorization" for name in headers
    )


class CachedEnvironmentSession(requests.Session):
    """A ``requests.Session`` that reads the environment once per host, not per request.

    With ``trust_env`` on (the default) a stock session looks up the proxy variables
    (scanning all of ``os.environ`` twice), ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` and the ``.netrc`` file on every request: about a fifth of the CPU a
    loopback request costs. This session asks requests' own helpers the same questions the
    first time it needs the answers for a host and keeps them, so it behaves like a stock
    session except that changes to the environment (or the ``.netrc`` file) made after that
    are not seen. Redirects keep requests' own lookups; ``trust_env = False`` turns
    everything off, as on any session.

    Two deliberate departures from requests, both about explicit settings beating ambient
    ones: ``.netrc`` credentials never replace an ``Authorization`` header already on the
    request (requests lets them, so a bearer token from an auth hook would silently become
    the netrc user's Basic credentials), and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` never
    override ``verify=False`` or a CA bundle set on the session.
    """

    #: Hosts each cache remembers before it starts over, so a client that talks to very
    #: many hosts stays small; the usual client talks to one or two.
    MAX_CACHED_HOSTS = 256

    def __init__(self) -> None:
        super().__init__()
        self._reset_environment_cache()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A pickle carries requests' own attributes only (the stubs omit this method).
        super().__setstate__(state)  # type: ignore[misc]
        self._reset_environment_cache()

    def _reset_environment_cache(self) -> None:
        # (netloc, no_proxy) -> (proxies from the environment, CA bundle from it)
        self._environment: dict[tuple[str, str | None], tuple[dict[str, str], str | None]] = {}
        # netloc -> the .netrc credentials for its host
        self._netrc: dict[str, _Credentials | None] = {}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """Requests' own, with the ``.netrc`` credentials for the host from the cache."""
        url = request.url
        if self.trust_env and request.auth is None and self.auth is None and isinstance(url, str):
            credentials: _Credentials | None = None
            # Unlike requests, an Authorization header already on the request (our auth hooks
            # put one there) is never replaced by ambient .netrc credentials.
            if not _has_authorization(request.headers):
                netloc = urlsplit(url).netloc
                try:
                    credentials = self._netrc[netloc]
                except KeyError:
                    credentials = get_netrc_auth(url)
                    _remember(self._netrc, netloc, credentials, self.MAX_CACHED_HOSTS)
            request = _copy(request)  # the caller's Request is left as it was
            request.auth = credentials if credentials is not None else _NO_NETRC_ENTRY
        return super().prepare_request(request)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Requests' own, except that a Location in neither UTF-8 nor ASCII is taken as
        read (requests raises ``UnicodeDecodeError``, even for ``allow_redirects=False``)."""
        try:
            return super().get_redirect_target(resp)
        except UnicodeError:
            location = resp.headers.get("location")
            return location if isinstance(location, str) else None

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: MutableMapping[str, str] | None,
        stream: bool | None,
        verify: bool | str | None,
        cert: str | tuple[str, str] | None,
    ) -> _Settings:
        """Requests' own, with the proxies and CA bundle for the host from the cache."""
        if not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        key = (urlsplit(url).netloc, no_proxy)
        found = self._environment.get(key)
        if found is None:
            found = (
                get_environ_proxies(url, no_proxy=no_proxy),
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
            )
            _remember(self._environment, key, found, self.MAX_CACHED_HOSTS)
        env_proxies, ca_bundle = found
        if proxies is not None:
            for name, proxy in env_proxies.items():
                proxies.setdefault(name, proxy)
        # Unlike requests, the environment's CA bundle never overrides a session that was
        # told not to verify (verify_ssl=False) or to use a bundle of its own.
        if (verify is True or verify is None) and self.verify is True:
            verify = ca_bundle or verify
        # From here on exactly requests' merge: request-level values over the session's.
        return {
            "proxies": _merge_setting(proxies, self.proxies),
            "stream": _merge_setting(stream, self.stream),
            "verify": _merge_setting(verify, self.verify),
            "cert": _merge_setting(cert, self.cert),
        }


def _copy(request: requests.Request) -> requests.Request:
    """A shallow copy; for a plain ``Request`` a quarter of what ``copy.copy`` costs."""
    if type(request) is not requests.Request:
        return copy.copy(request)
    clone = object.__new__(requests.Request)
    clone.__dict__.update(request.__dict__)
    return clone


def _remember(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


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
