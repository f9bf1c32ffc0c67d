"""OAuthServer over real loopback HTTP: grants, errors, scripting, revocation, expiry, reset."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from requestforge_testing import FakeClock, OAuthServer, RecordedTokenRequest, Reply

CLIENT = ("forge-client", "forge-secret")
USER = {"username": "forge-user", "password": "forge-password"}


def _token(
    server: OAuthServer, form: dict[str, str], *, auth: tuple[str, str] | None = CLIENT
) -> requests.Response:
    return requests.post(server.token_url, data=form, auth=auth, timeout=5)


def _api(server: OAuthServer, token: str | None, path: str = "/things") -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(server.api_url + path, headers=headers, timeout=5)


def _access_token(server: OAuthServer, **form: str) -> str:
    response = _token(server, {"grant_type": "client_credentials", **form})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# -- grants ---------------------------------------------------------------------------------


def test_client_credentials_with_basic_auth(forge_oauth_server: OAuthServer) -> None:
    """A Basic-authenticated client gets an RFC 6749 5.1 response: no refresh token, no-store."""
    response = _token(forge_oauth_server, {"grant_type": "client_credentials", "scope": "a b"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "a b")
    assert response.headers["Cache-Control"] == "no-store"
    (record,) = forge_oauth_server.token_requests
    assert (record.grant_type, record.client_id, record.auth_method) == (
        "client_credentials",
        "forge-client",
        "basic",
    )
    assert (record.status, record.error, record.params["scope"]) == (200, None, "a b")
    assert record.thread_name.startswith("forge-api-")


def test_password_grant_with_body_auth_issues_a_refresh_token(
    forge_oauth_server: OAuthServer,
) -> None:
    """Client credentials in the form work too, and the password grant gets a refresh token."""
    form = {"grant_type": "password", **USER, "client_id": CLIENT[0], "client_secret": CLIENT[1]}
    body = _token(forge_oauth_server, form, auth=None).json()
    assert body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert "scope" not in body
    (record,) = forge_oauth_server.token_requests
    assert (record.auth_method, record.client_id) == ("body", "forge-client")
    assert forge_oauth_server.grant_counts == {"password": 1}


def test_refresh_tokens_rotate_and_keep_the_scope(forge_oauth_server: OAuthServer) -> None:
    """A refresh gives new tokens with the original scope; the used refresh token is dead."""
    first = _token(forge_oauth_server, {"grant_type": "password", **USER, "scope": "x"}).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = _token(forge_oauth_server, form).json()
    assert second["scope"] == "x"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    again = _token(forge_oauth_server, form)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert forge_oauth_server.grant_counts == {"password": 1, "refresh_token": 1}
    assert forge_oauth_server.fetch_count == 2
    assert forge_oauth_server.issued_tokens == [first["access_token"], second["access_token"]]


def test_access_tokens_are_distinct(forge_oauth_server: OAuthServer) -> None:
    """Every issued access token is new."""
    tokens = [_access_token(forge_oauth_server) for _ in range(5)]
    assert len(set(tokens)) == 5


def test_refresh_tokens_can_be_switched_off(forge_oauth_server: OAuthServer) -> None:
    """issue_refresh_tokens=False leaves refresh_token out of password grant responses."""
    forge_oauth_server.issue_refresh_tokens = False
    body = _token(forge_oauth_server, {"grant_type": "password", **USER}).json()
    assert "refresh_token" not in body


def test_public_client_may_use_the_password_grant_only() -> None:
    """A client registered with secret None authenticates by client_id alone, and may not use
    client_credentials (RFC 6749 4.4 is for confidential clients)."""
    with OAuthServer(clients={"spa": None}, users={"ada": "pw"}) as server:
        form = {"grant_type": "password", "username": "ada", "password": "pw", "client_id": "spa"}
        assert _token(server, form, auth=None).status_code == 200
        denied = _token(server, {"grant_type": "client_credentials", "client_id": "spa"}, auth=None)
        assert (denied.status_code, denied.json()["error"]) == (400, "unauthorized_client")


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("forge-client", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("nobody", "forge-secret"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "forge-client"},
            None,
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password", "username": "forge-user", "password": "x"},
            CLIENT,
            400,
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "forge-user"}, CLIENT, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, CLIENT, 400, "invalid_grant"),
        ({"grant_type": "refresh_token"}, CLIENT, 400, "invalid_request"),
        ({"scope": "x"}, CLIENT, 400, "invalid_request"),
        ({"grant_type": "authorization_code"}, CLIENT, 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "client_secret": "forge-secret"},
            CLIENT,
            400,
            "invalid_request",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "other"},
            CLIENT,
            400,
            "invalid_request",
        ),
    ],
)
def test_token_endpoint_errors(
    forge_oauth_server: OAuthServer,
    form: dict[str, str],
    auth: tuple[str, str] | None,
    status: int,
    error: str,
) -> None:
    """Bad clients, users, grants and parameters get the RFC 6749 5.2 error and status."""
    response = _token(forge_oauth_server, form, auth=auth)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.headers["Cache-Control"] == "no-store"
    assert forge_oauth_server.token_requests[-1].error == error
    assert forge_oauth_server.fetch_count == 0


def test_invalid_client_challenges_basic_only_when_basic_was_used(
    forge_oauth_server: OAuthServer,
) -> None:
    """RFC 6749 5.2: WWW-Authenticate comes with the 401 when the client tried Basic."""
    basic = _token(forge_oauth_server, {"grant_type": "client_credentials"}, auth=("x", "y"))
    form = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    body = _token(forge_oauth_server, form, auth=None)
    assert basic.headers["WWW-Authenticate"] == 'Basic realm="forge"'
    assert "WWW-Authenticate" not in body.headers


def test_malformed_requests_are_refused(forge_oauth_server: OAuthServer) -> None:
    """GET, a JSON body, repeated parameters and broken Basic credentials are all refused."""
    url = forge_oauth_server.token_url
    got = requests.get(url, timeout=5)
    as_json = requests.post(url, json={"grant_type": "password"}, auth=CLIENT, timeout=5)
    repeated = requests.post(
        url,
        data="grant_type=password&grant_type=password",
        auth=CLIENT,
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    broken = requests.post(
        url,
        data={"grant_type": "client_credentials"},
        timeout=5,
        headers={"Authorization": "Basic !!!not-base64"},
    )
    assert (got.status_code, got.headers["Allow"]) == (405, "POST")
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    assert (repeated.status_code, repeated.json()["error"]) == (400, "invalid_request")
    assert (broken.status_code, broken.json()["error"]) == (401, "invalid_client")


def test_a_refresh_token_belongs_to_its_client() -> None:
    """Another client cannot use someone else's refresh token (RFC 6749 section 6)."""
    clients = {"a": "sa", "b": "sb"}
    with OAuthServer(clients=clients) as server:
        issued = _token(server, {"grant_type": "password", **USER}, auth=("a", "sa")).json()
        form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
        stolen = _token(server, form, auth=("b", "sb"))
        assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
        assert _token(server, form, auth=("a", "sa")).status_code == 200


