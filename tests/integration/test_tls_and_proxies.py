"""HttpClient's per-request ``verify=``, ``cert=`` and ``proxies=`` against real peers.

The peers are an HTTPS ApiServer that requires a client certificate from ``forge_tls``'s
CA, and tinyproxy (``forge_proxy``): each proves from its own side what happened, the
server by the client certificate's subject it recorded, the proxy by the request line it
logged (``GET http://...`` when forwarding, ``CONNECT host:port`` when tunnelling).
"""

from __future__ import annotations

import socket
import threading

import certifi
import pytest
import requests

from requestforge import (
    ConnectError,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    ReadError,
)
from requestforge_testing import ApiServer, CertificateAuthority, ProxyServer, Reply

THREADS = 8
#: A real CA store that does not know our CA: certifi's, which requests always has.
OTHER_BUNDLE = certifi.where()


def client_with_timeout() -> HttpClient:
    return HttpClient(HttpClientConfigBuilder().with_timeout(5).build())


def common_name(server: ApiServer) -> list[str | None]:
    """The client certificate's common name on each request the server recorded."""
    return [(r.client_cert_subject or {}).get("commonName") for r in server.requests]


def test_verify_and_a_cert_pair_pass_mutual_tls(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """verify=<CA bundle> with cert=(cert, key) completes the handshake and the server sees
    the client's certificate."""
    forge_tls_api_server.add("/me", Reply(json={"ok": True}))
    with client_with_timeout() as client:
        response = client.get(
            forge_tls_api_server.url_for("/me"),
            verify=forge_tls.ca_bundle,
            cert=(forge_tls.client_cert_file, forge_tls.client_key_file),
        )
    assert response.json() == {"ok": True}
    assert common_name(forge_tls_api_server) == ["forge-client"]


def test_a_combined_cert_file_passes_mutual_tls(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """cert=<one file with key and certificate> works as well as the pair."""
    forge_tls_api_server.add("/me", Reply(body="me"))
    with client_with_timeout() as client:
        response = client.get(
            forge_tls_api_server.url_for("/me"),
            verify=forge_tls.ca_bundle,
            cert=forge_tls.client_pem_file,
        )
    assert response.text == "me"
    assert common_name(forge_tls_api_server) == ["forge-client"]


def test_without_cert_the_handshake_fails_as_a_connect_error(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """Without cert= the server refuses the handshake: the caller gets a ConnectError (from
    requests' SSLError), and the server never saw the request."""
    forge_tls_api_server.add("/me", Reply(body="me"))
    with client_with_timeout() as client, pytest.raises(ConnectError) as caught:
        client.get(forge_tls_api_server.url_for("/me"), verify=forge_tls.ca_bundle)
    assert not isinstance(caught.value, ReadError)
    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)
    assert forge_tls_api_server.requests == []


def test_the_default_ca_store_does_not_trust_the_server(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer
) -> None:
    """verify=True checks the server against the system store, which does not know our CA:
    a ConnectError that says the certificate did not verify."""
    with client_with_timeout() as client, pytest.raises(ConnectError) as caught:
        client.get(forge_tls_api_server.url_for("/me"), verify=True, cert=forge_tls.client_cert)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert forge_tls_api_server.requests == []


def test_verify_ssl_in_the_config_trusts_the_ca(
    forge_tls: CertificateAuthority,
    forge_tls_api_server: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HttpClientConfig(verify_ssl=<CA bundle>) verifies the server for every request, even
    with REQUESTS_CA_BUNDLE naming another store (requests alone would let it win)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", OTHER_BUNDLE)
    forge_tls_api_server.add("/me", Reply(body="me"))
    with HttpClient(HttpClientConfig(verify_ssl=forge_tls.ca_bundle, default_timeout=5)) as client:
        first = client.get(forge_tls_api_server.url_for("/me"), cert=forge_tls.client_cert)
        second = client.get(forge_tls_api_server.url_for("/me"), cert=forge_tls.client_pem_file)
    assert (first.text, second.text) == ("me", "me")
    assert common_name(forge_tls_api_server) == ["forge-client", "forge-client"]


def test_an_http_proxy_forwards_the_request(
    forge_proxy: ProxyServer, forge_api_server: ApiServer
) -> None:
    """proxies={"http": ...} sends a plain request through tinyproxy, which logs its
    absolute-form request line and adds its Via header."""
    forge_api_server.add("/items", Reply(json=[1, 2]))
    url = forge_api_server.url_for("/items")
    with client_with_timeout() as client:
        direct = client.get(url)
        proxied = client.get(url, proxies={"http": forge_proxy.url})
    assert direct.json() == proxied.json() == [1, 2]
    assert forge_proxy.request_lines == [f"GET {url} HTTP/1.1"]  # the direct one is not there
    first, second = forge_api_server.requests
    assert "Via" not in first.headers
    assert ProxyServer.VIA_NAME in second.headers["Via"]


def test_an_https_proxy_tunnels_with_connect(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer, forge_proxy: ProxyServer
) -> None:
    """proxies={"https": ...} opens a CONNECT tunnel through tinyproxy to the TLS server, and
    the mutual TLS inside it is end to end."""
    forge_tls_api_server.add("/secret", Reply(body="tunnelled"))
    with client_with_timeout() as client:
        response = client.get(
            forge_tls_api_server.url_for("/secret"),
            proxies={"https": forge_proxy.url},
            verify=forge_tls.ca_bundle,
            cert=forge_tls.client_cert,
        )
    assert response.text == "tunnelled"
    port = forge_tls_api_server.url.rsplit(":", 1)[1]
    (line,) = forge_proxy.request_lines
    assert line.startswith(f"CONNECT 127.0.0.1:{port} ")
    assert common_name(forge_tls_api_server) == ["forge-client"]


def test_a_proxy_that_is_not_there_is_a_connect_error(forge_api_server: ApiServer) -> None:
    """A proxy nobody listens on fails before anything is sent: a ConnectError."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"  # bound, never listening
        with client_with_timeout() as client, pytest.raises(ConnectError):
            client.get(forge_api_server.url_for("/x"), proxies={"http": dead})
    assert forge_api_server.requests == []


def test_threads_each_tunnel_with_their_own_session(
    forge_tls: CertificateAuthority, forge_tls_api_server: ApiServer, forge_proxy: ProxyServer
) -> None:
    """8 threads sharing one client each get their own reply over mTLS through the proxy,
    and each thread's session opens its own tunnel: 8 CONNECTs, 8 server connections."""
    forge_tls_api_server.add_handler("/who", lambda r: Reply(json=r.query["thread"][0]))
    barrier = threading.Barrier(THREADS)
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def worker(client: HttpClient, i: int) -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(2):  # the second request reuses the thread's tunnel
                response = client.get(
                    forge_tls_api_server.url_for(f"/who?thread={i}"),
                    proxies={"https": forge_proxy.url},
                    verify=forge_tls.ca_bundle,
                    cert=forge_tls.client_cert,
                )
                results[i] = response.json()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    with client_with_timeout() as client:
        threads = [threading.Thread(target=worker, args=(client, i)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert results == {i: str(i) for i in range(THREADS)}
    assert common_name(forge_tls_api_server) == ["forge-client"] * THREADS * 2
    connects = [line for line in forge_proxy.request_lines if line.startswith("CONNECT ")]
    assert len(connects) == len(forge_proxy.request_lines) == THREADS
    assert forge_tls_api_server.connections_accepted == THREADS
