"""Tests for the token fetchers: validation, the request each step sends, response parsing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from requests.adapters import HTTPAdapter

from requestforge import (
    BodyTokenFetcher,
    ConfigurationError,
    FetchContext,
    HeaderTokenFetcher,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    TokenData,
    TokenEndpointError,
    TokenResponseError,
)
from requestforge_testing import FakeClock

BASE = "https://auth.example.test"


@pytest.fixture
def client() -> Iterator[HttpClient]:
    """A client with the mocked auth server as its base URL."""
    with HttpClient(HttpClientConfigBuilder().with_base_url(BASE).build()) as http:
        yield http


def context(**tokens: str) -> FetchContext:
    """A FetchContext holding bearer tokens for the given step names, in order."""
    ctx = FetchContext()
    for name, value in tokens.items():
        ctx.add_token(name, TokenData(value))
    return ctx


# -- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": ""}, "url of step 'x' must be a non-empty string"),
        ({"url": "/token", "client": None}, "relative .* no client with a base_url"),
        ({"method": "GET /x"}, "method must be an RFC 9110 token .* got 'GET /x'"),
        ({"headers": ["X-A"]}, "headers must be a mapping or a callable"),
        ({"json": {"a": 1}, "data": {"b": 2}}, "give json or data, not both"),
        ({"auth_from": "other"}, "auth_from of step 'x' must be one of its depends_on"),
        ({"token_type": " "}, "token_type must be a non-empty string"),
        ({"client": object()}, "client must be an HttpClient"),
        ({"clock": object()}, "clock must be a Clock"),
        ({"ttl": -1}, "ttl of step 'x' must be a finite number > 0"),
    ],
)
def test_invalid_options_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    """Each bad option raises ConfigurationError naming it, before anything is sent."""
    options: dict[str, Any] = {"url": f"{BASE}/token", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        BodyTokenFetcher("x", **options)


@pytest.mark.parametrize("path", ["", "data..token", ".token", "token.", 5])
def test_invalid_json_paths_fail_at_construction(path: Any) -> None:
    """A token_path with an empty segment (or not a string) raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="token_path must be a dotted path"):
        BodyTokenFetcher("x", f"{BASE}/token", token_path=path)


def test_invalid_header_name_fails_at_construction() -> None:
    """A header_name that is not an HTTP token raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="header_name"):
        HeaderTokenFetcher("x", f"{BASE}/token", header_name="X Token")


def test_repr_redacts_the_url() -> None:
    """A fetcher's repr shows its step and URL with query secrets redacted."""
    fetcher = HeaderTokenFetcher("x", f"{BASE}/token?api_key=sekrit")
    try:
        assert "sekrit" not in repr(fetcher)
        assert "HeaderTokenFetcher(name='x'" in repr(fetcher)
    finally:
        fetcher.close()


# -- config=: the connection settings of an HttpClientConfig for the step's own client --------


@pytest.fixture
def api_config(tmp_path: Path) -> HttpClientConfig:
    """An API client's config: connection settings, and API settings a token request must
    not carry (base URL, headers, auth, retries, cookies)."""
    for name in ("cert", "ca"):
        (tmp_path / f"{name}.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return (
        HttpClientConfigBuilder()
        .with_client_cert(str(tmp_path / "cert.pem"))
        .with_ca_bundle(str(tmp_path / "ca.pem"))
        .with_proxies({"https": "http://proxy.internal:3128"})
        .with_max_redirects(1)
        .with_pool_size(3)
        .with_adapter("https://auth.example.test/", HTTPAdapter)
        .with_base_url(BASE)
        .with_header("X-App", "api-only")
        .with_bearer_token("api-token")
        .with_retry(5)
        .with_cookies({"api-session": "abc"})
        .build()
    )


@pytest.mark.parametrize("kind", [BodyTokenFetcher, HeaderTokenFetcher])
def test_config_lends_only_its_connection_settings(
    kind: type[BodyTokenFetcher | HeaderTokenFetcher], api_config: HttpClientConfig
) -> None:
    """With config= the step's own client connects as the config says and sends nothing of
    the API's: no base URL, headers, auth, retries or cookies."""
    step = kind("x", f"{BASE}/token", config=api_config)
    session = step.client.session
    assert (session.cert, session.verify) == (api_config.client_cert, api_config.verify_ssl)
    assert session.proxies == {"https": "http://proxy.internal:3128"}
    assert session.max_redirects == 1
    assert "https://auth.example.test/" in session.adapters
    pooled = session.adapters["https://"]
    assert isinstance(pooled, HTTPAdapter)
    assert pooled.poolmanager.connection_pool_kw["maxsize"] == 3
    assert len(session.cookies) == 0
    own = step.client.config
    assert (own.base_url, dict(own.default_headers), own.auth_hook) == (None, {}, None)
    assert own.retry_strategy.max_retries == 0
    step.close()


