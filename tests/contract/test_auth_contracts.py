"""Contract tests: what our token flows send, pinned by cassettes under ``cassettes/``.

Each test was recorded once against the plugin's loopback servers. Under CI (record mode
``none``) the cassettes replay, so a change in what the library sends (method, URL, grant
type, form or JSON parameters, Authorization scheme, the client id under HTTP Basic) fails
with a diff against the recording. After an intended change, record again and review the YAML diff:
``pytest tests/contract --forge-record-mode=all``.

Every test also checks the servers: while recording they saw exactly the flow; on replay
they saw nothing and every recorded interaction was played back. The committed files are
checked in test_committed_cassettes.py (one per contract, none of ``SECRETS`` in any,
readable by stock vcrpy); the last test here checks the client id pinned where HTTP Basic
carries it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    HeaderTokenFetcher,
    HttpClient,
    HttpClientConfigBuilder,
    PasswordGrantTokenProvider,
    TokenFetchPipeline,
    TokenManager,
)
from requestforge_testing import (
    ApiServer,
    CassetteMismatchError,
    FakeClock,
    ForgeCassette,
    OAuthServer,
    RecordedRequest,
    Reply,
)
from tests.api_clients import api_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
USERNAME, PASSWORD = "forge-user", "forge-password"
#: Secrets of the pipeline flow; tests/contract/test_cassette_files.py greps for them.
DEVICE_SECRET = "device-secret-4f1c9a"
APP_SECRET = "app-secret-77d2e0b5"
USER_PASSWORD = "user-password-c3a81f"
#: The OAuth server's access token lifetime.
LIFETIME = 3600


def check_oauth_server(
    cassette: ForgeCassette, server: OAuthServer, grants: dict[str, int], api_calls: int
) -> None:
    """Recording: the server saw exactly ``grants`` and ``api_calls``. Replay: nothing."""
    if cassette.replaying:
        assert server.token_requests == []
        assert server.api_requests == []
        assert cassette.all_played
    else:
        assert server.grant_counts == grants
        assert len(server.api_requests) == api_calls


@pytest.mark.forge_cassette
def test_client_credentials_flow(
    forge_oauth_server: OAuthServer, forge_cassette: ForgeCassette, forge_clock: FakeClock
) -> None:
    """One client_credentials grant (HTTP Basic, scope), then two API calls with its token."""
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, CLIENT_ID, CLIENT_SECRET, scope="orders:read"
    )
    manager = TokenManager(provider)
    with api_client(forge_oauth_server.api_url, manager) as client:
        orders = client.get("/orders").json()
        order = client.get("/orders/42").json()
    assert orders == {
        "path": "/api/orders",
        "client_id": CLIENT_ID,
        "username": None,
        "scope": "orders:read",
        "ok": True,
    }
    assert order["path"] == "/api/orders/42"
    assert manager.get_token().expires_at == forge_clock.now() + timedelta(seconds=LIFETIME)
    check_oauth_server(forge_cassette, forge_oauth_server, {"client_credentials": 1}, 2)


@pytest.mark.forge_cassette
def test_password_grant_then_refresh(
    forge_oauth_server: OAuthServer, forge_cassette: ForgeCassette, forge_clock: FakeClock
) -> None:
    """A password grant, then on expiry a refresh_token grant (not the password again)."""
    provider = PasswordGrantTokenProvider(
        forge_oauth_server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        USERNAME,
        PASSWORD,
        scope="profile",
        client_auth="body",
    )
    manager = TokenManager(provider)
    with api_client(forge_oauth_server.api_url, manager) as client:
        assert client.get("/me").json()["username"] == USERNAME
        first = manager.get_token()
        forge_clock.advance(LIFETIME)
        assert client.get("/me").json()["username"] == USERNAME
        second = manager.get_token()
    assert first.refresh_token is not None
    assert second.access_token != first.access_token
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.expires_at == forge_clock.now() + timedelta(seconds=LIFETIME)
    check_oauth_server(forge_cassette, forge_oauth_server, {"password": 1, "refresh_token": 1}, 2)


Handler = Callable[[RecordedRequest], Reply]


class PipelineServer:
    """/device, /app and /user on the API server, each issuing a random token to callers
    that present the previous step's token; /profile wants the user token."""

    def __init__(self, server: ApiServer) -> None:
        self.issued: dict[str, list[str]] = {"device": [], "app": [], "user": []}
        server.add_handler("/device", self._device, method="POST")
        server.add_handler("/app", self._app, method="POST")
        server.add_handler("/user", self._user, method="POST")
        server.add_handler("/profile", self._profile, method="GET")

    def _issue(self, step: str) -> str:
        token = f"pipe-{step}-{secrets.token_urlsafe(12)}"
        self.issued[step].append(token)
        return token

    def _bearer(self, request: RecordedRequest, step: str) -> bool:
        return bool(self.issued[step]) and (
            request.headers.get("Authorization") == f"Bearer {self.issued[step][-1]}"
        )

    def _device(self, request: RecordedRequest) -> Reply:
        if request.json() != {"device_id": "rf-device-7", "device_secret": DEVICE_SECRET}:
            return Reply(401, json={"error": "invalid_client"})
        return Reply(204, headers={"X-Auth-Token": self._issue("device")})

    def _app(self, request: RecordedRequest) -> Reply:
        if not self._bearer(request, "device") or parse_qs(request.text) != {
            "app_secret": [APP_SECRET]
        }:
            return Reply(401, json={"error": "invalid_token"})
        return Reply(json={"data": {"auth": {"token": self._issue("app")}}})

    def _user(self, request: RecordedRequest) -> Reply:
        device_ok = request.headers.get("X-Device") == self.issued["device"][-1]
        body = {"username": USERNAME, "password": USER_PASSWORD}
        if not (self._bearer(request, "app") and device_ok and request.json() == body):
            return Reply(401, json={"error": "invalid_token"})
        refresh_token = f"pipe-refresh-{secrets.token_urlsafe(12)}"
        return Reply(
            json={
                "access_token": self._issue("user"),
                "expires_in": 900,
                "refresh_token": refresh_token,
            }
        )

    def _profile(self, request: RecordedRequest) -> Reply:
        if not self._bearer(request, "user"):
            return Reply(401, json={"error": "invalid_token"})
        return Reply(json={"username": USERNAME})


