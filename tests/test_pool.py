"""Unit tests for requestforge._pool: ordering, one result per job, per-job errors, toolbelt API."""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from typing import Any

import pytest
import requests
import responses

import requestforge
from requestforge import (
    ConfigurationError,
    HookError,
    HttpClient,
    HttpClientConfigBuilder,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    Pool,
    RequestContext,
    RequestForgeError,
    RequestHookInterface,
    ThreadException,
    ThreadResponse,
    TransportError,
)
from requestforge._pool import JOB_KEYS, JobResult
from requestforge._verbs import RequestOptions

BASE = "https://api.example.com"
WAIT = 10.0  # seconds a test waits on an event before failing instead of hanging


def register_numbered(
    mock: responses.RequestsMock, count: int, down: set[int] | None = None
) -> list[str]:
    """Serve GET /items/<i> with {"i": i}, or a refused connection while i is in ``down``.

    One pattern-matched callback rather than one registration per URL keeps the mock fast.
    """
    failing = down if down is not None else set()

    def answer(request: requests.PreparedRequest) -> Exception | tuple[int, dict[str, str], str]:
        i = int(str(request.path_url).rsplit("/", 1)[1])
        if i in failing:
            return requests.ConnectionError("connection refused")
        return 200, {"Content-Type": "application/json"}, json.dumps({"i": i})

    mock.add_callback("GET", re.compile(re.escape(BASE) + r"/items/\d+"), callback=answer)
    return [f"{BASE}/items/{i}" for i in range(count)]


def numbers(results: list[JobResult]) -> list[int]:
    """The "i" of each result's JSON body (every result must be a response)."""
    out = []
    for result in results:
        assert isinstance(result, ThreadResponse), result
        out.append(result.json()["i"])
    return out


class FailFor(RequestHookInterface):
    """A request hook that raises ``error`` for one URL and passes every other request."""

    def __init__(self, url: str, error: BaseException) -> None:
        self.url, self.error = url, error

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        if request.url == self.url:
            raise self.error
        return request


class TrackedSession(requests.Session):
    """A session that records its creation and closing in shared lists."""

    made: list[TrackedSession]
    closed: list[TrackedSession]

    def __init__(self) -> None:
        super().__init__()
        self.made.append(self)

    def close(self) -> None:
        self.closed.append(self)
        super().close()


def tracked_session_class() -> type[TrackedSession]:
    """A fresh TrackedSession subclass with its own lists."""
    return type("Tracked", (TrackedSession,), {"made": [], "closed": []})


# -- ordering and completeness ---------------------------------------------------------------