def test_token_request_goes_out_with_the_configs_connection_settings(
    forge_responses: responses.RequestsMock, api_config: HttpClientConfig
) -> None:
    """The step's request reaches the transport with the config's certificate, bundle and
    proxy, and without the API's header or token."""
    call = forge_responses.post(f"{BASE}/token", json={"access_token": "t"})
    step = BodyTokenFetcher("x", f"{BASE}/token", config=api_config)
    assert step.fetch(FetchContext()).access_token == "t"
    step.close()
    request = call.calls[0].request
    sent = vars(request)["req_kwargs"]
    assert (sent["cert"], sent["verify"]) == (api_config.client_cert, api_config.verify_ssl)
    assert sent["proxies"]["https"] == "http://proxy.internal:3128"
    assert "X-App" not in request.headers
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("kind", [BodyTokenFetcher, HeaderTokenFetcher])
def test_config_with_client_or_a_relative_url_is_refused(
    kind: type[BodyTokenFetcher | HeaderTokenFetcher], api_config: HttpClientConfig
) -> None:
    """config= with client=, a config that is not an HttpClientConfig, or a relative URL
    (the config's base URL is not used) raise ConfigurationError."""
    with HttpClient() as http, pytest.raises(ConfigurationError, match="not both"):
        kind("x", f"{BASE}/token", client=http, config=api_config)
    with pytest.raises(ConfigurationError, match="config must be an HttpClientConfig"):
        kind("x", f"{BASE}/token", config="verify_ssl=False")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="relative"):
        kind("x", "/token", config=api_config)


# -- the request ---------------------------------------------------------------------------------


