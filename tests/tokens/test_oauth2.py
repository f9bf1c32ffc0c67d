"""Tests for the OAuth 2.0 grants: their form fields and error mapping."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from requestforge import (
    ClientCredentialsTokenProvider,
    ConfigurationError,
    CorrelationIdHook,
    ExponentialBackoffRetryStrategy,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    MaxRetryException,
    PasswordGrantTokenProvider,
    ReadTimeoutError,
    TokenData,
    TokenEndpointError,
    TokenError,
    TokenResponseError,
    TransportError,
)
from requestforge_testing import FakeClock

TOKEN_URL = "https://auth.example.com/oauth/token"
SECRET = "s3cr3t-Client-Value"
PASSWORD = "pa55-User-Value"
TOKEN_JSON = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}

Mock = responses.RequestsMock


def _cc(**options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(TOKEN_URL, "my-client", SECRET, **options)


def _pw(**options: Any) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(TOKEN_URL, "my-client", SECRET, "ada", PASSWORD, **options)


def _form(mock: Mock, index: int = 0) -> dict[str, str]:
    """The form fields of the index-th call, one value each."""
    body = mock.calls[index].request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _header(mock: Mock, name: str, index: int = 0) -> str | None:
    return mock.calls[index].request.headers.get(name)


def _basic(mock: Mock, index: int = 0) -> tuple[str, str]:
    """Decode the Basic header of a call back to (client_id, client_secret)."""
    scheme, _, encoded = (_header(mock, "Authorization", index) or "").partition(" ")
    assert scheme == "Basic"
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


# -- what is sent ---------------------------------------------------------------------------


def test_client_credentials_basic_sends_grant_and_basic_header(
    forge_responses: Mock, forge_clock: FakeClock
) -> None:
    """The default sends grant_type in a form body, the client in Basic, and wants JSON."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    token = _cc().fetch_token()
    assert token.access_token == "at-1"
    assert _form(forge_responses) == {"grant_type": "client_credentials"}
    assert _basic(forge_responses) == ("my-client", SECRET)
    assert _header(forge_responses, "Accept") == "application/json"
    assert _header(forge_responses, "Content-Type") == "application/x-www-form-urlencoded"
    assert forge_responses.calls[0].request.method == "POST"


def test_basic_credentials_are_percent_encoded_first(forge_responses: Mock) -> None:
    """Id and secret are percent-encoded before base64 (a space as %20, which authlib and
    django-oauth-toolkit both decode), so ':' survives."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    ClientCredentialsTokenProvider(TOKEN_URL, "id:with space", "p&ss:w+rd/é").fetch_token()
    encoded = (_header(forge_responses, "Authorization") or "").split(" ", 1)[1]
    raw = base64.b64decode(encoded).decode()
    assert raw == "id%3Awith%20space:p%26ss%3Aw%2Brd%2F%C3%A9"
    assert _basic(forge_responses) == ("id:with space", "p&ss:w+rd/é")


def test_client_auth_body_sends_credentials_as_form_fields(forge_responses: Mock) -> None:
    """client_auth='body' puts client_id and client_secret in the form, with no Basic header."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc(client_auth="body").fetch_token()
    assert _form(forge_responses) == {
        "grant_type": "client_credentials",
        "client_id": "my-client",
        "client_secret": SECRET,
    }
    assert _header(forge_responses, "Authorization") is None


def test_public_client_sends_only_its_id_in_the_body(forge_responses: Mock) -> None:
    """Without a secret the client identifies itself by a client_id field, even with 'basic'."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    PasswordGrantTokenProvider(TOKEN_URL, "spa", None, "ada", PASSWORD).fetch_token()
    assert _form(forge_responses) == {
        "grant_type": "password",
        "username": "ada",
        "password": PASSWORD,
        "client_id": "spa",
    }
    assert _header(forge_responses, "Authorization") is None


def test_scope_audience_and_extra_params_are_added(forge_responses: Mock) -> None:
    """An iterable scope is space-joined; audience and extra_params become form fields."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = _cc(
        scope=["read", "write:items"], audience="https://api", extra_params={"resource": "r1"}
    )
    provider.fetch_token()
    assert _form(forge_responses) == {
        "grant_type": "client_credentials",
        "scope": "read write:items",
        "audience": "https://api",
        "resource": "r1",
    }
    assert provider.scope == "read write:items"