# -- scripting ------------------------------------------------------------------------------


def test_fail_next_fails_that_many_token_requests(forge_oauth_server: OAuthServer) -> None:
    """fail_next(2, ...) answers the next two token requests with the error, then tokens."""
    forge_oauth_server.fail_next(2, status=429, error="slow_down", retry_after=3)
    form = {"grant_type": "client_credentials"}
    first, second, third = (_token(forge_oauth_server, form) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.json()["error"] == "slow_down"
    assert first.headers["Retry-After"] == "3"
    assert [r.status for r in forge_oauth_server.token_requests] == [429, 429, 200]
    assert forge_oauth_server.fetch_count == 1


def test_fail_next_defaults_to_a_503(forge_oauth_server: OAuthServer) -> None:
    """Without arguments one request gets 503 temporarily_unavailable."""
    forge_oauth_server.fail_next()
    response = _token(forge_oauth_server, {"grant_type": "client_credentials"})
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")


def test_reply_next_sends_a_raw_reply_once(forge_oauth_server: OAuthServer) -> None:
    """reply_next's Reply goes out verbatim to the next token request only."""
    forge_oauth_server.reply_next(Reply(body="<html>maintenance</html>"))
    form = {"grant_type": "client_credentials"}
    raw = _token(forge_oauth_server, form)
    normal = _token(forge_oauth_server, form)
    assert (raw.status_code, raw.text) == (200, "<html>maintenance</html>")
    assert "access_token" in normal.json()


@pytest.mark.parametrize(
    ("call", "args"),
    [("fail_next", (0,)), ("fail_next", (1.5,)), ("reply_next", ("text",))],
)
def test_bad_scripts_are_rejected(
    forge_oauth_server: OAuthServer, call: str, args: tuple[Any, ...]
) -> None:
    """fail_next wants a count >= 1; reply_next wants a Reply."""
    with pytest.raises((ValueError, TypeError)):
        getattr(forge_oauth_server, call)(*args)


def test_fail_next_rejects_a_success_status(forge_oauth_server: OAuthServer) -> None:
    """A 'failure' must be a 4xx or 5xx status."""
    with pytest.raises(ValueError, match="400-599"):
        forge_oauth_server.fail_next(status=200)


def test_latency_holds_token_responses_back(forge_oauth_server: OAuthServer) -> None:
    """With latency set a token response takes at least that long, in real time."""
    forge_oauth_server.latency = 0.3
    started = time.monotonic()
    _token(forge_oauth_server, {"grant_type": "client_credentials"})
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ValueError, match="latency"):
        forge_oauth_server.latency = -1