def test_authorization_defaults_to_the_last_dependency(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """With two dependencies and no auth_from, the last one's token is the bearer token."""
    call = forge_responses.post(f"{BASE}/token", json={"access_token": "t"})
    step = BodyTokenFetcher("x", "/token", depends_on=("a", "b"), client=client)
    step.fetch(context(a="token-a", b="token-b"))
    assert call.calls[0].request.headers["Authorization"] == "Bearer token-b"


def test_auth_from_picks_the_dependency_and_its_scheme(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """auth_from names the step whose token (in its own scheme) goes into Authorization."""
    call = forge_responses.post(f"{BASE}/token", json={"access_token": "t"})
    step = BodyTokenFetcher("x", "/token", depends_on=("a", "b"), auth_from="a", client=client)
    ctx = FetchContext()
    ctx.add_token("a", TokenData("token-a", token_type="mac"))
    ctx.add_token("b", TokenData("token-b"))
    step.fetch(ctx)
    assert call.calls[0].request.headers["Authorization"] == "MAC token-a"


def test_no_dependencies_means_no_authorization(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """A first step sends no Authorization header of its own."""
    call = forge_responses.post(f"{BASE}/token", json={"access_token": "t"})
    BodyTokenFetcher("x", "/token", client=client).fetch(FetchContext())
    assert "Authorization" not in call.calls[0].request.headers


def test_callable_headers_and_body_see_the_context(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """headers= and json= callables build the request from earlier tokens; headers win."""
    call = forge_responses.put(f"{BASE}/token", json={"access_token": "t"})
    step = BodyTokenFetcher(
        "x",
        "/token",
        method="put",
        depends_on=("a",),
        client=client,
        headers=lambda ctx: {"authorization": f"Token {ctx.get_token('a').access_token}"},
        json=lambda ctx: {"assertion": ctx.get_token("a").access_token},
    )
    step.fetch(context(a="token-a"))
    sent = call.calls[0].request
    assert sent.headers["Authorization"] == "Token token-a"
    assert json.loads(sent.body or b"") == {"assertion": "token-a"}


def test_static_form_data_is_sent(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """data= sends a form body as given."""
    call = forge_responses.post(f"{BASE}/token", headers={"X-Token": "h"})
    step = HeaderTokenFetcher(
        "x", "/token", header_name="X-Token", data={"grant": "device"}, client=client
    )
    assert step.fetch(FetchContext()).access_token == "h"
    assert call.calls[0].request.body == "grant=device"


def test_headers_callable_must_return_a_mapping(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """A headers callable returning something else raises ConfigurationError, sending nothing."""
    step = BodyTokenFetcher("x", "/token", client=client, headers=lambda ctx: ["nope"])  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigurationError, match="returned list, not a mapping"):
        step.fetch(FetchContext())
    assert len(forge_responses.calls) == 0


# -- the response --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "lifetime"),
    [
        ({"token": {"value": "t", "ttl": 120}}, 120.0),
        ({"token": {"value": "t", "ttl": "3600"}}, 3600.0),
        ({"token": {"value": "t"}}, None),
    ],
)
def test_expiry_comes_from_expires_in_path(
    forge_responses: responses.RequestsMock,
    client: HttpClient,
    forge_clock: FakeClock,
    body: dict[str, Any],
    lifetime: float | None,
) -> None:
    """expires_in at its path (number or numeric string) sets the expiry; absent, none."""
    forge_responses.post(f"{BASE}/token", json=body)
    step = BodyTokenFetcher(
        "x", "/token", token_path="token.value", expires_in_path="token.ttl", client=client
    )
    token = step.fetch(FetchContext())
    assert token.access_token == "t"
    assert token.issued_at == forge_clock.now()
    expected = None if lifetime is None else forge_clock.now() + timedelta(seconds=lifetime)
    assert token.expires_at == expected


def test_numeric_path_segments_index_arrays(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """'items.1.token' reads the token of the second array element."""
    forge_responses.post(f"{BASE}/token", json={"items": [{"token": "a"}, {"token": "b"}]})
    step = BodyTokenFetcher("x", "/token", token_path="items.1.token", client=client)
    assert step.fetch(FetchContext()).access_token == "b"


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        ({"access_token": 42}, {}, "no token string at 'access_token'"),
        ({"items": []}, {"token_path": "items.0"}, "no token string at 'items.0'"),
        ({"access_token": "t", "expires_in": "soon"}, {}, "expires_in is not a number"),
        (
            {"access_token": "t"},
            {"refresh_token_path": "refresh"},
            "no refresh token string at 'refresh'",
        ),
        ({"access_token": "two words"}, {}, "access_token contains whitespace"),
    ],
)
def test_unusable_bodies_raise_token_response_error(
    forge_responses: responses.RequestsMock,
    client: HttpClient,
    body: dict[str, Any],
    options: dict[str, Any],
    message: str,
) -> None:
    """A 2xx body without a usable token raises TokenResponseError that never quotes it."""
    forge_responses.post(f"{BASE}/token", json=body)
    step = BodyTokenFetcher("x", "/token", client=client, **options)
    with pytest.raises(TokenResponseError, match=message) as caught:
        step.fetch(FetchContext())
    assert "two words" not in str(caught.value)


def test_header_token_with_spaces_is_rejected_without_quoting_it(
    forge_responses: responses.RequestsMock, client: HttpClient
) -> None:
    """A header value that cannot be a token raises TokenResponseError without the value."""
    forge_responses.post(f"{BASE}/token", headers={"X-Auth-Token": "leaked value"})
    with pytest.raises(TokenResponseError, match="whitespace") as caught:
        HeaderTokenFetcher("x", "/token", client=client).fetch(FetchContext())
    assert "leaked" not in str(caught.value)


@pytest.mark.parametrize(
    "case",
    [
        (429, {"error": "slow_down"}, True, "slow_down"),
        (503, None, True, None),
        (401, {"error": "invalid_client"}, False, "invalid_client"),
        (403, {"error": "a message with the-token-value inside"}, False, None),
    ],
)
def test_error_statuses_map_to_token_endpoint_error(
    forge_responses: responses.RequestsMock,
    client: HttpClient,
    case: tuple[int, dict[str, Any] | None, bool, str | None],
) -> None:
    """Non-2xx answers are TokenEndpointErrors: 429/5xx transient, odd error text left out."""
    status, body, transient, error = case
    forge_responses.post(f"{BASE}/token", status=status, json=body)
    with pytest.raises(TokenEndpointError) as caught:
        BodyTokenFetcher("x", "/token", client=client).fetch(FetchContext())
    assert caught.value.status_code == status
    assert caught.value.transient is transient
    assert f"answered {status}" in str(caught.value)
    if error is not None:
        assert f"({error})" in str(caught.value)
    assert "the-token-value" not in str(caught.value)
