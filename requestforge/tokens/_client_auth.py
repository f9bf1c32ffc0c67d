"""How a client authenticates to the token endpoint (RFC 6749 section 2.3, RFC 7523
section 2.2, RFC 8705): one small immutable object per method, applied to each request.

A method never holds the client id: the provider or pipeline step that uses it passes its
own, so the id has one source. :meth:`ClientAuthMethod.apply` adds what the method sends to
a request's form fields and headers; what it sends that is secret (the client secret, the
Basic credentials, the key) is declared with :func:`~requestforge.declare_secrets` by the
provider or step that uses it, once that is fully configured, and every assertion as it is
signed; so none reaches a log, a repr, an error message, ``to_curl`` or a cassette.

The strings providers took before (``"basic"``, ``"body"``) and the RFC 7591
``token_endpoint_auth_method`` names are resolved by :func:`resolve_client_auth`.
"""

from __future__ import annotations

import base64
import secrets as _random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote, quote_plus

from requestforge._exceptions import ConfigurationError
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import number, shown, text
from requestforge.tokens import _jose

# The helpers (resolve_client_auth, basic_header, check_form_fields) are for the providers
# and pipeline steps only.
__all__ = [
    "ClientAuthMethod",
    "ClientSecretBasic",
    "ClientSecretJwt",
    "ClientSecretPost",
    "NoClientAuth",
    "PrivateKeyJwt",
    "TlsClientAuth",
]

