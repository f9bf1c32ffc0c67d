"""Tests for RFC 7009 revocation and RFC 7662 introspection on the OAuth 2.0 providers and
TokenManager.revoke() / close(), against mocked endpoints."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from requestforge import (
    AuthorizationServer,
    ClientClosedError,
    ClientCredentialsTokenProvider,
    ConfigurationError,
    CustomGrantTokenProvider,
    InMemoryTokenStorage,
    Introspection,
    PasswordGrantTokenProvider,
    TokenData,
    TokenEndpointError,
    TokenManager,
    TokenResponseError,
)

Mock = responses.RequestsMock

ISSUER = "https://auth.example.com"
TOKEN_URL = ISSUER + "/oauth/token"
REVOKE_URL = ISSUER + "/oauth/revoke"
INTROSPECT_URL = ISSUER + "/oauth/introspect"
SECRET = "s3cr3t-Client-Value"
TOKEN_JSON = {
    "access_token": "at-secret-1",
    "token_type": "Bearer",
    "expires_in": 3600,
    "refresh_token": "rt-secret-1",
}


def _cc(**options: Any) -> ClientCredentialsTokenProvider:
    options.setdefault("revocation_url", REVOKE_URL)
    options.setdefault("introspection_url", INTROSPECT_URL)
    return ClientCredentialsTokenProvider(TOKEN_URL, "client-1", SECRET, max_retries=0, **options)


def _form(mock: Mock, index: int) -> dict[str, list[str]]:
    body = mock.calls[index].request.body
    assert isinstance(body, str)
    return parse_qs(body)


def _basic(mock: Mock, index: int) -> str:
    return mock.calls[index].request.headers["Authorization"]


def test_revoke_token_posts_the_token_with_the_token_requests_basic_auth(
    forge_responses: Mock,
) -> None:
    """revoke_token() sends token and hint to the revocation URL with the same Basic header
    a token request carries."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    forge_responses.post(REVOKE_URL, body="")
    provider = _cc()
    provider.fetch_token()
    provider.revoke_token("rt-secret-1", token_type_hint="refresh_token")
    assert _form(forge_responses, 1) == {
        "token": ["rt-secret-1"],
        "token_type_hint": ["refresh_token"],
    }
    assert _basic(forge_responses, 1) == _basic(forge_responses, 0)
    expected = base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    assert _basic(forge_responses, 1) == f"Basic {expected}"


def test_revoke_token_with_body_auth_sends_the_client_credentials_in_the_form(
    forge_responses: Mock,
) -> None:
    """client_secret_post puts client_id and client_secret in the revocation form too."""
    forge_responses.post(REVOKE_URL, body="")
    _cc(client_auth="body").revoke_token(TokenData(access_token="at-x"))
    form = _form(forge_responses, 0)
    assert form == {
        "token": ["at-x"],
        "token_type_hint": ["access_token"],
        "client_id": ["client-1"],
        "client_secret": [SECRET],
    }
    assert "Authorization" not in forge_responses.calls[0].request.headers


def test_revoke_token_without_a_url_names_the_missing_option() -> None:
    """A provider built without revocation_url raises ConfigurationError naming it."""
    provider = ClientCredentialsTokenProvider(TOKEN_URL, "client-1", SECRET)
    with pytest.raises(ConfigurationError, match="revocation_url"):
        provider.revoke_token("at")
    with pytest.raises(ConfigurationError, match="introspection_url"):
        provider.introspect("at")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("revocation_url", "ftp://x/revoke"),
        ("introspection_url", "/relative"),
        ("revocation_url", 3),
    ],
)
def test_bad_endpoint_urls_are_configuration_errors(option: str, value: Any) -> None:
    """Endpoint URLs must be absolute http(s) URLs."""
    with pytest.raises(ConfigurationError, match=option):
        ClientCredentialsTokenProvider(TOKEN_URL, "c", SECRET, **{option: value})


@pytest.mark.parametrize("token", ["", None, 5])
def test_revoke_token_rejects_a_non_token(token: object) -> None:
    """The token must be a non-empty string or a TokenData."""
    with pytest.raises(ConfigurationError, match="token must be"):
        _cc().revoke_token(token)  # type: ignore[arg-type]


def test_revoke_token_rejects_an_unknown_hint() -> None:
    """token_type_hint is access_token, refresh_token or None."""
    with pytest.raises(ConfigurationError, match="token_type_hint"):
        _cc().revoke_token("at", token_type_hint="id_token")  # type: ignore[arg-type]


def test_a_refused_revocation_is_a_typed_error_with_the_secrets_scrubbed(
    forge_responses: Mock,
) -> None:
    """A 400 becomes a TokenEndpointError with the server's error; the token and the client
    secret echoed in error_description never reach the message."""
    forge_responses.post(
        REVOKE_URL,
        status=400,
        json={
            "error": "unsupported_token_type",
            "error_description": f"cannot revoke at-secret-9 for {SECRET}",
        },
    )
    with pytest.raises(TokenEndpointError) as caught:
        _cc().revoke_token("at-secret-9")
    error = caught.value
    assert (error.error, error.status_code, error.transient) == (
        "unsupported_token_type",
        400,
        False,
    )
    assert "at-secret-9" not in str(error)
    assert SECRET not in str(error)
    assert "revoking a token" in str(error)


