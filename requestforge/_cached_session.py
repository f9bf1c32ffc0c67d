"""The ``requests.Session`` and adapter an :class:`~requestforge.HttpClient` creates.

``requests`` redoes on every request work whose answer cannot change between two requests
of one session or one host: reading the environment, preparing a URL, checking header
values, merging empty cookie jars and hooks, building pool settings. These classes keep
requests' own building blocks, in requests' order, and do such work once per session or
per host, or skip it when its input is empty (see ``docs/design.md``, "The request path").
A session built by a caller's ``session_factory`` and an adapter mounted with
``with_adapter`` keep requests' own path.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from datetime import timedelta
from http.cookiejar import CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import requests
import requests.cookies
import requests.hooks
import requests.sessions
import requests.utils
from requests import exceptions as rex
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    get_auth_from_url,
    get_encoding_from_headers,
    get_environ_proxies,
    get_netrc_auth,
)
from urllib3._collections import HTTPHeaderDict

if TYPE_CHECKING:
    from requests.sessions import _Settings

__all__ = ["CachedEnvironmentSession", "PooledAdapter"]

_Credentials = tuple[str, str]
# requests' own helpers, untyped in the stubs (or missing from them).
_merge_setting: Callable[..., Any] = requests.sessions.merge_setting
_merge_hooks: Callable[..., Any] = requests.sessions.merge_hooks
_resolve_proxies: Callable[..., Any] = getattr(requests.sessions, "resolve_proxies")  # noqa: B009
_preferred_clock: Callable[[], float] = requests.sessions.preferred_clock
_dispatch_hook: Callable[..., Any] = requests.hooks.dispatch_hook
_cookiejar_from_dict: Callable[..., Any] = requests.cookies.cookiejar_from_dict
_merge_cookies: Callable[..., Any] = requests.cookies.merge_cookies
_extract_cookies_to_jar: Callable[..., None] = requests.cookies.extract_cookies_to_jar
_check_header_validity: Callable[[tuple[Any, Any]], None] = requests.utils.check_header_validity
_to_native_string: Callable[..., str] = requests.utils.to_native_string


def _store(headers: CaseInsensitiveDict[Any]) -> Any:
    """What a ``CaseInsensitiveDict`` keeps: lower-cased name -> (name, value)."""
    return getattr(headers, "_store")  # noqa: B009 - private to requests, absent from the stubs


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
    """A ``requests.Session`` that does once per session or per host what a stock session
    redoes on every request, and otherwise behaves as one.

    With ``trust_env`` on (the default) a stock session looks up the proxy variables
    (scanning all of ``os.environ`` twice), ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` and the ``.netrc`` file on every request: about a fifth of the CPU a
    loopback request costs. This session asks requests' own helpers the same questions the
    first time it needs the answers for a host and keeps them, so it behaves like a stock
    session except that changes to the environment (or the ``.netrc`` file) made after that
    are not seen. Redirects keep requests' own lookups; ``trust_env = False`` turns
    everything off, as on any session.

    The rest of requests' per-request work is kept, in requests' own building blocks, minus
    what cannot change the result (``docs/design.md``, "The request path"): a URL without
    params is prepared once per session; the session's and the request's headers, params
    and proxies are merged as plain mappings (requests' merge checks each against a
    runtime-checkable Protocol, about 8 µs a check); no ``Cookie`` header is computed from
    an empty jar, no cookies are extracted from a response without ``Set-Cookie``, and no
    redirect target is worked out for a response that is not a redirect.

    Two deliberate departures from requests, both about explicit settings beating ambient
    ones: ``.netrc`` credentials never replace an ``Authorization`` header already on the
    request (requests lets them, so a bearer token from an auth hook would silently become
    the netrc user's Basic credentials), and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` never
    override ``verify=False`` or a CA bundle set on the session.
    """

    #: Hosts (and URLs) each cache remembers before it starts over, so a client that talks
    #: to very many stays small; the usual client talks to one or two hosts.
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
        # URL as given -> (the URL as prepared without params, whether it has credentials)
        self._urls: dict[str, tuple[str, bool]] = {}
        # (name, value) string pairs that passed requests' header check
        self._valid_headers: dict[tuple[str, str], None] = {}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """Requests' own, step by step, with the ``.netrc`` credentials for the host from
        the cache, a URL without params prepared once, and the merges done directly."""
        request = self._with_netrc(request)
        url = request.url
        if not isinstance(url, str):
            return super().prepare_request(request)
        # From here on requests' prepare_request and PreparedRequest.prepare, in their order.
        merged_cookies: CookieJar
        if not request.cookies and _is_empty(self.cookies):
            merged_cookies = RequestsCookieJar()  # what merging nothing into one gives
        else:
            cookies = request.cookies or {}
            if not isinstance(cookies, CookieJar):
                cookies = _cookiejar_from_dict(cookies)
            merged_cookies = _merge_cookies(
                _merge_cookies(RequestsCookieJar(), self.cookies), cookies
            )
        auth = request.auth
        if self.trust_env and not auth and not self.auth:
            auth = get_netrc_auth(url)  # auth=() and the like: requests looks again
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method.upper())
        params = _merge(request.params, self.params)
        url_has_auth = True  # unknown: prepare_auth looks
        if params:
            prepared.prepare_url(url, params)
        else:
            try:
                prepared.url, url_has_auth = self._urls[url]
            except KeyError:
                prepared.prepare_url(url, params)
                url_has_auth = any(get_auth_from_url(prepared.url or ""))
                _remember(self._urls, url, (prepared.url, url_has_auth), self.MAX_CACHED_HOSTS)
        _prepare_headers(prepared, request.headers, self.headers, self._valid_headers)
        if getattr(merged_cookies, "_cookies"):  # noqa: B009 - the stdlib jar's store
            prepared.prepare_cookies(merged_cookies)
        else:  # an empty jar adds no Cookie header
            prepared._cookies = merged_cookies  # type: ignore[attr-defined]  # as requests
        prepared.prepare_body(request.data, request.files, request.json)
        auth = _merge(auth, self.auth)
        # Without auth, credentials in the URL or a body whose length it would work out
        # again, prepare_auth does nothing.
        if (auth and auth is not _NO_NETRC_ENTRY) or url_has_auth or prepared.body is not None:
            prepared.prepare_auth(auth, url)
        prepared.prepare_hooks(_merge_hooks(request.hooks, self.hooks))
        return prepared

    def _with_netrc(self, request: requests.Request) -> requests.Request:
        """``request``, or a copy with the ``.netrc`` credentials for its host (cached) as
        its auth, so requests does not look them up again."""
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
        return request

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Requests' own, without the work that changes nothing: no cookies extracted from
        a response without ``Set-Cookie``, no redirect worked out for one without a target."""
        if not isinstance(request, requests.PreparedRequest):
            return super().send(request, **kwargs)  # requests' own error
        # From here on requests' Session.send, in its order.
        kwargs.setdefault("stream", self.stream)
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("cert", self.cert)
        if "proxies" not in kwargs:
            kwargs["proxies"] = _resolve_proxies(request, self.proxies, self.trust_env)
        allow_redirects = kwargs.pop("allow_redirects", True)
        stream = kwargs.get("stream")
        hooks = request.hooks
        adapter = self.get_adapter(url=request.url or "")
        start = _preferred_clock()
        response = adapter.send(request, **kwargs)
        response.elapsed = timedelta(seconds=_preferred_clock() - start)
        response = cast(requests.Response, _dispatch_hook("response", hooks, response, **kwargs))
        jar = self.cookies
        if response.history:
            for earlier in response.history:
                _extract_cookies_to_jar(jar, earlier.request, earlier.raw)
        if _may_set_cookies(jar, response.raw):
            _extract_cookies_to_jar(jar, request, response.raw)
        if self.get_redirect_target(response) is not None:
            if allow_redirects:
                history = list(self.resolve_redirects(response, request, **kwargs))
                if history:
                    history.insert(0, response)
                    response = history.pop()
                    response.history = history
            else:
                # For Response.next, as requests does.
                with contextlib.suppress(StopIteration):
                    response._next = next(  # type: ignore[attr-defined]  # as requests
                        self.resolve_redirects(response, request, yield_requests=True, **kwargs)
                    )
        if not stream:
            response.content  # noqa: B018 - read now, as requests does
        return response

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
            "proxies": _merge(proxies, self.proxies),
            "stream": _merge(stream, self.stream),
            "verify": _merge(verify, self.verify),
            "cert": _merge(cert, self.cert),
        }


