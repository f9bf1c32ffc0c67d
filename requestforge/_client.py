"""``HttpClient``: one ``requests.Session`` per thread, and the request flow in one place.

The flow of :meth:`HttpClient.send`, top to bottom::

    request hooks (once, in order)
    loop over attempts:
        auth hook                      fresh credentials on every attempt
        retry.before_attempt           the circuit breaker may refuse here
        send on this thread's session
        401 and the auth hook renewed its credentials -> resend once
        transport error or retryable status -> error hooks; should_retry?
            yes: sleep get_delay() on the clock, next attempt
            no:  raise (MaxRetryException when retries ran out)
    response hooks (once, in order) -> HttpResponse
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from requestforge._clock import get_default_clock
from requestforge._config import HttpClientConfig
from requestforge._exceptions import (
    ClientClosedError,
    HttpStatusError,
    InvalidURLError,
    MaxRetryException,
    RequestForgeError,
    TransportError,
)
from requestforge._models import (
    ExtensionMethod,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    RequestContext,
    merge_headers,
    parse_method,
    upload_files,
)
from requestforge._redact import redact_url
from requestforge._transport import CachedEnvironmentSession, send_once
from requestforge._verbs import VerbMethods

if TYPE_CHECKING:
    from requestforge._pool import JobResult

__all__ = ["HttpClient"]

logger = logging.getLogger("requestforge")


class _SessionSlot:
    """Holds a thread's session; when the thread dies the slot is collected and closes it."""

    __slots__ = ("__weakref__", "session")

    def __init__(self, session: requests.Session) -> None:
        self.session = session


