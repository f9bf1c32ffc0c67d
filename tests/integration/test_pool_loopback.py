"""Pool over real sockets on loopback: ordering, one session per worker, retries and auth."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import requests
from requests_toolbelt import threaded as toolbelt_threaded

import requestforge
from requestforge import (
    ConnectError,
    HttpClient,
    HttpClientConfigBuilder,
    JobResult,
    Pool,
    SimpleRetryStrategy,
    ThreadException,
    ThreadResponse,
)
from requestforge_testing import ApiServer, FakeClock, RecordedRequest, Reply

JOBS = 200
WORKERS = 8


def echo_index(request: RecordedRequest) -> Reply:
    """Answer with the ``i`` query parameter, so each response names its job."""
    return Reply(json={"i": int(request.query["i"][0])})


def numbered_jobs(count: int) -> list[dict[str, Any]]:
    return [{"url": "/n", "params": {"i": i}} for i in range(count)]


def numbers(results: list[JobResult]) -> list[int]:
    out = []
    for result in results:
        assert isinstance(result, ThreadResponse), result
        out.append(result.json()["i"])
    return out


def client_for(server: ApiServer, builder: HttpClientConfigBuilder | None = None) -> HttpClient:
    builder = builder or HttpClientConfigBuilder()
    return HttpClient(builder.with_base_url(server.url).with_timeout(10).build())


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_200_jobs_on_8_workers_are_all_answered_in_order(forge_api_server: ApiServer) -> None:
    """200 jobs on 8 workers each get their own answer, in input order, over <= 8 connections."""
    forge_api_server.add_handler("/n", echo_index)
    with client_for(forge_api_server) as client:
        pool = Pool.from_requests(numbered_jobs(JOBS), client=client, num_processes=WORKERS)
        results = pool.results()
    assert pool.num_processes == WORKERS
    assert numbers(results) == list(range(JOBS))
    assert [r.index for r in results] == list(range(JOBS))
    seen = forge_api_server.requests
    assert sorted(int(r.query["i"][0]) for r in seen) == list(range(JOBS))
    assert forge_api_server.connections_accepted <= WORKERS  # keep-alive, per worker session


def test_each_worker_thread_uses_exactly_one_session(forge_api_server: ApiServer) -> None:
    """Every request a worker sends goes through the one session initialized for its thread."""
    forge_api_server.add_handler("/n", echo_index)
    lock = threading.Lock()
    made: dict[int, list[requests.Session]] = {}  # thread id -> sessions initialized there
    sent: list[tuple[int, int]] = []  # (thread id, session id) of every request sent

    def initializer(session: requests.Session) -> requests.Session:
        def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            with lock:
                sent.append((threading.get_ident(), id(session)))

        session.hooks["response"].append(record)
        with lock:
            made.setdefault(threading.get_ident(), []).append(session)
        return session

    with client_for(forge_api_server) as client:
        results = client.map(numbered_jobs(JOBS), num_processes=WORKERS)
        pool = Pool.from_requests(
            numbered_jobs(JOBS), client=client, num_processes=WORKERS, initializer=initializer
        )
        assert numbers(pool.results()) == numbers(results) == list(range(JOBS))

    assert len(sent) == JOBS
    assert all(len(sessions) == 1 for sessions in made.values())  # initialized once per thread
    session_of = {thread: id(sessions[0]) for thread, sessions in made.items()}
    assert all(session_of[thread] == session for thread, session in sent)
    assert {thread for thread, _ in sent} == set(made)
    assert 1 <= len(made) <= pool.num_processes == WORKERS
    assert threading.get_ident() not in made  # never the caller's thread


@pytest.mark.parametrize("with_initializer", [False, True], ids=["client", "initialized"])
def test_the_clients_retry_strategy_applies_to_pool_jobs(
    forge_api_server: ApiServer, forge_clock: FakeClock, with_initializer: bool
) -> None:
    """Each job answered 503 then 200 is retried once after the strategy's delay, no real sleep."""
    for i in range(10):
        forge_api_server.add(f"/flaky/{i}", Reply(status=503), Reply(json={"i": i}))
    strategy = SimpleRetryStrategy(2, delay=0.25)
    builder = HttpClientConfigBuilder().with_retry_strategy(strategy)
    with client_for(forge_api_server, builder) as client:
        pool = Pool.from_urls(
            [f"/flaky/{i}" for i in range(10)],
            client=client,
            num_processes=4,
            initializer=(lambda session: session) if with_initializer else None,
        )
        assert numbers(pool.results()) == list(range(10))
    for i in range(10):
        assert len(forge_api_server.requests_to(f"/flaky/{i}")) == 2
    assert forge_clock.sleeps == [0.25] * 10


