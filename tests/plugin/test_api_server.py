"""ApiServer over real loopback sockets: scripting, recording, waiting and keep-alive."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from requestforge_testing import ApiServer, RecordedRequest, Reply

THREADS = 16


def test_scripted_status_headers_and_text_body(forge_api_server: ApiServer) -> None:
    """A scripted Reply's status, headers and str body reach the client as UTF-8 text."""
    forge_api_server.add("/hello", Reply(status=201, body="héllo", headers={"X-Trace": "abc"}))
    response = requests.get(forge_api_server.url_for("/hello"), timeout=5)
    assert response.status_code == 201
    assert response.headers["X-Trace"] == "abc"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len("héllo".encode()))
    assert response.text == "héllo"


def test_json_and_bytes_bodies(forge_api_server: ApiServer) -> None:
    """json= is sent as application/json (null included) and bytes are sent verbatim."""
    forge_api_server.add("/json", Reply(json={"ids": [1, 2]}))
    forge_api_server.add("/null", Reply(json=None))
    forge_api_server.add("/raw", Reply(body=b"\x00\xff", headers={"Content-Type": "image/x"}))
    with requests.Session() as session:
        as_json = session.get(forge_api_server.url_for("/json"), timeout=5)
        as_null = session.get(forge_api_server.url_for("/null"), timeout=5)
        raw = session.get(forge_api_server.url_for("/raw"), timeout=5)
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json() == {"ids": [1, 2]}
    assert as_null.content == b"null"
    assert raw.content == b"\x00\xff"
    assert raw.headers["Content-Type"] == "image/x"


def test_sequence_is_served_in_order_and_the_last_reply_repeats(
    forge_api_server: ApiServer,
) -> None:
    """Replies go out in order, then the last one is served for every later request."""
    forge_api_server.add("/seq", Reply(status=503), Reply(status=502), Reply(status=200))
    with requests.Session() as session:
        statuses = [session.get(forge_api_server.url_for("/seq"), timeout=5).status_code]
        statuses += [session.get(forge_api_server.url_for("/seq"), timeout=5).status_code]
        statuses += [session.get(forge_api_server.url_for("/seq"), timeout=5).status_code]
        statuses += [session.get(forge_api_server.url_for("/seq"), timeout=5).status_code]
    assert statuses == [503, 502, 200, 200]


def test_adding_again_replaces_the_sequence(forge_api_server: ApiServer) -> None:
    """A second add() for the same path starts a fresh sequence instead of appending."""
    forge_api_server.add("/swap", Reply(body="old"), Reply(body="old-last"))
    first = requests.get(forge_api_server.url_for("/swap"), timeout=5).text
    forge_api_server.add("/swap", Reply(body="new"))
    second = requests.get(forge_api_server.url_for("/swap"), timeout=5).text
    assert (first, second) == ("old", "new")


def test_method_scripts_win_over_any_method_scripts(forge_api_server: ApiServer) -> None:
    """A per-method script answers its method; the any-method script answers the rest."""
    forge_api_server.add("/items", Reply(body="any"))
    forge_api_server.add("/items", Reply(status=201, body="created"), method="post")
    with requests.Session() as session:
        posted = session.post(forge_api_server.url_for("/items"), data=b"x", timeout=5)
        got = session.get(forge_api_server.url_for("/items"), timeout=5)
        deleted = session.delete(forge_api_server.url_for("/items"), timeout=5)
    assert (posted.status_code, posted.text) == (201, "created")
    assert got.text == "any"
    assert deleted.text == "any"


def test_add_handler_answers_from_the_recorded_request(forge_api_server: ApiServer) -> None:
    """A handler sees the RecordedRequest and its Reply is what the client receives."""

    def echo(request: RecordedRequest) -> Reply:
        return Reply(json={"method": request.method, "q": request.query, "body": request.text})

    forge_api_server.add_handler("/echo", echo)
    response = requests.put(forge_api_server.url_for("/echo?a=1&a=2"), data="hi", timeout=5)
    assert response.json() == {"method": "PUT", "q": {"a": ["1", "2"]}, "body": "hi"}


def test_a_failing_handler_gives_500_and_keeps_the_exception(forge_api_server: ApiServer) -> None:
    """A handler that raises yields a 500 for the client and the exception for the test."""

    def broken(request: RecordedRequest) -> Reply:
        raise LookupError(f"no fixture data for {request.path}")

    forge_api_server.add_handler("/broken", broken)
    response = requests.get(forge_api_server.url_for("/broken"), timeout=5)
    assert response.status_code == 500
    assert "LookupError" in response.json()["detail"]
    (error,) = forge_api_server.handler_errors
    assert isinstance(error, LookupError)


def test_unscripted_paths_get_a_json_404(forge_api_server: ApiServer) -> None:
    """A path nobody scripted answers 404 with a JSON body naming the path."""
    response = requests.get(forge_api_server.url_for("/nowhere?x=1"), timeout=5)
    assert response.status_code == 404
    assert response.json() == {"error": "not scripted", "path": "/nowhere"}