# -- the protected API ----------------------------------------------------------------------


def test_api_accepts_its_own_tokens(forge_oauth_server: OAuthServer) -> None:
    """Any path under /api answers 200 with the token's client for a valid Bearer token."""
    token = _access_token(forge_oauth_server)
    response = _api(forge_oauth_server, token, "/deep/path")
    posted = requests.post(
        forge_oauth_server.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.json() == {
        "path": "/api/deep/path",
        "client_id": "forge-client",
        "username": None,
        "scope": None,
        "ok": True,
    }
    assert (posted.status_code, posted.json()["path"]) == (200, "/api")
    assert [r.path for r in forge_oauth_server.api_requests] == ["/api/deep/path", "/api"]


def test_api_names_the_user_of_a_password_token(forge_oauth_server: OAuthServer) -> None:
    """A password grant token is tied to its user."""
    issued = _token(forge_oauth_server, {"grant_type": "password", **USER, "scope": "me"}).json()
    body = _api(forge_oauth_server, issued["access_token"]).json()
    assert (body["username"], body["scope"]) == ("forge-user", "me")


@pytest.mark.parametrize(
    ("token", "challenge"),
    [(None, "Bearer"), ("never-issued", 'Bearer error="invalid_token"')],
)
def test_api_rejects_missing_and_unknown_tokens(
    forge_oauth_server: OAuthServer, token: str | None, challenge: str
) -> None:
    """No token gets a bare Bearer challenge (RFC 6750 3.1); an unknown one invalid_token."""
    response = _api(forge_oauth_server, token)
    assert (response.status_code, response.headers["WWW-Authenticate"]) == (401, challenge)


def test_api_refuses_other_methods(forge_oauth_server: OAuthServer) -> None:
    """Only GET and POST are served under /api."""
    token = _access_token(forge_oauth_server)
    response = requests.delete(
        forge_oauth_server.api_url + "/x", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 405


def test_revoked_tokens_are_refused(forge_oauth_server: OAuthServer) -> None:
    """revoke() kills one access token; revoke_all() kills the rest; unknown tokens say False."""
    first, second = _access_token(forge_oauth_server), _access_token(forge_oauth_server)
    assert forge_oauth_server.revoke(first) is True
    assert forge_oauth_server.revoke("never-issued") is False
    refused = _api(forge_oauth_server, first)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert refused.json()["error_description"] == "the access token was revoked"
    assert _api(forge_oauth_server, second).status_code == 200
    forge_oauth_server.revoke_all()
    assert _api(forge_oauth_server, second).status_code == 401


def test_revoking_a_refresh_token(forge_oauth_server: OAuthServer) -> None:
    """A revoked refresh token gets invalid_grant; revoking an access token spares it."""
    issued = _token(forge_oauth_server, {"grant_type": "password", **USER}).json()
    assert forge_oauth_server.revoke(issued["access_token"]) is True
    assert forge_oauth_server.revoke(issued["refresh_token"]) is True
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    assert _token(forge_oauth_server, form).json()["error"] == "invalid_grant"


def test_tokens_expire_on_the_test_clock(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Server-side expiry reads the installed clock: valid until lifetime, refused at it."""
    forge_oauth_server.lifetime = 60
    issued = _token(forge_oauth_server, {"grant_type": "client_credentials"}).json()
    assert issued["expires_in"] == 60
    forge_clock.advance(59.9)
    assert _api(forge_oauth_server, issued["access_token"]).status_code == 200
    forge_clock.advance(0.1)
    expired = _api(forge_oauth_server, issued["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error_description"] == "the access token expired"


def test_a_server_with_its_own_clock() -> None:
    """clock= makes the server independent of the default clock."""
    clock = FakeClock()
    with OAuthServer(clock=clock, lifetime=10) as server:
        token = _access_token(server)
        assert _api(server, token).status_code == 200
        clock.advance(10)
        assert _api(server, token).status_code == 401


# -- inspection and reset -------------------------------------------------------------------


def test_wait_for_token_requests_sees_concurrent_requests(forge_oauth_server: OAuthServer) -> None:
    """Requests sent together from several threads are all recorded and awaited."""
    barrier = threading.Barrier(4)

    def fetch() -> None:
        barrier.wait()
        _token(forge_oauth_server, {"grant_type": "client_credentials"})

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    records = forge_oauth_server.wait_for_token_requests(4)
    for thread in threads:
        thread.join()
    assert len(records) == 4
    assert forge_oauth_server.fetch_count == 4
    assert len(set(forge_oauth_server.issued_tokens)) == 4


def test_wait_for_token_requests_times_out(forge_oauth_server: OAuthServer) -> None:
    """Waiting for requests that never come raises TimeoutError."""
    with pytest.raises(TimeoutError, match="1 token request"):
        forge_oauth_server.wait_for_token_requests(1, timeout=0.05)


def test_reset_forgets_everything_but_keeps_the_socket(forge_oauth_server: OAuthServer) -> None:
    """reset() drops tokens, records and scripts and restores settings; the URL stays."""
    url = forge_oauth_server.url
    token = _access_token(forge_oauth_server)
    forge_oauth_server.fail_next(3)
    forge_oauth_server.lifetime = 5
    forge_oauth_server.latency = 0.5
    forge_oauth_server.issue_refresh_tokens = False
    forge_oauth_server.reset()
    assert forge_oauth_server.url == url
    assert forge_oauth_server.token_requests == []
    assert (forge_oauth_server.fetch_count, forge_oauth_server.grant_counts) == (0, {})
    assert (forge_oauth_server.lifetime, forge_oauth_server.latency) == (3600.0, 0.0)
    assert forge_oauth_server.issue_refresh_tokens is True
    assert _api(forge_oauth_server, token).status_code == 401
    assert forge_oauth_server.api_requests[0].path == "/api/things"
    issued = _token(forge_oauth_server, {"grant_type": "password", **USER})
    assert issued.status_code == 200
    assert "refresh_token" in issued.json()


def test_record_repr_hides_secrets(forge_oauth_server: OAuthServer) -> None:
    """A RecordedTokenRequest keeps the form as sent but its repr redacts secrets."""
    form = {"grant_type": "password", **USER, "client_id": CLIENT[0], "client_secret": CLIENT[1]}
    _token(forge_oauth_server, form, auth=None)
    (record,) = forge_oauth_server.token_requests
    assert isinstance(record, RecordedTokenRequest)
    assert record.params["password"] == "forge-password"
    assert "forge-password" not in repr(record)
    assert "forge-secret" not in repr(record)


@pytest.mark.parametrize(
    "options",
    [
        {"lifetime": 0},
        {"lifetime": float("nan")},
        {"clients": {"": "x"}},
        {"clients": ["forge-client"]},
        {"users": {"ada": None}},
        {"issue_refresh_tokens": "yes"},
        {"clock": "now"},
    ],
)
def test_constructor_validation(options: dict[str, Any]) -> None:
    """Bad settings fail at construction."""
    with pytest.raises((ValueError, TypeError)):
        OAuthServer(**options)


def test_urls_need_a_running_server() -> None:
    """url, token_url and api_url raise until start(); repr says whether it runs."""
    server = OAuthServer()
    assert repr(server) == "OAuthServer(stopped)"
    with pytest.raises(RuntimeError):
        _ = server.token_url
    with server:
        assert server.token_url == server.url + "/oauth/token"
        assert server.api_url == server.url + "/api"
        assert server.running
    assert not server.running


# -- the plugin -----------------------------------------------------------------------------


def test_a_user_test_file_can_use_forge_oauth_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With -p requestforge_testing a user's tests get forge_oauth_server, reset per test."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        from requestforge import ClientCredentialsTokenProvider, TokenManager

        def test_first(forge_oauth_server, forge_clock):
            provider = ClientCredentialsTokenProvider(
                forge_oauth_server.token_url, "forge-client", "forge-secret"
            )
            manager = TokenManager(provider)
            assert manager.get_token() is manager.get_token()
            forge_oauth_server.fail_next(5)
            assert forge_oauth_server.fetch_count == 1

        def test_second(forge_oauth_server, forge_oauth_server_session):
            assert forge_oauth_server is forge_oauth_server_session
            assert forge_oauth_server.token_requests == []
            provider = ClientCredentialsTokenProvider(
                forge_oauth_server.token_url, "forge-client", "forge-secret"
            )
            assert provider.fetch_token().access_token in forge_oauth_server.issued_tokens
        """
    )
    result = pytester.runpytest(
        "-p", "requestforge_testing", "-p", "no:cacheprovider", "--strict-markers", "-W", "error"
    )
    result.assert_outcomes(passed=2)
