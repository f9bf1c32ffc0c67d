"""Tests for requestforge._sessions: each thread's session gets the config's connection settings.

Sessions the client makes get them all; sessions from ``session_factory=`` get every one that
differs from its default (pool sizes aside); a ``session=`` is used exactly as given. The
shared cookie jar is one per client and safe under concurrent requests.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from http.cookiejar import Cookie
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.utils import select_proxy

from requestforge import (
    ConfigurationError,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    Pool,
    ThreadResponse,
    TooManyRedirectsError,
)
from requestforge._cached_session import CachedEnvironmentSession
from requestforge._sessions import ThreadSafeCookieJar
from requestforge_testing import ApiServer, Reply
from tests.threads import in_threads

TIMEOUT = 5.0
pytestmark = pytest.mark.usefixtures("forge_clean_environment")


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    """Files standing in for a certificate, its key and a CA bundle: nothing here does TLS."""
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for path in paths.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    return {name: str(path) for name, path in paths.items()}


class MarkedAdapter(HTTPAdapter):
    """An adapter of our own, told apart from the defaults by its type."""


def full_config(pem: dict[str, str]) -> HttpClientConfig:
    return (
        HttpClientConfigBuilder()
        .with_ca_bundle(pem["ca"])
        .with_client_cert(pem["cert"], pem["key"])
        .with_proxies({"https": "http://proxy.internal:3128", "no_proxy": "localhost"})
        .with_max_redirects(3)
        .with_pool_size(4, connections=2)
        .with_cookies({"sid": "abc"})
        .with_adapter("https://api.example.com/v2/", MarkedAdapter)
        .build()
    )


def pool_maxsize(adapter: BaseAdapter) -> int:
    assert isinstance(adapter, HTTPAdapter)
    maxsize: int = adapter.poolmanager.connection_pool_kw["maxsize"]
    return maxsize


# -- the client's own sessions --------------------------------------------------------------


def test_each_thread_session_gets_every_setting(pem: dict[str, str]) -> None:
    """Two threads get two sessions, each with every connection setting and its own adapter."""
    with HttpClient(full_config(pem)) as client:
        sessions = in_threads(2, lambda: client.session)
    assert sessions[0] is not sessions[1]
    for session in sessions:
        assert isinstance(session, CachedEnvironmentSession)
        assert session.verify == pem["ca"]
        assert session.cert == (pem["cert"], pem["key"])
        assert session.proxies == {"https": "http://proxy.internal:3128", "no_proxy": "localhost"}
        assert session.max_redirects == 3
        assert session.cookies.get_dict() == {"sid": "abc"}
        assert pool_maxsize(session.adapters["https://"]) == 4
        assert pool_maxsize(session.adapters["http://"]) == 4
    marked = [s.adapters["https://api.example.com/v2/"] for s in sessions]
    assert all(isinstance(a, MarkedAdapter) for a in marked)
    assert marked[0] is not marked[1]
    # Each session has a jar of its own, holding a copy of the config's cookie.
    assert sessions[0].cookies is not sessions[1].cookies
    assert all(c not in full_config(pem).cookies for c in sessions[0].cookies)


def test_adapters_follow_requests_longest_prefix_rule() -> None:
    """A mounted adapter serves the URLs its prefix starts, longest prefix first, after the
    defaults; others keep the pooled default adapters."""
    config = (
        HttpClientConfigBuilder()
        .with_adapter("https://api.example.com/", HTTPAdapter)
        .with_adapter("https://api.example.com/v2/", MarkedAdapter)
        .build()
    )
    with HttpClient(config) as client:
        session = client.session
        v2 = session.get_adapter("https://API.example.com/v2/users")
        v1 = session.get_adapter("https://api.example.com/v1/users")
        other = session.get_adapter("https://other.example.com/")
    assert isinstance(v2, MarkedAdapter)
    assert type(v1) is HTTPAdapter
    assert v1 is session.adapters["https://api.example.com/"]
    assert other is session.adapters["https://"]
    assert list(session.adapters)[-2:] == ["https://", "http://"]  # requests' order kept


class CannedAdapter(BaseAdapter):
    """Answers every request itself with 200 and a body naming the adapter's instance."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.sent += 1
        response = requests.Response()
        response.status_code = 200
        response._content = str(id(self)).encode()
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def test_requests_go_through_the_threads_own_adapter() -> None:
    """Each thread's request to a mounted prefix is answered by that thread's adapter."""
    made: list[CannedAdapter] = []
    lock = threading.Lock()

    def factory() -> CannedAdapter:
        adapter = CannedAdapter()
        with lock:
            made.append(adapter)
        return adapter

    config = HttpClientConfigBuilder().with_adapter("https://canned.example/", factory).build()
    with HttpClient(config) as client:
        bodies = in_threads(3, lambda: client.get("https://canned.example/x").text)
    assert sorted(bodies) == sorted(str(id(a)) for a in made)
    assert [a.sent for a in made] == [1, 1, 1]


