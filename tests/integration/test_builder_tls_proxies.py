"""The builder's connection settings against real peers: mutual TLS, a CA bundle, a proxy.

``with_client_cert`` and ``with_ca_bundle`` meet an HTTPS ApiServer that requires a client
certificate from ``forge_tls``'s CA (it records the certificate's subject), and
``with_proxies`` meets tinyproxy (``forge_proxy``, which logs each request line), with no
per-request ``cert=``, ``verify=`` or ``proxies=``: what reaches the peers came from the
config alone, in every thread, and for the client a token provider makes with ``config=``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    ConnectError,
    FetchContext,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    TokenEndpointError,
)
from requestforge_testing import ApiServer, CertificateAuthority, ProxyServer, Reply
from tests.threads import in_threads

pytestmark = pytest.mark.usefixtures("forge_clean_environment")

THREADS = 4
TOKEN_JSON = {"access_token": "mtls-token", "token_type": "Bearer", "expires_in": 300}


def mtls(forge_tls: CertificateAuthority) -> HttpClientConfigBuilder:
    """A builder with the client certificate pair and the CA bundle of ``forge_tls``."""
    cert, key = forge_tls.client_cert
    builder = HttpClientConfigBuilder().with_timeout(5).with_client_cert(cert, key)
    return builder.with_ca_bundle(forge_tls.ca_bundle)


def common_names(server: ApiServer) -> list[str | None]:
    """The client certificate's common name on each request the server recorded."""
    return [(r.client_cert_subject or {}).get("commonName") for r in server.requests]


# -- mutual TLS from the builder ------------------------------------------------------------------


def test_client_cert_and_ca_bundle_pass_mutual_tls_in_every_thread(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """Every thread's session presents the builder's certificate and trusts its CA bundle."""
    forge_tls_api_server.add("/me", Reply(json={"ok": True}))
    config = mtls(forge_tls).with_base_url(forge_tls_api_server.url).build()
    with HttpClient(config) as client:
        bodies = in_threads(THREADS, lambda: client.get("/me").json())
    assert bodies == [{"ok": True}] * THREADS
    assert common_names(forge_tls_api_server) == [forge_tls.client_common_name] * THREADS


@pytest.mark.parametrize("factory", [None, requests.Session], ids=["own", "session_factory"])
def test_a_combined_pem_file_passes_mutual_tls(
    forge_tls: CertificateAuthority,
    forge_tls_api_server: ApiServer,
    factory: Callable[[], requests.Session] | None,
) -> None:
    """with_client_cert(one file) works on the client's sessions and on a factory's."""
    forge_tls_api_server.add("/me", Reply(body="me"))
    config = (
        HttpClientConfigBuilder()
        .with_timeout(5)
        .with_client_cert(forge_tls.client_pem_file)
        .with_ca_bundle(forge_tls.ca_bundle)
        .build()
    )
    with HttpClient(config, session_factory=factory) as client:
        assert client.get(forge_tls_api_server.url_for("/me")).text == "me"
    assert common_names(forge_tls_api_server) == [forge_tls.client_common_name]


def test_without_the_client_cert_the_handshake_fails(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """The CA bundle alone is not enough for a server that wants a certificate: the builder's
    certificate is what made the tests above pass."""
    forge_tls_api_server.add("/me", Reply(body="me"))
    config = HttpClientConfigBuilder().with_timeout(5).with_ca_bundle(forge_tls.ca_bundle)
    with HttpClient(config.build()) as client, pytest.raises(ConnectError):
        client.get(forge_tls_api_server.url_for("/me"))
    assert forge_tls_api_server.requests == []


# -- proxies from the builder ---------------------------------------------------------------


def test_with_proxies_forwards_plain_http_through_the_proxy(
    forge_proxy: ProxyServer, forge_api_server: ApiServer
) -> None:
    """with_proxies({"http": ...}) makes every thread's request go through tinyproxy."""
    forge_api_server.add("/via", Reply(body="ok"))
    config = HttpClientConfigBuilder().with_timeout(5).with_proxies({"http": forge_proxy.url})
    url = forge_api_server.url_for("/via")
    with HttpClient(config.build()) as client:
        assert in_threads(THREADS, lambda: client.get(url).text) == ["ok"] * THREADS
    assert forge_proxy.request_lines == [f"GET {url} HTTP/1.1"] * THREADS
    assert all(ProxyServer.VIA_NAME in r.headers["Via"] for r in forge_api_server.requests)


def test_with_proxies_tunnels_mutual_tls_through_the_proxy(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer, forge_proxy: ProxyServer
) -> None:
    """An https:// proxy entry tunnels with CONNECT, and the certificate still reaches the
    server through the tunnel."""
    forge_tls_api_server.add("/me", Reply(body="me"))
    config = mtls(forge_tls).with_proxies({"https": forge_proxy.url}).build()
    with HttpClient(config) as client:
        assert client.get(forge_tls_api_server.url_for("/me")).text == "me"
    host = forge_tls_api_server.url.removeprefix("https://")
    assert [line.split()[:2] for line in forge_proxy.request_lines] == [["CONNECT", host]]
    assert common_names(forge_tls_api_server) == [forge_tls.client_common_name]


# -- token providers with config= -----------------------------------------------------------


def test_provider_with_config_fetches_a_token_over_mutual_tls(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """A client credentials provider given the API's config (RFC 8705: the same client
    certificate) gets its token from an mTLS token endpoint; without it, it cannot."""
    forge_tls_api_server.add("/oauth/token", Reply(json=TOKEN_JSON))
    token_url = forge_tls_api_server.url_for("/oauth/token")
    api_config: HttpClientConfig = (
        mtls(forge_tls).with_base_url("https://api.example.com").with_header("X-App", "a").build()
    )
    provider = ClientCredentialsTokenProvider(token_url, "my-client", None, config=api_config)
    try:
        assert provider.fetch_token().access_token == "mtls-token"
    finally:
        provider.close()
    (request,) = forge_tls_api_server.requests
    assert (request.client_cert_subject or {}).get("commonName") == forge_tls.client_common_name
    assert "X-App" not in request.headers
    alone = ClientCredentialsTokenProvider(token_url, "my-client", None, max_retries=0)
    with pytest.raises(TokenEndpointError) as caught:
        alone.fetch_token()
    alone.close()
    assert caught.value.transient


def test_pipeline_step_with_config_fetches_a_token_over_mutual_tls(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """A BodyTokenFetcher given the config reaches an mTLS endpoint with its certificate."""
    forge_tls_api_server.add("/token", Reply(json={"access_token": "step-token"}))
    step = BodyTokenFetcher(
        "device", forge_tls_api_server.url_for("/token"), config=mtls(forge_tls).build()
    )
    try:
        assert step.fetch(FetchContext()).access_token == "step-token"
    finally:
        step.close()
    assert common_names(forge_tls_api_server) == [forge_tls.client_common_name]
