"""``HttpClient``: one ``requests.Session`` per thread, and the request flow in one place.

The flow of :meth:`HttpClient.send`, top to bottom::

    check the URL and json= (a typed error, before anything is sent)
    request hooks (once, in order)
    loop over attempts:
        auth hook                      fresh credentials on every attempt
        retry.before_attempt           the circuit breaker may refuse here
        send on this thread's session  the body stays on the connection with stream=True
        follow redirects               one hop at a time; see _redirects for credentials
        the auth hook says the answer refused its credentials (a 401 by default)
            and renewed them -> resend once
        transport error or retryable status -> error hooks; should_retry?
            yes: sleep get_delay() on the clock, next attempt
            no:  raise (MaxRetryException when retries ran out)
    response hooks (once, in order) -> HttpResponse

Every hook call (request, auth, response and error hooks) goes through one guard: a
``RequestForgeError`` passes as it is, any other exception becomes a ``HookError`` naming the
hook, and a hook that returns something other than what it must (``None``, when it forgot
its ``return``) is a ``HookError`` too.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from requests.auth import AuthBase
from requests.cookies import RequestsCookieJar

from requestforge._adopt import adopt
from requestforge._auth import AuthHookInterface
from requestforge._clock import get_default_clock
from requestforge._config import HttpClientConfig
from requestforge._exceptions import (
    ClientClosedError,
    ConfigurationError,
    HookError,
    HttpStatusError,
    InvalidRequestError,
    InvalidURLError,
    MaxRetryException,
    RequestForgeError,
    TransportError,
)
from requestforge._models import (
    ExtensionMethod,
    HttpMethod,
    HttpRequest,
    RequestContext,
    merge_headers,
    parse_method,
    upload_files,
)
from requestforge._redact import redact_url
from requestforge._redirects import REDIRECT_STATUSES, follow_redirects
from requestforge._response import HttpResponse
from requestforge._scrub import install_log_redaction
from requestforge._secrets import declare_secrets
from requestforge._sessions import SessionFactory
from requestforge._transport import send_once
from requestforge._validate_request import absolute_url, url_text, valid_headers, valid_json
from requestforge._verbs import VerbMethods

if TYPE_CHECKING:
    from requestforge._pool import JobResult

__all__ = ["HttpClient"]

_T = TypeVar("_T")
logger = logging.getLogger("requestforge")


class _SessionSlot:
    """Holds a thread's session; when the thread dies the slot is collected and closes it."""

    __slots__ = ("__weakref__", "session")

    def __init__(self, session: requests.Session) -> None:
        self.session = session