def test_string_scope_is_normalised_and_empty_scope_is_omitted(forge_responses: Mock) -> None:
    """Extra whitespace in a scope string collapses; an empty scope sends no scope field."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    assert _cc(scope="  read   write ").scope == "read write"
    _cc(scope=[]).fetch_token()
    assert "scope" not in _form(forge_responses)


def test_password_grant_sends_username_and_password(forge_responses: Mock) -> None:
    """The password grant adds username and password to the form (client still in Basic)."""
    forge_responses.post(TOKEN_URL, json={**TOKEN_JSON, "refresh_token": "rt-1"})
    token = _pw(scope="profile").fetch_token()
    assert _form(forge_responses) == {
        "grant_type": "password",
        "username": "ada",
        "password": PASSWORD,
        "scope": "profile",
    }
    assert _basic(forge_responses) == ("my-client", SECRET)
    assert token.refresh_token == "rt-1"


def test_refresh_uses_the_refresh_token_grant(forge_responses: Mock) -> None:
    """refresh_token() sends grant_type=refresh_token with the current refresh token and scope."""
    forge_responses.post(TOKEN_URL, json={**TOKEN_JSON, "access_token": "at-2"})
    current = TokenData(access_token="at-1", refresh_token="rt-1")
    token = _pw(scope="profile").refresh_token(current)
    assert token.access_token == "at-2"
    assert _form(forge_responses) == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "scope": "profile",
    }
    assert _basic(forge_responses) == ("my-client", SECRET)


def test_refresh_without_a_refresh_token_fetches_anew(forge_responses: Mock) -> None:
    """A token without a refresh token is replaced through the provider's own grant."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc().refresh_token(TokenData(access_token="old"))
    assert _form(forge_responses)["grant_type"] == "client_credentials"


def test_token_expiry_is_counted_on_the_default_clock(
    forge_responses: Mock, forge_clock: FakeClock
) -> None:
    """expires_in (here the string "3600") becomes expires_at on the installed clock."""
    forge_responses.post(TOKEN_URL, json={**TOKEN_JSON, "expires_in": "3600", "scope": "a b"})
    token = _cc().fetch_token()
    assert token.expires_at == forge_clock.now() + timedelta(seconds=3600)
    assert token.issued_at == forge_clock.now()
    assert token.scope == "a b"


def test_a_given_client_is_used_and_not_closed(forge_responses: Mock) -> None:
    """client= sends through the caller's HttpClient, default headers too; close() spares it."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    client = HttpClient(HttpClientConfigBuilder().with_header("X-Tenant", "t1").build())
    provider = _cc(client=client)
    provider.fetch_token()
    provider.close()
    assert provider.client is client
    assert _header(forge_responses, "X-Tenant") == "t1"
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    assert client.post(TOKEN_URL).status_code == 200


# -- config=: the connection settings of an HttpClientConfig for the provider's own client --


class AuthServerAdapter(HTTPAdapter):
    """The adapter a config mounts for the authorization server, told apart by its type."""


@pytest.fixture
def api_config(tmp_path: Path) -> HttpClientConfig:
    """An API client's config: connection settings, and API settings a token request must
    not carry (base URL, headers, auth, hooks, retries, cookies)."""
    for name in ("cert", "key", "ca"):
        (tmp_path / f"{name}.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return (
        HttpClientConfigBuilder()
        .with_client_cert(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
        .with_ca_bundle(str(tmp_path / "ca.pem"))
        .with_proxies({"https": "http://proxy.internal:3128"})
        .with_max_redirects(2)
        .with_pool_size(3)
        .with_adapter("https://auth.example.com/", AuthServerAdapter)
        .with_base_url("https://api.example.com")
        .with_header("X-App", "api-only")
        .with_bearer_token("api-token")
        .with_request_hook(CorrelationIdHook())
        .with_retry(5)
        .with_timeout(60)
        .with_cookies({"api-session": "abc"}, shared=True)
        .build()
    )


@pytest.mark.parametrize("make", [_cc, _pw], ids=["client-credentials", "password"])
def test_config_lends_only_its_connection_settings(
    make: Callable[..., Any], api_config: HttpClientConfig
) -> None:
    """With config= the provider's own client connects as the config says (certificate, CA
    bundle, proxies, redirects, pools, adapters) and keeps its own timeout and retries."""
    provider = make(config=api_config)
    session = provider.client.session
    assert session.cert == api_config.client_cert
    assert session.verify == api_config.verify_ssl
    assert session.proxies == {"https": "http://proxy.internal:3128"}
    assert session.max_redirects == 2
    assert isinstance(session.adapters["https://auth.example.com/"], AuthServerAdapter)
    pooled = session.adapters["https://"]
    assert isinstance(pooled, HTTPAdapter)
    assert pooled.poolmanager.connection_pool_kw["maxsize"] == 3
    own = provider.client.config
    assert (own.base_url, dict(own.default_headers), own.auth_hook) == (None, {}, None)
    assert (own.request_hooks, own.cookies, own.shared_cookies) == ((), (), False)
    assert own.default_timeout == ClientCredentialsTokenProvider.DEFAULT_TIMEOUT
    assert isinstance(own.retry_strategy, ExponentialBackoffRetryStrategy)
    assert own.retry_strategy.max_retries == ClientCredentialsTokenProvider.DEFAULT_MAX_RETRIES
    provider.close()


def test_token_request_goes_out_with_the_configs_connection_settings(
    forge_responses: Mock, api_config: HttpClientConfig
) -> None:
    """The token request reaches the transport with the certificate, bundle and proxy of the
    config, and without the API's headers, token or cookies."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = _cc(config=api_config)
    assert provider.fetch_token().access_token == "at-1"
    provider.close()
    (call,) = forge_responses.calls
    sent = vars(call.request)["req_kwargs"]
    assert (sent["cert"], sent["verify"]) == (api_config.client_cert, api_config.verify_ssl)
    assert sent["proxies"]["https"] == "http://proxy.internal:3128"
    timeout = sent["timeout"]  # a number, or urllib3's Timeout bounding the whole attempt
    seconds = getattr(timeout, "connect_timeout", timeout), getattr(timeout, "total", timeout)
    assert seconds == (ClientCredentialsTokenProvider.DEFAULT_TIMEOUT,) * 2
    assert _basic(forge_responses) == ("my-client", SECRET)
    assert "X-App" not in call.request.headers
    assert "Cookie" not in call.request.headers