class HttpClient(VerbMethods):
    """A thread-safe HTTP client: share one instance between all your threads.

    Each thread lazily gets its own ``requests.Session`` (connection pools are not shared
    between threads). Pass ``session=`` to use one session of your own for every thread
    instead; you are then responsible for its thread-safety and for closing it.

    The sessions this client creates honour the environment as a stock session does
    (``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``
    / ``CURL_CA_BUNDLE``, ``.netrc`` or ``$NETRC``), but read it once per host instead of
    on every request: a change to the environment after a thread's session has talked to
    a host is not seen by that session. A new client (or a new thread) sees it. Explicit
    settings beat ambient ones: ``.netrc`` never replaces an ``Authorization`` header set
    by an auth hook, and a CA bundle variable never overrides ``verify_ssl=False``. Sessions
    from ``session=`` or ``session_factory=`` are used exactly as given.
    """

    def __init__(
        self,
        config: HttpClientConfig | None = None,
        session: requests.Session | None = None,
        *,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        self._config = config if config is not None else HttpClientConfig()
        if not isinstance(self._config, HttpClientConfig):
            raise TypeError(f"config must be an HttpClientConfig, got {config!r}")
        self._session = session
        self._session_factory = session_factory or self._configured_session
        self._session_lock = threading.Lock()
        self._local = threading.local()
        self._finalizers: list[weakref.finalize[Any, Any]] = []
        self._closed = False

    @property
    def config(self) -> HttpClientConfig:
        """The immutable configuration this client was built with."""
        return self._config

    @property
    def session(self) -> requests.Session:
        """The caller's shared session, or this thread's own (created on first use)."""
        if self._session is not None:
            return self._session
        slot: _SessionSlot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._new_thread_session()
        return slot.session

    def _new_thread_session(self) -> _SessionSlot:
        with self._session_lock:
            if self._closed:
                raise ClientClosedError("this HttpClient has been closed")
            slot = _SessionSlot(self._session_factory())
            self._finalizers = [f for f in self._finalizers if f.alive]
            self._finalizers.append(weakref.finalize(slot, slot.session.close))
            self._local.slot = slot
        return slot

    def _configured_session(self) -> requests.Session:
        """A new session with this client's TLS setting and connection-pool sizes, which
        reads the environment once per host (see the class docstring)."""
        session = CachedEnvironmentSession()
        session.verify = self._config.verify_ssl
        for prefix in ("http://", "https://"):
            session.mount(
                prefix,
                HTTPAdapter(
                    pool_connections=self._config.pool_connections,
                    pool_maxsize=self._config.pool_maxsize,
                    max_retries=0,
                ),
            )
        return session

    def close(self) -> None:
        """Close every session this client created, in every thread. The client is then done."""
        with self._session_lock:
            self._closed = True
            finalizers, self._finalizers = self._finalizers, []
        for finalize in finalizers:
            finalize()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        base = self._config.base_url
        return f"<HttpClient base_url={redact_url(base) if base else None!r}>"

    # -- the request API ---------------------------------------------------------------

    def request(
        self,
        method: HttpMethod | ExtensionMethod | str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a request; relative ``url`` is joined onto the configured base URL.

        The keywords are requests', with its meanings and defaults (``get()`` ...
        ``options()`` take the same; ``head()`` defaults ``allow_redirects`` to False, as
        requests does). ``method`` is any RFC 9110 token in any case (``"get"``,
        ``"PROPFIND"``), sent upper-cased. ``timeout`` is seconds for connect and read, or
        a ``(connect, read)`` tuple, each finite and > 0; ``None`` means the config's
        ``default_timeout``. ``files`` is a multipart upload built by requests. ``auth``
        (a ``(user, password)`` tuple or a ``requests.auth.AuthBase``) replaces the
        configured auth hook for this request. ``proxies``, ``verify`` and ``cert`` beat
        the environment and the client's settings for this request, as in requests. A
        keyword of the wrong type raises :class:`~requestforge.InvalidRequestError`.
        """
        verb = parse_method(method)
        if self._closed:
            raise ClientClosedError("this HttpClient has been closed")
        # Resolved here, so send() finds an absolute URL and need not copy the request.
        url = self._resolve(url)
        merged = merge_headers(self._config.default_headers, headers) if headers else None
        request = HttpRequest(
            verb,
            url,
            merged or self._config.default_headers,
            params or {},
            json,
            data,
            timeout,
            cookies,
            files,
            auth,
            allow_redirects,
            proxies,
            verify,
            cert,
        )
        return self.send(request)

    def map(
        self, requests: Iterable[Mapping[str, Any]], *, num_processes: int | None = None
    ) -> list[JobResult]:
        """Send many requests from a bounded thread pool; one result per input, in input order.

        Each item is a dict of :meth:`request` keyword arguments plus ``method`` and ``url``;
        each result is a ``ThreadResponse`` or the ``ThreadException`` its request raised.
        """
        from requestforge._pool import Pool  # noqa: PLC0415 - the pool builds on this module

        pool = Pool.from_requests(requests, client=self, num_processes=num_processes)
        return pool.results()

    def _resolve(self, url: str) -> str:
        if url[:8].lower().startswith(("http://", "https://")):
            return url
        base = self._config.base_url
        if base is None:
            raise InvalidURLError(f"relative URL {url!r} needs a base_url in the config")
        return f"{base}/{url.lstrip('/')}" if url else base

    # -- the request flow ----------------------------------------------------------------

    def send(self, request: HttpRequest) -> HttpResponse:
        """Run ``request`` through hooks, auth, retries and the transport; see the module doc."""
        if self._closed:
            raise ClientClosedError("this HttpClient has been closed")
        config = self._config
        url = self._resolve(request.url)
        if url is not request.url:
            request = replace(request, url=url)
        retry = config.retry_strategy
        context = RequestContext(request=request, max_retries=retry.max_retries)
        for request_hook in config.request_hooks:
            request = request_hook.before_request(request, context)
        context.request = request
        # A per-request auth= replaces the configured hook for this request (requests'
        # precedence of request auth over session auth).
        auth = config.auth_hook if request.auth is None else None
        body_start = _body_positions(request)
        reauthenticated = False
        while True:
            outgoing = auth.before_request(request, context) if auth is not None else request
            try:
                retry.before_attempt(context)
            except RequestForgeError as refused:
                self._run_error_hooks(refused, context)
                raise
            try:
                response = send_once(self.session, outgoing, config.default_timeout)
            except TransportError as error:
                retry.after_attempt(context, None, error)
                context.last_response, context.last_error = None, error
                self._give_up_or_wait(context, error)
                _rewind(body_start)
                continue
            except BaseException as error:
                retry.after_attempt(context, None, error)
                raise
            retry.after_attempt(context, response, None)
            if response.status_code == 401 and auth is not None and not reauthenticated:
                reauthenticated = True
                # Renew even when the body cannot be resent, so the next call works.
                renewed = auth.on_unauthorized(outgoing, response, context)
                if renewed and request.has_replayable_body:
                    _rewind(body_start)
                    continue
            if response.status_code in retry.retry_statuses:
                context.last_response, context.last_error = response, None
                failure = HttpStatusError(
                    f"retryable status {response.status_code} for {outgoing.method.value} "
                    f"{redact_url(outgoing.url)}",
                    response=response,
                )
                if self._give_up_or_wait(context, failure, response=response):
                    _rewind(body_start)
                    continue
            break
        for response_hook in config.response_hooks:
            response = response_hook.after_response(response, context)
        return response

    def _give_up_or_wait(
        self,
        context: RequestContext,
        error: RequestForgeError,
        *,
        response: HttpResponse | None = None,
    ) -> bool:
        """After a failed attempt: sleep and return True to retry, or raise / return False.

        Returns False only for a status failure that is not retried (the caller hands the
        response on); a transport error that is not retried is raised.
        """
        self._run_error_hooks(error, context)
        retry = self._config.retry_strategy
        if retry.should_retry(context, error):
            context.increment_attempt()
            delay = retry.get_delay(context)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "retrying %s %s in %.3fs (retry %d of %d) after %s",
                    context.request.method.value,
                    redact_url(context.request.url),
                    delay,
                    context.attempt,
                    retry.max_retries,
                    error,
                )
            get_default_clock().sleep(delay)
            return True
        if retry.max_retries and context.attempt >= retry.max_retries:
            raise MaxRetryException(
                f"gave up after {context.attempt + 1} attempts: {error}",
                attempts=context.attempt + 1,
                request=context.request,
                response=response,
                last_error=None if response is not None else error,
            ) from error
        if response is not None:
            return False
        raise error

    def _run_error_hooks(self, error: BaseException, context: RequestContext) -> None:
        for hook in self._config.error_hooks:
            hook.on_error(error, context)


def _body_positions(request: HttpRequest) -> list[tuple[Any, int]]:
    """Where each file of the body (``data=`` and every ``files=`` file) starts, so a
    retry can send it again from there."""
    points: list[tuple[Any, int]] = []
    for body in (request.data, *upload_files(request.files)):
        tell = getattr(body, "tell", None)
        if tell is None or isinstance(body, bytes | str):
            continue
        try:
            position = tell()
        except OSError:
            continue
        if isinstance(position, int):
            points.append((body, position))
    return points


def _rewind(points: list[tuple[Any, int]]) -> None:
    for body, position in points:
        body.seek(position)
