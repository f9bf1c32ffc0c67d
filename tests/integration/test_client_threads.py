"""Thread-safety of HttpClient over loopback: one session per thread, and clean shutdown."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable

import requests

from requestforge import HttpClient, HttpClientConfigBuilder
from requestforge_testing import ApiServer, Reply

THREADS = 16
ROUNDS = 20


class CountingSession(requests.Session):
    """A session that records when it is closed."""

    closed: list[int]

    def close(self) -> None:
        self.closed.append(id(self))
        super().close()


def run_together(count: int, target: Callable[[int], None]) -> None:
    """Run target(i) in ``count`` threads released at once by a barrier; re-raise failures."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        sys.setswitchinterval(previous)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]


def test_concurrent_requests(forge_api_server: ApiServer) -> None:
    """The seed's example: 100 threads sharing one client all succeed."""
    forge_api_server.add("/users", Reply(json={"ok": True}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    results: list[int] = []
    with HttpClient(config) as client:
        run_together(
            100, lambda i: results.append(client.get("/users", params={"i": i}).status_code)
        )
    assert results == [200] * 100


def test_each_thread_gets_its_own_session_every_round(forge_api_server: ApiServer) -> None:
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

    for _ in range(ROUNDS):
        seen: dict[int, set[int]] = {}
        with HttpClient(config, session_factory=factory) as client:

            def work(i: int, seen: dict[int, set[int]] = seen) -> None:
                ids = set()
                for _ in range(3):
                    client.get("/s")
                    ids.add(id(client.session))
                seen[i] = ids

            run_together(THREADS, work)
        assert all(len(ids) == 1 for ids in seen.values()), seen
        assert len({next(iter(ids)) for ids in seen.values()}) == THREADS
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


def test_tcp_connections_match_threads(forge_api_server: ApiServer) -> None:
    """Each thread keeps its own keep-alive connection: connections accepted equals threads."""
    forge_api_server.add("/k", Reply(body="k"))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()
    with HttpClient(config) as client:

        def work(_: int) -> None:
            for _ in range(5):
                client.get("/k")

        run_together(8, work)
    assert forge_api_server.connections_accepted == 8
