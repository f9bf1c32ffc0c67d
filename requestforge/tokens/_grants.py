"""More grants at the token endpoint: JWT bearer (RFC 7523 section 2.1), token exchange
(RFC 8693) and any other ``grant_type`` with its own parameters.

They share :class:`~requestforge.ClientCredentialsTokenProvider`'s exchange (``_oauth2``):
its options, retries, error mapping, every client authentication method and ``dpop=``
(RFC 9449: proofs on token requests, nonces, the ``cnf.jkt`` check).
"""

from __future__ import annotations

import hashlib
import secrets as _random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

from requestforge._client import HttpClient
from requestforge._clock import Clock, get_default_clock
from requestforge._config import HttpClientConfig
from requestforge._exceptions import ConfigurationError, TokenError
from requestforge._redact import is_secret_field
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import number, shown, text
from requestforge.tokens import _jose
from requestforge.tokens._client_auth import AUTH_FIELDS, ClientAuthMethod
from requestforge.tokens._data import TokenData
from requestforge.tokens._dpop import DPoPKey
from requestforge.tokens._manager import TokenManager
from requestforge.tokens._oauth2 import Form, _OAuth2TokenProvider
from requestforge.tokens._providers import TokenProviderInterface

# TokenSource, token_from and ExchangeFields are for the pipeline's fetchers only.
__all__ = ["CustomGrantTokenProvider", "JwtBearerTokenProvider", "TokenExchangeTokenProvider"]

#: Where a token exchange's subject or actor token comes from: the token itself, or what
#: returns it when asked (a manager, so it is cached and single-flighted; a provider; a
#: function returning a string or a TokenData).
TokenSource: TypeAlias = (
    str | TokenData | TokenManager | TokenProviderInterface | Callable[[], "str | TokenData"]
)

_DEFAULT_TIMEOUT: Final = _OAuth2TokenProvider.DEFAULT_TIMEOUT
_DEFAULT_MAX_RETRIES: Final = _OAuth2TokenProvider.DEFAULT_MAX_RETRIES