def test_mount_on_client_session_changes_only_the_calling_thread() -> None:
    """client.session.mount() reaches this thread's session only, as the docstring says."""
    with HttpClient() as client:
        client.session.mount("https://canned.example/", CannedAdapter())
        here = client.session.get_adapter("https://canned.example/")
        (there,) = in_threads(1, lambda: client.session.get_adapter("https://canned.example/"))
    assert isinstance(here, CannedAdapter)
    assert not isinstance(there, CannedAdapter)


def test_adapter_factory_must_make_a_new_adapter_each_time() -> None:
    """A factory that returns one adapter to two threads, or no adapter, is refused."""
    one = HTTPAdapter()
    shared = HttpClientConfigBuilder().with_adapter("https://", lambda: one).build()
    with HttpClient(shared) as client:
        client.session  # noqa: B018 - the first thread's session takes the adapter
        with pytest.raises(ConfigurationError, match="returned before"):
            in_threads(1, lambda: client.session)
    wrong = HttpClientConfigBuilder().with_adapter("https://", object).build()  # type: ignore[arg-type]
    with HttpClient(wrong) as client, pytest.raises(ConfigurationError, match="not a requests"):
        client.session  # noqa: B018


def test_redirect_limit_reaches_the_session_requests_counts_on(
    forge_api_server: ApiServer,
) -> None:
    """max_redirects is the session attribute requests stops at: past it, TooManyRedirects."""
    forge_api_server.add("/loop", Reply(status=302, headers={"Location": "/loop"}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).with_max_redirects(2)
    with HttpClient(config.build()) as client:
        assert client.session.max_redirects == 2
        with pytest.raises(TooManyRedirectsError):
            client.get("/loop")
    assert len(forge_api_server.requests_to("/loop")) == 3


# -- proxies: exactly requests' precedence ---------------------------------------------------


@pytest.mark.parametrize(
    "session_proxies",
    [
        {"http": "http://session-proxy:1"},
        {"all": "http://session-proxy:1"},
        {"http://127.0.0.1": "http://host-proxy:2", "http": "http://session-proxy:1"},
        {"all://127.0.0.1": "http://host-proxy:2"},
        {"http": "http://session-proxy:1", "no_proxy": "127.0.0.1"},
        {"https": "http://session-proxy:1"},
    ],
    ids=["scheme", "all", "host", "all-host", "no-proxy", "other-scheme"],
)
@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"HTTP_PROXY": "http://env-proxy:3"},
        {"ALL_PROXY": "http://env-proxy:3"},
        {"HTTP_PROXY": "http://env-proxy:3", "NO_PROXY": "127.0.0.1"},
    ],
    ids=["no-env", "env-http", "env-all", "env-no-proxy"],
)
@pytest.mark.parametrize(
    "request_proxies",
    [None, {"http": "http://request-proxy:4"}, {"no_proxy": "127.0.0.1"}],
    ids=["no-request", "request-http", "request-no-proxy"],
)
def test_proxy_precedence_is_exactly_requests(
    monkeypatch: pytest.MonkeyPatch,
    session_proxies: dict[str, str],
    environment: dict[str, str],
    request_proxies: dict[str, str] | None,
) -> None:
    """The proxy a request goes through is the one a bare requests.Session with the same
    session.proxies picks, whatever the environment and the request's proxies= say."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    url = "http://127.0.0.1:8080/x"
    config = HttpClientConfigBuilder().with_proxies(session_proxies).build()
    with HttpClient(config) as client, requests.Session() as bare:
        bare.proxies = dict(session_proxies)
        chosen = []
        for session in (client.session, bare):
            # What Session.request hands the adapter: the request's proxies merged.
            merged = session.merge_environment_settings(
                url, dict(request_proxies or {}), None, None, None
            )["proxies"]
            chosen.append((select_proxy(url, merged), dict(merged)))
    assert chosen[0] == chosen[1]


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[ApiServer]:
    """A second loopback server playing the HTTP proxy: it answers absolute-form requests."""
    with ApiServer() as server:
        yield server


def test_requests_go_through_the_configured_proxy(
    forge_api_server: ApiServer, proxy_server: ApiServer
) -> None:
    """with_proxies sends a plain-HTTP request to the proxy, Host naming the target."""
    proxy_server.reset()
    proxy_server.add("/via", Reply(body="proxied"))
    config = HttpClientConfigBuilder().with_proxies({"http": proxy_server.url}).build()
    with HttpClient(config) as client:
        assert client.get(forge_api_server.url_for("/via")).text == "proxied"
    assert [r.headers["Host"] for r in proxy_server.requests] == [
        forge_api_server.url.removeprefix("http://")
    ]
    assert forge_api_server.requests == []


# -- sessions from session_factory= and session= ----------------------------------------------


class FactorySession(requests.Session):
    """A session as a caller's factory makes it: its own proxy, adapter and cookie."""

    def __init__(self) -> None:
        super().__init__()
        self.proxies = {"http": "http://factory-proxy:1"}
        self.mount("https://", HTTPAdapter(pool_maxsize=7))
        self.cookies.set("factory", "yes")


