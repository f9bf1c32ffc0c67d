"""Discovery against the plugin's loopback OAuthServer: both documents, the issuer check,
the chosen client authentication, one document request for a herd."""

from __future__ import annotations

import threading

import pytest

from requestforge import (
    AuthorizationServer,
    ClientCredentialsTokenProvider,
    PasswordGrantTokenProvider,
    ServerMetadata,
    TokenEndpointError,
    discover,
)
from requestforge_testing import OAuthServer
from tests.tokens.test_discovery import EntryClock

CLIENT, SECRET = "forge-client", "forge-secret"


def test_both_documents_describe_the_server(forge_oauth_server: OAuthServer) -> None:
    """The OIDC and RFC 8414 documents both give the server's three endpoints."""
    oidc = discover(forge_oauth_server.issuer, well_known="openid-configuration")
    oauth = discover(forge_oauth_server.issuer, well_known="oauth-authorization-server")
    assert oidc == oauth
    assert oidc.token_endpoint == forge_oauth_server.token_url
    assert oidc.revocation_endpoint == forge_oauth_server.revocation_url
    assert oidc.introspection_endpoint == forge_oauth_server.introspection_url
    assert "client_credentials" in oidc.grant_types
    paths = [r.path for r in forge_oauth_server.discovery_requests]
    assert paths == ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]


def test_a_provider_from_the_issuer_gets_a_token(forge_oauth_server: OAuthServer) -> None:
    """from_issuer() finds the token endpoint and authenticates with client_secret_basic."""
    provider = ClientCredentialsTokenProvider.from_issuer(forge_oauth_server.issuer, CLIENT, SECRET)
    token = provider.fetch_token()
    assert token.access_token in forge_oauth_server.issued_tokens
    [request] = forge_oauth_server.token_requests
    assert request.client_auth_method == "client_secret_basic"
    provider.close()


def test_a_server_listing_only_post_gets_the_secret_in_the_form(
    forge_oauth_server: OAuthServer,
) -> None:
    """When the document lists only client_secret_post, the password grant sends it so."""
    forge_oauth_server.override_discovery(
        token_endpoint_auth_methods_supported=["client_secret_post"]
    )
    provider = PasswordGrantTokenProvider.from_issuer(
        forge_oauth_server.issuer, CLIENT, SECRET, "forge-user", "forge-password"
    )
    provider.fetch_token()
    [request] = forge_oauth_server.token_requests
    assert (request.grant_type, request.client_auth_method) == ("password", "client_secret_post")
    provider.close()


def test_a_document_for_another_issuer_is_refused(forge_oauth_server: OAuthServer) -> None:
    """A document naming another issuer is a permanent error and no token is requested."""
    forge_oauth_server.override_discovery(issuer=forge_oauth_server.issuer + "/")
    with pytest.raises(TokenEndpointError, match="identical") as caught:
        ClientCredentialsTokenProvider.from_issuer(forge_oauth_server.issuer, CLIENT, SECRET)
    assert caught.value.transient is False
    assert forge_oauth_server.token_requests == []


def test_a_herd_costs_one_document_request(forge_oauth_server: OAuthServer) -> None:
    """32 threads building providers while the document is held send one request between them."""
    clock = EntryClock()
    server = AuthorizationServer(forge_oauth_server.issuer, clock=clock)
    gate = threading.Event()
    forge_oauth_server.discovery_gate = gate
    built: list[ClientCredentialsTokenProvider] = []
    seen: list[ServerMetadata] = []

    def build() -> None:
        built.append(ClientCredentialsTokenProvider.from_issuer(server, CLIENT, SECRET))
        seen.append(server.metadata())

    threads = [threading.Thread(target=build) for _ in range(32)]
    threads[0].start()
    forge_oauth_server.wait_for_discovery_requests(1)
    for thread in threads[1:]:
        thread.start()
    try:
        assert clock.wait_for_threads(32)
    finally:
        gate.set()
        for thread in threads:
            thread.join(30)
    assert len(forge_oauth_server.discovery_requests) == 1
    assert len(built) == 32
    assert {p.token_url for p in built} == {forge_oauth_server.token_url}
    assert all(m is seen[0] for m in seen)
    for provider in built:
        provider.close()
    server.close()