class PooledAdapter(HTTPAdapter):
    """requests' ``HTTPAdapter``, as the client's own sessions mount it, doing once per
    host what requests redoes on every request; it sends exactly as ``HTTPAdapter`` does.

    With no proxy for the request, the proxy lookups (``select_proxy``, twice) are skipped:
    with no proxies they find none. The pool's key attributes (scheme, host, port and the
    TLS settings, a function of those, ``verify`` / ``cert`` and whether a CA path is a
    directory) are worked out once per origin; the pool itself is still asked of urllib3's
    ``PoolManager`` on every request, so its eviction is unchanged. The response's headers
    are copied straight into the case-insensitive dict, and no cookies are extracted from a
    response without ``Set-Cookie``. ``send`` is requests' own, so a mock that patches
    ``HTTPAdapter.send`` (``responses``) still sees every request.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool_attributes: dict[Any, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]  # absent from the stubs
        self._pool_attributes = {}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        """requests' own, remembered per origin, ``verify`` and ``cert`` (so whether a CA
        path is a file or a directory is looked up once, as the environment is)."""
        url = request.url
        if not isinstance(url, str):
            return super().build_connection_pool_key_attributes(request, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, verify, cert)
        try:
            found = self._pool_attributes.get(key)
        except TypeError:  # an unhashable cert or verify
            return super().build_connection_pool_key_attributes(request, verify, cert)
        if found is None:
            found = super().build_connection_pool_key_attributes(request, verify, cert)
            _remember(self._pool_attributes, key, found, CachedEnvironmentSession.MAX_CACHED_HOSTS)
        host_params, pool_kwargs = found
        return dict(host_params), dict(pool_kwargs)  # the caller's to change

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """requests' own; without proxies, without looking for one."""
        if proxies:
            return super().get_connection_with_tls_context(
                request,
                verify,
                proxies=proxies,
                cert=cert,
            )
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(
                request,
                verify,  # type: ignore[arg-type]  # None as requests passes it
                cert,
            )
        except ValueError as exc:
            raise rex.InvalidURL(exc, request=request) from exc
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """requests' own; without proxies, the request's path (and query)."""
        if not proxies:
            return request.path_url
        return super().request_url(request, proxies)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """requests' own, with the headers copied directly and no cookies extracted from a
        response without ``Set-Cookie``."""
        raw_headers = getattr(resp, "headers", {})
        if not isinstance(raw_headers, HTTPHeaderDict):
            return super().build_response(req, resp)
        # From here on requests' build_response, in its order.
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        store = _store(headers)
        for name in raw_headers:  # what CaseInsensitiveDict(raw_headers) does, item by item
            store[name.lower()] = (name, raw_headers[name])
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url  # type: ignore[assignment]
        if _may_set_cookies(response.cookies, resp):
            _extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self
        return response