def test_a_503_revocation_is_transient(forge_responses: Mock) -> None:
    """RFC 7009 section 2.2.1: a 503 means try later, so the error says transient."""
    forge_responses.post(REVOKE_URL, status=503, json={"error": "temporarily_unavailable"})
    with pytest.raises(TokenEndpointError) as caught:
        _cc().revoke_token("at")
    assert caught.value.transient


def test_an_unreachable_revocation_endpoint_is_a_transient_token_endpoint_error(
    forge_responses: Mock,
) -> None:
    """A connection error is a transient TokenEndpointError, not a requests exception."""
    forge_responses.post(REVOKE_URL, body=requests.ConnectionError("refused at-secret-2"))
    with pytest.raises(TokenEndpointError, match="could not be reached") as caught:
        _cc().revoke_token("at-secret-2")
    assert caught.value.transient
    assert "at-secret-2" not in str(caught.value)


def test_a_revocation_redirect_is_not_followed(forge_responses: Mock) -> None:
    """A 307 would re-post the token and credentials elsewhere: it is an error."""
    forge_responses.post(REVOKE_URL, status=307, headers={"Location": "https://evil.example/x"})
    with pytest.raises(TokenEndpointError, match="do not follow redirects"):
        _cc().revoke_token("at")
    assert len(forge_responses.calls) == 1


def test_introspect_reads_every_field(forge_responses: Mock) -> None:
    """An active answer becomes an Introspection with datetimes, a tuple aud and raw."""
    answer = {
        "active": True,
        "scope": "read write",
        "client_id": "client-1",
        "username": "ann",
        "token_type": "Bearer",
        "exp": 2_000_000_000,
        "iat": 1_999_996_400,
        "sub": "ann",
        "aud": "https://api.example.com",
        "iss": ISSUER,
        "vendor": {"x": 1},
    }
    forge_responses.post(INTROSPECT_URL, json=answer)
    result = _cc().introspect("at-1")
    assert result == Introspection(
        active=True,
        scope="read write",
        client_id="client-1",
        username="ann",
        token_type="Bearer",
        exp=datetime.fromtimestamp(2_000_000_000, tz=timezone.utc),
        iat=datetime.fromtimestamp(1_999_996_400, tz=timezone.utc),
        sub="ann",
        aud=("https://api.example.com",),
        iss=ISSUER,
    )
    assert result.raw["vendor"] == {"x": 1}
    assert _form(forge_responses, 0) == {"token": ["at-1"]}


def test_an_inactive_or_odd_answer_is_inactive_with_empty_fields(forge_responses: Mock) -> None:
    """Only a JSON true is active; wrongly typed fields are None, an aud list a tuple."""
    forge_responses.post(
        INTROSPECT_URL, json={"active": "true", "exp": "soon", "scope": 3, "aud": ["a", 1, "b"]}
    )
    result = _cc().introspect("at")
    assert (result.active, result.exp, result.scope, result.aud) == (False, None, None, ("a", "b"))


@pytest.mark.parametrize(
    ("body", "content_type"), [("<html>", "text/html"), ("[1, 2]", "application/json")]
)
def test_an_introspection_answer_that_is_not_a_json_object_is_a_response_error(
    forge_responses: Mock, body: str, content_type: str
) -> None:
    """HTML or a JSON array is a TokenResponseError."""
    forge_responses.post(INTROSPECT_URL, body=body, content_type=content_type)
    with pytest.raises(TokenResponseError, match="introspection endpoint"):
        _cc().introspect("at")


def test_the_grants_take_the_endpoint_options() -> None:
    """The providers in _grants.py accept and expose revocation_url / introspection_url."""
    provider = CustomGrantTokenProvider(
        TOKEN_URL,
        "c",
        SECRET,
        grant_type="urn:example:grant",
        revocation_url=REVOKE_URL,
        introspection_url=INTROSPECT_URL,
    )
    assert (provider.revocation_url, provider.introspection_url) == (REVOKE_URL, INTROSPECT_URL)
    password = PasswordGrantTokenProvider(
        TOKEN_URL, "c", SECRET, "u", "p", revocation_url=REVOKE_URL
    )
    assert (password.revocation_url, password.introspection_url) == (REVOKE_URL, None)