class HttpClient(VerbMethods):
    """A thread-safe HTTP client: share one instance between all your threads.

    Each thread lazily gets its own ``requests.Session`` (connection pools are not shared
    between threads), with the config's connection settings: ``verify_ssl`` or the CA
    bundle, the client certificate, proxies, pool sizes, ``max_redirects``, the initial
    cookies (or the one client-wide jar of ``with_cookies(shared=True)``: see
    :attr:`cookies`) and the adapters of ``with_adapter``. ``client.session`` is the calling
    thread's session, so ``client.session.mount(...)`` (or any change made through it)
    changes that thread's session only: use ``HttpClientConfigBuilder.with_adapter`` to
    mount an adapter on every thread's session.

    ``session_factory=`` makes each thread's session instead. The client gives it every
    connection setting that differs from its default: proxies (added over the factory's
    own), the client certificate, ``verify_ssl`` or the CA bundle, ``max_redirects``, the
    cookies (``shared=True`` replaces the session's jar with the client's) and the
    ``with_adapter`` adapters. Pool sizes are not applied: the factory owns its
    ``http://`` and ``https://`` adapters (``with_adapter`` replaces them). Such a session
    reads the environment as a stock session does, on every request, and
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override ``verify_ssl=False`` or a CA bundle
    there, as in requests. ``session=`` makes every thread use that one session, exactly as
    given, with none of the config's connection settings; its thread-safety and closing
    are then yours.

    The sessions this client creates honour the environment as a stock session does
    (``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``
    / ``CURL_CA_BUNDLE``, ``.netrc`` or ``$NETRC``), but read it once per host instead of
    on every request: a change to the environment after a thread's session has talked to
    a host is not seen by that session. A new client (or a new thread) sees it. Explicit
    settings beat ambient ones: ``.netrc`` never replaces an ``Authorization`` header set
    by an auth hook, and a CA bundle variable never overrides ``verify_ssl=False`` or a CA
    bundle of the config. Proxies keep requests' precedence: a request's ``proxies=``, then
    the environment's, then ``with_proxies``.
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
            raise ConfigurationError(
                f"config must be an HttpClientConfig, got {type(config).__name__}"
            )
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigurationError(
                f"session must be a requests.Session, got {type(session).__name__}"
            )
        if session_factory is not None and not callable(session_factory):
            raise ConfigurationError(
                "session_factory must be a callable that returns a requests.Session, "
                f"got {type(session_factory).__name__}"
            )
        # What this client sends that is secret, read now (a hook of the caller's may say
        # it only here), and urllib3's request logging redacted (see _scrub).
        declare_secrets(self._config.secrets)
        install_log_redaction()
        self._session = session
        # Also what a Pool built on this client makes its workers' sessions with.
        self._session_factory = SessionFactory(self._config, session_factory)
        self._session_lock = threading.Lock()
        self._local = threading.local()
        self._finalizers: list[weakref.finalize[Any, Any]] = []
        self._closed = False

    @property
    def config(self) -> HttpClientConfig:
        """The immutable configuration this client was built with."""
        return self._config

    @property
    def cookies(self) -> RequestsCookieJar:
        """The jar this thread's requests send cookies from and store them in.

        With ``with_cookies(shared=True)`` it is the client's one jar, used by every
        thread's session (safe to read and change from any thread). Otherwise it is the
        calling thread's session's own jar: each thread has its own, as it has its own
        session, and a cookie set in one thread is not sent by another. With ``session=``
        it is that session's jar.
        """
        if self._session is not None:
            return self._session.cookies
        shared = self._session_factory.shared_cookies
        return shared if shared is not None else self.session.cookies

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
        stream: bool = False,
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
        the environment and the client's settings for this request, as in requests.
        ``stream=True`` leaves the body on the connection until it is read (see
        :class:`~requestforge.HttpResponse`); hooks, auth, the 401 renewal and retries all
        run before that. Redirects are followed unless ``allow_redirects=False``; what
        travels to another origin is described in the client guide. A keyword of the
        wrong type or value raises :class:`~requestforge.InvalidRequestError` (an invalid
        URL :class:`~requestforge.InvalidURLError`) before anything is sent; a hook that
        fails raises :class:`~requestforge.HookError`.
        """
        verb = parse_method(method)
        if self._closed:
            raise ClientClosedError("this HttpClient has been closed")
        # Resolved here, so send() finds an absolute URL and need not copy the request.
        url = self._resolve(url)
        if headers is not None:
            valid_headers("headers", headers, sending=False)  # before the merge reads them
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
            stream,
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

        if not isinstance(requests, Iterable):
            raise InvalidRequestError(
                f"map() takes an iterable of request dicts, got {type(requests).__name__}"
            )
        pool = Pool.from_requests(requests, client=self, num_processes=num_processes)
        return pool.results()

    def _resolve(self, url: str) -> str:
        if type(url) is not str:
            url = url_text("url", url, error=InvalidURLError)
        if url[:8].lower().startswith(("http://", "https://")):
            return url
        base = self._config.base_url
        if base is None:
            raise InvalidURLError(f"relative URL {url!r} needs a base_url in the config")
        return f"{base}/{url.lstrip('/')}" if url else base

    # -- the request flow ----------------------------------------------------------------

    def send(
        self, request: HttpRequest | requests.Request | requests.PreparedRequest
    ) -> HttpResponse:
        """Run ``request`` through hooks, auth, retries and the transport; see the module doc.

        A ``requests.Request`` or ``PreparedRequest`` is taken as the request it describes
        (a prepared one exactly as prepared); their ``hooks=`` are refused, not ignored.
        Anything else, or a request that cannot be sent (an invalid URL, a ``json`` that
        does not encode), raises :class:`~requestforge.InvalidRequestError`.
        """
        config = self._config
        retry = config.retry_strategy
        request, context = self._start(request)
        # A per-request auth= replaces the configured hook for this request (requests'
        # precedence of request auth over session auth).
        auth = config.auth_hook if request.auth is None else None
        body_start = _body_positions(request)
        reauthenticated = awaiting_resend = False
        while True:
            outgoing = _authorize(auth, request, context) if auth is not None else request
            try:
                retry.before_attempt(context)
            except RequestForgeError as refused:
                self._run_error_hooks(refused, context)
                raise
            try:
                response, answered = self._exchange(request, outgoing, auth, context, body_start)
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
            if auth is not None and answered is not None:
                _call_hook(auth, "on_response", answered, object, answered, response, context)
            if awaiting_resend:
                awaiting_resend = False
                _resend_answered(auth, answered, response, context)
            if (
                response.status_code >= 400
                and auth is not None
                and answered is not None
                and _refused(auth, answered, response, context)
                and not reauthenticated
            ):
                reauthenticated = True
                # Renew even when the body cannot be resent, so the next call works.
                renewed = _renew(auth, answered, response, context)
                if renewed and request.has_replayable_body:
                    awaiting_resend = True
                    response.close()
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
                    response.close()
                    _rewind(body_start)
                    continue
            break
        return self._run_response_hooks(response, context)

    def _run_response_hooks(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        for response_hook in self._config.response_hooks:
            response = _call_hook(
                response_hook, "after_response", context.request, HttpResponse, response, context
            )
        return response

    def _start(
        self, request: HttpRequest | requests.Request | requests.PreparedRequest
    ) -> tuple[HttpRequest, RequestContext]:
        """The request with its URL resolved and the request hooks run, and its context."""
        if self._closed:
            raise ClientClosedError("this HttpClient has been closed")
        request = adopt(request)
        url = self._resolve(request.url)
        if url is not request.url:
            request = replace(request, url=url)
        context = RequestContext(
            request=request, max_retries=self._config.retry_strategy.max_retries
        )
        for request_hook in self._config.request_hooks:
            request = _call_hook(
                request_hook, "before_request", request, HttpRequest, request, context
            )
        # Checked once, after the hooks (they may change them), and before any attempt.
        absolute_url("url", request.url, error=InvalidURLError)
        valid_headers("headers", request.headers)
        if request.json_data is not None:
            valid_json(request.json_data)
        context.request = request
        return request, context

    def _exchange(
        self,
        request: HttpRequest,
        outgoing: HttpRequest,
        auth: AuthHookInterface | None,
        context: RequestContext,
        body_start: list[tuple[Any, int]],
    ) -> tuple[HttpResponse, HttpRequest | None]:
        """One attempt: send ``outgoing`` (``request`` after the auth hook), then follow
        its redirects. Also returns the request the last response answered when it went
        with our credentials, or ``None`` once a redirect left the origin."""
        response = send_once(self.session, outgoing, self._config.default_timeout)
        if not request.allow_redirects or response.status_code not in REDIRECT_STATUSES:
            return response, outgoing
        # The redirect closure is built only here, off the path of unredirected requests.
        session = self.session
        timeout = self._config.default_timeout
        sent = outgoing

        def send(hop: HttpRequest, trusted: bool) -> HttpResponse:
            nonlocal sent
            sent = _authorize(auth, hop, context) if trusted and auth is not None else hop
            return send_once(session, sent, timeout)

        response, trusted = follow_redirects(
            response, request, send, session=session, rewind=lambda: _rewind(body_start)
        )
        return response, sent if trusted else None

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
            _call_hook(hook, "on_error", context.request, object, error, context)


def _authorize(
    auth: AuthHookInterface, request: HttpRequest, context: RequestContext
) -> HttpRequest:
    """``auth.before_request``, through the hook guard (see the module doc)."""
    return _call_hook(auth, "before_request", request, HttpRequest, request, context)


def _refused(
    auth: AuthHookInterface,
    answered: HttpRequest,
    response: HttpResponse,
    context: RequestContext,
) -> bool:
    """``auth.credentials_refused``, through the hook guard; it may raise to fail the
    request (an ``InsufficientScopeError``)."""
    return bool(
        _call_hook(auth, "credentials_refused", answered, object, answered, response, context)
    )


def _renew(
    auth: AuthHookInterface,
    answered: HttpRequest,
    response: HttpResponse,
    context: RequestContext,
) -> bool:
    """``auth.on_unauthorized``, through the hook guard."""
    return bool(_call_hook(auth, "on_unauthorized", answered, object, answered, response, context))


def _resend_answered(
    auth: AuthHookInterface | None,
    answered: HttpRequest | None,
    response: HttpResponse,
    context: RequestContext,
) -> None:
    """``auth.on_resend_answered``, through the hook guard; not when a redirect took the
    resend to another origin (its answer says nothing about our credentials)."""
    if auth is not None and answered is not None:
        _call_hook(auth, "on_resend_answered", answered, object, answered, response, context)


def _call_hook(
    hook: object, method: str, request: HttpRequest, returns: type[_T], *args: object
) -> _T:
    """``hook.method(*args)``, guarded: a ``RequestForgeError`` passes through, any other
    exception becomes a :class:`~requestforge.HookError` chaining it, and a result that is
    not a ``returns`` is a ``HookError`` too (``object`` accepts anything)."""
    try:
        result = getattr(hook, method)(*args)
    except RequestForgeError:
        raise
    except Exception as exc:
        raise _hook_raised(hook, method, exc, request) from exc
    if not isinstance(result, returns):
        raise _hook_returned(hook, method, result, returns)
    return result


def _hook_raised(hook: object, method: str, exc: BaseException, request: HttpRequest) -> HookError:
    """The error for a hook that raised: its class and method, and the exception's type
    (its text may quote a credential, so it is left to ``__cause__``)."""
    return HookError(
        f"{type(hook).__qualname__}.{method}() raised {type(exc).__qualname__} "
        "(the hook's exception is chained as __cause__)",
        hook=hook,
        method=method,
        request=request,
    )


def _hook_returned(hook: object, method: str, result: object, expected: type) -> HookError:
    """The error for a hook that returned something other than what it must."""
    got = "None (is its return statement missing?)" if result is None else type(result).__name__
    return HookError(
        f"{type(hook).__qualname__}.{method}() must return an {expected.__name__}, returned {got}",
        hook=hook,
        method=method,
    )


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
