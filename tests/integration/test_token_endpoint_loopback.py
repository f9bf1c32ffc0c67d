"""Token endpoints over loopback: redirects are refused, and errors quote no secret.

``forge_api_server`` plays the token endpoint that redirects; ``forge_oauth_server`` (another
port, so another origin) is where it points: a real token endpoint that would issue a token
for the re-posted form, so "it received nothing" is the proof that nothing was re-sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    FetchContext,
    HeaderTokenFetcher,
    HttpClient,
    InMemoryTokenStorage,
    PasswordGrantTokenProvider,
    PipelineStepError,
    TokenData,
    TokenEndpointError,
    TokenFetchPipeline,
    TokenManager,
)
from requestforge.tokens._fetchers import _sent_secrets
from requestforge_testing import ApiServer, OAuthServer, Reply

CLIENT_ID, SECRET = "forge-client", "forge-secret"
USER, PASSWORD = "forge-user", "forge-password"
REDIRECTS = [301, 302, 303, 307, 308]
#: A query canary on the Location: the error names the origin only, never path or query.
CANARY = "loc-canary-7f3a"

Provider = ClientCredentialsTokenProvider | PasswordGrantTokenProvider


def _redirect(status: int, oauth: OAuthServer) -> Reply:
    return Reply(status, headers={"Location": f"{oauth.token_url}?hint={CANARY}"})


def _assert_refused(error: TokenEndpointError, status: int, oauth: OAuthServer) -> None:
    text = str(error)
    assert error.status_code == status
    assert error.transient is False
    assert f"answered {status}" in text
    assert f"redirecting to {oauth.url}" in text  # scheme://host:port of the Location
    assert "/oauth/token" not in text
    assert CANARY not in text
    assert oauth.token_requests == []


PROVIDERS: dict[str, Callable[[str, HttpClient | None], Provider]] = {
    "client_credentials basic": lambda url, client: ClientCredentialsTokenProvider(
        url, CLIENT_ID, SECRET, client=client
    ),
    "client_credentials body": lambda url, client: ClientCredentialsTokenProvider(
        url, CLIENT_ID, SECRET, client_auth="body", client=client
    ),
    "password body": lambda url, client: PasswordGrantTokenProvider(
        url, CLIENT_ID, SECRET, USER, PASSWORD, client_auth="body", client=client
    ),
}


@pytest.mark.parametrize("kind", list(PROVIDERS))
@pytest.mark.parametrize("status", [*REDIRECTS, 300])
def test_a_provider_refuses_a_redirect_and_stores_nothing(
    forge_api_server: ApiServer, forge_oauth_server: OAuthServer, kind: str, status: int
) -> None:
    """A 3xx from the token endpoint is a permanent TokenEndpointError naming the status and
    the Location's origin; the other origin gets nothing and the manager stores nothing."""
    forge_api_server.add("/token", _redirect(status, forge_oauth_server))
    provider = PROVIDERS[kind](forge_api_server.url_for("/token"), None)
    storage = InMemoryTokenStorage()
    manager = TokenManager(provider, storage)
    with pytest.raises(TokenEndpointError) as caught:
        manager.get_token()
    _assert_refused(caught.value, status, forge_oauth_server)
    assert len(forge_api_server.requests_to("/token")) == 1  # not retried either
    assert not storage.exists(manager.cache_key)
    provider.close()


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_clients_own_client_does_not_follow_either(
    forge_api_server: ApiServer, forge_oauth_server: OAuthServer, status: int
) -> None:
    """A provider sending through the caller's HttpClient (which follows redirects for API
    calls) still sends the token request with allow_redirects=False."""
    forge_api_server.add("/token", _redirect(status, forge_oauth_server))
    with HttpClient() as client:
        provider = PROVIDERS["client_credentials body"](forge_api_server.url_for("/token"), client)
        with pytest.raises(TokenEndpointError) as caught:
            provider.fetch_token()
    _assert_refused(caught.value, status, forge_oauth_server)


@pytest.mark.parametrize("status", REDIRECTS)
def test_the_refresh_grant_refuses_a_redirect(
    forge_api_server: ApiServer, forge_oauth_server: OAuthServer, status: int
) -> None:
    """refresh_token() posting the refresh token meets a redirect: refused, nothing re-sent."""
    issued = {"access_token": "at-first-1234", "token_type": "Bearer", "expires_in": 60}
    issued["refresh_token"] = "rt-first-1234"
    forge_api_server.add("/token", Reply(json=issued), _redirect(status, forge_oauth_server))
    provider = PROVIDERS["password body"](forge_api_server.url_for("/token"), None)
    token = provider.fetch_token()
    with pytest.raises(TokenEndpointError) as caught:
        provider.refresh_token(token)
    _assert_refused(caught.value, status, forge_oauth_server)
    assert len(forge_api_server.requests_to("/token")) == 2
    provider.close()


