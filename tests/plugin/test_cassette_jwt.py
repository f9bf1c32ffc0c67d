"""Structural matching of signed JWTs in cassettes: what the summary of a DPoP proof or a
client assertion keeps and hides, how a replay compares it, and that cassettes holding bare
placeholders (recorded before summaries) still replay."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import requests
from joserfc.jwk import ECKey, RSAKey

from requestforge import ClientCredentialsTokenProvider, DPoPKey, PrivateKeyJwt
from requestforge_testing import CassetteMismatchError, ForgeCassette, OAuthServer
from requestforge_testing._cassette_jwt import HIDDEN, JwtSummary, split_summary, summarise
from requestforge_testing._cassette_match import RequestView, compare
from requestforge_testing._scrubbing import SecretScrubber, is_placeholder

#: What earlier tests declared secret must not change what these tests see kept.
pytestmark = pytest.mark.usefixtures("forge_secrets")

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOKEN_URL = "http://127.0.0.1:8123/oauth/token"
FORM = "application/x-www-form-urlencoded"
CLIENT = ("forge-client", "forge-secret")
JWT_CLIENT = "jwt-client"
RSA_PEM = RSAKey.generate_key(2048).as_pem(private=True)


def _b64(members: dict[str, object]) -> str:
    raw = json.dumps(members).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _stored_proof(scrubber: SecretScrubber, key: DPoPKey, method: str, url: str, **kw: str) -> str:
    return scrubber.header("DPoP", key.proof(method, url, now=NOW, **kw))


# -- the summary ---------------------------------------------------------------------------


def test_a_proof_keeps_its_shape_and_purpose_and_hides_the_rest() -> None:
    """alg, typ, the jwk's kty and crv, htm and htu (loopback normalised) stay; jti, iat,
    ath and nonce keep only their names; no key member, token, nonce or signature is in it."""
    scrubber = SecretScrubber()
    key = DPoPKey()
    proof = key.proof("GET", TOKEN_URL + "?q=1", access_token="tok-123456", nonce="n-987654")
    stored = scrubber.header("DPoP", proof)
    placeholder, summary = split_summary(stored)
    assert (placeholder, is_placeholder(stored)) == ("forge-scrubbed-1", True)
    assert summary == JwtSummary(
        {"alg": "ES256", "typ": "dpop+jwt", "jwk": {"kty": "EC", "crv": "P-256"}},
        {
            "htm": "GET",
            "htu": "http://loopback-1.invalid/oauth/token",
            "iat": HIDDEN,
            "jti": HIDDEN,
            "ath": HIDDEN,
            "nonce": HIDDEN,
        },
    )
    leaked = [key.public_jwk["x"], key.public_jwk["y"], "n-987654", "eyJ", proof.split(".")[2]]
    assert [value for value in leaked if value in stored] == []
    assert scrubber.text(f"echo {proof}") == "echo forge-scrubbed-1"  # elsewhere: bare


def test_an_assertion_keeps_who_and_for_whom() -> None:
    """A private_key_jwt assertion in a form keeps alg, typ, kid, iss, sub and aud; exp,
    iat and jti are names only; scrubbing the stored form again changes nothing."""
    scrubber = SecretScrubber()
    method = PrivateKeyJwt(RSA_PEM, alg="RS256", kid="key-1")
    signed = method.assertion(client_id=JWT_CLIENT, token_url=TOKEN_URL, now=NOW)
    body = f"grant_type=client_credentials&client_assertion={signed}".encode()
    stored = scrubber.body(body, FORM)
    assert scrubber.body(stored, FORM) == stored
    value = dict(parse_qsl(stored.decode()))["client_assertion"]
    assert split_summary(value) == (
        "forge-scrubbed-1",
        JwtSummary(
            {"alg": "RS256", "typ": "JWT", "kid": "key-1"},
            {
                "iss": JWT_CLIENT,
                "sub": JWT_CLIENT,
                "aud": "http://loopback-1.invalid/oauth/token",
                "jti": HIDDEN,
                "iat": HIDDEN,
                "exp": HIDDEN,
            },
        ),
    )


def test_a_declared_secret_inside_a_kept_value_is_scrubbed() -> None:
    """A kept claim value goes through the scrubber like any text: a known secret in it
    becomes its placeholder, in the first summary and when stored ones are scrubbed again."""
    scrubber = SecretScrubber()
    scrubber.header("Authorization", "Bearer tok-abcdef123")
    header, claims = _b64({"alg": "ES256"}), _b64({"sub": "tok-abcdef123", "htm": "POST"})
    stored = scrubber.header("DPoP", f"{header}.{claims}.c2ln")
    assert split_summary(stored)[1] == JwtSummary(
        {"alg": "ES256"}, {"sub": "forge-scrubbed-1", "htm": "POST"}
    )
    later = SecretScrubber()
    later.header("Authorization", "Bearer secret-in-a-kept-claim")
    leaky = 'forge-scrubbed-4 jwt{"alg":"ES256"}.{"sub":"secret-in-a-kept-claim"}'
    assert (
        later.header("DPoP", leaky)
        == 'forge-scrubbed-4 jwt{"alg":"ES256"}.{"sub":"forge-scrubbed-1"}'
    )


def test_a_kept_url_is_scrubbed_as_a_url() -> None:
    """An htu or aud with a secret query parameter keeps the name and hides the value, as
    the request URL does, even before the URL itself is scrubbed."""
    scrubber = SecretScrubber()
    url = "http://127.0.0.1:8123/api?api_key=k-7f3a9c21&page=2"
    claims = _b64({"htm": "GET", "htu": url, "aud": [url, "https://other.example"]})
    stored = scrubber.header("DPoP", f"{_b64({'alg': 'ES256'})}.{claims}.c2ln")
    kept = "http://loopback-1.invalid/api?api_key=forge-scrubbed-2&page=2"
    assert split_summary(stored)[1] == JwtSummary(
        {"alg": "ES256"}, {"htm": "GET", "htu": kept, "aud": [kept, "https://other.example"]}
    )
    assert "k-7f3a9c21" not in stored


@pytest.mark.parametrize(
    "value",
    [
        "opaque-secret-value",
        "a.b",
        f"{_b64({'alg': 'RSA-OAEP'})}.{_b64({})}.c.d.e",  # a JWE: five parts
        f"{_b64({'typ': 'JWT'})}.{_b64({'iss': 'x'})}.c2ln",  # no alg
        f"{_b64({'alg': 'ES256'})}.{base64.urlsafe_b64encode(b'not json').decode()}.c2ln",
    ],
)
def test_a_value_that_is_not_a_jws_gets_a_bare_placeholder(value: str) -> None:
    """Only a compact JWS with JSON header (with alg) and claims is summarised."""
    assert summarise(value, str) is None
    assert SecretScrubber().header("DPoP", value) == "forge-scrubbed-1"


# -- comparing summaries -------------------------------------------------------------------


def view(body: bytes = b"", **headers: str) -> RequestView:
    """A POST form request to the loopback token endpoint, as stored."""
    uri = "http://loopback-1.invalid/oauth/token"
    return RequestView.of("POST", uri, {"Content-Type": FORM, **headers}, body)


def test_a_proof_for_another_method_url_or_without_its_nonce_is_a_jwt_difference() -> None:
    """htm, htu and the nonce claim are compared, each named in plain words; jti, iat and
    the signature never are, so a fresh proof for the same request matches."""
    scrubber, key = SecretScrubber(), DPoPKey()
    recorded = view(DPoP=_stored_proof(scrubber, key, "POST", TOKEN_URL, nonce="n1"))
    fresh = view(DPoP=_stored_proof(scrubber, key, "POST", TOKEN_URL, nonce="n2"))
    other_url = TOKEN_URL.replace("/oauth/token", "/other")
    wrong = view(DPoP=_stored_proof(scrubber, key, "GET", other_url))
    assert compare(recorded, fresh) == []
    assert [str(d) for d in compare(recorded, wrong)] == [
        "jwt: DPoP header: claim nonce not sent, claim htm 'POST' -> 'GET', claim htu "
        "'http://loopback-1.invalid/oauth/token' -> 'http://loopback-1.invalid/other'"
    ]


def test_an_assertion_with_another_alg_or_audience_is_a_jwt_difference_only() -> None:
    """The assertion's alg and aud are compared under jwt; the body sees only that a
    secret was there, so it reports nothing twice."""
    scrubber = SecretScrubber()
    rs256 = PrivateKeyJwt(RSA_PEM, alg="RS256")
    es256 = PrivateKeyJwt(ECKey.generate_key("P-256").as_pem(private=True), alg="ES256")
    issuer = PrivateKeyJwt(RSA_PEM, alg="RS256", audience="https://issuer.example")

    def form(method: PrivateKeyJwt) -> RequestView:
        signed = method.assertion(client_id=JWT_CLIENT, token_url=TOKEN_URL, now=NOW)
        return view(
            scrubber.body(f"grant_type=client_credentials&client_assertion={signed}".encode(), FORM)
        )

    recorded = form(rs256)
    assert compare(recorded, form(rs256)) == []
    assert [str(d) for d in compare(recorded, form(es256))] == [
        "jwt: client_assertion field: header alg 'RS256' -> 'ES256'"
    ]
    assert [str(d) for d in compare(recorded, form(issuer))] == [
        "jwt: client_assertion field: claim aud 'http://loopback-1.invalid/oauth/token' -> "
        "'https://issuer.example'"
    ]
    assert compare(recorded, form(es256), ("body",)) == []  # match_on without jwt: as before


def test_a_bare_placeholder_from_an_older_cassette_matches_any_jwt() -> None:
    """A cassette recorded before summaries promised only a secret: any proof or assertion
    matches it; a recorded summary does not match a value that is not a JWT."""
    scrubber = SecretScrubber()
    live = view(
        b"client_assertion=forge-scrubbed-7",
        DPoP=_stored_proof(scrubber, DPoPKey(), "POST", TOKEN_URL),
    )
    old = view(b"client_assertion=forge-scrubbed-1", DPoP="forge-scrubbed-2")
    assert compare(old, live) == []
    assert [str(d) for d in compare(live, old)] == [
        "jwt: DPoP header: recorded a JWT, sent a value that is not one"
    ]


def test_a_proof_header_must_be_sent_where_recorded_and_only_there() -> None:
    """A recorded proof that is not sent, or a proof the recording had none of, is named."""
    with_proof = view(DPoP=_stored_proof(SecretScrubber(), DPoPKey(), "POST", TOKEN_URL))
    assert [str(d) for d in compare(with_proof, view())] == ["jwt: DPoP header: not sent"]
    assert [str(d) for d in compare(view(), with_proof)] == ["jwt: DPoP header: not recorded"]


# -- through a cassette --------------------------------------------------------------------


def _token_request(server: OAuthServer, proof: str | None) -> requests.Response:
    headers = {} if proof is None else {"DPoP": proof}
    data = {"grant_type": "client_credentials"}
    return requests.post(server.token_url, data=data, auth=CLIENT, headers=headers, timeout=5)


def test_a_replayed_proof_is_matched_by_its_structure(
    forge_oauth_server: OAuthServer, tmp_path: Path
) -> None:
    """Recorded once; a fresh proof for the same request replays, one for GET is refused
    with the claim named, and the server is asked nothing on replay."""
    forge_oauth_server.dpop_required = True
    path, key = tmp_path / "dpop.yaml", DPoPKey()
    with ForgeCassette(path, record_mode="once"):
        assert _token_request(
            forge_oauth_server, key.proof("POST", forge_oauth_server.token_url)
        ).ok
    stored = path.read_text(encoding="utf-8")
    assert '"htm":"POST"' in stored
    assert key.public_jwk["x"] not in stored
    forge_oauth_server.reset()
    with ForgeCassette(path, record_mode="none") as cassette:
        assert _token_request(
            forge_oauth_server, key.proof("POST", forge_oauth_server.token_url)
        ).ok
    assert cassette.all_played
    proof = key.proof("GET", forge_oauth_server.token_url)
    with pytest.raises(CassetteMismatchError) as caught, ForgeCassette(path, record_mode="none"):
        _token_request(forge_oauth_server, proof)
    assert [str(d) for d in caught.value.differences] == [
        "jwt: DPoP header: claim htm 'POST' -> 'GET'"
    ]
    assert forge_oauth_server.token_requests == []
    assert path.read_text(encoding="utf-8") == stored


def test_a_replayed_assertion_with_another_alg_is_refused(
    forge_oauth_server: OAuthServer, tmp_path: Path
) -> None:
    """A private_key_jwt flow recorded with RS256 replays with a new RS256 key and refuses
    an ES256 one, naming the header member."""
    path = tmp_path / "assertion.yaml"
    recorded_method = PrivateKeyJwt(RSA_PEM, alg="RS256")
    forge_oauth_server.add_client(JWT_CLIENT, keys=recorded_method.public_jwk())

    def fetch(method: PrivateKeyJwt) -> None:
        provider = ClientCredentialsTokenProvider(
            forge_oauth_server.token_url, JWT_CLIENT, None, client_auth=method
        )
        try:
            provider.fetch_token()
        finally:
            provider.close()

    with ForgeCassette(path, record_mode="once"):
        fetch(recorded_method)
    with ForgeCassette(path, record_mode="none") as cassette:
        fetch(PrivateKeyJwt(RSAKey.generate_key(2048).as_pem(private=True), alg="RS256"))
    assert cassette.all_played
    es256 = PrivateKeyJwt(ECKey.generate_key("P-256").as_pem(private=True), alg="ES256")
    with pytest.raises(CassetteMismatchError) as caught, ForgeCassette(path, record_mode="none"):
        fetch(es256)
    assert [str(d) for d in caught.value.differences] == [
        "jwt: client_assertion field: header alg 'RS256' -> 'ES256'"
    ]
    assert len(forge_oauth_server.token_requests) == 1  # the recording only