#: RFC 7523 section 2.2: the ``client_assertion_type`` of a JWT client assertion.
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Form fields a client authentication method may set.
AUTH_FIELDS: Final = frozenset(
    {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)
#: The two ways to write id and secret before Basic (see docs/design.md, "Basic encoding").
BASIC_ENCODINGS: Final = ("percent", "form")

Form = MutableMapping[str, Any]
Headers = MutableMapping[str, str]


class ClientAuthMethod(ABC):
    """One way of authenticating the client at the token endpoint.

    Subclasses are immutable: their settings are read-only properties, and ``apply`` only
    writes to the form and headers it is given.
    """

    __slots__ = ()

    #: The RFC 7591 ``token_endpoint_auth_method`` name (see :attr:`method`).
    _METHOD: ClassVar[str]
    #: Whether the method needs the client certificate of the connection (RFC 8705).
    needs_client_cert: ClassVar[bool] = False
    #: Whether the method sends form fields (and so needs a form body).
    uses_form: ClassVar[bool] = True

    @abstractmethod
    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        """Add this method's fields to ``form`` and headers to ``headers``, for a request
        to ``token_url`` at ``now``; return the secrets sent (to scrub from server text)."""

    @property
    def method(self) -> str:
        """The RFC 7591 ``token_endpoint_auth_method`` name of this method."""
        return self._METHOD

    def secrets(self, client_id: str) -> Secrets:
        """What this method sends that is secret, for ``client_id``: declared by whoever
        uses the method (a provider, a pipeline step)."""
        return Secrets()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoClientAuth(ClientAuthMethod):
    """A public client (``none``): its ``client_id`` in the form and nothing else."""

    __slots__ = ()
    _METHOD = "none"

    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        form["client_id"] = client_id
        return []


class _SecretMethod(ClientAuthMethod):
    __slots__ = ("_secret",)

    def __init__(self, client_secret: str) -> None:
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError(
                f"client_secret must be a non-empty string, got {type(client_secret).__name__}"
            )
        self._secret = client_secret

    def secrets(self, client_id: str) -> Secrets:
        return Secrets.of(fields=["client_secret"], values=[self._secret])


class ClientSecretPost(_SecretMethod):
    """``client_secret_post``: ``client_id`` and ``client_secret`` as form fields."""

    __slots__ = ()
    _METHOD = "client_secret_post"

    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        form["client_id"] = client_id
        form["client_secret"] = self._secret
        return [self._secret]


class ClientSecretBasic(_SecretMethod):
    """``client_secret_basic``: HTTP Basic with the client id and secret.

    ``encoding="percent"`` (the default) percent-encodes both with every reserved character
    escaped (a space is ``%20``), which authlib (``unquote``) and django-oauth-toolkit
    (``unquote_plus``) both decode right; ``"form"`` is RFC 6749 section 2.3.1's strict
    form-encoding (a space is ``+``), which authlib misreads. The measured table is in
    docs/design.md, "Basic encoding".
    """

    __slots__ = ("_encoding",)
    _METHOD = "client_secret_basic"
    uses_form = False

    def __init__(self, client_secret: str, *, encoding: str = "percent") -> None:
        if encoding not in BASIC_ENCODINGS:
            raise ConfigurationError(
                f"encoding must be one of {BASIC_ENCODINGS}, got {shown(encoding)}"
            )
        super().__init__(client_secret)
        self._encoding = encoding

    @property
    def encoding(self) -> str:
        """How id and secret are escaped before Basic: ``"percent"`` or ``"form"``."""
        return self._encoding

    def header(self, client_id: str) -> str:
        """The ``Authorization`` value for ``client_id`` (a secret: never log it)."""
        return basic_header(client_id, self._secret, encoding=self._encoding)

    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        value = self.header(client_id)
        headers["Authorization"] = value
        return [self._secret, value, value.partition(" ")[2]]

    def secrets(self, client_id: str) -> Secrets:
        value = self.header(client_id)
        return super().secrets(client_id) | Secrets.of(values=[value, value.partition(" ")[2]])

    def __repr__(self) -> str:
        return f"ClientSecretBasic(encoding={self._encoding!r})"


class _JwtMethod(ClientAuthMethod):
    """A signed client assertion (RFC 7523 section 2.2): ``iss`` and ``sub`` are the client
    id, ``aud`` the token endpoint (or ``audience``), a fresh ``jti``, ``iat`` now and a
    short ``exp``."""

    __slots__ = ("_alg", "_audience", "_headers", "_key", "_kid", "_known", "_lifetime")

    #: Seconds an assertion is valid: one request, with room for clock skew.
    DEFAULT_LIFETIME: ClassVar[float] = 60.0
    #: Bytes of randomness in each ``jti`` (RFC 7519 section 4.1.7: unique per assertion).
    JTI_BYTES: ClassVar[int] = 24

    def __init__(
        self,
        key: Any,
        *,
        alg: str,
        kid: str | None,
        audience: str | None,
        lifetime: float,
        headers: Mapping[str, str] | None = None,
        known: Secrets | None = None,
    ) -> None:
        self._known = known or Secrets()
        self._headers = _valid_headers(headers)
        self._alg = alg
        self._key = key
        self._kid = None if kid is None else text("kid", kid)
        self._audience = None if audience is None else text("audience", audience)
        self._lifetime = number("lifetime", lifetime, strict=True)

    @property
    def alg(self) -> str:
        """The JWS algorithm assertions are signed with."""
        return self._alg

    @property
    def kid(self) -> str | None:
        """The ``kid`` header of every assertion, or None."""
        return self._kid

    @property
    def audience(self) -> str | None:
        """The ``aud`` claim if not the token endpoint URL (an issuer identifier, say)."""
        return self._audience

    def assertion(self, *, client_id: str, token_url: str, now: datetime) -> str:
        """A new signed assertion for ``client_id`` at ``token_url`` (declared secret)."""
        issued = int(now.timestamp())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": self._audience or token_url,
            "jti": _random.token_urlsafe(self.JTI_BYTES),
            "iat": issued,
            "exp": issued + max(1, round(self._lifetime)),
        }
        headers = dict(self._headers)
        if self._kid is not None:
            headers["kid"] = self._kid
        signed = _jose.sign_jwt(claims, self._key, alg=self._alg, headers=headers)
        declare_secrets(Secrets.of(values=[signed]))
        return signed

    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        signed = self.assertion(client_id=client_id, token_url=token_url, now=now)
        form["client_id"] = client_id
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = signed
        return [signed]

    def secrets(self, client_id: str) -> Secrets:
        # The key material; each assertion is declared as it is signed.
        return Secrets.of(fields=["client_assertion"]) | self._known

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alg={self._alg!r}, kid={self._kid!r}, "
            f"audience={self._audience!r})"
        )


