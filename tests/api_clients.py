"""Clients that several test files build the same way."""

from __future__ import annotations

from requestforge import HttpClient, HttpClientConfigBuilder, TokenManager
from requestforge_testing import OAuthServer


def api_client(base_url: str, manager: TokenManager) -> HttpClient:
    """A client of the API at ``base_url`` that authenticates with ``manager``'s tokens."""
    config = (
        HttpClientConfigBuilder()
        .with_base_url(base_url)
        .with_timeout(5)
        .with_token_auth(token_manager=manager)
        .build()
    )
    return HttpClient(config)


def token_client(
    server: OAuthServer, manager: TokenManager, *, base_url: str | None = None
) -> HttpClient:
    """A client of ``server``'s protected API (or of ``base_url``) that authenticates with
    ``manager``'s tokens."""
    return api_client(base_url or server.api_url, manager)
