"""Thread-safety of HttpClient over loopback: one session per thread, and clean shutdown."""

from __future__ import annotations

import gc
import threading

import requests

from requestforge import HttpClient, HttpClientConfigBuilder
from requestforge_testing import ApiServer, Reply, StressRunner

THREADS = 16
ROUNDS = 20


class CountingSession(requests.Session):
    """A session that records when it is closed."""

    closed: list[int]

    def close(self) -> None:
        self.closed.append(id(self))
        super().close()


def test_concurrent_requests(forge_api_server: ApiServer, forge_stress: StressRunner) -> None:
    """The seed's example: 100 threads sharing one client all succeed, each on its own session."""
    forge_api_server.add("/users", Reply(json={"ok": True}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    with HttpClient(config) as client:
        report = forge_stress(
            lambda: client.get("/users").status_code,
            threads=100,
            sessions=client,
        )
    report.assert_no_errors()
    assert report.results == [200] * 100
    assert len(forge_api_server.requests_to("/users")) == 100
    report.assert_per_thread_sessions(client)


def test_each_thread_gets_its_own_session_every_round(
    forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """N threads see N distinct sessions, and a thread sees the same session on every request."""
    forge_api_server.add("/s", Reply(body="s"))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    created: list[requests.Session] = []
    lock = threading.Lock()

    def factory() -> requests.Session:
        session = requests.Session()
        with lock:
            created.append(session)
        return session

    with HttpClient(config, session_factory=factory) as client:

        def work() -> set[int]:
            ids = set()
            for _ in range(3):
                client.get("/s").raise_for_status()
                ids.add(id(client.session))
            return ids

        report = forge_stress(work, threads=THREADS, rounds=ROUNDS, sessions=client)
    report.assert_no_errors()
    # Each worker sent its three requests on the one session the harness saw it hold...
    assert [o.result for o in report.outcomes] == [{id(o.sessions[0])} for o in report.outcomes]
    # ...and no two workers, in the same round or not, held the same session.
    report.assert_per_thread_sessions(client)
    assert len(created) == THREADS * ROUNDS


def test_close_closes_sessions_of_every_thread(forge_api_server: ApiServer) -> None:
    """close() from the main thread closes the sessions other threads created."""
    forge_api_server.add("/c", Reply(body="c"))
    closed: list[int] = []
    CountingSession.closed = closed
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    client = HttpClient(config, session_factory=CountingSession)
    done = threading.Event()
    release = threading.Event()

    def keep_thread_alive(i: int) -> None:
        client.get("/c")
        if i == 0:
            done.set()
        release.wait(timeout=10)

    worker_threads = [threading.Thread(target=keep_thread_alive, args=(i,)) for i in range(4)]
    for t in worker_threads:
        t.start()
    forge_api_server.wait_for_requests(4)
    client.close()
    release.set()
    for t in worker_threads:
        t.join(timeout=10)
    assert len(closed) == 4
    assert done.is_set()


def test_session_of_a_finished_thread_is_closed(forge_api_server: ApiServer) -> None:
    """A thread that ends takes its session with it: nothing leaks while the client lives on."""
    forge_api_server.add("/t", Reply(body="t"))
    closed: list[int] = []
    CountingSession.closed = closed
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    with HttpClient(config, session_factory=CountingSession) as client:
        for _ in range(5):
            t = threading.Thread(target=client.get, args=("/t",))
            t.start()
            t.join(timeout=10)
        gc.collect()
        assert len(closed) == 5
    assert len(closed) == 5


def test_tcp_connections_match_threads(
    forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """Each thread keeps its own keep-alive connection: connections accepted equals threads."""
    forge_api_server.add("/k", Reply(body="k"))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    with HttpClient(config) as client:

        def work() -> None:
            for _ in range(5):
                client.get("/k").raise_for_status()

        report = forge_stress(work, threads=8, sessions=client)
    report.assert_no_errors()
    report.assert_per_thread_sessions(client)
    assert len(forge_api_server.requests_to("/k")) == 40
    assert forge_api_server.connections_accepted == 8