def test_factory_sessions_get_every_setting_that_differs(pem: dict[str, str]) -> None:
    """Each thread's factory session gets proxies (over its own), cert, verify, redirects,
    cookies and adapters; its own https:// adapter and pool size stay."""
    with HttpClient(full_config(pem), session_factory=FactorySession) as client:
        sessions = in_threads(2, lambda: client.session)
    assert sessions[0] is not sessions[1]
    for session in sessions:
        assert isinstance(session, FactorySession)
        assert type(session.adapters["https://"]) is HTTPAdapter
        assert pool_maxsize(session.adapters["https://"]) == 7  # with_pool_size(4) not applied
        assert session.verify == pem["ca"]
        assert session.cert == (pem["cert"], pem["key"])
        assert session.proxies == {
            "http": "http://factory-proxy:1",
            "https": "http://proxy.internal:3128",
            "no_proxy": "localhost",
        }
        assert session.max_redirects == 3
        assert session.cookies.get_dict() == {"factory": "yes", "sid": "abc"}
        assert isinstance(session.adapters["https://api.example.com/v2/"], MarkedAdapter)
    marked = [s.adapters["https://api.example.com/v2/"] for s in sessions]
    assert marked[0] is not marked[1]


def test_factory_session_settings_left_at_their_default_are_the_factorys() -> None:
    """A setting the config leaves at its default does not touch the factory's own value."""

    def factory() -> requests.Session:
        session = FactorySession()
        session.verify, session.cert, session.max_redirects = False, "factory.pem", 9
        return session

    config = HttpClientConfigBuilder().with_pool_size(2).build()
    with HttpClient(config, session_factory=factory) as client:
        session = client.session
    assert (session.verify, session.cert, session.max_redirects) == (False, "factory.pem", 9)
    assert session.proxies == {"http": "http://factory-proxy:1"}
    assert session.cookies.get_dict() == {"factory": "yes"}
    assert pool_maxsize(session.adapters["https://"]) == 7


def test_ca_bundle_variable_beats_verify_false_only_on_a_factory_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REQUESTS_CA_BUNDLE never overrides verify_ssl=False on the client's own session, and
    does on a plain factory session, as on any requests.Session (the documented exception)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/bundle.pem")
    config = HttpClientConfigBuilder().with_verify_ssl(False).build()
    url = "https://api.example.com/"
    verify = []
    for factory in (None, requests.Session):
        with HttpClient(config, session_factory=factory) as client:
            assert client.session.verify is False
            merged = client.session.merge_environment_settings(url, {}, None, None, None)
            verify.append(merged["verify"])
    assert verify == [False, "/env/bundle.pem"]


def test_given_session_is_used_exactly_as_given(pem: dict[str, str]) -> None:
    """session= gets none of the config's connection settings; client.cookies is its jar."""
    config = HttpClientConfigBuilder().with_ca_bundle(pem["ca"]).with_max_redirects(1)
    config = config.with_cookies({"sid": "abc"}, shared=True).with_adapter("https://", HTTPAdapter)
    with requests.Session() as given:
        adapters = dict(given.adapters)
        client = HttpClient(config.build(), session=given)
        assert in_threads(2, lambda: client.session) == [given, given]
        assert (given.verify, given.max_redirects, given.proxies) == (True, 30, {})
        assert dict(given.adapters) == adapters
        assert client.cookies is given.cookies
        assert len(given.cookies) == 0


