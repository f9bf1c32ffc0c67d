"""Tests for the client authentication methods: what each sends, key checks, secrecy, and
the Basic encodings measured against authlib's and django-oauth-toolkit's decoders."""

from __future__ import annotations

import base64
import importlib
import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from requestforge import (
    ClientAuthMethod,
    ClientCredentialsTokenProvider,
    ClientSecretBasic,
    ClientSecretJwt,
    ClientSecretPost,
    ConfigurationError,
    HttpClientConfigBuilder,
    HttpMethod,
    HttpRequest,
    NoClientAuth,
    PasswordGrantTokenProvider,
    PrivateKeyJwt,
    TlsClientAuth,
    TokenEndpointError,
)
from requestforge._secrets import isolated_knowledge, known_secrets, redact_known_values
from requestforge.tokens import _jose
from requestforge_testing import FakeClock

TOKEN_URL = "https://auth.example.com/oauth/token"
SECRET = "s3cr3t-Client-Value-long-enough-for-HS256!"
TOKEN_JSON = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _short_rsa_pem() -> bytes:
    """A 1024-bit RSA private key (joserfc warns when asked to generate one)."""
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    return short.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")
KEYS = {"RS256": RSA, "PS256": RSA, "ES256": EC}

Mock = responses.RequestsMock


def _form(mock: Mock, index: int = 0) -> dict[str, list[str]]:
    body = mock.calls[index].request.body
    text = body.decode() if isinstance(body, bytes) else str(body or "")
    return parse_qs(text, keep_blank_values=True)


def _header(mock: Mock, name: str, index: int = 0) -> str | None:
    return mock.calls[index].request.headers.get(name)


def _cc(client_auth: Any, secret: str | None = None, **options: Any) -> Any:
    return ClientCredentialsTokenProvider(
        TOKEN_URL, "my-client", secret, client_auth=client_auth, **options
    )


