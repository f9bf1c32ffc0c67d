"""HttpClient honours the environment exactly as a stock ``requests.Session`` does.

Each test sends the same request through a stock session and through an ``HttpClient``, in
the same environment and against the same loopback servers, and asserts that the servers
saw the same thing (and what that thing is). The client's own sessions read the environment
once per host instead of per request; the last tests pin down that one difference.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import pytest
import requests

import requestforge
from requestforge import HttpClient, HttpClientConfigBuilder, ThreadResponse
from requestforge_testing import ApiServer, Reply

T = TypeVar("T")
#: Sends one GET to an absolute URL with extra headers, then releases its session.
Sender = Callable[[str, Mapping[str, str]], None]

TIMEOUT = 5.0
pytestmark = pytest.mark.usefixtures("forge_clean_environment")


def stock_get(url: str, headers: Mapping[str, str]) -> None:
    with requests.Session() as session:
        session.get(url, headers=dict(headers), timeout=TIMEOUT)


def client_get(url: str, headers: Mapping[str, str]) -> None:
    with HttpClient(HttpClientConfigBuilder().with_timeout(TIMEOUT).build()) as client:
        client.get(url, headers=headers)


def identical(observe: Callable[[Sender], T]) -> T:
    """What ``observe`` saw through a stock session, asserted equal to what it saw through
    HttpClient in the same environment."""
    through_requests = observe(stock_get)
    through_client = observe(client_get)
    assert through_client == through_requests, (
        f"requests: {through_requests!r}, HttpClient: {through_client!r}"
    )
    return through_requests


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[ApiServer]:
    """A second loopback server playing the HTTP proxy: it answers absolute-form requests."""
    with ApiServer() as server:
        yield server


@pytest.fixture
def proxy(proxy_server: ApiServer) -> ApiServer:
    """The proxy server, reset so no record or connection carries over between tests."""
    proxy_server.reset()
    return proxy_server


def arm(*servers: ApiServer) -> None:
    """Reset the servers and let each answer the paths these tests use with 200."""
    for server in servers:
        server.reset()
        for path in ("/via", "/direct", "/auth", "/landed"):
            server.add(path, Reply(body="ok"))


def host_of(server: ApiServer) -> str:
    return server.url.removeprefix("http://")


# -- proxies ------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_proxy_variable_routes_http_like_requests(
    forge_api_server: ApiServer,
    proxy: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """An HTTP or ALL proxy variable sends the request to the proxy, Host naming the target."""
    monkeypatch.setenv(variable, proxy.url)
    target = forge_api_server.url_for("/via")

    def observe(send: Sender) -> tuple[list[tuple[str, str]], int]:
        arm(forge_api_server, proxy)
        send(target, {})
        at_proxy = [(r.path, r.headers["Host"]) for r in proxy.requests]
        return at_proxy, len(forge_api_server.requests)

    assert identical(observe) == ([("/via", host_of(forge_api_server))], 0)


def test_https_proxy_is_not_used_for_http(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY alone leaves a plain-HTTP request going straight to its host."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)

    def observe(send: Sender) -> tuple[int, list[str]]:
        arm(forge_api_server, proxy)
        send(forge_api_server.url_for("/direct"), {})
        return len(proxy.requests), [r.path for r in forge_api_server.requests]

    assert identical(observe) == (0, ["/direct"])


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "example.org, 127.0.0.0/8", True),
        ("127.0.0.1", "*", True),
        ("localhost", "localhost", True),
        ("localhost", ".localhost", True),
        ("127.0.0.1", "10.0.0.0/8,localhost", False),
    ],
)
def test_no_proxy_decides_like_requests(
    forge_api_server: ApiServer,
    proxy: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    host: str,
    no_proxy: str,
    bypassed: bool,
) -> None:
    """NO_PROXY (names, CIDR blocks, "*") bypasses the proxy for loopback exactly as in requests."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    url = forge_api_server.url_for("/direct").replace("127.0.0.1", host)

    def observe(send: Sender) -> tuple[int, int]:
        arm(forge_api_server, proxy)
        send(url, {})
        return len(forge_api_server.requests), len(proxy.requests)

    assert identical(observe) == ((1, 0) if bypassed else (0, 1))


# -- .netrc -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("netrc", "userinfo", "headers", "expected"),
    [
        ("machine 127.0.0.1 login alice password s3cret", "", {}, basic("alice", "s3cret")),
        ("machine other.example login alice password s3cret", "", {}, None),
        ("default login dora password d3fault", "", {}, basic("dora", "d3fault")),
        (
            "machine other.example login alice password s3cret",
            "url:p4ss@",
            {},
            basic("url", "p4ss"),
        ),
        (
            "machine 127.0.0.1 login alice password s3cret",
            "url:p4ss@",
            {},
            basic("alice", "s3cret"),
        ),
    ],
    ids=[
        "entry-for-host",
        "entry-for-another-host",
        "default-entry",
        "url-credentials-without-entry",
        "entry-beats-url-credentials",
    ],
)
def test_netrc_credentials_apply_like_requests(
    forge_api_server: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    netrc: str,
    userinfo: str,
    headers: dict[str, str],
    expected: str | None,
) -> None:
    """The $NETRC file's credentials are sent exactly when, and as, requests sends them."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(netrc + "\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    url = forge_api_server.url_for("/auth").replace("http://", f"http://{userinfo}")

    def observe(send: Sender) -> list[str | None]:
        arm(forge_api_server)
        send(url, headers)
        return [r.headers.get("Authorization") for r in forge_api_server.requests]

    assert identical(observe) == [expected]


def test_authorization_header_beats_netrc_unlike_requests(
    forge_api_server: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A header set on the request (as auth hooks do) survives a .netrc entry for the host,
    where a stock session replaces it with the netrc user's Basic credentials."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    url = forge_api_server.url_for("/auth")
    headers = {"Authorization": "Bearer caller-token"}

    def observe(send: Sender) -> str | None:
        arm(forge_api_server)
        send(url, headers)
        return forge_api_server.requests[0].headers.get("Authorization")

    assert observe(stock_get) == basic("alice", "s3cret")
    assert observe(client_get) == "Bearer caller-token"


def test_home_netrc_is_found_like_requests(
    forge_api_server: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without $NETRC, ~/.netrc is read, as requests does."""
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login hana password h0me\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.delenv("NETRC")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))

    def observe(send: Sender) -> list[str | None]:
        arm(forge_api_server)
        send(forge_api_server.url_for("/auth"), {})
        return [r.headers.get("Authorization") for r in forge_api_server.requests]

    assert identical(observe) == [basic("hana", "h0me")]