def test_factory_returning_one_session_configures_it_once() -> None:
    """A factory that hands every thread the same session has it configured once."""
    made: list[HTTPAdapter] = []
    shared = requests.Session()

    def adapter() -> HTTPAdapter:
        made.append(HTTPAdapter())
        return made[-1]

    config = HttpClientConfigBuilder().with_adapter("https://a.example/", adapter).build()
    with shared, HttpClient(config, session_factory=lambda: shared) as client:
        assert in_threads(3, lambda: client.session) == [shared, shared, shared]
    assert len(made) == 1
    assert shared.adapters["https://a.example/"] is made[0]


def test_pool_sessions_are_the_clients_configured_once(
    forge_responses: responses.RequestsMock,
) -> None:
    """A Pool's workers get the client's sessions, with its shared jar, configured once."""
    forge_responses.get("https://api.example.com/x", body="ok")
    made: list[HTTPAdapter] = []
    lock = threading.Lock()

    def adapter() -> HTTPAdapter:
        with lock:
            made.append(HTTPAdapter())
            return made[-1]

    config = (
        HttpClientConfigBuilder()
        .with_cookies({"sid": "abc"}, shared=True)
        .with_adapter("https://other.example/", adapter)
        .build()
    )
    seen: list[requests.Session] = []
    with HttpClient(config) as client:
        pool = Pool.from_requests(
            [{"url": "https://api.example.com/x"}] * 4,
            client=client,
            num_processes=2,
            initializer=seen.append,
        )
        results = pool.results()
        assert all(isinstance(r, ThreadResponse) for r in results)
        assert all(s.cookies is client.cookies for s in seen)
    assert 1 <= len(seen) == len(made) <= 2
    assert all(s.adapters["https://other.example/"] in made for s in seen)
    assert all(c.request.headers["Cookie"] == "sid=abc" for c in forge_responses.calls)


# -- cookies: per-thread jars, or one shared jar ----------------------------------------------


def test_per_thread_jars_do_not_share_a_cookie(forge_api_server: ApiServer) -> None:
    """By default a cookie one thread receives is sent by that thread only."""
    forge_api_server.add("/login", Reply(headers={"Set-Cookie": "sid=thread-a; Path=/"}))
    forge_api_server.add("/echo", Reply(body="ok"))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    with HttpClient(config) as client:

        def thread_a() -> dict[str, str]:
            client.get("/login")
            client.get("/echo")
            return client.cookies.get_dict()

        (jar_a,) = in_threads(1, thread_a)
        (jar_b,) = in_threads(1, lambda: (client.get("/echo"), client.cookies.get_dict())[1])
    assert (jar_a, jar_b) == ({"sid": "thread-a"}, {})
    sent = [r.headers.get("Cookie") for r in forge_api_server.requests_to("/echo")]
    assert sent == ["sid=thread-a", None]


def test_per_thread_initial_cookies_are_copies() -> None:
    """A thread that changes its initial cookie changes neither another thread's nor the
    config's."""
    config = HttpClientConfigBuilder().with_cookies({"sid": "abc"}).build()
    with HttpClient(config) as client:
        client.cookies.set("sid", "changed")
        (other,) = in_threads(1, lambda: dict(client.cookies.get_dict()))
        assert client.cookies.get_dict() == {"sid": "changed"}
    assert other == {"sid": "abc"}
    assert [c.value for c in config.cookies] == ["abc"]


def test_shared_jar_collects_every_threads_cookies(forge_api_server: ApiServer) -> None:
    """16 threads released together each receive their own cookie into the one shared jar,
    without an error, and a later request from another thread sends all of them."""
    threads = 16
    for i in range(threads):
        forge_api_server.add(f"/login/{i}", Reply(headers={"Set-Cookie": f"c{i}=v{i}; Path=/"}))
    forge_api_server.add("/echo", Reply(body="ok"))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url)
    config = config.with_cookies({"initial": "yes"}, shared=True)
    numbers = iter(range(threads))
    lock = threading.Lock()
    start = threading.Barrier(threads)

    with HttpClient(config.build()) as client:

        def login() -> requests.Session:
            with lock:
                number = next(numbers)
            session = client.session
            start.wait()
            for _ in range(3):  # more requests, more interleaving of reads and writes
                client.get(f"/login/{number}").raise_for_status()
                client.get("/echo").raise_for_status()
            return session

        sessions = in_threads(threads, login)
        assert len({id(s) for s in sessions}) == threads
        assert all(s.cookies is client.cookies for s in sessions)
        expected = {f"c{i}": f"v{i}" for i in range(threads)} | {"initial": "yes"}
        assert client.cookies.get_dict() == expected
        forge_api_server.reset()
        forge_api_server.add("/echo", Reply(body="ok"))
        in_threads(1, lambda: client.get("/echo"))
    (echo,) = forge_api_server.requests_to("/echo")
    sent = dict(pair.split("=", 1) for pair in echo.headers["Cookie"].split("; "))
    assert sent == expected