@pytest.mark.parametrize("make", [_cc, _pw], ids=["client-credentials", "password"])
def test_config_with_client_or_of_the_wrong_type_is_refused(make: Callable[..., Any]) -> None:
    """config= and client= together, or a config that is not an HttpClientConfig, raise
    ConfigurationError."""
    with HttpClient() as client, pytest.raises(ConfigurationError, match="not both"):
        make(client=client, config=HttpClientConfig())
    with pytest.raises(ConfigurationError, match="config must be an HttpClientConfig"):
        make(config={"verify_ssl": False})


# -- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, "invalid_client"), (400, "invalid_grant"), (400, "invalid_scope")],
)
def test_oauth_error_bodies_become_permanent_endpoint_errors(
    forge_responses: Mock, status: int, error: str
) -> None:
    """A 4xx with an RFC 6749 5.2 body maps to TokenEndpointError(transient=False), not retried."""
    body = {"error": error, "error_description": "nope"}
    forge_responses.post(TOKEN_URL, json=body, status=status)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(max_retries=3).fetch_token()
    exc = caught.value
    assert (exc.error, exc.error_description, exc.status_code) == (error, "nope", status)
    assert exc.transient is False
    assert exc.response is not None
    assert exc.response.status_code == status
    assert error in str(exc)
    assert str(status) in str(exc)
    assert len(forge_responses.calls) == 1


def test_a_4xx_without_an_oauth_body_still_maps(forge_responses: Mock) -> None:
    """A 403 with an HTML body is a permanent TokenEndpointError without an OAuth error code."""
    forge_responses.post(TOKEN_URL, body="<h1>Forbidden</h1>", status=403)
    with pytest.raises(TokenEndpointError) as caught:
        _cc().fetch_token()
    assert (caught.value.error, caught.value.status_code) == (None, 403)
    assert caught.value.transient is False


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_transient(
    forge_responses: Mock, forge_clock: FakeClock, status: int
) -> None:
    """5xx is retried max_retries times with backoff on the fake clock, then reported as
    a transient TokenEndpointError chained from the MaxRetryException."""
    body = {"error": "temporarily_unavailable"}
    forge_responses.post(TOKEN_URL, json=body, status=status)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(max_retries=2).fetch_token()
    exc = caught.value
    assert (exc.transient, exc.status_code, exc.error) == (True, status, "temporarily_unavailable")
    assert isinstance(exc.__cause__, MaxRetryException)
    assert len(forge_responses.calls) == 3
    assert len(forge_clock.sleeps) == 2
    assert "3 attempts" in str(exc)


