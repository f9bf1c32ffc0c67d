"""ProxyServer and the forge_proxy fixtures: a real tinyproxy per session, reset per test."""

from __future__ import annotations

import socket

import pytest
import requests

from requestforge_testing import ApiServer, CertificateAuthority, ProxyServer, Reply
from tests.inner_pytest import run_inner


def test_the_proxy_listens_on_loopback(forge_proxy: ProxyServer) -> None:
    """url, host and port name a proxy that accepts connections on 127.0.0.1."""
    assert forge_proxy.url == f"http://127.0.0.1:{forge_proxy.port}"
    assert forge_proxy.proxies == {"http": forge_proxy.url, "https": forge_proxy.url}
    assert forge_proxy.host == "127.0.0.1"
    with socket.create_connection((forge_proxy.host, forge_proxy.port), timeout=5):
        pass


def test_a_plain_request_is_forwarded_and_logged(
    forge_proxy: ProxyServer, forge_api_server: ApiServer
) -> None:
    """A plain-HTTP request reaches the server through the proxy, which logs its absolute
    request line and adds a Via header naming itself."""
    forge_api_server.add("/through", Reply(json={"via": "proxy"}))
    url = forge_api_server.url_for("/through?q=1")
    response = requests.get(url, proxies={"http": forge_proxy.url}, timeout=5)
    assert response.json() == {"via": "proxy"}
    assert forge_proxy.request_lines == [f"GET {url} HTTP/1.1"]
    (seen,) = forge_api_server.requests
    assert (seen.path, seen.query) == ("/through", {"q": ["1"]})
    assert ProxyServer.VIA_NAME in seen.headers["Via"]
    assert "tinyproxy" in seen.headers["Via"]


def test_a_direct_request_leaves_no_trace(
    forge_proxy: ProxyServer, forge_api_server: ApiServer
) -> None:
    """Without proxies= nothing is logged and no Via header arrives: the proof can fail."""
    requests.get(forge_api_server.url_for("/direct"), timeout=5)
    assert forge_proxy.request_lines == []
    (seen,) = forge_api_server.requests
    assert "Via" not in seen.headers


def test_https_is_tunnelled_with_connect(forge_proxy: ProxyServer) -> None:
    """An https:// request goes through a CONNECT tunnel to the server's port, and the TLS
    inside it is end to end: the server still sees the client certificate."""
    with (
        CertificateAuthority() as authority,
        ApiServer(ssl_context=authority.server_context()) as server,
    ):
        server.add("/secret", Reply(body="tunnelled"))
        response = requests.get(
            server.url_for("/secret"),
            proxies={"https": forge_proxy.url},
            verify=authority.ca_bundle,
            cert=authority.client_cert,
            timeout=5,
        )
        (seen,) = server.requests
        port = server.url.rsplit(":", 1)[1]
    assert response.text == "tunnelled"
    (line,) = forge_proxy.request_lines
    assert line.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.")
    assert "Via" not in seen.headers  # inside the tunnel the proxy sees only ciphertext
    assert seen.client_cert_subject is not None


def test_reset_forgets_what_was_logged(
    forge_proxy: ProxyServer, forge_api_server: ApiServer
) -> None:
    """After reset() request_lines starts empty and then shows only what came after."""
    proxies = {"http": forge_proxy.url}
    requests.get(forge_api_server.url_for("/before"), proxies=proxies, timeout=5)
    assert len(forge_proxy.request_lines) == 1
    forge_proxy.reset()
    assert forge_proxy.request_lines == []
    requests.get(forge_api_server.url_for("/after"), proxies=proxies, timeout=5)
    assert forge_proxy.request_lines == [f"GET {forge_api_server.url_for('/after')} HTTP/1.1"]


def test_proxy_stops_and_cleans_up() -> None:
    """stop() ends the process (the port refuses connections) and removes its directory."""
    proxy = ProxyServer()
    directory = proxy.directory
    config = (directory / "tinyproxy.conf").read_text()
    assert "Listen 127.0.0.1\n" in config
    assert "Allow 127.0.0.1\n" in config
    assert "ConnectPort" not in config  # no line: CONNECT to any port
    assert "running" in repr(proxy)
    proxy.stop()
    proxy.stop()  # twice is harmless
    assert not directory.exists()
    assert "stopped" in repr(proxy)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((proxy.host, proxy.port), timeout=2),
    ):
        pass


def test_two_proxies_get_different_ports() -> None:
    """Each proxy picks its own free port and keeps its own log."""
    with ProxyServer() as first, ProxyServer() as second, ApiServer() as server:
        assert first.port != second.port
        requests.get(server.url_for("/one"), proxies={"http": first.url}, timeout=5)
        assert len(first.request_lines) == 1
        assert second.request_lines == []


def test_every_test_gets_a_reset_proxy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests logged in one test are gone in the next, though the proxy is shared."""
    pytester.makepyfile(
        """
        import requests

        PORTS = []

        def test_first(forge_proxy, forge_api_server):
            PORTS.append(forge_proxy.port)
            url = forge_api_server.url_for("/x")
            requests.get(url, proxies=forge_proxy.proxies, timeout=5)
            assert forge_proxy.request_lines == [f"GET {url} HTTP/1.1"]

        def test_second(forge_proxy):
            assert forge_proxy.port == PORTS[0]
            assert forge_proxy.request_lines == []
        """
    )
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=2)