def _verify(token: str, key: Any, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of ``token``, after checking its signature with ``key``."""
    decoded = jwt.decode(token, key, algorithms=[alg])
    return dict(decoded.header), dict(decoded.claims)


# -- the strings providers took before, and RFC names ----------------------------------------


@pytest.mark.parametrize(
    ("client_auth", "secret", "expected"),
    [
        ("basic", SECRET, ClientSecretBasic),
        ("body", SECRET, ClientSecretPost),
        ("basic", None, NoClientAuth),
        ("body", None, NoClientAuth),
        ("client_secret_basic", SECRET, ClientSecretBasic),
        ("client_secret_post", SECRET, ClientSecretPost),
        ("client_secret_jwt", SECRET, ClientSecretJwt),
        ("none", None, NoClientAuth),
    ],
)
def test_client_auth_strings_resolve_to_methods(
    client_auth: str, secret: str | None, expected: type[ClientAuthMethod]
) -> None:
    """The old strings keep their meaning and the RFC 7591 names pick the same methods."""
    assert type(_cc(client_auth, secret).client_auth) is expected


@pytest.mark.parametrize(
    ("client_auth", "secret"),
    [
        ("jwt", SECRET),
        ("private_key_jwt", None),
        ("client_secret_basic", None),
        ("client_secret_jwt", None),
        ("none", SECRET),
        ("tls_client_auth", None),  # no client certificate configured
        (ClientSecretPost(SECRET), SECRET),  # the secret given twice
        (42, None),
    ],
)
def test_bad_client_auth_is_a_configuration_error(client_auth: Any, secret: str | None) -> None:
    """Unknown names, a missing or extra secret, a key-less private_key_jwt are refused."""
    with pytest.raises(ConfigurationError) as caught:
        _cc(client_auth, secret)
    assert SECRET not in str(caught.value)


# -- what each method sends --------------------------------------------------------------------


def test_client_secret_basic_percent_encodes_by_default(forge_responses: Mock) -> None:
    """The default escapes a space as %20 and '+' as %2B before base64."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    ClientCredentialsTokenProvider(TOKEN_URL, "my client", "a b+c:d%e").fetch_token()
    raw = base64.b64decode((_header(forge_responses, "Authorization") or "")[6:]).decode()
    assert raw == "my%20client:a%20b%2Bc%3Ad%25e"
    assert "client_secret" not in _form(forge_responses)


def test_client_secret_basic_form_encoding_is_an_option(forge_responses: Mock) -> None:
    """encoding='form' is RFC 6749 2.3.1's strict form-encoding: a space becomes '+'."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    method = ClientSecretBasic("a b+c", encoding="form")
    ClientCredentialsTokenProvider(TOKEN_URL, "my client", None, client_auth=method).fetch_token()
    raw = base64.b64decode((_header(forge_responses, "Authorization") or "")[6:]).decode()
    assert raw == "my+client:a+b%2Bc"


def test_client_secret_basic_rejects_an_unknown_encoding() -> None:
    """Only 'percent' and 'form' are encodings."""
    with pytest.raises(ConfigurationError):
        ClientSecretBasic(SECRET, encoding="raw")


def test_client_secret_post_sends_id_and_secret_in_the_form(forge_responses: Mock) -> None:
    """client_secret_post: both in the form, no Authorization header."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc(ClientSecretPost(SECRET)).fetch_token()
    form = _form(forge_responses)
    assert form["client_id"] == ["my-client"]
    assert form["client_secret"] == [SECRET]
    assert _header(forge_responses, "Authorization") is None


@pytest.mark.parametrize("client_auth", ["none", NoClientAuth()])
def test_public_client_sends_only_its_client_id(forge_responses: Mock, client_auth: Any) -> None:
    """none: client_id in the form and nothing else that authenticates."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc(client_auth).fetch_token()
    assert _form(forge_responses) == {
        "grant_type": ["client_credentials"],
        "client_id": ["my-client"],
    }
    assert _header(forge_responses, "Authorization") is None


def test_client_secret_jwt_sends_an_hs256_assertion(
    forge_responses: Mock, forge_clock: FakeClock
) -> None:
    """client_secret_jwt signs iss=sub=client_id, aud=token URL, a jti, iat now, exp +60 s."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc(ClientSecretJwt(SECRET)).fetch_token()
    form = _form(forge_responses)
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert form["client_id"] == ["my-client"]
    assert "client_secret" not in form
    header, claims = _verify(form["client_assertion"][0], OctKey.import_key(SECRET), "HS256")
    assert header["alg"] == "HS256"
    now = int(forge_clock.now().timestamp())
    assert claims == {
        "iss": "my-client",
        "sub": "my-client",
        "aud": TOKEN_URL,
        "jti": claims["jti"],
        "iat": now,
        "exp": now + 60,
    }


def test_client_secret_jwt_needs_a_32_byte_secret() -> None:
    """RFC 7518 3.2: an HS256 key shorter than the hash is refused at construction."""
    with pytest.raises(ConfigurationError, match="32"):
        ClientSecretJwt("short-secret")


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_private_key_jwt_signs_with_the_key(
    forge_responses: Mock, forge_clock: FakeClock, alg: str
) -> None:
    """private_key_jwt: the assertion verifies with the public key and carries the kid."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    key = KEYS[alg]
    pem = key.as_pem(private=True).decode()
    _cc(PrivateKeyJwt(pem, alg=alg, kid="key-1")).fetch_token()
    form = _form(forge_responses)
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    public = type(key).import_key(key.as_dict(private=False))
    header, claims = _verify(form["client_assertion"][0], public, alg)
    assert header["alg"] == alg
    assert header["kid"] == "key-1"
    assert claims["iss"] == claims["sub"] == "my-client"
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] - claims["iat"] == 60
    assert claims["iat"] == int(forge_clock.now().timestamp())


def test_private_key_jwt_audience_may_be_the_issuer(forge_responses: Mock) -> None:
    """audience= replaces the token URL in aud (servers that want their issuer there)."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    method = PrivateKeyJwt(EC.as_dict(private=True), alg="ES256", audience="https://auth.example")
    _cc(method).fetch_token()
    _, claims = _verify(_form(forge_responses)["client_assertion"][0], EC, "ES256")
    assert claims["aud"] == "https://auth.example"


def test_each_assertion_has_a_new_jti(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """Two requests in the same second still send two different assertions."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = _cc(PrivateKeyJwt(RSA))
    provider.fetch_token()
    provider.fetch_token()
    jtis = {
        _verify(_form(forge_responses, i)["client_assertion"][0], RSA, "RS256")[1]["jti"]
        for i in range(2)
    }
    assert len(jtis) == 2


def test_extra_jws_headers_are_sent(forge_responses: Mock) -> None:
    """headers= adds JWS header parameters (Entra's x5t); alg and kid stay the method's."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc(PrivateKeyJwt(RSA, alg="PS256", headers={"x5t": "thumb-print"})).fetch_token()
    header, _ = _verify(_form(forge_responses)["client_assertion"][0], RSA, "PS256")
    assert header["x5t"] == "thumb-print"
    with pytest.raises(ConfigurationError):
        PrivateKeyJwt(RSA, headers={"alg": "none"})


def test_import_requestforge_loads_no_joserfc() -> None:
    """joserfc is the jwt extra: importing the library (the whole public API) never loads it."""
    code = "import sys, requestforge; print('joserfc' in sys.modules)"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_public_jwk_is_what_to_register() -> None:
    """public_jwk() has the public members, alg and kid, and no private member."""
    jwk = PrivateKeyJwt(RSA, alg="PS256", kid="k").public_jwk()
    assert jwk["kty"] == "RSA"
    assert (jwk["alg"], jwk["kid"]) == ("PS256", "k")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (RSA.as_pem(private=False).decode(), "RS256"),  # a public key cannot sign
        (EC.as_dict(private=True), "RS256"),  # the wrong key type
        (RSA, "ES256"),
        (ECKey.generate_key("P-384"), "ES256"),  # the wrong curve
        (_short_rsa_pem(), "RS256"),  # too short
        ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----", "RS256"),
        (RSA, "HS256"),  # not an algorithm for a private key
        (RSA, "RS512"),
        (12345, "RS256"),
    ],
)
def test_bad_keys_fail_at_construction(key: Any, alg: str) -> None:
    """A key that cannot sign with alg is a ConfigurationError that quotes no key material."""
    with pytest.raises(ConfigurationError) as caught:
        PrivateKeyJwt(key, alg=alg)
    assert "BEGIN" not in str(caught.value)
    assert "not a key" not in str(caught.value)


def test_tls_client_auth_needs_a_client_certificate(forge_responses: Mock, tmp_path: Path) -> None:
    """tls_client_auth sends client_id in the form over a connection with a certificate."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder")
    config = (
        HttpClientConfigBuilder()
        .with_client_cert(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
        .build()
    )
    provider = _cc(TlsClientAuth(), config=config)
    assert provider.client_auth.method == "tls_client_auth"
    provider.fetch_token()
    assert _form(forge_responses)["client_id"] == ["my-client"]
    assert _header(forge_responses, "Authorization") is None
    self_signed = _cc("self_signed_tls_client_auth", config=config).client_auth
    assert self_signed.method == "self_signed_tls_client_auth"
    with pytest.raises(ConfigurationError, match="client certificate"):
        _cc(TlsClientAuth())


# -- secrets --------------------------------------------------------------------------------


def test_methods_never_show_their_secrets() -> None:
    """A method's repr names its settings, never a secret or a key."""
    methods = [
        ClientSecretBasic(SECRET),
        ClientSecretPost(SECRET),
        ClientSecretJwt(SECRET),
        PrivateKeyJwt(RSA, kid="k"),
        TlsClientAuth(),
        NoClientAuth(),
    ]
    shown = " ".join(repr(m) for m in methods)
    assert SECRET not in shown
    assert str(RSA.as_dict(private=True)["d"]) not in shown
    assert "kid='k'" in shown


def test_assertions_and_keys_are_declared_secrets(forge_responses: Mock) -> None:
    """Every assertion sent, the private key and the Basic value are known secrets."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    pem = RSA.as_pem(private=True).decode()
    _cc(PrivateKeyJwt(pem)).fetch_token()
    assertion = _form(forge_responses)["client_assertion"][0]
    assert redact_known_values(f"sent {assertion}") == "sent [REDACTED]"
    assert str(RSA.as_dict(private=True)["d"]) in known_secrets().values
    assert "client_assertion" in known_secrets().fields
    basic = ClientSecretBasic(SECRET).header("my-client")
    _cc("basic", SECRET)  # the provider declares the Basic value it will send
    assert redact_known_values(basic) == "[REDACTED]"


def test_to_curl_hides_the_assertion_and_the_basic_value() -> None:
    """A token request written as curl shows neither the assertion nor the Basic value."""
    form: dict[str, Any] = {}
    headers: dict[str, str] = {}
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    PrivateKeyJwt(EC, alg="ES256").apply(form, headers, client_id="c", token_url=TOKEN_URL, now=now)
    ClientSecretBasic(SECRET).apply(form, headers, client_id="c", token_url=TOKEN_URL, now=now)
    curl = HttpRequest(HttpMethod.POST, TOKEN_URL, headers=headers, data=form).to_curl()
    assert form["client_assertion"] not in curl
    assert headers["Authorization"].split()[1] not in curl
    assert "client_assertion_type" in curl


def test_an_echoed_assertion_is_scrubbed_from_errors(forge_responses: Mock) -> None:
    """A server that quotes our assertion back in error_description never gets it shown."""

    def reject(request: Any) -> tuple[int, dict[str, str], str]:
        assertion = parse_qs(request.body)["client_assertion"][0]
        body = {"error": "invalid_client", "error_description": f"bad assertion {assertion}"}
        return 401, {}, json.dumps(body)

    forge_responses.add_callback(responses.POST, TOKEN_URL, callback=reject)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(ClientSecretJwt(SECRET)).fetch_token()
    assert caught.value.error == "invalid_client"
    assert "eyJ" not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)


def test_password_grant_takes_a_method_too(forge_responses: Mock) -> None:
    """Every provider takes a ClientAuthMethod, the password grant included."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    PasswordGrantTokenProvider(
        TOKEN_URL, "my-client", None, "ada", "pw", client_auth=PrivateKeyJwt(EC, alg="ES256")
    ).fetch_token()
    assert _form(forge_responses)["client_assertion_type"] == [ASSERTION_TYPE]