def test_a_server_error_then_success_returns_the_token(
    forge_responses: Mock, forge_clock: FakeClock
) -> None:
    """One 503 followed by a token is a success after one retry."""
    forge_responses.post(TOKEN_URL, status=503)
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    assert _cc().fetch_token().access_token == "at-1"
    assert len(forge_clock.sleeps) == 1


def test_no_retries_when_max_retries_is_zero(forge_responses: Mock) -> None:
    """max_retries=0 sends once and maps the 503 directly."""
    forge_responses.post(TOKEN_URL, status=503)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(max_retries=0).fetch_token()
    assert caught.value.transient is True
    assert caught.value.__cause__ is None
    assert len(forge_responses.calls) == 1


def test_429_retry_after_is_honoured(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """A 429's Retry-After decides the wait (on the fake clock) before the successful retry."""
    forge_responses.post(TOKEN_URL, status=429, headers={"Retry-After": "7"})
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    assert _cc().fetch_token().access_token == "at-1"
    assert forge_clock.sleeps == [7.0]


def test_retry_after_is_capped(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """A huge Retry-After waits MAX_RETRY_AFTER at most: the manager's waiters are waiting."""
    forge_responses.post(TOKEN_URL, status=503, headers={"Retry-After": "3600"})
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    _cc().fetch_token()
    assert forge_clock.sleeps == [ClientCredentialsTokenProvider.MAX_RETRY_AFTER]


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (requests.exceptions.ConnectionError("connection reset"), TransportError),
        (requests.exceptions.ReadTimeout("read timed out"), ReadTimeoutError),
    ],
)
def test_transport_failures_are_retried_then_transient(
    forge_responses: Mock, forge_clock: FakeClock, raised: Exception, kind: type[Exception]
) -> None:
    """Connection errors and timeouts are retried (POST is allowed) and end as transient
    TokenEndpointErrors chained from our transport error, never a requests exception."""
    forge_responses.post(TOKEN_URL, body=raised)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(max_retries=1).fetch_token()
    exc = caught.value
    assert exc.transient is True
    assert exc.status_code is None
    assert isinstance(exc.__cause__, kind)
    assert not isinstance(exc, requests.RequestException)
    assert len(forge_responses.calls) == 2
    assert len(forge_clock.sleeps) == 1


def test_a_transport_failure_without_retries_is_chained_directly(forge_responses: Mock) -> None:
    """With max_retries=0 the transport error itself is the cause."""
    forge_responses.post(TOKEN_URL, body=requests.exceptions.ConnectTimeout("slow"))
    with pytest.raises(TokenEndpointError) as caught:
        _cc(max_retries=0).fetch_token()
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.transient is True


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ({"body": "<html>oops</html>"}, "not JSON"),
        ({"json": {"token_type": "Bearer"}}, "access_token"),
        ({"json": ["at-1"]}, "JSON object"),
        ({"json": {**TOKEN_JSON, "expires_in": "soon"}}, "expires_in"),
    ],
)
def test_a_2xx_that_is_not_a_token_response(
    forge_responses: Mock, reply: dict[str, Any], fragment: str
) -> None:
    """A 200 with a non-JSON or non-token body raises TokenResponseError naming the problem."""
    forge_responses.post(TOKEN_URL, status=200, **reply)
    with pytest.raises(TokenResponseError, match=fragment) as caught:
        _cc().fetch_token()
    assert isinstance(caught.value, TokenError)


# -- secrets --------------------------------------------------------------------------------


def test_repr_shows_identity_and_no_secret() -> None:
    """repr names token_url, client_id and scope but never the secret or password."""
    text = repr(_pw(scope="read"))
    assert text == (
        f"PasswordGrantTokenProvider(token_url={TOKEN_URL!r}, client_id='my-client', scope='read')"
    )
    assert SECRET not in text
    assert PASSWORD not in text