@pytest.mark.parametrize("fetcher", ["header", "body"])
@pytest.mark.parametrize("status", REDIRECTS)
def test_pipeline_fetchers_refuse_a_redirect(
    forge_api_server: ApiServer, forge_oauth_server: OAuthServer, fetcher: str, status: int
) -> None:
    """A pipeline step's token endpoint answering 3xx fails the step with a TokenEndpointError
    naming the status and origin; nothing goes to the other origin, nothing is stored."""
    forge_api_server.add("/login", Reply(204, headers={"X-Auth-Token": "login-token-5150"}))
    forge_api_server.add("/token", _redirect(status, forge_oauth_server))
    with HttpClient() as client:
        login = HeaderTokenFetcher("login", forge_api_server.url_for("/login"), client=client)
        url = forge_api_server.url_for("/token")
        step = (
            HeaderTokenFetcher("token", url, depends_on=("login",), client=client)
            if fetcher == "header"
            else BodyTokenFetcher("token", url, depends_on=("login",), client=client)
        )
        storage = InMemoryTokenStorage()
        pipeline = TokenFetchPipeline([login, step], storage)
        with pytest.raises(PipelineStepError) as caught:
            pipeline.execute()
    error = caught.value.__cause__
    assert isinstance(error, TokenEndpointError)
    _assert_refused(error, status, forge_oauth_server)
    assert not storage.exists(f"{TokenFetchPipeline.DEFAULT_KEY_PREFIX}:token")


# -- secrets echoed by the server ------------------------------------------------------------


def test_a_refresh_error_does_not_quote_the_echoed_refresh_token(
    forge_oauth_server: OAuthServer,
) -> None:
    """A server echoing the refresh token, access token and client secret in
    error_description gets them all redacted, in the message and in the attributes."""
    provider = PasswordGrantTokenProvider(
        forge_oauth_server.token_url, CLIENT_ID, SECRET, USER, PASSWORD
    )
    token = provider.fetch_token()
    assert token.refresh_token is not None
    echoed = (
        f"refresh token {token.refresh_token} (for {token.access_token}) is not valid "
        f"for client {CLIENT_ID}:{SECRET}"
    )
    body = {"error": "invalid_grant", "error_description": echoed}
    forge_oauth_server.reply_next(Reply(400, json=body))
    with pytest.raises(TokenEndpointError) as caught:
        provider.refresh_token(token)
    error = caught.value
    assert error.error == "invalid_grant"
    for text in (str(error), repr(error), error.error_description or ""):
        for secret in (token.refresh_token, token.access_token, SECRET):
            assert secret not in text
    assert "is not valid for client" in str(error)
    provider.close()


def test_a_fetcher_error_does_not_quote_what_the_request_carried(
    forge_api_server: ApiServer,
) -> None:
    """A step's endpoint echoing the earlier step's token and a secret body field back in
    error and error_description is quoted with both redacted."""
    login_token, pin = "login-token-8086", "pin-secret-6502"
    forge_api_server.add("/login", Reply(204, headers={"X-Auth-Token": login_token}))
    echoed = f"token {login_token} with pin {pin} was refused"
    forge_api_server.add(
        "/token", Reply(400, json={"error": login_token, "error_description": echoed})
    )
    with HttpClient() as client:
        login = HeaderTokenFetcher("login", forge_api_server.url_for("/login"), client=client)
        step = BodyTokenFetcher(
            "token",
            forge_api_server.url_for("/token"),
            depends_on=("login",),
            client=client,
            json={"user": "ada", "pin_secret": pin},
        )
        context = FetchContext()
        context.add_token("login", login.fetch(FetchContext()))
        with pytest.raises(TokenEndpointError) as caught:
            step.fetch(context)
    error = caught.value
    assert error.status_code == 400
    assert "was refused" in str(error)
    for text in (str(error), error.error or "", error.error_description or ""):
        assert login_token not in text
        assert pin not in text


def test_the_token_data_in_a_context_is_what_gets_scrubbed() -> None:
    """The fetcher's scrub list holds the earlier tokens, secret headers and body fields."""
    context = FetchContext()
    context.add_token("a", TokenData(access_token="at-ctx-1111", refresh_token="rt-ctx-2222"))
    found = _sent_secrets(context, {"X-Api-Key": "key-ctx-3333"}, {"password": "pw-4444"}, None)
    assert {"at-ctx-1111", "rt-ctx-2222", "key-ctx-3333", "pw-4444"} <= set(found)
