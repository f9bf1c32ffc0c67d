"""Each thread's ``requests.Session``, built and configured from an :class:`HttpClientConfig`.

An :class:`~requestforge.HttpClient` asks its :class:`SessionFactory` for a session the first
time a thread needs one. Its own sessions are :class:`CachedEnvironmentSession` objects with
every connection setting of the config; a caller's ``session_factory`` session gets each
setting that differs from its default, and the same for both comes from one function,
:meth:`SessionFactory._apply`, so the two can never drift apart.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from http.cookiejar import Cookie
from typing import Any, Final

import requests
from requests.adapters import BaseAdapter
from requests.cookies import RequestsCookieJar

from requestforge._cached_session import CachedEnvironmentSession, PooledAdapter
from requestforge._config import HttpClientConfig
from requestforge._exceptions import ConfigurationError
from requestforge._validate import copy_cookie

__all__: list[str] = []  # the client's machinery, not public API


class ThreadSafeCookieJar(RequestsCookieJar):
    """A ``RequestsCookieJar`` that the sessions of many threads can use at once.

    The stdlib ``CookieJar`` guards ``set_cookie``, ``extract_cookies`` and ``clear`` with
    its re-entrant ``_cookies_lock``, but iterates its nested dicts without it, lazily,
    while requests iterates the session's jar in every ``prepare_request``
    (``merge_cookies``) as other threads' responses change it: the iteration mixes states
    (and on Python 3.10 yields ``None`` for a cookie removed meanwhile, which requests then
    fails on). Here iteration takes a snapshot under the lock, and so does everything built
    on it (``len``, ``get_dict``, ``copy``, lookups by name); ``update`` and ``del``, which
    requests composes from several steps, hold the lock throughout.
    """

    def __iter__(self) -> Iterator[Cookie]:  # type: ignore[override]  # as requests' own
        with self._lock:
            return iter(list(super().__iter__()))

    @property
    def _lock(self) -> threading.RLock:
        lock: threading.RLock = getattr(self, "_cookies_lock")  # noqa: B009 - untyped stdlib
        return lock

    def update(self, other: Any) -> None:  # type: ignore[override]
        """requests' ``update``, under the lock."""
        with self._lock:
            super().update(other)

    def __delitem__(self, name: str) -> None:
        with self._lock:
            super().__delitem__(name)

    def copy(self) -> ThreadSafeCookieJar:
        """A new thread-safe jar with copies of the cookies and the same policy."""
        new = ThreadSafeCookieJar(self.get_policy())
        new.update(self)
        return new


#: Which config each session this module configured was configured from, so a session that
#: comes back through another factory (a ``Pool`` wraps its client's factory; a factory may
#: hand every thread one session) is not configured twice: that would mount its adapters
#: again and swap its shared jar for another client's.
_configured: weakref.WeakKeyDictionary[requests.Session, HttpClientConfig] = (
    weakref.WeakKeyDictionary()
)
_configured_lock = threading.Lock()


class SessionFactory:
    """Makes the sessions of one client's threads, each configured from the client's config.

    It owns what is client-wide: the shared cookie jar (one per client, not per config and
    not per thread), and the adapters handed out so far, so a factory of ``with_adapter``
    that returns one adapter to two threads is caught.
    """

    #: Where requests mounts its default adapters: the client's own sessions replace them
    #: with adapters of the config's pool sizes and without urllib3 retries (the client's
    #: retry strategy does the retrying, and urllib3's would hide attempts from it):
    #: ``PooledAdapter``, an ``HTTPAdapter`` that works out per host what requests' works
    #: out per request.
    POOLED_PREFIXES: Final = ("http://", "https://")

    def __init__(
        self, config: HttpClientConfig, custom: Callable[[], requests.Session] | None = None
    ) -> None:
        self._config = config
        self._custom = custom
        self._shared_cookies: ThreadSafeCookieJar | None = None
        if config.shared_cookies:
            self._shared_cookies = ThreadSafeCookieJar()
            for cookie in config.cookies:
                self._shared_cookies.set_cookie(_thaw(cookie))
        self._adapters_made: weakref.WeakSet[BaseAdapter] = weakref.WeakSet()
        # A Pool's client calls this factory from its own threads, under its own lock.
        self._adapters_lock = threading.Lock()

    @property
    def shared_cookies(self) -> ThreadSafeCookieJar | None:
        """The client-wide jar of ``with_cookies(shared=True)``, else None."""
        return self._shared_cookies

    def __call__(self) -> requests.Session:
        """A new configured session: the client's own, or the custom factory's."""
        if self._custom is None:
            session: requests.Session = CachedEnvironmentSession()
            try:
                for prefix in self.POOLED_PREFIXES:
                    session.mount(
                        prefix,
                        PooledAdapter(
                            pool_connections=self._config.pool_connections,
                            pool_maxsize=self._config.pool_maxsize,
                            max_retries=0,
                        ),
                    )
                self._apply(session)
            except BaseException:
                session.close()
                raise
            return session
        session = self._custom()
        with _configured_lock:
            if _configured_from(session) is self._config:
                return session
        self._apply(session)
        return session

    def _apply(self, session: requests.Session) -> None:
        """Give ``session`` every connection setting of the config that differs from its
        default, leaving the rest as the session has it; pool sizes are the caller's."""
        config = self._config
        if config.verify_ssl is not True:
            session.verify = config.verify_ssl
        if config.client_cert is not None:
            session.cert = config.client_cert
        if config.proxies:
            session.proxies.update(config.proxies)
        if config.max_redirects != HttpClientConfig.DEFAULT_MAX_REDIRECTS:
            session.max_redirects = config.max_redirects
        for prefix, make in config.adapters:
            session.mount(prefix, self._new_adapter(prefix, make))
        if self._shared_cookies is not None:
            session.cookies = self._shared_cookies
        else:
            for cookie in config.cookies:
                session.cookies.set_cookie(_thaw(cookie))
        # A session that is not weak-referenceable is configured again if it comes back.
        with _configured_lock, contextlib.suppress(TypeError):
            _configured[session] = config

    def _new_adapter(self, prefix: str, make: Callable[[], BaseAdapter]) -> BaseAdapter:
        adapter = make()
        if not isinstance(adapter, BaseAdapter):
            raise ConfigurationError(
                f"the adapter factory for {prefix!r} returned {type(adapter).__name__}, "
                "not a requests.adapters.BaseAdapter"
            )
        with self._adapters_lock:
            if adapter in self._adapters_made:
                raise ConfigurationError(
                    f"the adapter factory for {prefix!r} returned an adapter it returned "
                    "before: each thread's session needs an adapter of its own (it holds a "
                    "connection pool), so the factory must make a new one on every call"
                )
            self._adapters_made.add(adapter)
        return adapter


def _configured_from(session: requests.Session) -> HttpClientConfig | None:
    try:
        return _configured.get(session)
    except TypeError:  # not weak-referenceable
        return None


def _thaw(cookie: Cookie) -> Cookie:
    """A mutable copy of one of a config's (read-only) cookies, for a session's jar."""
    return copy_cookie(cookie, Cookie)