def test_session_auth_beats_netrc_like_requests(
    forge_api_server: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pool's auth_generator that sets session.auth keeps .netrc out, as on a stock session."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login alice password s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    url = forge_api_server.url_for("/auth")

    def with_session_auth(session: requests.Session) -> None:
        session.auth = ("gen", "erated")

    arm(forge_api_server)
    with requests.Session() as stock:
        with_session_auth(stock)
        stock.get(url, timeout=TIMEOUT)
    with HttpClient() as client:
        responses, _ = requestforge.map(
            [{"url": url}], client=client, num_processes=1, auth_generator=with_session_auth
        )
        assert [r.status_code for r in responses] == [200]
    sent = [r.headers.get("Authorization") for r in forge_api_server.requests]
    assert sent == [basic("gen", "erated")] * 2


def test_netrc_applies_after_a_redirect_to_another_host_like_requests(
    forge_api_server: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A redirect to a host with a .netrc entry picks that entry up, as requests does."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine localhost login lou password r3direct\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    landed = forge_api_server.url_for("/landed").replace("127.0.0.1", "localhost")

    def observe(send: Sender) -> list[tuple[str, str | None]]:
        arm(forge_api_server)
        forge_api_server.add("/go", Reply(status=302, headers={"Location": landed}))
        send(forge_api_server.url_for("/go"), {})
        return [(r.path, r.headers.get("Authorization")) for r in forge_api_server.requests]

    assert identical(observe) == [("/go", None), ("/landed", basic("lou", "r3direct"))]


# -- whose sessions cache, and what caching means -------------------------------------------


def test_one_session_decides_per_host(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client session, two names for the server: NO_PROXY is applied to each name."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    arm(forge_api_server, proxy)
    by_address = forge_api_server.url_for("/via")
    by_name = forge_api_server.url_for("/direct").replace("127.0.0.1", "localhost")
    with HttpClient() as client:
        for url in (by_name, by_address, by_name, by_address):
            client.get(url)
    assert [r.path for r in forge_api_server.requests] == ["/direct", "/direct"]
    assert [r.path for r in proxy.requests] == ["/via", "/via"]


def test_environment_is_read_once_per_host_by_a_clients_session(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy set after the client's session talked to a host is not used there; a new
    client (and a stock session) use it."""
    arm(forge_api_server, proxy)
    url = forge_api_server.url_for("/direct")
    with HttpClient() as client:
        client.get(url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client.get(url)
        assert (len(forge_api_server.requests), len(proxy.requests)) == (2, 0)
        with HttpClient() as fresh:
            fresh.get(url)
        with requests.Session() as stock:
            stock.get(url, timeout=TIMEOUT)
    assert (len(forge_api_server.requests), len(proxy.requests)) == (2, 2)


@pytest.mark.parametrize("how", ["session", "session_factory"])
def test_callers_session_keeps_trust_env_and_reads_the_environment_per_request(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A caller's session (shared, or from a factory) is a stock one, left as given: it sees
    an environment change at the very next request."""
    arm(forge_api_server, proxy)
    url = forge_api_server.url_for("/direct")
    shared = requests.Session()
    if how == "session":
        client = HttpClient(session=shared)
    else:
        client = HttpClient(session_factory=lambda: shared)
    with client, shared:
        client.get(url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client.get(url)
        assert client.session is shared
        assert type(shared) is requests.Session
        assert shared.trust_env is True
    assert (len(forge_api_server.requests), len(proxy.requests)) == (1, 1)


def test_trust_env_off_ignores_the_environment_like_requests(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Turning trust_env off on the client's session ignores proxies and .netrc, as on any
    session."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login alice password s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    arm(forge_api_server, proxy)
    url = forge_api_server.url_for("/direct")
    with HttpClient() as client, requests.Session() as stock:
        client.session.trust_env = stock.trust_env = False
        client.get(url)
        stock.get(url, timeout=TIMEOUT)
    assert len(proxy.requests) == 0
    assert [r.headers.get("Authorization") for r in forge_api_server.requests] == [None, None]


def test_each_thread_session_of_a_pool_honours_the_environment(
    forge_api_server: ApiServer, proxy: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker thread's new session routes through the proxy from the environment."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    arm(forge_api_server, proxy)
    url = forge_api_server.url_for("/via")
    with HttpClient() as client:
        results = client.map([{"url": url}] * 12, num_processes=4)
    assert all(isinstance(r, ThreadResponse) and r.status_code == 200 for r in results)
    assert len(forge_api_server.requests) == 0
    assert {r.headers["Host"] for r in proxy.requests} == {host_of(forge_api_server)}
    assert len(proxy.requests) == 12
