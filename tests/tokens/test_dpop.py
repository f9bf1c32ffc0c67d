"""DPoPKey (RFC 9449): proofs that verify, their claims, unique jti, nonces per origin, the
cnf.jkt check, and the key staying secret."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    ConfigurationError,
    DPoPKey,
    HeaderTokenFetcher,
    HttpClient,
    HttpClientConfigBuilder,
    TokenData,
    TokenFetchPipeline,
    TokenResponseError,
)
from requestforge._redact import is_secret_header, redact_text
from requestforge.tokens._dpop import access_token_hash
from tests.threads import in_threads

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _verified(proof: str, key: DPoPKey) -> Any:
    """The proof verified with the public JWK in its own header, which must be the key's."""
    registry = JWSRegistry(algorithms=[key.alg])
    registry.max_header_length = 4096  # an RSA jwk header is longer than joserfc's 512
    header = jwt.decode(proof, _public(key), algorithms=[key.alg], registry=registry).header
    embedded = (ECKey if key.alg == "ES256" else RSAKey).import_key(header["jwk"])
    return jwt.decode(proof, embedded, algorithms=[key.alg], registry=registry)


def _public(key: DPoPKey) -> Any:
    return (ECKey if key.alg == "ES256" else RSAKey).import_key(dict(key.public_jwk))


def test_proof_verifies_with_its_own_jwk_and_has_the_claims() -> None:
    """A proof is a dpop+jwt signed by the key in its jwk header, with htm, htu, iat, jti."""
    key = DPoPKey()
    token = _verified(key.proof("post", "https://as.example/token", now=NOW), key)
    assert token.header["typ"] == "dpop+jwt"
    assert token.header["alg"] == "ES256"
    assert token.header["jwk"] == dict(key.public_jwk)
    assert "d" not in token.header["jwk"]
    assert token.claims["htm"] == "POST"
    assert token.claims["htu"] == "https://as.example/token"
    assert token.claims["iat"] == int(NOW.timestamp())
    assert token.claims["jti"]
    assert "ath" not in token.claims
    assert "nonce" not in token.claims


def test_ath_is_the_base64url_sha256_of_the_access_token() -> None:
    """ath is the unpadded base64url SHA-256 of the access token."""
    key = DPoPKey()
    claims = _verified(key.proof("GET", "https://api.example/r", access_token="at-1"), key).claims
    digest = hashlib.sha256(b"at-1").digest()
    assert claims["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://api.example/r?q=1", "https://api.example/r"),
        ("https://api.example/r#frag", "https://api.example/r"),
        ("https://api.example:8443/a/b?x=1&y=2#z", "https://api.example:8443/a/b"),
        ("http://api.example", "http://api.example/"),
    ],
)
def test_htu_has_no_query_or_fragment(url: str, htu: str) -> None:
    """htu is the request URL without its query and fragment."""
    key = DPoPKey()
    assert _verified(key.proof("GET", url), key).claims["htu"] == htu


def test_ten_thousand_proofs_from_32_threads_verify_with_fresh_jtis_and_their_ath() -> None:
    """10,000 proofs signed from 32 threads at once, each for its own access token: every
    one verifies with the jwk in its own header (the key's), its ath is that token's hash,
    and no jti repeats."""
    key = DPoPKey()
    threads, per_thread = 32, 10_000 // 32 + 1

    def sign() -> list[tuple[str, str]]:
        made = []
        for i in range(per_thread):  # the threads live together: their idents differ
            token = f"at-{threading.get_ident()}-{i}"
            made.append((token, key.proof("GET", "https://api.example/r", access_token=token)))
        return made

    signed = [pair for batch in in_threads(threads, sign) for pair in batch]
    assert len({token for token, _ in signed}) == len(signed)
    embedded = ECKey.import_key(dict(key.public_jwk))
    jtis = set()
    for token, proof in signed:
        decoded = jwt.decode(proof, embedded, algorithms=["ES256"])
        assert decoded.header["jwk"] == dict(key.public_jwk)
        assert decoded.claims["ath"] == access_token_hash(token)
        jtis.add(decoded.claims["jti"])
    assert len(signed) >= 10_000
    assert len(jtis) == len(signed)


def test_nonce_is_remembered_per_origin() -> None:
    """A DPoP-Nonce goes into later proofs for the same origin only; a given nonce wins."""
    key = DPoPKey()
    assert key.remember_nonce("https://as.example/token?x", {"dpop-nonce": "n-1"}) == "n-1"
    assert key.remember_nonce("https://as.example/token", {}) is None
    assert key.nonce_for("https://AS.example/other") == "n-1"
    assert key.nonce_for("https://api.example/r") is None
    claims = _verified(key.proof("GET", "https://as.example/x"), key).claims
    assert claims["nonce"] == "n-1"
    assert "nonce" not in _verified(key.proof("GET", "https://api.example/x"), key).claims
    given = _verified(key.proof("GET", "https://as.example/x", nonce="n-2"), key).claims
    assert given["nonce"] == "n-2"