@pytest.fixture
def pipeline_client(forge_api_server: ApiServer) -> Iterator[HttpClient]:
    """A client for the pipeline steps, on the API server."""
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).with_timeout(5)
    with HttpClient(config.build()) as client:
        yield client


@pytest.mark.forge_cassette
def test_three_step_pipeline(
    forge_api_server: ApiServer,
    pipeline_client: HttpClient,
    forge_cassette: ForgeCassette,
    forge_clock: FakeClock,
) -> None:
    """device -> app -> user, each step carrying the previous token; when the user token
    expires, only the user step is fetched again."""
    server = PipelineServer(forge_api_server)
    steps = [
        HeaderTokenFetcher(
            "device",
            "/device",
            json={"device_id": "rf-device-7", "device_secret": DEVICE_SECRET},
            ttl=30 * 86400,
            client=pipeline_client,
        ),
        BodyTokenFetcher(
            "app",
            "/app",
            depends_on=("device",),
            token_path="data.auth.token",
            data={"app_secret": APP_SECRET},
            ttl=LIFETIME,
            client=pipeline_client,
        ),
        BodyTokenFetcher(
            "user",
            "/user",
            depends_on=("device", "app"),
            refresh_token_path="refresh_token",
            headers=lambda ctx: {"X-Device": ctx.get_token("device").access_token},
            json={"username": USERNAME, "password": USER_PASSWORD},
            client=pipeline_client,
        ),
    ]
    pipeline = TokenFetchPipeline(steps)
    first = pipeline.execute()
    assert first.expires_at == forge_clock.now() + timedelta(seconds=900)
    profile = pipeline_client.get("/profile", headers={"Authorization": first.authorization_header})
    assert profile.json() == {"username": USERNAME}
    forge_clock.advance(900)
    second = pipeline.execute()
    assert second.access_token != first.access_token
    assert second.expires_at == forge_clock.now() + timedelta(seconds=900)
    if forge_cassette.replaying:
        assert forge_api_server.requests == []
        assert forge_cassette.all_played
    else:
        paths = [r.path for r in forge_api_server.requests]
        assert paths == ["/device", "/app", "/user", "/profile", "/user"]
        assert {step: len(tokens) for step, tokens in server.issued.items()} == {
            "device": 1,
            "app": 1,
            "user": 2,
        }
        assert forge_api_server.handler_errors == []


# -- the committed files -------------------------------------------------------------------

CASSETTES = Path(__file__).parent / "cassettes" / Path(__file__).stem
CONTRACTS = [
    "test_client_credentials_flow",
    "test_password_grant_then_refresh",
    "test_three_step_pipeline",
]
#: Everything secret the contract tests send or are sent, as it would appear in a file.
SECRETS = [
    CLIENT_SECRET,
    PASSWORD,
    DEVICE_SECRET,
    APP_SECRET,
    USER_PASSWORD,
    base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
    "forge-at-",  # the OAuth server's access tokens
    "forge-rt-",  # ... and refresh tokens
    "pipe-",  # the pipeline server's tokens
    "127.0.0.1",  # loopback hosts are normalised
]


def test_the_basic_cassette_pins_the_client_id(forge_oauth_server: OAuthServer) -> None:
    """The client_credentials cassette keeps the client id next to its scrubbed secret, so
    a client with another id is refused on replay, both ids named; the file is untouched."""
    path = CASSETTES / "test_client_credentials_flow.yaml"
    before = path.read_text(encoding="utf-8")
    assert f"Basic {CLIENT_ID}:forge-scrubbed-1" in before
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, "other-client", CLIENT_SECRET, scope="orders:read"
    )
    with pytest.raises(CassetteMismatchError) as caught, ForgeCassette(path, record_mode="none"):
        provider.fetch_token()
    provider.close()
    assert [str(d) for d in caught.value.differences] == [
        f"basic_user: recorded {CLIENT_ID!r}, sent 'other-client'"
    ]
    assert forge_oauth_server.token_requests == []
    assert path.read_text(encoding="utf-8") == before