#: The mappings requests' ``to_key_val_list`` turns into ``list(value.items())`` after an
#: ``isinstance`` against a runtime-checkable Protocol; ``_merge`` skips that check for them.
_PLAIN_MAPPINGS: Final = frozenset({dict, OrderedDict, CaseInsensitiveDict, MappingProxyType})
#: Settings that are never mappings (``stream``, ``verify``, ``cert``).
_SCALARS: Final = frozenset({bool, str, tuple})


def _merge(request_setting: Any, session_setting: Any, dict_class: type = OrderedDict) -> Any:
    """requests' ``merge_setting``: the request's value over the session's, two mappings
    merged key by key (a key set to None removed); plain mappings merged directly."""
    if session_setting is None:
        return request_setting
    if request_setting is None:
        return session_setting
    request_type, session_type = type(request_setting), type(session_setting)
    if request_type in _SCALARS or session_type in _SCALARS:
        return request_setting  # not both mappings: the request's value, as in requests
    if request_type in _PLAIN_MAPPINGS and session_type in _PLAIN_MAPPINGS:
        merged = dict_class(session_setting.items())
        merged.update(request_setting.items())
        for key in [key for key, value in merged.items() if value is None]:
            del merged[key]
        return merged
    return _merge_setting(request_setting, session_setting, dict_class)