class ClientSecretJwt(_JwtMethod):
    """``client_secret_jwt``: an assertion signed with the client secret (HS256).

    RFC 7518 section 3.2 wants an HS256 key of at least 32 bytes: a shorter secret is a
    ConfigurationError.
    """

    __slots__ = ()
    _METHOD = "client_secret_jwt"

    def __init__(
        self,
        client_secret: str,
        *,
        audience: str | None = None,
        lifetime: float = _JwtMethod.DEFAULT_LIFETIME,
    ) -> None:
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError(
                f"client_secret must be a non-empty string, got {type(client_secret).__name__}"
            )
        key = _jose.load_key(client_secret, alg="HS256", what="client_secret")
        super().__init__(
            key,
            alg="HS256",
            kid=None,
            audience=audience,
            lifetime=lifetime,
            known=Secrets.of(fields=["client_secret"], values=[client_secret]),
        )


class PrivateKeyJwt(_JwtMethod):
    """``private_key_jwt``: an assertion signed with the client's private key.

    ``key`` is PEM (text or bytes), a JWK dict or a joserfc key; ``alg`` is ``RS256``
    (the default), ``PS256`` or ``ES256``; ``kid`` names the key registered at the server
    (Okta: the JWK's ``kid``); ``headers`` adds other JWS header parameters, such as the
    certificate thumbprint ``x5t`` (or ``x5t#S256``) that Entra ID wants. The key is checked
    against ``alg`` here, and its private parts are declared secrets.
    """

    __slots__ = ()
    _METHOD = "private_key_jwt"
    #: The algorithms a private key signs with here.
    ALGORITHMS: ClassVar[tuple[str, ...]] = ("RS256", "PS256", "ES256")

    def __init__(
        self,
        key: Any,
        *,
        alg: str = "RS256",
        kid: str | None = None,
        audience: str | None = None,
        lifetime: float = _JwtMethod.DEFAULT_LIFETIME,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if alg not in self.ALGORITHMS:
            raise ConfigurationError(f"alg must be one of {self.ALGORITHMS}, got {shown(alg)}")
        loaded = _jose.load_key(key, alg=alg)
        super().__init__(
            loaded,
            alg=alg,
            kid=kid,
            audience=audience,
            lifetime=lifetime,
            headers=headers,
            known=Secrets.of(values=_jose.key_secrets(key, loaded)),
        )

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, with ``kid`` and ``alg``: what to register at the server."""
        jwk = _jose.public_jwk(self._key)
        jwk["alg"] = self._alg
        if self._kid is not None:
            jwk["kid"] = self._kid
        return jwk


class TlsClientAuth(ClientAuthMethod):
    """``tls_client_auth`` (PKI) or, with ``self_signed=True``, ``self_signed_tls_client_auth``
    (RFC 8705 section 2): the client certificate of the TLS connection authenticates the
    client, and the form carries ``client_id``. The certificate comes from the connection
    settings (``config=`` with ``with_client_cert``, or a ``client=`` that has one)."""

    __slots__ = ("_self_signed",)
    needs_client_cert = True

    def __init__(self, *, self_signed: bool = False) -> None:
        if not isinstance(self_signed, bool):
            raise ConfigurationError(
                f"self_signed must be a bool, got {type(self_signed).__name__}"
            )
        self._self_signed = self_signed

    @property
    def method(self) -> str:
        """``tls_client_auth`` or ``self_signed_tls_client_auth``."""
        return "self_signed_tls_client_auth" if self._self_signed else "tls_client_auth"

    @property
    def self_signed(self) -> bool:
        """Whether the server knows the certificate itself rather than its CA."""
        return self._self_signed

    def apply(
        self, form: Form, headers: Headers, *, client_id: str, token_url: str, now: datetime
    ) -> list[str]:
        form["client_id"] = client_id
        return []

    def __repr__(self) -> str:
        return f"TlsClientAuth(self_signed={self._self_signed!r})"


#: The strings providers accept: the names they took before, and the RFC 7591 names.
_SECRET_NAMES: Final = {
    "basic": "client_secret_basic",
    "body": "client_secret_post",
    "client_secret_basic": "client_secret_basic",
    "client_secret_post": "client_secret_post",
    "client_secret_jwt": "client_secret_jwt",
}
CLIENT_AUTH_NAMES: Final = (
    *_SECRET_NAMES,
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "none",
)


def resolve_client_auth(client_auth: object, client_secret: str | None) -> ClientAuthMethod:
    """The method for a provider's ``client_auth`` and ``client_secret``.

    ``"basic"`` and ``"body"`` keep their old meaning, a public client included (no
    secret: ``client_id`` in the form). The RFC names that use a secret need one;
    ``"none"`` and the TLS methods take none; ``"private_key_jwt"`` needs a key, so it is
    given as a :class:`PrivateKeyJwt`. A :class:`ClientAuthMethod` holds its own
    credentials: ``client_secret`` must then be None.
    """
    if isinstance(client_auth, ClientAuthMethod):
        if client_secret is not None:
            raise ConfigurationError(
                f"client_secret is given to {type(client_auth).__name__}, not to the provider: "
                "pass client_secret=None"
            )
        return client_auth
    if not isinstance(client_auth, str) or client_auth not in CLIENT_AUTH_NAMES:
        raise ConfigurationError(
            f"client_auth must be a ClientAuthMethod or one of {CLIENT_AUTH_NAMES}, "
            f"got {shown(client_auth)}"
        )
    if client_auth in ("basic", "body") and client_secret is None:
        return NoClientAuth()  # as before: a public client sends its client_id
    if client_auth in _SECRET_NAMES:
        if client_secret is None:
            raise ConfigurationError(f"client_auth={client_auth!r} needs a client_secret")
        return _SECRET_METHODS[_SECRET_NAMES[client_auth]](client_secret)
    if client_auth == "private_key_jwt":
        raise ConfigurationError(
            "client_auth='private_key_jwt' needs a key: pass client_auth=PrivateKeyJwt(key, ...)"
        )
    if client_secret is not None:
        raise ConfigurationError(f"client_auth={client_auth!r} sends no client_secret")
    if client_auth == "none":
        return NoClientAuth()
    return TlsClientAuth(self_signed=client_auth == "self_signed_tls_client_auth")


_SECRET_METHODS: Final[dict[str, Callable[[str], ClientAuthMethod]]] = {
    "client_secret_basic": ClientSecretBasic,
    "client_secret_post": ClientSecretPost,
    "client_secret_jwt": ClientSecretJwt,
}


def basic_header(client_id: str, client_secret: str, *, encoding: str = "percent") -> str:
    """RFC 7617 Basic credentials, id and secret escaped first: ``"percent"`` escapes every
    reserved character (a space as ``%20``), ``"form"`` form-encodes (a space as ``+``)."""
    escape = quote_plus if encoding == "form" else _percent
    pair = f"{escape(client_id)}:{escape(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _percent(value: str) -> str:
    return quote(value, safe="")


#: JWS header parameters the method sets itself (``kid`` has its own option).
_OWN_HEADERS: Final = frozenset({"alg", "kid", "crit", "b64", "jku", "jwk"})


def _valid_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"headers must be a mapping, got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigurationError(f"headers must map names to strings, got {shown(name)}")
        if name in _OWN_HEADERS:
            raise ConfigurationError(f"headers may not set {name!r}")
    return dict(headers)


def check_form_fields(params: Mapping[str, object], *, what: str) -> None:
    """``params`` may not set a field the client authentication method sets."""
    taken = sorted(AUTH_FIELDS & set(params))
    if taken:
        raise ConfigurationError(
            f"{what} may not set {taken[0]!r}; the client authentication method sets it"
        )
