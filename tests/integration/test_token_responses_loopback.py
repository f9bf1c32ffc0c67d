"""Token responses that must not become a cached token, over real HTTP against
forge_oauth_server: a poisoned ``token_type`` and out-of-range ``expires_in`` values."""

from __future__ import annotations

from typing import Any

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    InMemoryTokenStorage,
    TokenManager,
    TokenResponseError,
)
from requestforge_testing import FakeClock, OAuthServer, Reply
from tests.api_clients import token_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
CANARY = "poisoned-at-canary-7f3a"


def _poisoned(**fields: Any) -> Reply:
    body = {"access_token": CANARY, "token_type": "Bearer", "expires_in": 3600, **fields}
    return Reply(json=body, headers={"Cache-Control": "no-store"})


def _manager(server: OAuthServer, storage: InMemoryTokenStorage) -> TokenManager:
    provider = ClientCredentialsTokenProvider(
        server.token_url, CLIENT_ID, CLIENT_SECRET, max_retries=0
    )
    return TokenManager(provider, storage, cache_key="poison")


@pytest.mark.parametrize(
    "fields",
    [
        {"token_type": "Bearer\r\nX-Injected: 1"},
        {"token_type": "Bearer\n"},
        {"token_type": "Bearer extra"},
        {"expires_in": 1e20},
        {"expires_in": 10**30},
        {"access_token": f"{CANARY}\u00e9"},
    ],
    ids=["crlf", "lf", "space", "1e20", "10**30", "non-ascii-token"],
)
def test_a_poisoned_token_response_is_refused_and_not_cached(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock, fields: dict[str, Any]
) -> None:
    """TokenResponseError, nothing cached, no API call made; once the server answers well
    again (after the failure backoff) the next call gets a token that works on the API."""
    storage = InMemoryTokenStorage()
    manager = _manager(forge_oauth_server, storage)
    forge_oauth_server.reply_next(_poisoned(**fields))
    with token_client(forge_oauth_server, manager) as client:
        with pytest.raises(TokenResponseError) as caught:
            client.get("/items/1")
        assert CANARY not in str(caught.value)
        assert storage.get("poison") is None
        assert forge_oauth_server.api_requests == []
        forge_clock.advance(TokenManager.MAX_FAILURE_BACKOFF)
        response = client.get("/items/2")
    assert response.status_code == 200
    assert len(forge_oauth_server.token_requests) == 2  # the poisoned answer, then a good one
    cached = storage.get("poison")
    assert cached is not None
    assert cached.token_type.lower() == "bearer"
    assert cached.access_token != CANARY