def test_a_callers_rsa_key_signs_rs256_proofs() -> None:
    """A caller's RSA key signs RS256 proofs, and its thumbprint is RFC 7638's."""
    rsa = RSAKey.generate_key(2048)
    key = DPoPKey(rsa.as_pem(private=True), alg="RS256")
    assert key.thumbprint == rsa.thumbprint()
    assert _verified(key.proof("GET", "https://api.example/r"), key).header["alg"] == "RS256"


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (None, "HS256"),
        (None, 256),
        ("not a key", "ES256"),
        (OctKey.generate_key(256), "ES256"),
    ],
)
def test_bad_keys_and_algorithms_are_configuration_errors(key: object, alg: Any) -> None:
    """A symmetric algorithm, a non-string alg or an unusable key is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        DPoPKey(key, alg=alg)


def test_a_public_key_is_refused() -> None:
    """A public key cannot sign proofs: ConfigurationError."""
    public = ECKey.generate_key("P-256").as_dict(private=False)
    with pytest.raises(ConfigurationError, match="public key"):
        DPoPKey(public)


def test_relative_url_is_a_configuration_error() -> None:
    """A proof needs an absolute http(s) URL."""
    with pytest.raises(ConfigurationError):
        DPoPKey().proof("GET", "/relative")


def test_check_binding_refuses_a_token_bound_to_another_key() -> None:
    """cnf.jkt of another key is a TokenResponseError; the key's own or none passes."""
    key = DPoPKey()
    mine = {"access_token": "a", "token_type": "DPoP", "cnf": {"jkt": key.thumbprint}}
    key.check_binding(TokenData.from_response(mine))
    key.check_binding(TokenData.from_response({"access_token": "a", "token_type": "Bearer"}))
    other = {**mine, "cnf": {"jkt": DPoPKey().thumbprint}}
    with pytest.raises(TokenResponseError, match="another key"):
        key.check_binding(TokenData.from_response(other))


def test_proofs_and_the_private_key_stay_secret() -> None:
    """The DPoP header is secret by name, the private key is never in repr or logs."""
    given = ECKey.generate_key("P-256")
    key = DPoPKey(given)
    private = given.as_dict(private=True)["d"]
    assert is_secret_header("DPoP")
    assert private not in repr(key)
    assert private not in redact_text(f"key {private} here")


def test_a_step_proves_its_resolved_endpoint_and_hashes_a_dpop_bearer(
    forge_responses: responses.RequestsMock,
) -> None:
    """A pipeline step's proof names its endpoint resolved against the client's base_url,
    and carries ath when the token it authenticates with is a DPoP token."""
    key = DPoPKey()
    forge_responses.get("https://idp.example/login", headers={"X-Token": "bound-1"})
    forge_responses.post("https://api.example/v1/token", json={"access_token": "second"})
    base = HttpClient(HttpClientConfigBuilder().with_base_url("https://api.example/v1").build())
    pipeline = TokenFetchPipeline(
        [
            HeaderTokenFetcher(
                "login",
                "https://idp.example/login",
                method="GET",
                header_name="X-Token",
                token_type="DPoP",
                dpop=key,
            ),
            BodyTokenFetcher("data", "token", depends_on=["login"], client=base, dpop=key),
        ]
    )
    assert pipeline.execute().access_token == "second"
    login, data = (_verified(c.request.headers["DPoP"], key) for c in forge_responses.calls)
    assert (login.claims["htm"], login.claims["htu"]) == ("GET", "https://idp.example/login")
    assert "ath" not in login.claims
    assert (data.claims["htm"], data.claims["htu"]) == ("POST", "https://api.example/v1/token")
    assert data.claims["ath"] == access_token_hash("bound-1")
    assert forge_responses.calls[1].request.headers["Authorization"] == "DPoP bound-1"
    base.close()


def test_the_key_is_part_of_the_tokens_identity() -> None:
    """Providers alike but for their DPoP key name different tokens (a bound token is useless
    with another key), and the same key names the same token."""
    key = DPoPKey()

    def provider(dpop: DPoPKey | None) -> str:
        made = ClientCredentialsTokenProvider("https://as.example/token", "c", "s", dpop=dpop)
        made.close()
        return made.service_name

    names = {provider(None), provider(key), provider(DPoPKey())}
    assert len(names) == 3
    assert provider(key) == provider(key)
    assert key.thumbprint in provider(key)


@pytest.mark.parametrize(
    "make",
    [
        lambda dpop: ClientCredentialsTokenProvider("https://as.example/t", "c", "s", dpop=dpop),
        lambda dpop: BodyTokenFetcher("step", "https://as.example/t", dpop=dpop),
    ],
    ids=["provider", "pipeline-step"],
)
def test_a_dpop_that_is_not_a_key_is_a_configuration_error(make: Any) -> None:
    """dpop= takes a DPoPKey: anything else (a PEM string, a JWK dict) is refused when the
    provider or step is built, naming the option and never quoting the value."""
    for wrong in ("-----BEGIN PRIVATE KEY-----", {"kty": "EC"}):
        with pytest.raises(ConfigurationError, match="dpop") as caught:
            make(wrong)
        assert "BEGIN" not in str(caught.value)  # a key given wrongly is still not shown
