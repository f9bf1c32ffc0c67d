"""Secrets stay home, over real loopback traffic: logs with DEBUG on for every logger,
tracebacks of transport errors, reprs and ``to_curl()``, and redirects to another origin.

A second ``ApiServer`` on another port is another origin (RFC 6454: scheme, host, port).
Every canary is distinctive, so a hit cannot be a coincidence.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator

import pytest
import requests

from requestforge import (
    ApiKeyAuthHook,
    AuthHookInterface,
    BasicAuthHook,
    BearerTokenAuthHook,
    HttpClient,
    HttpClientConfigBuilder,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    RequestForgeError,
    TokenAuthHook,
    TokenManager,
)
from requestforge_testing import ApiServer, FakeTokenProvider, Reply

QUERY_KEY = "CANARY-QKEY-7f3a-1"
HEADER_KEY = "CANARY-HKEY-7f3a-2"
URL_TOKEN = "CANARY-URLTOKEN-7f3a-3"
URL_PASSWORD = "CANARY-URLPW-7f3a-4"
DEFAULT_SECRET = "CANARY-DEFAULT-7f3a-5"
CANARIES = (QUERY_KEY, HEADER_KEY, URL_TOKEN, URL_PASSWORD, DEFAULT_SECRET)


@pytest.fixture
def other_origin() -> Iterator[ApiServer]:
    """A second loopback server: same host, another port, so another origin."""
    with ApiServer() as server:
        yield server


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """DEBUG on for every logger (urllib3's request lines included)."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requestforge", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def leaky_builder() -> HttpClientConfigBuilder:
    """A config that sends a secret in every place one can go."""
    return (
        HttpClientConfigBuilder()
        .with_timeout(5)
        .with_api_key(QUERY_KEY, query_param="subscription-key")
        .with_api_key(HEADER_KEY, header_name="Ocp-Apim-Subscription-Key")
        .with_header("X-Partner-Key", DEFAULT_SECRET, secret=True)
        .with_request_hook(LoggingRequestHook())
        .with_response_hook(LoggingResponseHook(level=logging.DEBUG))
        .with_error_hook(LoggingErrorHook(level=logging.DEBUG))
    )


def hits(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


def everything_in(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as handlers format it, plus the raw msg and args a handler could read."""
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), str(record.msg), repr(record.args)]
    return "\n".join(parts)


def test_a_debug_run_logs_no_secret(
    forge_api_server: ApiServer, everything_logged: pytest.LogCaptureFixture
) -> None:
    """Requests with keys in a custom header, a custom query parameter, a secret default
    header and the caller's own URL: urllib3's and our DEBUG lines hold none of them."""
    forge_api_server.add("/api", Reply(json={"ok": True}))
    url = forge_api_server.url_for(f"/api?access_token={URL_TOKEN}&password={URL_PASSWORD}")
    with HttpClient(leaky_builder().build()) as client:
        assert client.get(url).json() == {"ok": True}
    (seen,) = forge_api_server.requests
    assert seen.query["subscription-key"] == [QUERY_KEY]  # it was really sent
    assert seen.headers["Ocp-Apim-Subscription-Key"] == HEADER_KEY
    logged = everything_in(everything_logged)
    assert "urllib3.connectionpool" in {r.name for r in everything_logged.records}
    assert '"GET /api?' in logged
    assert hits(logged) == []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_traceback_of_a_connection_failure_is_clean(
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    """Connection refused with secrets in the URL: the error, its chained cause (still a
    requests ConnectionError) and logger.exception's traceback quote none of them."""
    url = f"http://127.0.0.1:{closed_port()}/api?access_token={URL_TOKEN}&password={URL_PASSWORD}"
    with HttpClient(leaky_builder().build()) as client, pytest.raises(RequestForgeError) as caught:
        client.get(url)
    error = caught.value
    assert isinstance(error.__cause__, requests.ConnectionError)
    logging.getLogger("tests.secrets").exception("request failed")
    text = "".join(traceback.format_exception(error))
    assert "Max retries exceeded" in text or "Connection refused" in text
    assert hits(text) == []
    assert hits(everything_in(everything_logged)) == []


def test_reprs_and_curl_show_no_secret(forge_api_server: ApiServer) -> None:
    """The builder, the config, the sent request's repr, to_dict() and to_curl() are clean."""
    forge_api_server.add("/api", Reply(json={}))
    builder = leaky_builder()
    config = builder.build()
    with HttpClient(config) as client:
        response = client.get(forge_api_server.url_for(f"/api?access_token={URL_TOKEN}"))
    sent = response.request
    assert sent is not None
    assert HEADER_KEY in sent.headers.values()  # the request as sent, auth hook applied
    shown = [repr(builder), repr(config), repr(sent), str(sent.to_dict()), sent.to_curl()]
    assert hits("\n".join(shown)) == []


def redirect(to: str) -> Reply:
    return Reply(status=307, headers={"Location": to})


HOOKS: dict[str, Callable[[], AuthHookInterface]] = {
    "bearer": lambda: BearerTokenAuthHook(HEADER_KEY),
    "basic": lambda: BasicAuthHook("ann", HEADER_KEY),
    "api-key-header": lambda: ApiKeyAuthHook(HEADER_KEY, header_name="X-Partner-Token-2"),
    "api-key-query": lambda: ApiKeyAuthHook(HEADER_KEY, query_param="subscription-key"),
    "token": lambda: TokenAuthHook(TokenManager(FakeTokenProvider())),
}


@pytest.mark.parametrize("hook_name", sorted(HOOKS))
def test_a_cross_origin_redirect_carries_no_credential(
    forge_api_server: ApiServer, other_origin: ApiServer, hook_name: str
) -> None:
    """After a redirect to another origin, neither the auth hook's credential nor a secret
    default header (marked, or secret by name) nor a declared query parameter the server
    echoed into the Location is sent there."""
    echoed = other_origin.url_for(f"/land?subscription-key={HEADER_KEY}&page=2")
    forge_api_server.add("/start", redirect(echoed))
    other_origin.add("/land", Reply(body="landed"))
    config = (
        HttpClientConfigBuilder()
        .with_timeout(5)
        .with_auth_hook(HOOKS[hook_name]())
        .with_header("X-Partner-Key", DEFAULT_SECRET, secret=True)
        .with_header("X-Client-Secret", DEFAULT_SECRET)
        .with_header("Accept", "text/plain")
        .build()
    )
    with HttpClient(config) as client:
        assert client.get(forge_api_server.url_for("/start")).text == "landed"
    (first,) = forge_api_server.requests
    assert first.headers["X-Partner-Key"] == DEFAULT_SECRET  # the home origin got them
    (landed,) = other_origin.requests
    assert landed.query == {"page": ["2"]}
    assert landed.headers["Accept"] == "text/plain"
    leaked = repr((sorted(landed.headers.items()), landed.body))
    assert hits(leaked) == []
    assert "fake-access" not in leaked
    assert "Authorization" not in dict(landed.headers)