# -- property: 10,000 signings from 32 threads ---------------------------------------------


def test_ten_thousand_assertions_from_32_threads_verify_with_fresh_jtis() -> None:
    """Every assertion signed concurrently verifies with the public key; no jti repeats."""
    methods: list[tuple[Any, Any, str]] = [
        (PrivateKeyJwt(RSA, alg="RS256"), RSA, "RS256"),
        (PrivateKeyJwt(RSA, alg="PS256"), RSA, "PS256"),
        (PrivateKeyJwt(EC, alg="ES256"), EC, "ES256"),
        (ClientSecretJwt(SECRET), OctKey.import_key(SECRET), "HS256"),
    ]
    threads, per_thread = 32, 10_000 // 32 + 1
    start = threading.Barrier(threads)
    signed: list[list[tuple[int, str]]] = [[] for _ in range(threads)]
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def sign(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            which = (index + i) % len(methods)
            token = methods[which][0].assertion(client_id="c", token_url=TOKEN_URL, now=now)
            signed[index].append((which, token))

    with isolated_knowledge():  # 10,000 declared assertions must not push out others' secrets
        workers = [threading.Thread(target=sign, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    everything = [item for batch in signed for item in batch]
    assert len(everything) >= 10_000
    jtis = set()
    for which, token in everything:
        _, key, alg = methods[which]
        _, claims = _verify(token, key, alg)
        jtis.add(claims["jti"])
    assert len(jtis) == len(everything)


# -- the Basic encodings against authlib and django-oauth-toolkit --------------------------

CASES = [
    ("client-1", "a b"),
    ("client-1", "a+b"),
    ("client-1", "a%b"),
    ("client-1", "a%20b"),
    ("client-1", "a:b"),
    ("client-1", "pässwörd"),
    ("my client", "plain-secret"),
    ("my:client", "plain-secret"),
    ("clïent", "plain-secret"),
]

# django-oauth-toolkit's decoder needs its Django app installed, which the settings of this
# process (tests/tokens/storage/test_django.py) do not have: it runs in a child interpreter.
_DOT_DECODE = """
import json, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
django.setup()
from oauth2_provider.oauth2_validators import OAuth2Validator

class Client:
    client_type = "confidential"

class Request:
    def __init__(self, header, secret):
        self.headers = {"HTTP_AUTHORIZATION": header}
        self.encoding = None
        self.grant_type = "client_credentials"
        self.expected = secret

class Validator(OAuth2Validator):
    def _load_application(self, client_id, request):
        request.client = Client()
        request.client.client_id = client_id
        request.client.client_secret = request.expected
        return request.client

cases = json.load(sys.stdin)
results = []
for header, client_id, secret in cases:
    request = Request(header, secret)
    ok = Validator()._authenticate_basic_auth(request)
    results.append(bool(ok) and request.client.client_id == client_id)
print(json.dumps(results))
"""


# authlib has no type hints: its decoder is looked up, not imported by name.
_AUTHLIB_UTIL = importlib.import_module("authlib.oauth2.rfc6749.util")


def _dot_accepts(headers: list[tuple[str, str, str]]) -> list[bool]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _DOT_DECODE],
        input=json.dumps(headers),
        capture_output=True,
        text=True,
        check=True,
    )
    return [bool(ok) for ok in json.loads(done.stdout)]


def _measure() -> dict[str, list[tuple[bool, bool]]]:
    """For each encoding, whether (authlib, DOT) decode each case back to id and secret."""
    table: dict[str, list[tuple[bool, bool]]] = {}
    for encoding in ("percent", "form"):
        headers = [
            (ClientSecretBasic(secret, encoding=encoding).header(cid), cid, secret)
            for cid, secret in CASES
        ]
        authlib = [
            _AUTHLIB_UTIL.extract_basic_authorization({"Authorization": h}) == (cid, secret)
            for h, cid, secret in headers
        ]
        table[encoding] = list(zip(authlib, _dot_accepts(headers), strict=True))
    return table


def test_percent_encoding_works_with_authlib_and_dot_and_form_does_not() -> None:
    """Measured: percent-encoding decodes right in both servers for every case; strict
    form-encoding fails authlib wherever a space is (the table in docs/design.md)."""
    table = _measure()
    assert table["percent"] == [(True, True)] * len(CASES)
    failing = [
        case
        for case, (authlib, dot) in zip(CASES, table["form"], strict=True)
        if not (authlib and dot)
    ]
    assert failing == [("client-1", "a b"), ("my client", "plain-secret")]
    assert all(dot for _, dot in table["form"])


def test_jose_helpers_need_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without joserfc a JWT feature is a ConfigurationError naming requestforge[jwt]."""
    real = importlib.import_module

    def missing(name: str, package: str | None = None) -> Any:
        if name.startswith("joserfc"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ConfigurationError, match=r"pip install requestforge\[jwt\]"):
        PrivateKeyJwt(RSA)


def test_thumbprint_is_rfc_7638() -> None:
    """thumbprint() matches RFC 7638's example key and digest (appendix 3.1)."""
    example: dict[str, str | list[str]] = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
            "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
            "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
            "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
    }
    key = RSAKey.import_key(example)
    assert _jose.thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert _jose.public_jwk(EC)["kty"] == "EC"
    with pytest.raises(ConfigurationError):
        _jose.public_jwk(OctKey.import_key(SECRET))