def test_head_gets_headers_without_a_body(forge_api_server: ApiServer) -> None:
    """HEAD gets the GET reply's Content-Length but no body, and the connection stays usable."""
    forge_api_server.add("/doc", Reply(body="twelve bytes"))
    with requests.Session() as session:
        head = session.head(forge_api_server.url_for("/doc"), timeout=5)
        get = session.get(forge_api_server.url_for("/doc"), timeout=5)
    assert head.headers["Content-Length"] == "12"
    assert head.content == b""
    assert get.text == "twelve bytes"
    assert forge_api_server.connections_accepted == 1


def test_no_content_keeps_the_connection_alive(forge_api_server: ApiServer) -> None:
    """A 204 carries no body and no Content-Length, and keep-alive still works after it."""
    forge_api_server.add("/gone", Reply(status=204), Reply(status=200, body="ok"))
    with requests.Session() as session:
        empty = session.delete(forge_api_server.url_for("/gone"), timeout=5)
        after = session.get(forge_api_server.url_for("/gone"), timeout=5)
    assert empty.status_code == 204
    assert "Content-Length" not in empty.headers
    assert after.text == "ok"
    assert forge_api_server.connections_accepted == 1


def test_delay_really_slows_the_reply(forge_api_server: ApiServer) -> None:
    """Reply(delay=...) holds the response back for at least that long in real time."""
    forge_api_server.add("/slow", Reply(body="late", delay=0.05))
    started = time.monotonic()
    response = requests.get(forge_api_server.url_for("/slow"), timeout=5)
    assert time.monotonic() - started >= 0.05
    assert response.text == "late"


def test_drop_closes_the_connection_without_a_response(forge_api_server: ApiServer) -> None:
    """Reply(drop=True) makes requests raise ConnectionError, yet the request is recorded."""
    forge_api_server.add("/flaky", Reply(drop=True), Reply(body="back"))
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.get(forge_api_server.url_for("/flaky"), timeout=5)
        recovered = session.get(forge_api_server.url_for("/flaky"), timeout=5)
    assert recovered.text == "back"
    assert len(forge_api_server.requests_to("/flaky")) == 2
    assert forge_api_server.connections_accepted == 2


def test_requests_are_recorded_with_headers_query_and_body(forge_api_server: ApiServer) -> None:
    """Method, path, query, case-insensitive headers, body and thread name are all recorded."""
    forge_api_server.add("/orders", Reply(status=201))
    requests.post(
        forge_api_server.url_for("/orders?tag=a&tag=b&empty="),
        json={"qty": 2},
        headers={"X-Request-Id": "r-1"},
        timeout=5,
    )
    (seen,) = forge_api_server.requests
    assert (seen.method, seen.path) == ("POST", "/orders")
    assert seen.query == {"tag": ["a", "b"], "empty": [""]}
    assert seen.headers["x-request-id"] == "r-1"
    assert seen.headers["X-REQUEST-ID"] == "r-1"
    assert "content-type" in seen.headers
    assert seen.json() == {"qty": 2}
    assert seen.thread_name.startswith("forge-api-")
    assert forge_api_server.requests_to("/orders") == [seen]
    assert forge_api_server.requests_to("/other") == []


def test_chunked_request_bodies_are_decoded(forge_api_server: ApiServer) -> None:
    """A generator body goes out chunked and is recorded as the joined bytes."""
    forge_api_server.add("/upload", Reply(status=204))
    response = requests.post(
        forge_api_server.url_for("/upload"), data=iter([b"ab", b"", b"cde"]), timeout=5
    )
    assert response.status_code == 204
    (seen,) = forge_api_server.requests
    assert seen.headers["Transfer-Encoding"] == "chunked"
    assert seen.body == b"abcde"


def test_requests_property_is_a_snapshot(forge_api_server: ApiServer) -> None:
    """Mutating the returned list does not change what the server recorded."""
    requests.get(forge_api_server.url_for("/a"), timeout=5)
    snapshot = forge_api_server.requests
    snapshot.clear()
    assert len(forge_api_server.requests) == 1


def test_wait_for_requests_returns_once_they_arrive(forge_api_server: ApiServer) -> None:
    """wait_for_requests blocks until a request sent later by another thread has arrived."""
    forge_api_server.add("/ping", Reply(body="pong"))
    go = threading.Event()

    def client() -> None:
        go.wait(timeout=5)
        requests.get(forge_api_server.url_for("/ping"), timeout=5)

    worker = threading.Thread(target=client)
    worker.start()
    assert forge_api_server.requests == []
    go.set()
    started = time.monotonic()
    arrived = forge_api_server.wait_for_requests(1, timeout=20, path="/ping")
    # Woken by the arrival itself, not by running out the timeout and checking again.
    assert time.monotonic() - started < 10
    worker.join(timeout=5)
    assert [r.path for r in arrived] == ["/ping"]