def test_auth_generator_adds_a_header_the_server_sees(forge_api_server: ApiServer) -> None:
    """auth_generator's header, set after initializer's, reaches the server with every job,
    next to the client's own default header."""
    forge_api_server.add_handler("/n", echo_index)

    def initializer(session: requests.Session) -> requests.Session:
        session.headers["X-Tenant"] = "acme"
        return session

    def auth_generator(session: requests.Session) -> requests.Session:
        session.headers["Authorization"] = f"Bearer pool-{session.headers['X-Tenant']!s}"
        return session

    builder = HttpClientConfigBuilder().with_header("X-Client", "forge")
    with client_for(forge_api_server, builder) as client:
        pool = Pool.from_requests(
            numbered_jobs(40),
            client=client,
            num_processes=4,
            initializer=initializer,
            auth_generator=auth_generator,
        )
        assert numbers(pool.results()) == list(range(40))
    seen = forge_api_server.requests
    assert len(seen) == 40
    assert {r.headers["Authorization"] for r in seen} == {"Bearer pool-acme"}
    assert {r.headers["X-Client"] for r in seen} == {"forge"}


def test_a_refused_connection_fails_only_its_own_job(forge_api_server: ApiServer) -> None:
    """A job to a closed port is a ConnectError; the jobs around it are answered."""
    forge_api_server.add_handler("/n", echo_index)
    dead = f"http://127.0.0.1:{closed_port()}/n"
    jobs: list[dict[str, Any]] = [
        {"url": forge_api_server.url_for("/n?i=0")},
        {"url": dead, "timeout": 5},
        {"url": forge_api_server.url_for("/n?i=2")},
    ]
    first, failed, last = Pool.from_requests(jobs, num_processes=2).results()
    assert isinstance(first, ThreadResponse)
    assert isinstance(last, ThreadResponse)
    assert (first.json(), last.json()) == ({"i": 0}, {"i": 2})
    assert isinstance(failed, ThreadException)
    assert isinstance(failed.exception, ConnectError)


# toolbelt 1.0.0's worker threads can crash at start-up (its issue #381) and lose a job: that
# crash is toolbelt's, in toolbelt's thread, so its warning is not our failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_map_answers_like_toolbelts_map_but_in_input_order(forge_api_server: ApiServer) -> None:
    """requestforge.map answers every job, in input order, as requests_toolbelt.threaded.map
    answers the jobs it does not lose."""
    forge_api_server.add_handler("/n", echo_index)
    jobs = [{"method": "GET", "url": forge_api_server.url_for(f"/n?i={i}")} for i in range(60)]
    ours, our_errors = requestforge.map(jobs, num_processes=WORKERS)
    theirs, their_errors = toolbelt_threaded.map(jobs, num_processes=WORKERS)
    assert [r.json()["i"] for r in ours] == list(range(60))
    their_answers = [r.json()["i"] for r in theirs]
    assert len(set(their_answers)) == len(their_answers)
    assert set(their_answers) <= set(range(60))
    assert list(our_errors) == list(their_errors) == []