def test_results_are_in_input_order_not_completion_order(
    forge_responses: responses.RequestsMock,
) -> None:
    """Job 0 finishes after job 1, yet results() lists job 0 first."""
    second_done = threading.Event()

    def first(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert second_done.wait(WAIT), "job 1 never ran"
        return 200, {}, '{"i": 0}'

    def second(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        second_done.set()
        return 200, {}, '{"i": 1}'

    forge_responses.add_callback("GET", f"{BASE}/items/0", callback=first)
    forge_responses.add_callback("GET", f"{BASE}/items/1", callback=second)
    pool = Pool.from_urls([f"{BASE}/items/0", f"{BASE}/items/1"], num_processes=2)
    results = pool.results()
    assert numbers(results) == [0, 1]
    assert [r.index for r in results] == [0, 1]


def test_many_jobs_each_get_exactly_one_result(forge_responses: responses.RequestsMock) -> None:
    """200 jobs on 8 workers give 200 results, result i answering job i."""
    urls = register_numbered(forge_responses, 200)
    pool = Pool.from_urls(urls, num_processes=8)
    results = pool.results()
    assert numbers(results) == list(range(200))
    assert [r.request_kwargs["url"] for r in results] == urls
    assert pool.results() == results  # asking again gives the same results


def test_responses_and_exceptions_wait_for_every_job(
    forge_responses: responses.RequestsMock,
) -> None:
    """Generators taken before any job finished still yield every result (toolbelt #381)."""
    release = threading.Event()

    def gated(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert release.wait(WAIT), "never released"
        return 200, {}, "{}"

    forge_responses.add_callback("GET", f"{BASE}/gated", callback=gated)
    forge_responses.get(f"{BASE}/down", body=requests.ConnectionError("refused"))
    pool = Pool.from_urls([f"{BASE}/gated"] * 5 + [f"{BASE}/down"] * 3, num_processes=4)
    responses_, exceptions_ = pool.responses(), pool.exceptions()
    opener = threading.Timer(0.05, release.set)  # releases the jobs after next() starts waiting
    opener.start()
    try:
        assert [r.index for r in responses_] == [0, 1, 2, 3, 4]
        assert [e.index for e in exceptions_] == [5, 6, 7]
    finally:
        opener.cancel()
        release.set()


def test_empty_input_gives_empty_results() -> None:
    """A pool with no jobs starts no thread and has no results."""
    pool = Pool(queue.Queue())
    pool.join_all()
    assert pool.num_processes == 0
    assert pool.results() == []
    assert pool.get_response() is None
    assert pool.get_exception() is None


# -- errors, per job --------------------------------------------------------------------------


def test_connection_error_is_that_jobs_exception(forge_responses: responses.RequestsMock) -> None:
    """A job whose connection fails becomes a ThreadException; its neighbours succeed."""
    forge_responses.get(f"{BASE}/ok", json={"i": 0})
    forge_responses.get(f"{BASE}/down", body=requests.ConnectionError("connection refused"))
    results = Pool.from_urls([f"{BASE}/ok", f"{BASE}/down", f"{BASE}/ok"]).results()
    first, failed, last = results
    assert isinstance(first, ThreadResponse)
    assert isinstance(last, ThreadResponse)
    assert isinstance(failed, ThreadException)
    assert isinstance(failed.exception, TransportError)
    assert failed.message == str(failed.exception)
    assert "connection refused" in failed.message
    assert failed.request_kwargs == {"method": "GET", "url": f"{BASE}/down"}


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"url": f"{BASE}/ok", "allow_redirect": False}, "'allow_redirect'"),
        ({"url": f"{BASE}/ok", "hooks": {}, "parmas": {}}, "'hooks', 'parmas'"),
        ({"url": f"{BASE}/ok", "auth": "u:p"}, "auth must be"),
        ({"method": "GET"}, "needs a 'url'"),
        ({"url": 42}, "needs a 'url'"),
        ({"url": f"{BASE}/ok", "method": "FE TCH"}, "method must be an RFC 9110 token"),
        (["GET", f"{BASE}/ok"], "must be a dict"),
    ],
)
def test_invalid_job_is_an_invalid_request_error(
    forge_responses: responses.RequestsMock, job: Any, expected: str
) -> None:
    """A job the client cannot send is that job's InvalidRequestError; the worker carries on."""
    forge_responses.get(f"{BASE}/ok", json={"i": 1})
    bad, good = Pool.from_requests([job, {"url": f"{BASE}/ok"}], num_processes=1).results()
    assert isinstance(bad, ThreadException)
    assert isinstance(bad.exception, InvalidRequestError)
    assert expected in bad.message
    assert isinstance(good, ThreadResponse)
    assert good.json() == {"i": 1}


def test_every_job_key_is_passed_to_the_client(forge_responses: responses.RequestsMock) -> None:
    """A job takes every keyword request() takes, and they all reach the request."""
    forge_responses.post(f"{BASE}/p", json={})
    job = {
        "method": "post",
        "url": f"{BASE}/p",
        "params": {"q": "1"},
        "headers": {"X-Job": "yes"},
        "json": {"a": 1},
        "timeout": 3.0,
        "cookies": {"c": "1"},
        "auth": ("u", "p"),
        "allow_redirects": False,
        "verify": False,
    }
    assert {"method", "url"} | RequestOptions.__optional_keys__ == JOB_KEYS
    (result,) = Pool.from_requests([job]).results()
    assert isinstance(result, ThreadResponse)
    (call,) = forge_responses.calls
    assert call.request.method == "POST"
    assert call.request.url == f"{BASE}/p?q=1"
    assert call.request.headers["X-Job"] == "yes"
    assert call.request.body == b'{"a": 1}'
    sent_timeout = getattr(call.request, "req_kwargs", {})["timeout"]  # the attempt's budget
    assert (sent_timeout.connect_timeout, sent_timeout.read_timeout) == (3.0, 3.0)
    assert getattr(call.request, "req_kwargs", {})["verify"] is False
    assert call.request.headers["Cookie"] == "c=1"
    assert call.request.headers["Authorization"].startswith("Basic ")