def test_each_client_has_its_own_shared_jar() -> None:
    """Two clients of one config share nothing: the jar is per client, seeded from the config."""
    config = HttpClientConfigBuilder().with_cookies({"sid": "abc"}, shared=True).build()
    with HttpClient(config) as one, HttpClient(config) as two:
        assert one.cookies is not two.cookies
        one.cookies.set("extra", "1")
        assert two.cookies.get_dict() == {"sid": "abc"}
        assert one.cookies is one.session.cookies
        assert isinstance(one.cookies, ThreadSafeCookieJar)


def jar_of_two_domains(kind: type[RequestsCookieJar]) -> RequestsCookieJar:
    jar = kind()
    jar.set("a", "1", domain="a.example")
    jar.set("b", "2", domain="b.example")
    return jar


def test_shared_jar_iterates_a_snapshot() -> None:
    """Iterating the shared jar sees the cookies as they were when it began, however other
    threads change them meanwhile; a plain RequestsCookieJar's iteration mixes the two states
    (and on Python 3.10 yields None for a cookie removed meanwhile)."""
    seen = {}
    for kind in (RequestsCookieJar, ThreadSafeCookieJar):
        jar = jar_of_two_domains(kind)
        iterator = iter(jar)
        assert next(iterator).name == "a"
        jar.set("b2", "3", domain="b.example")
        seen[kind] = [c.name for c in iterator]
    assert seen == {RequestsCookieJar: ["b", "b2"], ThreadSafeCookieJar: ["b"]}


@pytest.mark.parametrize("kind", [RequestsCookieJar, ThreadSafeCookieJar])
def test_shared_jar_updates_atomically(kind: type[RequestsCookieJar]) -> None:
    """jar.update() sets its cookies one by one: the shared jar holds its lock throughout, so
    no reader sees half of an update (a new session cookie with the old CSRF token); a plain
    jar lets a reader in."""
    halfway, proceed = threading.Event(), threading.Event()

    class PausingJar(kind):  # type: ignore[misc, valid-type]
        """Stops inside update(), after its first cookie."""

        pausing = False

        def set_cookie(self, cookie: Cookie, *args: Any, **kwargs: Any) -> None:
            super().set_cookie(cookie, *args, **kwargs)
            if self.pausing and not halfway.is_set():
                halfway.set()
                assert proceed.wait(TIMEOUT)

    jar = PausingJar()
    jar.update({"sid": "old", "csrf": "old"})
    jar.pausing = True
    writer = threading.Thread(target=jar.update, args=({"sid": "new", "csrf": "new"},))
    writer.start()
    try:
        assert halfway.wait(TIMEOUT)
        lock = jar._cookies_lock
        reader_gets_in = lock.acquire(blocking=False)
        if reader_gets_in:
            lock.release()
        # The shared jar makes a reader wait for the whole update; a plain one lets it see
        # the half-updated jar, which is what a request would send.
        assert reader_gets_in is (kind is RequestsCookieJar)
        if reader_gets_in:
            assert sorted(c.value for c in jar) == ["new", "old"]
    finally:
        proceed.set()
        writer.join()
    assert jar.get_dict() == {"sid": "new", "csrf": "new"}


def test_shared_jar_copies_and_pickles_as_itself() -> None:
    """copy() and pickling give a thread-safe jar with the same cookies."""
    jar = jar_of_two_domains(ThreadSafeCookieJar)
    for twin in (jar.copy(), pickle.loads(pickle.dumps(jar))):  # noqa: S301 - our own bytes
        assert isinstance(twin, ThreadSafeCookieJar)
        assert twin.get_dict() == {"a": "1", "b": "2"}
        twin.set("c", "3")
        assert "c" not in jar
