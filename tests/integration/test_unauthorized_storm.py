"""An API that answers 401 to every token must not cost a token fetch per call.

The real OAuth server issues the tokens (``forge_oauth_server``); ``forge_api_server`` plays
an API that refuses them all, and ``forge_clock`` moves the storm window.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    TokenManager,
)
from requestforge_testing import ApiServer, FakeClock, OAuthServer, Reply

WINDOW = TokenManager.FAILURE_BACKOFF


@pytest.fixture
def manager(forge_oauth_server: OAuthServer, forge_clock: FakeClock) -> Iterator[TokenManager]:
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, "forge-client", "forge-secret"
    )
    yield TokenManager(provider)
    provider.close()


@pytest.fixture
def refusing_client(forge_api_server: ApiServer, manager: TokenManager) -> Iterator[HttpClient]:
    forge_api_server.add("/data", Reply(401, json={"error": "invalid_token"}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url)
    with HttpClient(config.with_token_auth(manager).build()) as client:
        yield client


def test_an_always_401_api_costs_at_most_5_fetches_in_50_calls(
    refusing_client: HttpClient, forge_api_server: ApiServer, forge_oauth_server: OAuthServer
) -> None:
    """50 calls to an API refusing every token: each gets its 401, with at most 5 token
    fetches (today: the first fetch, one renewal, then none inside the window)."""
    statuses = [refusing_client.get("/data").status_code for _ in range(50)]
    assert statuses == [401] * 50
    assert forge_oauth_server.fetch_count <= 5
    assert forge_oauth_server.fetch_count == 2
    # Inside the window a 401 is handed back without a resend either.
    assert len(forge_api_server.requests_to("/data")) == 50 + 1


def test_a_refresh_is_allowed_again_once_the_window_has_passed(
    refusing_client: HttpClient, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """After the window on the clock, one 401 renews the token once more; the window then
    doubles (1 s, 2 s, ...), so the next renewal waits twice as long."""
    for _ in range(3):
        refusing_client.get("/data")
    assert forge_oauth_server.fetch_count == 2
    forge_clock.advance(WINDOW)
    refusing_client.get("/data")
    refusing_client.get("/data")
    assert forge_oauth_server.fetch_count == 3  # one renewal, then held again
    forge_clock.advance(WINDOW)  # half of the doubled window
    refusing_client.get("/data")
    assert forge_oauth_server.fetch_count == 3
    forge_clock.advance(WINDOW)
    refusing_client.get("/data")
    assert forge_oauth_server.fetch_count == 4


def test_revoked_tokens_are_renewed_on_their_first_401_every_time(
    forge_oauth_server: OAuthServer, manager: TokenManager
) -> None:
    """Revoking the token again and again (no clock movement) still renews it on the first 401
    each time: the resend with the new token is accepted, so no storm window opens."""
    config = HttpClientConfigBuilder().with_base_url(forge_oauth_server.url)
    with HttpClient(config.with_token_auth(manager).build()) as client:
        assert client.get("/api/data").status_code == 200
        for round_ in range(1, 6):
            forge_oauth_server.revoke_all()
            assert client.get("/api/data").status_code == 200
            assert forge_oauth_server.fetch_count == 1 + round_


def test_a_storm_that_ends_lets_the_next_revocation_renew_at_once(
    refusing_client: HttpClient,
    forge_api_server: ApiServer,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
) -> None:
    """Once the API accepts the renewed token, the storm is over: a later 401 renews at once."""
    refusing_client.get("/data")
    assert forge_oauth_server.fetch_count == 2  # the storm window is open
    issued = forge_oauth_server.issued_tokens
    # The API now accepts every token but the two already rejected.
    forge_api_server.add_handler(
        "/data",
        lambda request: Reply(
            401 if request.headers.get("Authorization", "")[7:] in issued else 200
        ),
    )
    forge_clock.advance(WINDOW)
    assert refusing_client.get("/data").status_code == 200  # renewed, resend accepted
    assert forge_oauth_server.fetch_count == 3
    issued.append(forge_oauth_server.issued_tokens[-1])  # "revoke" the third token
    assert refusing_client.get("/data").status_code == 200  # no window: renewed at once
    assert forge_oauth_server.fetch_count == 4