def test_hook_raising_unexpected_exception_does_not_kill_the_worker(
    forge_responses: responses.RequestsMock,
) -> None:
    """A hook's RuntimeError fails only its own job (as a HookError chaining it); the single
    worker runs every later job."""
    urls = register_numbered(forge_responses, 6)
    hook = FailFor(urls[1], RuntimeError("hook bug"))
    client = HttpClient(HttpClientConfigBuilder().with_request_hook(hook).build())
    with client:
        results = Pool.from_urls(urls, client=client, num_processes=1).results()
    assert [type(r).__name__ for r in results] == ["ThreadResponse", "ThreadException"] + [
        "ThreadResponse"
    ] * 4
    failed = results[1]
    assert isinstance(failed, ThreadException)
    assert isinstance(failed.exception, HookError)
    assert isinstance(failed.exception.__cause__, RuntimeError)
    assert "FailFor.before_request() raised RuntimeError" in failed.message


def test_base_exception_stops_a_worker_but_every_job_still_has_a_result(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SystemExit in a hook ends its worker; that job and the unrun ones still get results."""
    urls = register_numbered(forge_responses, 4)
    stopped: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", stopped.append)
    client = HttpClient(
        HttpClientConfigBuilder().with_request_hook(FailFor(urls[1], SystemExit(3))).build()
    )
    with client:
        pool = Pool.from_urls(urls, client=client, num_processes=1)
        results = pool.results()
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert isinstance(results[0], ThreadResponse)
    assert isinstance(results[1], ThreadException)
    assert isinstance(results[1].exception, SystemExit)
    for unrun in results[2:]:
        assert isinstance(unrun, ThreadException)
        assert isinstance(unrun.exception, RequestForgeError)
        assert "not run" in unrun.message
    assert [type(args.exc_value) for args in stopped] == [SystemExit]


def test_an_interrupted_wait_stops_the_workers_taking_new_jobs(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in join_all lets the job in flight finish; the jobs not started are "not run"."""
    entered, release = threading.Event(), threading.Event()

    def gated(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        entered.set()
        assert release.wait(WAIT)
        return 200, {}, '{"i": 0}'

    forge_responses.add_callback("GET", f"{BASE}/items/0", callback=gated)
    pool = Pool.from_urls([f"{BASE}/items/0"] * 4, num_processes=1)
    assert entered.wait(WAIT), "the first job never started"
    real_join = threading.Thread.join

    def interrupted(thread: threading.Thread, timeout: float | None = None) -> None:
        monkeypatch.setattr(threading.Thread, "join", real_join)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pool.join_all()
    release.set()
    results = pool.results()
    assert isinstance(results[0], ThreadResponse)
    assert all(isinstance(r, ThreadException) and "not run" in r.message for r in results[1:])
    assert len(forge_responses.calls) == 1


# -- constructors -----------------------------------------------------------------------------


def test_from_urls_adds_request_kwargs_to_every_job(
    forge_responses: responses.RequestsMock,
) -> None:
    """from_urls sends request_kwargs' method and headers with each URL."""
    forge_responses.delete(f"{BASE}/a")
    forge_responses.delete(f"{BASE}/b")
    extra = {"method": "DELETE", "headers": {"X-Reason": "cleanup"}}
    results = Pool.from_urls([f"{BASE}/a", f"{BASE}/b"], extra).results()
    assert [r.request_kwargs for r in results] == [
        {**extra, "url": f"{BASE}/a"},
        {**extra, "url": f"{BASE}/b"},
    ]
    assert sorted(str(c.request.url) for c in forge_responses.calls) == [f"{BASE}/a", f"{BASE}/b"]
    assert {c.request.method for c in forge_responses.calls} == {"DELETE"}
    assert {c.request.headers["X-Reason"] for c in forge_responses.calls} == {"cleanup"}


def test_from_exceptions_runs_the_failed_jobs_again(
    forge_responses: responses.RequestsMock,
) -> None:
    """The failed jobs of one pool, run again by from_exceptions, succeed in their order."""
    down = {1, 3}
    urls = register_numbered(forge_responses, 5, down)
    first = Pool.from_urls(urls)
    assert [e.index for e in first.exceptions()] == [1, 3]
    down.clear()
    second = Pool.from_exceptions(first.exceptions())
    assert numbers(second.results()) == [1, 3]


def test_from_requests_and_from_urls_reject_a_single_item() -> None:
    """A lone dict or URL string is refused instead of being iterated key by key."""
    with pytest.raises(InvalidRequestError, match="iterable of request dicts"):
        Pool.from_requests({"url": f"{BASE}/a"})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequestError, match="iterable of URLs"):
        Pool.from_urls(f"{BASE}/a")


def test_queue_is_drained_at_construction_and_marked_done(
    forge_responses: responses.RequestsMock,
) -> None:
    """The queue is emptied when the pool is built, and join() on it returns once jobs ran."""
    urls = register_numbered(forge_responses, 3)
    jobs: queue.Queue[dict[str, Any]] = queue.Queue()
    for url in urls:
        jobs.put({"method": "GET", "url": url})
    pool = Pool(jobs, num_processes=2)
    assert jobs.empty()
    jobs.join()  # would hang if a job were never marked done
    assert numbers(pool.results()) == [0, 1, 2]


def test_changing_a_queued_dict_later_changes_nothing(
    forge_responses: responses.RequestsMock,
) -> None:
    """Jobs are copied when drained, and request_kwargs cannot be changed afterwards."""
    release = threading.Event()

    def gated(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert release.wait(WAIT)
        return 200, {}, '{"i": 0}'

    forge_responses.add_callback("GET", f"{BASE}/items/0", callback=gated)
    job: dict[str, Any] = {"url": f"{BASE}/items/0"}
    pool = Pool.from_requests([job, {"url": f"{BASE}/items/0"}], num_processes=1)
    job["url"] = f"{BASE}/elsewhere"
    release.set()
    result = pool.results()[0]
    assert result.request_kwargs["url"] == f"{BASE}/items/0"
    with pytest.raises(TypeError):
        result.request_kwargs["url"] = "x"  # type: ignore[index]


# -- toolbelt's result API --------------------------------------------------------------------


def test_get_response_and_get_exception_return_each_in_order_then_none(
    forge_responses: responses.RequestsMock,
) -> None:
    """get_response()/get_exception() hand out results in input order, then None."""
    urls = register_numbered(forge_responses, 4, down={2})
    pool = Pool.from_urls(urls, num_processes=3)
    got: list[int] = []
    while (response := pool.get_response()) is not None:
        got.append(response.index)
    assert got == [0, 1, 3]
    exception = pool.get_exception()
    assert exception is not None
    assert exception.index == 2
    assert pool.get_exception() is None
    assert [r.index for r in pool.responses()] == [0, 1, 3]  # its own, full iteration


def test_join_all_is_idempotent_and_waits(forge_responses: responses.RequestsMock) -> None:
    """After join_all() every worker has ended; calling it again returns at once."""
    urls = register_numbered(forge_responses, 10)
    pool = Pool.from_urls(urls, num_processes=3)
    pool.join_all()
    pool.join_all()
    assert pool.num_processes == 3
    assert "done" in repr(pool)
    assert not [t for t in threading.enumerate() if t.name.startswith("requestforge-pool-")]


def test_toolbelt_style_map_returns_ordered_responses_and_exceptions(
    forge_responses: responses.RequestsMock,
) -> None:
    """map() is a drop-in for requests_toolbelt.threaded.map, with both iterators ordered."""
    urls = register_numbered(forge_responses, 6, down={4})
    jobs: list[dict[str, Any]] = [{"method": "GET", "url": url} for url in urls]
    jobs.insert(1, {"method": "GET", "url": urls[0], "strean": True})
    responses_, exceptions_ = requestforge.map(jobs, num_processes=4)
    assert [r.json()["i"] for r in responses_] == [0, 1, 2, 3, 5]
    invalid, down = exceptions_
    assert (invalid.index, down.index) == (1, 5)
    assert isinstance(invalid.exception, InvalidRequestError)
    assert isinstance(down.exception, TransportError)


def test_map_of_nothing_is_two_empty_iterators() -> None:
    """Unlike toolbelt, map([]) is not an error."""
    responses_, exceptions_ = requestforge.map([])
    assert list(responses_) == []
    assert list(exceptions_) == []


def test_http_client_map_returns_one_result_per_input_in_order(
    forge_responses: responses.RequestsMock,
) -> None:
    """HttpClient.map runs through the pool: relative URLs use the base URL, order is kept."""
    register_numbered(forge_responses, 20)
    config = HttpClientConfigBuilder().with_base_url(BASE).build()
    with HttpClient(config) as client:
        results = client.map([{"url": f"/items/{i}"} for i in range(20)], num_processes=5)
        assert numbers(results) == list(range(20))
        assert client.get("/items/3").json() == {"i": 3}  # the pool left the client open


# -- workers, sessions and clients ------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4"])
def test_num_processes_must_be_a_positive_integer(bad: Any) -> None:
    """num_processes below 1 or not an int is a ConfigurationError, raised at construction."""
    with pytest.raises(ConfigurationError, match="num_processes"):
        Pool.from_urls([f"{BASE}/a"], num_processes=bad)


@pytest.mark.parametrize("name", ["initializer", "auth_generator", "session"])
def test_callbacks_must_be_callable(name: str) -> None:
    """A session callback that is not callable is a ConfigurationError."""
    options: dict[str, Any] = {name: "not callable"}
    with pytest.raises(ConfigurationError, match=name):
        Pool.from_urls([f"{BASE}/a"], **options)


def test_job_queue_must_be_a_queue() -> None:
    """A plain list as job_queue is refused with a pointer to from_requests."""
    with pytest.raises(ConfigurationError, match="from_requests"):
        Pool([{"url": f"{BASE}/a"}])  # type: ignore[arg-type]


def test_client_must_be_an_http_client() -> None:
    """client= must be an HttpClient, not a requests.Session."""
    with pytest.raises(ConfigurationError, match="HttpClient"):
        Pool.from_urls([f"{BASE}/a"], client=requests.Session())  # type: ignore[arg-type]


def test_thread_count_defaults_like_thread_pool_executor_and_never_exceeds_jobs(
    forge_responses: responses.RequestsMock,
) -> None:
    """The default is min(32, cpus + 4) workers, and a pool never starts more than its jobs."""
    urls = register_numbered(forge_responses, 40)
    default, capped = Pool.from_urls(urls), Pool.from_urls(urls[:3], num_processes=8)
    default.join_all()
    capped.join_all()
    assert default.num_processes == min(32, (os.cpu_count() or 1) + 4, 40)
    assert capped.num_processes == 3


def test_workers_are_named_non_daemon_threads(forge_responses: responses.RequestsMock) -> None:
    """Jobs run on non-daemon threads named requestforge-pool-N, never the caller's."""
    seen: list[threading.Thread] = []
    lock = threading.Lock()

    def record(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with lock:
            seen.append(threading.current_thread())
        return 200, {}, "{}"

    forge_responses.add_callback("GET", f"{BASE}/t", callback=record)
    Pool.from_urls([f"{BASE}/t"] * 12, num_processes=3).join_all()
    assert len(seen) == 12
    assert {t.name for t in seen} <= {f"requestforge-pool-{n}" for n in range(3)}
    assert not any(t.daemon for t in seen)


def test_initializer_and_auth_generator_run_once_per_worker_in_order(
    forge_responses: responses.RequestsMock,
) -> None:
    """Each worker's session is made once: initializer first, then auth_generator."""
    urls = register_numbered(forge_responses, 30)
    calls: list[tuple[str, requests.Session]] = []  # holding the sessions keeps ids unique
    lock = threading.Lock()

    def initializer(session: requests.Session) -> requests.Session:
        with lock:
            calls.append(("init", session))
        session.headers["X-Init"] = "1"
        return session

    def auth_generator(session: requests.Session) -> requests.Session:
        with lock:
            calls.append(("auth", session))
        session.headers["X-Auth"] = f"{session.headers['X-Init']!s}2"
        return session

    pool = Pool.from_urls(
        urls, num_processes=4, initializer=initializer, auth_generator=auth_generator
    )
    assert numbers(pool.results()) == list(range(30))
    sessions = {id(session) for _, session in calls}
    assert len(calls) == 2 * len(sessions) <= 2 * pool.num_processes
    for sid in sessions:
        assert [kind for kind, session in calls if id(session) == sid] == ["init", "auth"]
    assert {c.request.headers["X-Auth"] for c in forge_responses.calls} == {"12"}


def test_initializer_returning_none_keeps_the_session(
    forge_responses: responses.RequestsMock,
) -> None:
    """An initializer that only mutates (toolbelt's own example) still has its effect."""
    forge_responses.get(f"{BASE}/ua", json={})

    def initializer(session: requests.Session) -> None:
        session.headers["User-Agent"] = "my-scraper/0.1"

    (result,) = Pool.from_urls([f"{BASE}/ua"], initializer=initializer).results()
    assert isinstance(result, ThreadResponse)
    assert forge_responses.calls[0].request.headers["User-Agent"] == "my-scraper/0.1"


def test_session_factory_sessions_are_closed_when_the_pool_is_done(
    forge_responses: responses.RequestsMock,
) -> None:
    """The pool's private client closes every session it made once the jobs are done."""
    urls = register_numbered(forge_responses, 12)
    tracked = tracked_session_class()
    pool = Pool.from_urls(urls, num_processes=3, session=tracked)
    assert numbers(pool.results()) == list(range(12))
    assert 1 <= len(tracked.made) <= 3
    assert {id(s) for s in tracked.closed} == {id(s) for s in tracked.made}


def test_clients_the_pool_made_are_closed_and_the_callers_is_not(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default client and the initializer's private client are closed; yours is not."""
    urls = register_numbered(forge_responses, 4)
    closed: list[HttpClient] = []
    real_close = HttpClient.close

    def close(client: HttpClient) -> None:
        closed.append(client)
        real_close(client)

    monkeypatch.setattr(HttpClient, "close", close)
    assert numbers(Pool.from_urls(urls, initializer=lambda s: s).results()) == [0, 1, 2, 3]
    assert len(closed) == 2
    closed.clear()
    mine = HttpClient()
    assert numbers(Pool.from_urls(urls, client=mine, initializer=lambda s: s).results()) == [
        0,
        1,
        2,
        3,
    ]
    assert len(closed) == 1
    assert closed[0] is not mine
    closed.clear()
    assert numbers(Pool.from_urls(urls, client=mine).results()) == [0, 1, 2, 3]
    assert closed == []
    mine.close()


def test_a_callers_client_config_applies_and_the_client_stays_open(
    forge_responses: responses.RequestsMock,
) -> None:
    """Default headers and request hooks of the caller's client apply to pool jobs, even with
    an initializer, and the caller's client is left open."""
    urls = register_numbered(forge_responses, 5)
    config = HttpClientConfigBuilder().with_header("X-Default", "d").build()
    with HttpClient(config) as client:
        pool = Pool.from_urls(urls, client=client, initializer=lambda s: s)
        assert numbers(pool.results()) == list(range(5))
        assert client.get(urls[0]).json() == {"i": 0}
    assert {c.request.headers["X-Default"] for c in forge_responses.calls} == {"d"}


def test_a_worker_that_cannot_start_leaves_the_others_to_do_the_work(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the OS refuses the second thread, the first one runs every job."""
    urls = register_numbered(forge_responses, 5)
    real_start = threading.Thread.start
    started: list[str] = []

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("requestforge-pool-") and started:
            raise RuntimeError("can't start new thread")
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    pool = Pool.from_urls(urls, num_processes=4)
    assert pool.num_processes == 1
    assert numbers(pool.results()) == list(range(5))


def test_no_worker_can_start_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """If not even one worker thread starts, the constructor raises the error."""

    def start(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="can't start"):
        Pool.from_urls([f"{BASE}/a"])


# -- the result objects -----------------------------------------------------------------------


def test_thread_response_proxies_the_response_and_is_read_only() -> None:
    """A ThreadResponse reads like its HttpResponse, and its attributes cannot be set."""
    response = HttpResponse(
        status_code=201,
        headers={"Content-Type": "application/json"},
        content=b'{"ok": true}',
        url=f"{BASE}/x",
        reason="Created",
    )
    wrapped = ThreadResponse({"url": f"{BASE}/x"}, response, 7)
    assert (wrapped.status_code, wrapped.json(), wrapped.text) == (
        201,
        {"ok": True},
        '{"ok": true}',
    )
    assert wrapped.headers["Content-Type"] == "application/json"
    assert wrapped.content == b'{"ok": true}'
    assert wrapped.url == f"{BASE}/x"
    assert wrapped.reason == "Created"  # through __getattr__
    assert wrapped.is_success is True
    assert wrapped.raise_for_status() is response
    with pytest.raises(AttributeError):
        wrapped.index = 3
    with pytest.raises(AttributeError):
        wrapped.no_such_attribute  # noqa: B018


def test_reprs_name_the_job_without_its_secrets() -> None:
    """Reprs show index, method, status or error type and a redacted URL, never headers."""
    job: dict[str, Any] = {
        "method": "post",
        "url": f"{BASE}/x?access_token=s3cret",
        "headers": {"Authorization": "Bearer s3cret"},
        "json": {"password": "s3cret"},
    }
    response = HttpResponse(status_code=200, headers={}, content=b"", url=job["url"])
    shown = repr(ThreadResponse(job, response, 2))
    assert shown.startswith("<ThreadResponse #2 [200] POST https://api.example.com/x?")
    failure = repr(ThreadException(job, ValueError("s3cret leaked"), 4))
    assert failure.startswith("<ThreadException #4 POST")
    assert "ValueError" in failure
    ours = repr(ThreadException(job, InvalidRequestError("bad job"), 5))
    assert ours.endswith("InvalidRequestError: bad job>")
    for text in (shown, failure, ours):
        assert "s3cret" not in text


def test_pool_runs_and_shows_extension_methods(forge_responses: responses.RequestsMock) -> None:
    """A job's extension method is sent and shown in reprs; new response fields pass through."""
    forge_responses.add(
        "PROPFIND", f"{BASE}/dav", status=207, headers={"Link": f"<{BASE}/n>; rel=next"}
    )
    (result,) = Pool.from_requests([{"method": "propfind", "url": f"{BASE}/dav"}]).results()
    assert isinstance(result, ThreadResponse)
    assert repr(result) == f"<ThreadResponse #0 [207] PROPFIND {BASE}/dav>"
    assert (result.ok, result.links["next"]["url"]) == (True, f"{BASE}/n")
    failure = repr(ThreadException({"method": "mkcol", "url": f"{BASE}/d"}, ValueError("x"), 1))
    assert failure.startswith(f"<ThreadException #1 MKCOL {BASE}/d")
    assert [c.request.method for c in forge_responses.calls] == ["PROPFIND"]


def test_thread_exception_proxies_the_exception() -> None:
    """A ThreadException exposes message, and the exception's own attributes."""
    error = RequestForgeError("went wrong")
    wrapped = ThreadException({"url": f"{BASE}/x"}, error, 0)
    assert wrapped.message == "went wrong"
    assert wrapped.exception is error
    assert wrapped.response is None  # through __getattr__
    with pytest.raises(AttributeError):
        wrapped.message = "other"
