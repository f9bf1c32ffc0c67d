"""Token auth over real HTTP: one fetch for many threads, one refresh for a burst of 401s."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable

import pytest

from requestforge import (
    HttpClient,
    HttpClientConfigBuilder,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    TokenManager,
)
from requestforge_testing import (
    ApiServer,
    FakeClock,
    FakeTokenProvider,
    RecordedRequest,
    Reply,
    StressRunner,
)


def _guarded(
    revoked: set[str], rejections: list[str] | None = None
) -> Callable[[RecordedRequest], Reply]:
    """A handler answering 401 (noted in ``rejections``) unless the request carries a bearer
    token that is not revoked."""
    lock = threading.Lock()
    rejections = rejections if rejections is not None else []

    def handle(request: RecordedRequest) -> Reply:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with lock:
            ok = scheme == "Bearer" and token.startswith("fake-access-") and token not in revoked
            if not ok:
                rejections.append(token)
        if not ok:
            return Reply(401, json={"error": "invalid_token"})
        return Reply(200, json={"token": token})

    return handle


def _client(server: ApiServer, manager: TokenManager) -> HttpClient:
    config = HttpClientConfigBuilder().with_base_url(server.url).with_token_auth(manager).build()
    return HttpClient(config)


def test_many_threads_share_one_token(
    forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """64 threads making requests through one client cause exactly one token fetch."""
    forge_api_server.add_handler("/data", _guarded(set()))
    provider = FakeTokenProvider(latency=0.002)
    with _client(forge_api_server, TokenManager(provider)) as client:
        report = forge_stress(
            lambda: client.get("/data").json()["token"], threads=64, rounds=3, sessions=client
        )
    report.assert_no_errors()
    assert set(report.results) == {"fake-access-1"}
    report.assert_single_fetch(provider, rounds=[0])  # the first round's, then none
    assert provider.fetch_count == 1
    report.assert_per_thread_sessions(client)


def test_burst_of_401s_causes_one_refresh(
    forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """When the server revokes the token, 50 rejected threads refresh it once and all succeed."""
    revoked: set[str] = set()
    rejections: list[str] = []
    forge_api_server.add_handler("/data", _guarded(revoked, rejections))
    provider = FakeTokenProvider(latency=0.002)
    manager = TokenManager(provider)
    with _client(forge_api_server, manager) as client:
        client.get("/data")

        def revoke_current(_: int) -> None:
            revoked.add(manager.get_token().access_token)

        report = forge_stress(
            lambda: client.get("/data").json()["token"],
            threads=50,
            rounds=5,
            before_round=revoke_current,
            sessions=client,
        )
    report.assert_no_errors()
    report.assert_single_fetch(provider)  # the workers' one refresh per round
    assert provider.fetch_count == 1 + 5
    report.assert_per_thread_sessions(client)
    for round_ in report.rounds:
        assert len({outcome.result for outcome in round_.outcomes}) == 1
    # Every rejected request was resent exactly once, and every round began with a rejection.
    assert len(rejections) >= 5
    assert len(forge_api_server.requests_to("/data")) == 1 + 5 * 50 + len(rejections)


def test_a_second_401_is_returned_not_looped(forge_api_server: ApiServer) -> None:
    """If the fresh token is rejected too, the client returns that 401 after exactly two sends."""
    forge_api_server.add("/data", Reply(401, json={"error": "invalid_token"}))
    provider = FakeTokenProvider()
    with _client(forge_api_server, TokenManager(provider)) as client:
        response = client.get("/data")
    assert response.status_code == 401
    assert len(forge_api_server.requests_to("/data")) == 2
    assert provider.fetch_count == 2
    sent = [r.headers["Authorization"] for r in forge_api_server.requests_to("/data")]
    assert sent == ["Bearer fake-access-1", "Bearer fake-access-2"]


def test_expiry_on_the_clock_renews_the_token(
    forge_api_server: ApiServer, forge_clock: FakeClock
) -> None:
    """Moving the fake clock past the token's expiry makes the next request carry a new one."""
    forge_api_server.add_handler("/data", _guarded(set()))
    provider = FakeTokenProvider(lifetime=300)
    with _client(forge_api_server, TokenManager(provider)) as client:
        first = client.get("/data").json()["token"]
        forge_clock.advance(299)
        second = client.get("/data").json()["token"]
    assert (first, second) == ("fake-access-1", "fake-access-2")
    assert provider.fetch_count == 2


def test_token_never_reaches_logs_or_curl(
    forge_api_server: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With debug logging on everywhere, the token on the wire is in no log record and no curl."""
    caplog.set_level(logging.DEBUG)
    forge_api_server.add_handler("/data", _guarded(set()))
    manager = TokenManager(FakeTokenProvider())
    config = (
        HttpClientConfigBuilder()
        .with_base_url(forge_api_server.url)
        .with_token_auth(manager)
        .with_request_hook(LoggingRequestHook())
        .with_response_hook(LoggingResponseHook())
        .with_error_hook(LoggingErrorHook())
        .build()
    )
    with HttpClient(config) as client:
        response = client.get("/data")
    assert response.json()["token"] == "fake-access-1"
    assert response.request is not None
    assert "fake-access-1" not in response.request.to_curl()
    assert caplog.records
    assert "fake-access-1" not in caplog.text


def test_one_shot_body_on_401_renews_the_token_without_resending(
    forge_api_server: ApiServer,
) -> None:
    """A generator body meeting a 401 is not resent, but the token is renewed for the next call."""
    revoked: set[str] = set()
    rejections: list[str] = []
    forge_api_server.add_handler("/data", _guarded(revoked, rejections))
    manager = TokenManager(FakeTokenProvider())
    with _client(forge_api_server, manager) as client:
        revoked.add(manager.get_token().access_token)
        first = client.post("/data", data=(chunk for chunk in [b"one-", b"shot"]))
        assert first.status_code == 401
        assert len(forge_api_server.requests_to("/data")) == 1  # the body was not resent
        assert client.post("/data", data=iter([b"next"])).status_code == 200
    assert len(rejections) == 1


def test_seekable_upload_on_401_is_rewound_and_resent(forge_api_server: ApiServer) -> None:
    """A files= upload of a seekable file is resent whole after the token is renewed."""
    revoked: set[str] = set()
    forge_api_server.add_handler("/data", _guarded(revoked))
    manager = TokenManager(FakeTokenProvider())
    with _client(forge_api_server, manager) as client:
        revoked.add(manager.get_token().access_token)
        upload = io.BytesIO(b"payload-bytes")
        upload.read(3)  # requests sends from the current position; so must the resend
        response = client.post("/data", files={"f": ("a.bin", upload)})
    assert response.status_code == 200
    sent = [r.body for r in forge_api_server.requests_to("/data")]
    assert len(sent) == 2
    assert all(b"\r\n\r\nload-bytes\r\n" in body for body in sent)
