"""Authorization server discovery: the endpoints of an issuer, from its metadata document
(OpenID Connect Discovery 1.0 section 4, RFC 8414 section 3).

:class:`AuthorizationServer` fetches the document of one issuer, checks it and caches it
for a TTL (one hour unless the server's ``Cache-Control`` says less). Concurrent callers
share one request (single flight, like :class:`~requestforge.TokenManager`): one fetches,
the others wait for its answer, its error included. :func:`discover` fetches once, with no
cache. ``from_issuer()`` on every OAuth 2.0 provider builds the provider from the document.

Every failure is a :class:`~requestforge.TokenEndpointError` (the same error a token
endpoint's failure raises, so callers catch one type): ``transient`` for connection errors,
timeouts, 408/425/429 and 5xx, permanent for an issuer that does not match the document
exactly (RFC 8414 section 3.3: such a document MUST NOT be used), a document that is not a
JSON object, or a missing or unusable ``token_endpoint``. Bad arguments are a
:class:`~requestforge.ConfigurationError`. Discovery requests carry no credentials and
never follow redirects.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from requestforge._client import HttpClient
from requestforge._clock import Clock, get_default_clock
from requestforge._config import HttpClientConfig, connection_settings
from requestforge._exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MaxRetryException,
    ResponseDecodeError,
    TokenEndpointError,
    TransportError,
)
from requestforge._models import HttpMethod
from requestforge._redact import redact_url
from requestforge._response import HttpResponse
from requestforge._retry import ExponentialBackoffRetryStrategy
from requestforge._validate import (
    connection_config,
    count,
    http_url,
    instance,
    number,
    shown,
    valid_clock,
)
from requestforge.tokens._endpoint import location_origin, scrub, transient_status

if TYPE_CHECKING:
    from requestforge.tokens._oauth2 import _OAuth2TokenProvider

__all__ = ["AuthorizationServer", "ServerMetadata", "discover"]

logger = logging.getLogger("requestforge.tokens")

#: OpenID Connect Discovery: appended to the issuer, path and all.
OIDC_SUFFIX: Final = "/.well-known/openid-configuration"
#: RFC 8414 section 3.1: inserted between the issuer's host and its path.
OAUTH_SUFFIX: Final = "/.well-known/oauth-authorization-server"
#: Which document(s) :class:`AuthorizationServer` asks for.
WellKnown = Literal["auto", "openid-configuration", "oauth-authorization-server"]
_WELL_KNOWN: Final = ("auto", "openid-configuration", "oauth-authorization-server")
#: RFC 8414 section 2: what a document that does not list its methods means.
_DEFAULT_AUTH_METHODS: Final = ("client_secret_basic",)
#: RFC 8414 section 2: what a document that does not list its grant types means.
_DEFAULT_GRANT_TYPES: Final = ("authorization_code", "implicit")
#: The methods :meth:`ServerMetadata.client_secret_method` picks from, best first.
_SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
_MAX_AGE: Final = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_STORE: Final = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)

_P = TypeVar("_P", bound="_OAuth2TokenProvider")


@dataclass(frozen=True)
class ServerMetadata:
    """An authorization server's metadata document, checked (RFC 8414 section 2).

    ``issuer`` is the document's issuer, identical to the one asked for. The endpoints are
    absolute URLs (``https`` when the issuer is), or None when the document names none.
    ``token_endpoint_auth_methods`` and ``grant_types`` are the RFC 8414 lists, with the
    RFC's defaults when the document leaves them out (``client_secret_basic``;
    ``authorization_code`` and ``implicit``). ``raw`` is the whole document, read-only.
    """

    issuer: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    token_endpoint_auth_methods: tuple[str, ...] = _DEFAULT_AUTH_METHODS
    grant_types: tuple[str, ...] = _DEFAULT_GRANT_TYPES
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(cls, document: object, *, issuer: str) -> ServerMetadata:
        """Check a parsed document against the ``issuer`` it was fetched for.

        Raises :class:`~requestforge.TokenEndpointError` (permanent) when the document is
        not a JSON object, names another issuer, or has no usable ``token_endpoint``.
        """
        expected = _valid_issuer(issuer)
        if not isinstance(document, Mapping):
            raise _bad_document(expected, f"is a JSON {type(document).__name__}, not an object")
        found = document.get("issuer")
        if not isinstance(found, str):
            raise _bad_document(expected, "has no issuer")
        if found != expected:
            raise TokenEndpointError(
                f"the metadata document fetched for issuer {redact_url(expected)!r} names "
                f"issuer {scrub(redact_url(found), (), 200)!r}; RFC 8414 section 3.3 requires "
                "them to be identical (check the issuer you gave, a trailing slash included)",
                transient=False,
            )
        secure = expected.startswith("https:")
        token_endpoint = _endpoint(document, "token_endpoint", expected, secure)
        if token_endpoint is None:
            raise _bad_document(expected, "has no token_endpoint")
        return cls(
            issuer=found,
            token_endpoint=token_endpoint,
            revocation_endpoint=_endpoint(document, "revocation_endpoint", expected, secure),
            introspection_endpoint=_endpoint(document, "introspection_endpoint", expected, secure),
            token_endpoint_auth_methods=_names(
                document, "token_endpoint_auth_methods_supported", expected, _DEFAULT_AUTH_METHODS
            ),
            grant_types=_names(document, "grant_types_supported", expected, _DEFAULT_GRANT_TYPES),
            raw=MappingProxyType(dict(document)),
        )

    def supports_auth_method(self, method: str) -> bool:
        """Whether the token endpoint accepts this RFC 7591 client authentication method."""
        return method in self.token_endpoint_auth_methods

    def client_secret_method(self) -> str:
        """The client authentication for a client that has only a secret: ``client_secret_basic``
        if the server supports it, else ``client_secret_post``; a
        :class:`~requestforge.ConfigurationError` naming what it supports otherwise."""
        for method in _SECRET_METHODS:
            if method in self.token_endpoint_auth_methods:
                return method
        raise ConfigurationError(
            f"the token endpoint of {redact_url(self.issuer)!r} supports neither "
            f"client_secret_basic nor client_secret_post, only "
            f"{', '.join(self.token_endpoint_auth_methods) or 'nothing'}: pass client_auth= "
            "(e.g. PrivateKeyJwt(...) or ClientSecretJwt(...))"
        )


class _Flight:
    """One fetch in progress, whose result the callers that arrive meanwhile share."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.metadata: ServerMetadata | None = None
        self.error: BaseException | None = None


