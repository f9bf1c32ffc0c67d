"""CertificateAuthority, ApiServer over TLS and the forge_tls fixtures: real handshakes."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from requestforge_testing import ApiServer, CertificateAuthority, Reply
from tests.inner_pytest import run_inner


@pytest.fixture
def mtls_server(forge_tls: CertificateAuthority) -> Iterator[ApiServer]:
    """A server of its own (not the session's), requiring a client certificate."""
    with ApiServer(ssl_context=forge_tls.server_context()) as server:
        server.add("/hello", Reply(json={"hello": "tls"}))
        yield server


def test_the_files_are_pem_of_the_right_kind(forge_tls: CertificateAuthority) -> None:
    """Each path holds what its name says, and the combined file holds key and certificate."""
    text = {name: Path(getattr(forge_tls, name)).read_text() for name in _FILES}
    for name in ("ca_bundle", "server_cert_file", "client_cert_file"):
        assert text[name].startswith("-----BEGIN CERTIFICATE-----"), name
        assert "PRIVATE KEY" not in text[name], name
    for name in ("server_key_file", "client_key_file"):
        assert "PRIVATE KEY-----" in text[name].splitlines()[0], name
    assert text["client_pem_file"] == text["client_key_file"] + text["client_cert_file"]
    assert forge_tls.client_cert == (forge_tls.client_cert_file, forge_tls.client_key_file)
    assert {Path(getattr(forge_tls, name)).parent for name in _FILES} == {forge_tls.directory}


_FILES = (
    "ca_bundle",
    "server_cert_file",
    "server_key_file",
    "client_cert_file",
    "client_key_file",
    "client_pem_file",
)


def test_close_removes_the_files() -> None:
    """close() (or leaving the with block) removes the directory; closing twice is harmless."""
    with CertificateAuthority() as authority:
        directory = authority.directory
        assert Path(authority.ca_bundle).is_file()
        assert "open" in repr(authority)
    assert not directory.exists()
    authority.close()
    assert "closed" in repr(authority)


def test_a_tls_server_has_an_https_url(mtls_server: ApiServer) -> None:
    """With an SSL context the server's URL is https://127.0.0.1:<port>."""
    assert mtls_server.url.startswith("https://127.0.0.1:")
    assert mtls_server.url_for("/x") == mtls_server.url + "/x"


def test_a_client_certificate_is_recorded(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """Over mTLS the server records the subject of the certificate the client presented."""
    response = requests.get(
        mtls_server.url_for("/hello"),
        verify=forge_tls.ca_bundle,
        cert=forge_tls.client_cert,
        timeout=5,
    )
    assert response.json() == {"hello": "tls"}
    (seen,) = mtls_server.requests
    assert seen.client_cert_subject is not None
    assert seen.client_cert_subject["commonName"] == forge_tls.client_common_name == "forge-client"


def test_the_server_certificate_is_valid_for_localhost(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """The server certificate names localhost as well as 127.0.0.1, so both verify."""
    port = mtls_server.url.rsplit(":", 1)[1]
    response = requests.get(
        f"https://localhost:{port}/hello",
        verify=forge_tls.ca_bundle,
        cert=forge_tls.client_pem_file,
        timeout=5,
    )
    assert response.status_code == 200


def test_without_a_client_certificate_the_handshake_fails(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """A required client certificate that is not sent ends in an SSL error, unrecorded."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(mtls_server.url_for("/hello"), verify=forge_tls.ca_bundle, timeout=5)
    assert mtls_server.requests == []


def test_a_client_certificate_from_another_ca_is_refused(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """The server verifies the client's chain: a certificate of another CA does not pass."""
    with CertificateAuthority() as stranger, pytest.raises(requests.exceptions.SSLError):
        requests.get(
            mtls_server.url_for("/hello"),
            verify=forge_tls.ca_bundle,
            cert=stranger.client_cert,
            timeout=5,
        )
    assert mtls_server.requests == []


def test_an_optional_client_certificate_is_recorded_only_when_sent() -> None:
    """With require_client_cert=False a client may go without; the subject is then None."""
    with CertificateAuthority(client_common_name="optional-client") as authority:
        context = authority.server_context(require_client_cert=False)
        assert context.verify_mode == ssl.CERT_OPTIONAL
        with ApiServer(ssl_context=context) as server:
            server.add("/x", Reply(body="x"))
            requests.get(server.url_for("/x"), verify=authority.ca_bundle, timeout=5)
            requests.get(
                server.url_for("/x"),
                verify=authority.ca_bundle,
                cert=authority.client_cert,
                timeout=5,
            )
            without, with_cert = server.requests
    assert without.client_cert_subject is None
    assert with_cert.client_cert_subject is not None
    assert with_cert.client_cert_subject["commonName"] == "optional-client"


def test_plain_http_records_no_subject(forge_api_server: ApiServer) -> None:
    """Over plain HTTP there is no certificate, so the subject is None."""
    requests.get(forge_api_server.url_for("/x"), timeout=5)
    (seen,) = forge_api_server.requests
    assert seen.client_cert_subject is None
    assert forge_api_server.url.startswith("http://")


def test_a_silent_client_holds_up_no_other(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """A client that connects and never starts its handshake blocks only its own connection:
    handshakes run on each connection's thread, not in the accept loop."""
    host, port = mtls_server.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5):
        response = requests.get(
            mtls_server.url_for("/hello"),
            verify=forge_tls.ca_bundle,
            cert=forge_tls.client_cert,
            timeout=5,
        )
    assert response.status_code == 200


def test_reset_closes_tls_keep_alive_connections(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """reset() closes an idle TLS connection too, and the next request handshakes anew."""
    with requests.Session() as session:

        def get() -> requests.Response:
            # verify= per request: requests lets REQUESTS_CA_BUNDLE beat a session's verify.
            url = mtls_server.url_for("/hello")
            return session.get(
                url, verify=forge_tls.ca_bundle, cert=forge_tls.client_cert, timeout=5
            )

        get()
        get()
        assert mtls_server.connections_accepted == 1
        first = mtls_server.requests[0].connection
        mtls_server.reset()
        mtls_server.add("/hello", Reply(body="again"))
        assert get().text == "again"
    assert mtls_server.connections_accepted == 1  # counted since the reset: a new one
    (seen,) = mtls_server.requests
    assert seen.connection != first


def test_tls_requests_from_threads_are_all_served(
    mtls_server: ApiServer, forge_tls: CertificateAuthority
) -> None:
    """8 threads handshaking at once each get their reply and each show their certificate."""
    results: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=5)
            response = requests.get(
                mtls_server.url_for(f"/hello?i={i}"),
                verify=forge_tls.ca_bundle,
                cert=forge_tls.client_cert,
                timeout=5,
            )
            results[i] = response.status_code
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert results == dict.fromkeys(range(8), 200)
    seen = mtls_server.requests
    assert sorted(int(r.query["i"][0]) for r in seen) == list(range(8))
    assert [(r.client_cert_subject or {}).get("commonName") for r in seen] == ["forge-client"] * 8
    assert mtls_server.connections_accepted == 8


def test_without_trustme_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where trustme is not installed, making a CA says which extra to install."""
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(
        ModuleNotFoundError, match=r"trustme not installed\): pip install 'requestforge\[testing\]'"
    ):
        CertificateAuthority()


def test_fixtures_share_one_ca_and_reset_the_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """forge_tls is one CA per session; forge_tls_api_server is one HTTPS server per session,
    requiring its client certificate, reset before every test that asks for it."""
    pytester.makepyfile(
        """
        import requests
        from requestforge_testing import Reply

        SEEN = []

        def test_first(forge_tls, forge_tls_api_server):
            SEEN.append((forge_tls.ca_bundle, forge_tls_api_server.url))
            forge_tls_api_server.add("/left", Reply(body="over"))
            response = requests.get(
                forge_tls_api_server.url_for("/left"),
                verify=forge_tls.ca_bundle,
                cert=forge_tls.client_cert,
                timeout=5,
            )
            assert response.text == "over"
            assert forge_tls_api_server.requests[0].client_cert_subject is not None

        def test_second(forge_tls, forge_tls_api_server):
            assert SEEN == [(forge_tls.ca_bundle, forge_tls_api_server.url)]
            assert forge_tls_api_server.url.startswith("https://127.0.0.1:")
            assert forge_tls_api_server.requests == []
            response = requests.get(
                forge_tls_api_server.url_for("/left"),
                verify=forge_tls.ca_bundle,
                cert=forge_tls.client_pem_file,
                timeout=5,
            )
            assert response.status_code == 404

        def test_no_certificate_no_entry(forge_tls, forge_tls_api_server):
            try:
                requests.get(forge_tls_api_server.url, verify=forge_tls.ca_bundle, timeout=5)
            except requests.exceptions.SSLError:
                return
            raise AssertionError("the server accepted a client without a certificate")
        """
    )
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=3)