def test_wait_for_requests_times_out_with_a_clear_message(forge_api_server: ApiServer) -> None:
    """Too few requests within the timeout raise TimeoutError saying what did arrive."""
    requests.get(forge_api_server.url_for("/only"), timeout=5)
    with pytest.raises(TimeoutError, match=r"at least 2 request\(s\).*got 1.*GET /only"):
        forge_api_server.wait_for_requests(2, timeout=0.05)


def test_one_session_reuses_one_connection(forge_api_server: ApiServer) -> None:
    """Five requests on one keep-alive requests.Session arrive on a single TCP connection."""
    forge_api_server.add("/k", Reply(body="k"))
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(forge_api_server.url_for("/k"), timeout=5).text == "k"
    assert forge_api_server.connections_accepted == 1
    assert len({r.connection for r in forge_api_server.requests}) == 1


def test_separate_clients_open_separate_connections(forge_api_server: ApiServer) -> None:
    """Three sessions open three connections, so the keep-alive count can fail."""
    for _ in range(3):
        with requests.Session() as session:
            session.get(forge_api_server.url_for("/k"), timeout=5)
    assert forge_api_server.connections_accepted == 3
    assert len({r.connection for r in forge_api_server.requests}) == 3


def test_concurrent_requests_from_16_threads_are_all_recorded(
    forge_api_server: ApiServer,
) -> None:
    """16 threads released together each get a distinct reply and are each recorded once."""
    forge_api_server.add("/n", *(Reply(json=i) for i in range(THREADS)), Reply(status=410))
    barrier = threading.Barrier(THREADS)
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=5)
            results[i] = requests.get(forge_api_server.url_for(f"/n?i={i}"), timeout=5).json()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors, errors
    assert sorted(results.values()) == list(range(THREADS))
    seen = forge_api_server.wait_for_requests(THREADS)
    assert sorted(int(r.query["i"][0]) for r in seen) == list(range(THREADS))
    assert forge_api_server.connections_accepted == THREADS


def test_reset_forgets_scripts_records_and_connections(forge_api_server: ApiServer) -> None:
    """After reset() scripts answer 404 again and the counters start from zero."""
    forge_api_server.add("/r", Reply(body="scripted"))
    requests.get(forge_api_server.url_for("/r"), timeout=5)
    forge_api_server.reset()
    assert forge_api_server.requests == []
    assert forge_api_server.connections_accepted == 0
    assert requests.get(forge_api_server.url_for("/r"), timeout=5).status_code == 404


def test_reset_closes_idle_keep_alive_connections(forge_api_server: ApiServer) -> None:
    """A connection kept alive across reset() is closed, so the next request reconnects."""
    with requests.Session() as session:
        session.get(forge_api_server.url_for("/a"), timeout=5)
        forge_api_server.reset()
        session.get(forge_api_server.url_for("/a"), timeout=5)
    assert forge_api_server.connections_accepted == 1
    assert len(forge_api_server.requests) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": "x", "json": {}}, "body or json"),
        ({"status": 204, "body": "x"}, "cannot have a body"),
        ({"status": 101}, "200-599"),
        ({"headers": {"Content-Length": "3"}}, "sets Content-Length itself"),
        ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "invalid header"),
        ({"delay": -1.0}, "delay"),
    ],
)
def test_reply_rejects_scripts_that_would_break_framing(
    kwargs: dict[str, object], message: str
) -> None:
    """Replies that cannot be sent correctly fail when scripted, not mid-test on the wire."""
    with pytest.raises(ValueError, match=message):
        Reply(**kwargs)  # type: ignore[arg-type]


def test_add_rejects_bad_paths_and_non_replies(forge_api_server: ApiServer) -> None:
    """add() refuses paths that could never match and arguments that are not Replies."""
    with pytest.raises(ValueError, match="start with '/'"):
        forge_api_server.add("users", Reply())
    with pytest.raises(ValueError, match="query string"):
        forge_api_server.add("/users?id=1", Reply())
    with pytest.raises(ValueError, match="at least one"):
        forge_api_server.add("/users")
    with pytest.raises(TypeError, match="expected Reply"):
        forge_api_server.add("/users", 200)  # type: ignore[arg-type]


def test_standalone_server_stops_cleanly() -> None:
    """Used without pytest, stop() closes open connections and ends every server thread."""
    with ApiServer() as server:
        server.add("/x", Reply(body="x"))
        prefix = f"forge-api-{server.url.rsplit(':', 1)[1]}-"
        idle = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        with idle, requests.Session() as session:
            assert session.get(server.url_for("/x"), timeout=5).text == "x"
            server.stop()
            assert idle.recv(1) == b""  # the server closed the idle connection
            assert not server.running
            assert not [t for t in threading.enumerate() if t.name.startswith(prefix)]
            with pytest.raises(RuntimeError, match="not running"):
                _ = server.url