class AuthorizationServer:
    """The metadata of one issuer, fetched on first use and cached for ``ttl`` seconds.

    ``well_known`` chooses the document: ``"auto"`` (the default) asks for the OpenID
    Connect one (``{issuer}/.well-known/openid-configuration``) and, if that answers 404
    or another permanent 4xx, for the RFC 8414 one (``/.well-known/oauth-authorization-server``
    between the issuer's host and its path); ``"openid-configuration"`` or
    ``"oauth-authorization-server"`` asks for that one only.

    A ``Cache-Control: max-age`` shorter than ``ttl`` wins; ``no-store`` or ``no-cache``
    (or ``ttl=0``) keep nothing, so each call fetches, though concurrent calls still share
    one request. The expiry follows ``clock`` (the default clock unless given). ``client``,
    ``config``, ``timeout`` and ``max_retries`` mean what they mean for the OAuth 2.0
    providers: only ``config``'s connection settings (CA bundle, client certificate,
    proxies) are used. Thread-safe; ``close()`` closes the client it made.
    """

    #: One hour: servers rotate endpoints rarely, and a new provider re-reads the document.
    DEFAULT_TTL: Final = 3600.0
    DEFAULT_TIMEOUT: Final = 10.0
    DEFAULT_MAX_RETRIES: Final = 2
    RETRY_BASE_DELAY: Final = 0.5
    RETRY_MAX_DELAY: Final = 5.0
    MAX_RETRY_AFTER: Final = 10.0

    def __init__(
        self,
        issuer: str,
        *,
        ttl: float = DEFAULT_TTL,
        well_known: WellKnown = "auto",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._issuer = _valid_issuer(issuer)
        self._ttl = number("ttl", ttl)
        if well_known not in _WELL_KNOWN:
            raise ConfigurationError(
                f"well_known must be one of {_WELL_KNOWN}, got {shown(well_known)}"
            )
        self._urls = document_urls(self._issuer, well_known)
        self._timeout = number("timeout", timeout, strict=True)
        count("max_retries", max_retries, minimum=0)
        if client is not None:
            instance("client", client, HttpClient)
        connection = connection_config(config, client=client)
        self._clock = valid_clock("clock", clock)
        self._owns_client = client is None
        self._client = client if client is not None else self._make_client(max_retries, connection)
        self._lock = threading.Lock()
        self._cached: ServerMetadata | None = None
        self._expires = 0.0
        self._flight: _Flight | None = None

    def _make_client(self, max_retries: int, connection: HttpClientConfig | None) -> HttpClient:
        retry = ExponentialBackoffRetryStrategy(
            max_retries,
            base_delay=self.RETRY_BASE_DELAY,
            max_delay=self.RETRY_MAX_DELAY,
            allowed_methods={HttpMethod.GET},
            retry_statuses={408, 425, 429, 500, 502, 503, 504},
            max_retry_after=self.MAX_RETRY_AFTER,
            clock=self._clock,
        )
        settings = connection_settings(connection) if connection else {}
        return HttpClient(
            HttpClientConfig(default_timeout=self._timeout, retry_strategy=retry, **settings)
        )

    @property
    def issuer(self) -> str:
        """The issuer identifier the document must name."""
        return self._issuer

    @property
    def document_urls(self) -> tuple[str, ...]:
        """The URLs asked for, in order."""
        return self._urls

    def metadata(self) -> ServerMetadata:
        """The issuer's metadata: cached, or fetched by one caller while the others wait."""
        with self._lock:
            # The clock is read under the lock: a caller that has read it is sure to join a
            # fetch in flight (tests count the threads that read it to know they have).
            now = self._now()
            if self._cached is not None and now < self._expires:
                return self._cached
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leader:
            flight.done.wait()
            if flight.metadata is None:
                raise _shared_error(flight.error)
            return flight.metadata
        try:
            metadata, ttl = self._fetch()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.metadata = metadata
            with self._lock:
                self._cached = metadata
                self._expires = self._now() + ttl
            return metadata
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()

    def invalidate(self) -> None:
        """Forget the cached document: the next :meth:`metadata` call fetches it again."""
        with self._lock:
            self._cached = None

    def close(self) -> None:
        """Close the HttpClient this object created (a client you passed in stays open)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> AuthorizationServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuthorizationServer(issuer={redact_url(self._issuer)!r}, ttl={self._ttl!r})"

    # -- the fetch -----------------------------------------------------------------------

    def _now(self) -> float:
        return (self._clock or get_default_clock()).monotonic()

    def _fetch(self) -> tuple[ServerMetadata, float]:
        last = len(self._urls) - 1
        for index, url in enumerate(self._urls):
            response = self._get(url)
            status = response.status_code
            if index < last and 400 <= status < 500 and not transient_status(status):
                logger.debug("%s answered %d; trying %s", redact_url(url), status, self._urls[-1])
                continue
            if not response.is_success:
                raise self._status_error(response, url)
            try:
                document: Any = response.json()
            except ResponseDecodeError as exc:
                raise _bad_document(self._issuer, "is not JSON", response=response) from exc
            metadata = ServerMetadata.from_document(document, issuer=self._issuer)
            ttl = _ttl(response, self._ttl)
            logger.debug(
                "discovered the endpoints of %s from %s (cached for %ss)",
                redact_url(self._issuer),
                redact_url(url),
                ttl,
            )
            return metadata, ttl
        raise AssertionError("unreachable: the last URL always returns or raises")

    def _get(self, url: str) -> HttpResponse:
        shown_url = redact_url(url)
        logger.debug("fetching the metadata document %s", shown_url)
        try:
            return self._client.get(
                url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except MaxRetryException as exc:
            if exc.response is not None:
                raise self._status_error(exc.response, url, exc.attempts) from exc
            cause = exc.last_error or exc
            raise _unreachable(shown_url, cause, exc.attempts) from cause
        except (TransportError, CircuitOpenError) as exc:
            raise _unreachable(shown_url, exc, 1) from exc

    def _status_error(
        self, response: HttpResponse, url: str, attempts: int = 1
    ) -> TokenEndpointError:
        status = response.status_code
        where = f"the metadata document {redact_url(url)} answered {status}"
        if 300 <= status < 400:
            where += f", redirecting to {location_origin(response, url)}; discovery does not follow"
            where += " redirects (give the issuer the document names)"
        elif transient_status(status) and attempts > 1:
            where += f" (after {attempts} attempts)"
        return TokenEndpointError(
            where,
            status_code=status,
            transient=transient_status(status),
            response=response,
        )


def discover(
    issuer: str,
    *,
    well_known: WellKnown = "auto",
    timeout: float = AuthorizationServer.DEFAULT_TIMEOUT,
    max_retries: int = AuthorizationServer.DEFAULT_MAX_RETRIES,
    client: HttpClient | None = None,
    config: HttpClientConfig | None = None,
    clock: Clock | None = None,
) -> ServerMetadata:
    """Fetch and check ``issuer``'s metadata once, with no cache (see :class:`AuthorizationServer`
    for the options and the errors)."""
    with AuthorizationServer(
        issuer,
        ttl=0,
        well_known=well_known,
        timeout=timeout,
        max_retries=max_retries,
        client=client,
        config=config,
        clock=clock,
    ) as server:
        return server.metadata()


def document_urls(issuer: str, well_known: WellKnown = "auto") -> tuple[str, ...]:
    """The metadata URLs of ``issuer``: OIDC appends its suffix to the issuer, RFC 8414
    section 3.1 puts its own between the host and the path (its trailing slash dropped)."""
    oidc = issuer.rstrip("/") + OIDC_SUFFIX
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oauth = urlunsplit((parts.scheme, parts.netloc, OAUTH_SUFFIX + path, "", ""))
    if well_known == "openid-configuration":
        return (oidc,)
    if well_known == "oauth-authorization-server":
        return (oauth,)
    return (oidc, oauth)


def provider_from_issuer(
    cls: type[_P], server: str | AuthorizationServer, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _P:
    """``cls(token_endpoint, *args, **kwargs)`` from the issuer's metadata; ``client_auth``
    chosen from the server's methods when the caller gave a secret and no method, and the
    revocation and introspection endpoints filled in unless given."""
    if "token_url" in kwargs:
        raise ConfigurationError("from_issuer() takes the token_url from the metadata document")
    if isinstance(server, AuthorizationServer):
        metadata = server.metadata()
    else:
        names = ("timeout", "max_retries", "client", "config", "clock")
        options = {k: kwargs[k] for k in names if k in kwargs}
        metadata = discover(server, **options)
    signature = inspect.signature(cls)
    if "client_auth" not in kwargs and "client_auth" in signature.parameters:
        try:
            bound = signature.bind_partial(metadata.token_endpoint, *args, **kwargs)
        except TypeError:
            pass  # the constructor call below says what is wrong
        else:
            if bound.arguments.get("client_secret") is not None:
                kwargs = {**kwargs, "client_auth": metadata.client_secret_method()}
    for option, value in (
        ("revocation_url", metadata.revocation_endpoint),
        ("introspection_url", metadata.introspection_endpoint),
    ):
        if value is not None and option not in kwargs and option in signature.parameters:
            kwargs = {**kwargs, option: value}
    return cls(metadata.token_endpoint, *args, **kwargs)


# -- validation and helpers ----------------------------------------------------------------


def _valid_issuer(issuer: object) -> str:
    http_url("issuer", issuer)  # a string, absolute http(s), with a host
    given = cast("str", issuer)  # kept as given: the document must name it exactly
    parts = urlsplit(given)
    if parts.query or parts.fragment or "?" in given or "#" in given:
        raise ConfigurationError(
            f"issuer {redact_url(given)!r} has a query or fragment; RFC 8414 section 2 "
            "allows neither"
        )
    return given


def _endpoint(document: Mapping[str, Any], name: str, issuer: str, secure: bool) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_document(issuer, f"has a {name} that is not a string")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise _bad_document(issuer, f"has a {name} that is not an absolute http(s) URL")
    if secure and parts.scheme != "https":
        raise _bad_document(issuer, f"has an http {name} for an https issuer")
    return value


def _names(
    document: Mapping[str, Any], name: str, issuer: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad_document(issuer, f"has a {name} that is not a list of strings")
    return tuple(value)


def _ttl(response: HttpResponse, ttl: float) -> float:
    header = response.headers.get("Cache-Control") or ""
    if _NO_STORE.search(header):
        return 0.0
    found = _MAX_AGE.search(header)
    return min(ttl, float(found.group(1))) if found else ttl


def _bad_document(
    issuer: str, problem: str, *, response: HttpResponse | None = None
) -> TokenEndpointError:
    return TokenEndpointError(
        f"the metadata document of issuer {redact_url(issuer)!r} {problem}",
        transient=False,
        response=response,
    )


def _unreachable(url: str, cause: BaseException, attempts: int) -> TokenEndpointError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return TokenEndpointError(
        f"the metadata document {url} could not be fetched{tries}: "
        f"{type(cause).__name__}: {scrub(str(cause), (), 300)}",
        transient=True,
        request=getattr(cause, "request", None),
    )


def _shared_error(error: BaseException | None) -> BaseException:
    """The leader's error for a waiting caller: a copy of its own, so no two threads
    raise (and write tracebacks into) one exception object."""
    if isinstance(error, TokenEndpointError):
        copy = TokenEndpointError(
            str(error),
            error=error.error,
            error_description=error.error_description,
            status_code=error.status_code,
            transient=error.transient,
            request=error.request,
            response=error.response,
        )
        copy.__cause__ = error
        return copy
    if isinstance(error, ConfigurationError):
        return ConfigurationError(str(error))
    return TokenEndpointError(
        f"fetching the metadata document failed: {type(error).__name__}", transient=True
    )