def test_logs_and_errors_never_contain_secrets(
    forge_responses: Mock, forge_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Even a server echoing our secret and password in error_description gets them scrubbed,
    and debug logging of a full exchange mentions neither."""
    echo = {"error": "invalid_grant", "error_description": f"bad {PASSWORD} for {SECRET}"}
    forge_responses.post(TOKEN_URL, json=echo, status=400)
    forge_responses.post(TOKEN_URL, status=503)
    forge_responses.post(TOKEN_URL, json={**TOKEN_JSON, "refresh_token": "rt-9"})
    caplog.set_level(logging.DEBUG, logger="requestforge")
    provider = _pw(client_auth="body")
    with pytest.raises(TokenEndpointError) as caught:
        provider.fetch_token()
    token = provider.fetch_token()
    texts = [
        str(caught.value),
        repr(caught.value),
        caught.value.error_description or "",
        caplog.text,
    ]
    texts += [repr(provider), repr(token), repr(caught.value.response)]
    for text in texts:
        assert SECRET not in text
        assert PASSWORD not in text
        assert "rt-9" not in text
    assert "[REDACTED]" in str(caught.value)
    assert "requesting a password token" in caplog.text


# -- identity -------------------------------------------------------------------------------


def test_service_name_tells_identities_apart_without_secrets() -> None:
    """Different client, scope, user or endpoint give different names; secrets play no part."""
    names = {
        _cc().service_name,
        ClientCredentialsTokenProvider(TOKEN_URL, "other", SECRET).service_name,
        _cc(scope="read").service_name,
        _cc(audience="https://api").service_name,
        ClientCredentialsTokenProvider(TOKEN_URL + "2", "my-client", SECRET).service_name,
        _pw().service_name,
        PasswordGrantTokenProvider(TOKEN_URL, "my-client", SECRET, "bob", "x").service_name,
    }
    assert len(names) == 7
    assert ClientCredentialsTokenProvider(TOKEN_URL, "my-client", "other").service_name == (
        _cc().service_name
    )
    assert all(SECRET not in n and PASSWORD not in n for n in names)
    assert "my-client" in _cc().service_name


def test_service_name_can_be_given() -> None:
    """service_name= overrides the derived name."""
    assert _cc(service_name="billing").service_name == "billing"


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (("auth.example.com/token", "id", "s"), {}),
        (("ftp://auth.example.com/token", "id", "s"), {}),
        (("https:///token", "id", "s"), {}),
        (("http://[::1/token", "id", "s"), {}),
        ((42, "id", "s"), {}),
        ((TOKEN_URL, "", "s"), {}),
        ((TOKEN_URL, None, "s"), {}),
        ((TOKEN_URL, "id", ""), {}),
        ((TOKEN_URL, "id", "s"), {"client_auth": "jwt"}),
        ((TOKEN_URL, "id", "s"), {"timeout": 0}),
        ((TOKEN_URL, "id", "s"), {"timeout": float("inf")}),
        ((TOKEN_URL, "id", "s"), {"timeout": True}),
        ((TOKEN_URL, "id", "s"), {"max_retries": -1}),
        ((TOKEN_URL, "id", "s"), {"max_retries": 1.5}),
        ((TOKEN_URL, "id", "s"), {"scope": 'bad"quote'}),
        ((TOKEN_URL, "id", "s"), {"scope": ["has space"]}),
        ((TOKEN_URL, "id", "s"), {"scope": 7}),
        ((TOKEN_URL, "id", "s"), {"extra_params": {"grant_type": "x"}}),
        ((TOKEN_URL, "id", "s"), {"extra_params": {"k": 1}}),
        ((TOKEN_URL, "id", "s"), {"client": object()}),
        ((TOKEN_URL, "id", "s"), {"service_name": ""}),
        ((TOKEN_URL, "id", "s"), {"audience": ""}),
    ],
)
def test_bad_configuration_is_rejected_at_construction(
    args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    """Each invalid argument raises ConfigurationError (a ValueError) from the constructor."""
    with pytest.raises(ConfigurationError):
        ClientCredentialsTokenProvider(*args, **options)


@pytest.mark.parametrize(("username", "password"), [("", "pw"), (None, "pw"), ("ada", None)])
def test_password_grant_needs_string_credentials(username: Any, password: Any) -> None:
    """username must be a non-empty string and password a string."""
    with pytest.raises(ConfigurationError):
        PasswordGrantTokenProvider(TOKEN_URL, "id", "s", username, password)


def test_validation_errors_do_not_quote_secrets() -> None:
    """A bad option's message never includes the client secret or password."""
    with pytest.raises(ConfigurationError) as caught:
        PasswordGrantTokenProvider(TOKEN_URL, "id", SECRET, "ada", PASSWORD, client_auth="x")
    assert SECRET not in str(caught.value)
    assert PASSWORD not in str(caught.value)