def test_from_issuer_fills_the_endpoints_from_the_metadata(forge_responses: Mock) -> None:
    """from_issuer() takes revocation_endpoint and introspection_endpoint from the document,
    fetched once; an explicit option wins."""
    document = {
        "issuer": ISSUER,
        "token_endpoint": TOKEN_URL,
        "revocation_endpoint": REVOKE_URL,
        "introspection_endpoint": INTROSPECT_URL,
    }
    forge_responses.get(ISSUER + "/.well-known/openid-configuration", json=document)
    provider = ClientCredentialsTokenProvider.from_issuer(ISSUER, "c", SECRET)
    assert (provider.revocation_url, provider.introspection_url) == (REVOKE_URL, INTROSPECT_URL)
    assert len(forge_responses.calls) == 1
    with AuthorizationServer(ISSUER) as server:
        forge_responses.get(ISSUER + "/.well-known/openid-configuration", json=document)
        mine = ClientCredentialsTokenProvider.from_issuer(
            server, "c", SECRET, revocation_url=ISSUER + "/mine"
        )
    assert (mine.revocation_url, mine.introspection_url) == (ISSUER + "/mine", INTROSPECT_URL)


def test_from_issuer_without_the_endpoints_leaves_them_unset(forge_responses: Mock) -> None:
    """Metadata without the endpoints gives a provider whose revoke_token names the option."""
    forge_responses.get(
        ISSUER + "/.well-known/openid-configuration",
        json={"issuer": ISSUER, "token_endpoint": TOKEN_URL},
    )
    provider = ClientCredentialsTokenProvider.from_issuer(ISSUER, "c", SECRET)
    with pytest.raises(ConfigurationError, match="revocation_url"):
        provider.revoke_token("at")


# -- TokenManager.revoke() and close() --------------------------------------------------------


def _manager(forge_responses: Mock) -> tuple[TokenManager, InMemoryTokenStorage]:
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    storage = InMemoryTokenStorage()
    manager = TokenManager(_cc(), storage)
    manager.get_token()
    return manager, storage


def test_manager_revoke_revokes_refresh_then_access_and_deletes_the_token(
    forge_responses: Mock,
) -> None:
    """revoke() sends the refresh token first, then the access token, and the storage is
    empty afterwards, so the next call fetches."""
    manager, storage = _manager(forge_responses)
    forge_responses.post(REVOKE_URL, body="")
    manager.revoke()
    assert _form(forge_responses, 1) == {
        "token": ["rt-secret-1"],
        "token_type_hint": ["refresh_token"],
    }
    assert _form(forge_responses, 2) == {
        "token": ["at-secret-1"],
        "token_type_hint": ["access_token"],
    }
    assert storage.get(manager.cache_key) is None
    manager.get_token()
    assert [call.request.url for call in forge_responses.calls].count(TOKEN_URL) == 2


def test_manager_revoke_deletes_the_token_even_when_the_server_fails(
    forge_responses: Mock,
) -> None:
    """When the refresh-token revocation fails, the access token is still revoked, the token
    deleted, and the first error raised."""
    manager, storage = _manager(forge_responses)
    forge_responses.post(REVOKE_URL, status=400, json={"error": "invalid_request"})
    forge_responses.post(REVOKE_URL, body="")
    with pytest.raises(TokenEndpointError, match="invalid_request"):
        manager.revoke()
    assert len(forge_responses.calls) == 3
    assert storage.get(manager.cache_key) is None


def test_manager_revoke_with_nothing_stored_sends_nothing(forge_responses: Mock) -> None:
    """No stored token: nothing to revoke, no request."""
    TokenManager(_cc()).revoke()
    assert len(forge_responses.calls) == 0


def test_manager_revoke_without_a_revocation_url_is_a_configuration_error() -> None:
    """A provider without revocation_url makes revoke() raise even with nothing stored."""
    manager = TokenManager(ClientCredentialsTokenProvider(TOKEN_URL, "c", SECRET))
    with pytest.raises(ConfigurationError, match="revocation_url"):
        manager.revoke()


def test_manager_revoke_needs_a_provider_that_can_revoke(forge_token_provider: Any) -> None:
    """A provider with no revoke_token() method cannot revoke."""
    with pytest.raises(ConfigurationError, match="cannot revoke"):
        TokenManager(forge_token_provider).revoke()


def test_close_with_revoke_revokes_and_closes_the_provider(forge_responses: Mock) -> None:
    """close(revoke=True) revokes both tokens, then closes the provider's own client."""
    manager, storage = _manager(forge_responses)
    forge_responses.post(REVOKE_URL, body="")
    manager.close(revoke=True)
    assert len(forge_responses.calls) == 3
    assert storage.get(manager.cache_key) is None
    provider = manager.provider
    assert isinstance(provider, ClientCredentialsTokenProvider)
    with pytest.raises(ClientClosedError):
        provider.client.get(ISSUER)


def test_close_without_revoke_keeps_the_token(forge_responses: Mock) -> None:
    """close() alone sends nothing and leaves the stored token (another process may use it)."""
    manager, storage = _manager(forge_responses)
    manager.close()
    assert len(forge_responses.calls) == 1
    assert storage.get(manager.cache_key) is not None
