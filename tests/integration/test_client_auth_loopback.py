"""Client authentication methods over real HTTP against the plugin's OAuthServer, for what it
verifies: HTTP Basic (both encodings), form fields and public clients, from providers and
pipeline steps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    ClientSecretBasic,
    ClientSecretPost,
    FetchContext,
    NoClientAuth,
    PasswordGrantTokenProvider,
    TokenEndpointError,
)
from requestforge_testing import OAuthServer

#: Ids and secrets with every character that Basic encodings disagree on.
TRICKY = {"my client": "a b+c%d:é-secret", "public app": None}


@pytest.fixture(scope="module")
def server() -> Iterator[OAuthServer]:
    """An OAuthServer whose clients have spaces, '+', '%', ':' and non-ASCII in them."""
    with OAuthServer(clients=TRICKY) as running:
        yield running


@pytest.mark.parametrize("encoding", ["percent", "form"])
def test_basic_with_a_tricky_secret_gets_a_token(server: OAuthServer, encoding: str) -> None:
    """Both Basic encodings decode right in a server that uses unquote_plus."""
    method = ClientSecretBasic("a b+c%d:é-secret", encoding=encoding)
    provider = ClientCredentialsTokenProvider(
        server.token_url, "my client", None, client_auth=method
    )
    assert provider.fetch_token().access_token
    assert server.token_requests[-1].auth_method == "basic"


def test_post_with_a_tricky_secret_gets_a_token(server: OAuthServer) -> None:
    """client_secret_post sends the same secret as form fields."""
    provider = ClientCredentialsTokenProvider(
        server.token_url, "my client", None, client_auth=ClientSecretPost("a b+c%d:é-secret")
    )
    assert provider.fetch_token().access_token
    assert server.token_requests[-1].auth_method == "body"


def test_a_public_client_gets_a_token_and_a_wrong_secret_does_not(server: OAuthServer) -> None:
    """none is accepted for a public client (password grant); a wrong secret is
    invalid_client."""
    public = PasswordGrantTokenProvider(
        server.token_url,
        "public app",
        None,
        "forge-user",
        "forge-password",
        client_auth=NoClientAuth(),
    )
    assert public.fetch_token().access_token
    wrong = ClientCredentialsTokenProvider(
        server.token_url, "my client", None, client_auth=ClientSecretBasic("a b+c%d:é-WRONG")
    )
    with pytest.raises(TokenEndpointError) as caught:
        wrong.fetch_token()
    assert caught.value.error == "invalid_client"
    assert "WRONG" not in str(caught.value)


def test_a_pipeline_step_authenticates_its_client(server: OAuthServer) -> None:
    """A BodyTokenFetcher with client_auth gets a client credentials token."""
    step = BodyTokenFetcher(
        "login",
        server.token_url,
        data={"grant_type": "client_credentials"},
        client_id="my client",
        client_auth=ClientSecretBasic("a b+c%d:é-secret"),
    )
    try:
        assert step.fetch(FetchContext()).access_token
    finally:
        step.close()