def _prepare_headers(
    prepared: requests.PreparedRequest,
    request_headers: Any,
    session_headers: Any,
    valid: dict[tuple[str, str], None],
) -> None:
    """``prepared.prepare_headers`` of the merged headers, as requests does it, with each
    (name, value) string pair checked once per session (requests' check is a pure function
    of the pair) and the case-insensitive dict filled directly."""
    if type(request_headers) in _PLAIN_MAPPINGS and type(session_headers) in _PLAIN_MAPPINGS:
        # The merge into a CaseInsensitiveDict, as its __setitem__ and __delitem__ do it.
        entries: dict[Any, tuple[Any, Any]] = {}
        for name, value in session_headers.items():
            entries[name.lower()] = (name, value)
        for name, value in request_headers.items():
            entries[name.lower()] = (name, value)
        merged = [entry for entry in entries.values() if entry[1] is not None]
    else:
        combined = _merge(request_headers, session_headers, CaseInsensitiveDict)
        if type(combined) is not CaseInsensitiveDict:
            prepared.prepare_headers(combined)
            return
        merged = list(_store(combined).values())
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    store = _store(headers)  # what CaseInsensitiveDict.__setitem__ fills
    for header in merged:
        name, value = header
        if type(name) is str and type(value) is str:
            if header not in valid:
                _check_header_validity(header)
                _remember(valid, header, None, _MAX_VALID_HEADERS)
        else:
            _check_header_validity(header)
            name = _to_native_string(name)
        store[name.lower()] = (name, value)
    prepared.headers = headers


#: Header pairs a session remembers as checked; per-request values (a correlation id) make
#: the rest of the cache start over now and then, which costs one check per header.
_MAX_VALID_HEADERS = 256


def _is_empty(jar: object) -> bool:
    """Whether ``jar`` holds no cookie, asked as requests' merge asks (by iterating it)."""
    return (
        isinstance(jar, CookieJar)
        and type(jar).__len__ is CookieJar.__len__  # counts what iterating yields
        and len(jar) == 0
    )


def _may_set_cookies(jar: CookieJar, raw: Any) -> bool:
    """Whether extracting ``raw``'s cookies into ``jar`` may change it: false for a
    response without ``Set-Cookie`` / ``Set-Cookie2`` going into a jar whose extraction is
    the stdlib's, which reads those two headers and nothing else."""
    original = getattr(raw, "_original_response", None)
    if not original:
        return False  # extract_cookies_to_jar does nothing either
    kind = type(jar)
    if (
        kind.extract_cookies is not CookieJar.extract_cookies
        or kind.make_cookies is not CookieJar.make_cookies
    ):
        return True
    headers = getattr(original, "msg", None)
    get_all = getattr(headers, "get_all", None)
    if get_all is None:
        return True
    # The stdlib's test, on the same mapping (an HTTPMessage, or a mock's header dict).
    return bool(get_all("Set-Cookie2", [])) or bool(get_all("Set-Cookie", []))


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
