"""A newcomer's first test file: documented names only, after `pip install '<repo>[testing]'`.

.ci/run copies it into an empty directory with a fresh virtualenv and runs it twice with
``pytest -p requestforge_testing`` and plugin autoload off: once recording its cassette,
once under CI=true replaying it.
"""

import threading
import time
from datetime import datetime, timezone

import pytest
import requests

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    TokenManager,
)
from requestforge_testing import ForgeClockWarning, Reply


def test_retries_without_waiting(forge_api_server, forge_clock):
    forge_api_server.add("/items", Reply(status=503), Reply(json={"ok": True}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).with_retry(3).build()
    with HttpClient(config) as client:
        assert client.get("/items").json() == {"ok": True}
    assert len(forge_api_server.requests_to("/items")) == 2


def test_one_token_for_many_threads(forge_oauth_server, forge_stress):
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, "forge-client", "forge-secret"
    )
    manager = TokenManager(provider)
    config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
    with HttpClient(config) as client:
        report = forge_stress(
            lambda: client.get(f"{forge_oauth_server.api_url}/me").status_code,
            threads=16,
            sessions=client,
        )
    report.assert_no_errors()
    report.assert_per_thread_sessions(client)
    assert set(report.results) == {200}
    assert forge_oauth_server.fetch_count == 1


def test_single_fetch_per_round(forge_token_provider, forge_stress):
    manager = TokenManager(forge_token_provider)
    report = forge_stress(
        manager.get_token, threads=32, rounds=3, before_round=lambda _: manager.invalidate()
    )
    report.assert_single_fetch(forge_token_provider)


@pytest.mark.forge_stress(threads=8)
def test_body_runs_in_eight_threads(forge_token_provider):
    assert TokenManager(forge_token_provider).get_token().access_token.startswith("fake-")


def test_mocked_http(forge_responses):
    forge_responses.get("https://api.invalid/users", json=[1, 2])
    assert requests.get("https://api.invalid/users", timeout=5).json() == [1, 2]


def test_frozen_wall_clock(forge_clock):
    seen = []
    with forge_clock.freeze_wall_clock():
        forge_clock.advance(60)
        assert datetime.now(timezone.utc) == forge_clock.now()
        thread = threading.Thread(target=lambda: seen.append((time.time(), time.monotonic())))
        thread.start()
        thread.join(timeout=10)
    assert seen == [(forge_clock.now().timestamp(), forge_clock.monotonic())]


def test_expiry_checked_on_the_real_clock_is_reported(forge_token_provider, forge_clock):
    forge_clock.set(datetime(2001, 1, 1, tzinfo=timezone.utc))  # far from the real clock
    token = TokenManager(forge_token_provider).get_token()
    with pytest.warns(ForgeClockWarning, match="read from the real wall clock"):
        token.expires_at < datetime.now(timezone.utc)  # noqa: B015 - the bug on show


@pytest.mark.forge_cassette
def test_client_credentials_contract(forge_oauth_server, forge_clock):
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, "forge-client", "forge-secret", scope="read"
    )
    token = TokenManager(provider).get_token()
    assert token.expires_in() == pytest.approx(3600)