class JwtBearerTokenProvider(_OAuth2TokenProvider):
    """Tokens for a signed assertion (RFC 7523 section 2.1): Google service accounts and
    any server that trusts a key instead of a secret.

    Each fetch signs a new assertion with ``key`` (PEM, a JWK dict or a joserfc key; ``alg``
    RS256 by default, PS256, ES256 or HS256): ``iss`` is ``issuer``, ``sub`` is ``subject``
    (the issuer unless given: a user to act for, with domain-wide delegation), ``aud`` is
    ``assertion_audience`` (the token URL unless given), a fresh ``jti``, ``iat`` now and
    ``exp`` ``lifetime`` seconds later; ``claims`` adds others (Google wants ``scope``
    there). The client authenticates only if ``client_id`` is given (any
    :class:`ClientAuthMethod`; by default none is needed).
    """

    grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    #: Seconds an assertion is valid; Google accepts up to an hour.
    DEFAULT_LIFETIME: Final = 300.0
    #: Claims this provider sets itself; ``claims`` may not override them.
    RESERVED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "iat", "jti"})

    def __init__(
        self,
        token_url: str,
        key: Any,
        *,
        issuer: str,
        subject: str | None = None,
        alg: str = "RS256",
        kid: str | None = None,
        assertion_audience: str | None = None,
        claims: Mapping[str, Any] | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_auth: str | ClientAuthMethod = "basic",
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        max_retries: int = _DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        service_name: str | None = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._issuer = text("issuer", issuer)
        self._subject = self._issuer if subject is None else text("subject", subject)
        self._key = _jose.load_key(key, alg=alg)
        self._alg = alg
        self._kid = None if kid is None else text("kid", kid)
        self._assertion_audience = (
            None if assertion_audience is None else text("assertion_audience", assertion_audience)
        )
        self._claims = _valid_claims(claims, self.RESERVED_CLAIMS)
        self._lifetime = number("lifetime", lifetime, strict=True)
        self._authenticates = client_id is not None
        super().__init__(
            token_url,
            self._issuer if client_id is None else client_id,
            client_secret,
            scope=scope,
            audience=audience,
            extra_params=extra_params,
            client_auth=client_auth,
            revocation_url=revocation_url,
            introspection_url=introspection_url,
            timeout=timeout,
            max_retries=max_retries,
            client=client,
            config=config,
            service_name=service_name,
            clock=clock,
            dpop=dpop,
        )
        declare_secrets(Secrets.of(values=_jose.key_secrets(key, self._key)))

    @property
    def issuer(self) -> str:
        """The assertion's ``iss``."""
        return self._issuer

    @property
    def subject(self) -> str:
        """The assertion's ``sub``."""
        return self._subject

    def assertion(self) -> str:
        """A newly signed assertion, as the next fetch sends it (a secret: never log it)."""
        now = int((self._clock or get_default_clock()).now().timestamp())
        claims = {
            **self._claims,
            "iss": self._issuer,
            "sub": self._subject,
            "aud": self._assertion_audience or self.token_url,
            "jti": _random.token_urlsafe(24),
            "iat": now,
            "exp": now + max(1, round(self._lifetime)),
        }
        headers = {} if self._kid is None else {"kid": self._kid}
        signed = _jose.sign_jwt(claims, self._key, alg=self._alg, headers=headers)
        declare_secrets(Secrets.of(values=[signed]))
        return signed

    def fetch_token(self) -> TokenData:
        """POST a freshly signed assertion and parse the token response."""
        signed = self.assertion()
        return self._request_token(self.grant_type, {"assertion": signed}, call_secrets=[signed])

    def _identity(self) -> list[str]:
        return [f"iss={self._issuer}", f"sub={self._subject}"]


class TokenExchangeTokenProvider(_OAuth2TokenProvider):
    """Tokens exchanged for another token (RFC 8693): impersonation, delegation, a token
    for another audience in a service mesh.

    ``subject_token`` (and ``actor_token``) is a token string, a :class:`TokenData`, or
    where to get one on each fetch: a :class:`TokenManager` (cached and single-flighted,
    the natural way to chain), a provider, or a function returning a string or a
    TokenData. ``resource`` may be several URIs (sent as repeated fields); ``audience``,
    ``requested_token_type`` and ``scope`` are sent when given. The identity of a subject
    that is a function is its qualified name: give ``service_name`` when two functions of
    the same name return different subjects.
    """

    grant_type = "urn:ietf:params:oauth:grant-type:token-exchange"
    #: RFC 8693 section 3: the token type URIs.
    ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
    REFRESH_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105
    ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
    JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        subject_token: TokenSource,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        actor_token: TokenSource | None = None,
        actor_token_type: str | None = None,
        resource: str | Iterable[str] | None = None,
        requested_token_type: str | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: str | ClientAuthMethod = "basic",
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        max_retries: int = _DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        service_name: str | None = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._subject = _valid_source("subject_token", subject_token)
        self._actor = None if actor_token is None else _valid_source("actor_token", actor_token)
        self._exchange = ExchangeFields(
            subject_token_type=subject_token_type,
            actor_token_type=actor_token_type,
            has_actor=self._actor is not None,
            resource=resource,
            requested_token_type=requested_token_type,
        )
        super().__init__(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            audience=audience,
            extra_params=extra_params,
            client_auth=client_auth,
            revocation_url=revocation_url,
            introspection_url=introspection_url,
            timeout=timeout,
            max_retries=max_retries,
            client=client,
            config=config,
            service_name=service_name,
            clock=clock,
            dpop=dpop,
        )
        fixed = [s for s in (self._subject, self._actor) if isinstance(s, str)]
        declare_secrets(Secrets.of(values=fixed))

    def fetch_token(self) -> TokenData:
        """Get the subject (and actor) token now and exchange it."""
        subject = token_from(self._subject, "subject_token")
        actor = None if self._actor is None else token_from(self._actor, "actor_token")
        fields = self._exchange.form(subject, actor)
        return self._request_token(self.grant_type, fields, call_secrets=[subject, actor])

    def _identity(self) -> list[str]:
        parts = [f"subject={_source_identity(self._subject)}"]
        if self._actor is not None:
            parts.append(f"actor={_source_identity(self._actor)}")
        return parts + self._exchange.identity()


class ExchangeFields:
    """The RFC 8693 request fields, shared by the provider and the pipeline step."""

    def __init__(
        self,
        *,
        subject_token_type: str,
        actor_token_type: str | None,
        has_actor: bool,
        resource: str | Iterable[str] | None,
        requested_token_type: str | None,
    ) -> None:
        self.subject_type = text("subject_token_type", subject_token_type)
        if has_actor and actor_token_type is None:
            raise ConfigurationError(
                "actor_token_type is required with an actor_token (RFC 8693 section 2.1)"
            )
        if not has_actor and actor_token_type is not None:
            raise ConfigurationError("actor_token_type is only sent with an actor_token")
        self.actor_type = (
            None if actor_token_type is None else text("actor_token_type", actor_token_type)
        )
        self.resource = _valid_resources(resource)
        self.requested = (
            None
            if requested_token_type is None
            else text("requested_token_type", requested_token_type)
        )

    def form(self, subject: str, actor: str | None) -> Form:
        """The request fields for the ``subject`` (and ``actor``) token."""
        fields: Form = {"subject_token": subject, "subject_token_type": self.subject_type}
        if actor is not None and self.actor_type is not None:
            fields["actor_token"] = actor
            fields["actor_token_type"] = self.actor_type
        if self.resource:
            fields["resource"] = list(self.resource)
        if self.requested is not None:
            fields["requested_token_type"] = self.requested
        return fields

    def identity(self) -> list[str]:
        """Non-secret parts that tell exchanged tokens apart, for service_name."""
        parts = [f"resource={r}" for r in self.resource]
        if self.requested is not None:
            parts.append(f"requested_token_type={self.requested}")
        return parts


class CustomGrantTokenProvider(_OAuth2TokenProvider):
    """Any ``grant_type`` with its own ``params`` (a list value is sent as a repeated
    field): a vendor grant, or an RFC grant without a provider of its own here.

    ``params`` may set anything but the client authentication fields, ``grant_type`` and
    ``scope`` (given as options). Values of fields named in ``secret_params``, or whose
    names look secret (``*_token``, ``assertion``, ...), are declared secrets; the others
    are part of the token's identity (``service_name``).
    """

    grant_type = "custom"  # replaced per instance by the grant_type given

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        grant_type: str,
        params: Mapping[str, str | Iterable[str]] | None = None,
        secret_params: Iterable[str] = (),
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        client_auth: str | ClientAuthMethod = "basic",
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        max_retries: int = _DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        service_name: str | None = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._grant = text("grant_type", grant_type)
        self._params = _valid_params(params)
        self._secret_names = frozenset(text("secret_params", n) for n in secret_params)
        unknown = sorted(self._secret_names - set(self._params))
        if unknown:
            raise ConfigurationError(f"secret_params names {unknown[0]!r}, which is not a param")
        super().__init__(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            audience=audience,
            client_auth=client_auth,
            revocation_url=revocation_url,
            introspection_url=introspection_url,
            timeout=timeout,
            max_retries=max_retries,
            client=client,
            config=config,
            service_name=service_name,
            clock=clock,
            dpop=dpop,
        )
        declare_secrets(Secrets.of(fields=self._secret_names, values=self._param_secrets()))

    @property
    def params(self) -> dict[str, str | list[str]]:
        """The grant's parameters, a copy (secret values included: do not log it)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._params.items()}

    def _grant_type(self) -> str:
        return self._grant

    def _grant_params(self) -> Form:
        return self.params

    def _is_secret(self, name: str) -> bool:
        return name in self._secret_names or is_secret_field(name)

    def _param_secrets(self) -> list[str]:
        found: list[str] = []
        for name, value in self._params.items():
            if self._is_secret(name):
                found += value if isinstance(value, list) else [value]
        return found

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), *self._param_secrets()]

    def _identity(self) -> list[str]:
        parts = []
        for name in sorted(self._params):
            value = self._params[name]
            if self._is_secret(name):
                parts.append(f"{name}=[secret]")
            else:
                parts.append(f"{name}={','.join(value) if isinstance(value, list) else value}")
        return parts


# -- helpers ---------------------------------------------------------------------------


def token_from(source: object, what: str) -> str:
    """The token string ``source`` gives now; a TokenError if it gives none."""
    value: object = source
    if isinstance(source, TokenManager):
        value = source.get_token()
    elif isinstance(source, TokenProviderInterface):
        value = source.fetch_token()
    elif callable(source):
        value = source()
    if isinstance(value, TokenData):
        return value.access_token
    if isinstance(value, str) and value:
        return value
    raise TokenError(f"{what} source returned {type(value).__name__}, not a token or a string")


def _valid_source(what: str, source: object) -> object:
    if isinstance(source, str):
        return text(what, source)
    if isinstance(source, TokenData | TokenManager | TokenProviderInterface) or callable(source):
        return source
    raise ConfigurationError(
        f"{what} must be a token string, a TokenData, a TokenManager, a provider or a "
        f"callable, got {type(source).__name__}"
    )


def _source_identity(source: object) -> str:
    """Names a token source without showing a token: a digest of a fixed token, the cache
    key of a manager, the service name of a provider, the qualified name of a function."""
    if isinstance(source, str | TokenData):
        token = source if isinstance(source, str) else source.access_token
        return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    if isinstance(source, TokenManager):
        return source.cache_key
    if isinstance(source, TokenProviderInterface):
        return source.service_name
    return str(getattr(source, "__qualname__", type(source).__qualname__))


def _valid_resources(resource: object) -> tuple[str, ...]:
    if resource is None:
        return ()
    items = [resource] if isinstance(resource, str) else resource
    if not isinstance(items, Iterable):
        raise ConfigurationError(f"resource must be a URI or URIs, got {type(resource).__name__}")
    return tuple(text("resource", item) for item in items)


def _valid_claims(claims: object, reserved: frozenset[str]) -> dict[str, Any]:
    if claims is None:
        return {}
    if not isinstance(claims, Mapping):
        raise ConfigurationError(f"claims must be a mapping, got {type(claims).__name__}")
    for name in claims:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"claim names must be strings, got {shown(name)}")
        if name in reserved:
            raise ConfigurationError(f"claims may not set {name!r}; the provider sets it")
    return dict(claims)


def _valid_params(params: object) -> dict[str, str | list[str]]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"params must be a mapping, got {type(params).__name__}")
    valid: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"params must map names to strings, got {shown(name)}")
        if name in AUTH_FIELDS or name in _PROVIDER_FIELDS:
            raise ConfigurationError(f"params may not set {name!r}; give it as an option")
        if isinstance(value, str):
            valid[name] = value
        elif isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
            valid[name] = list(value)
        else:
            raise ConfigurationError(f"param {name!r} must be a string or strings")
    return valid


_PROVIDER_FIELDS: Final = frozenset({"grant_type", "scope", "audience"})
