"""Differential tests: the same call through a bare ``requests.Session`` and through
``HttpClient`` against the loopback server, comparing what the server received and what the
caller sees. This first part covers the response (status, reason, ok, encoding, elapsed,
links, cookies, history, iter_content, iter_lines) and extension methods."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
import requests.auth
from requests.cookies import RequestsCookieJar

from requestforge import HttpClient, HttpClientConfigBuilder, HttpResponse, InvalidRequestError
from requestforge_testing import ApiServer, RecordedRequest, Reply, StressRunner


@pytest.fixture
def client() -> Iterator[HttpClient]:
    """A client with no base URL: the tests pass the same absolute URL to both sides."""
    with HttpClient(HttpClientConfigBuilder().with_timeout(5).build()) as forge_client:
        yield forge_client


def both(
    server: ApiServer, client: HttpClient, method: str, path: str, **kwargs: Any
) -> tuple[requests.Response, HttpResponse]:
    """Send one call through a fresh bare requests.Session, then through the client."""
    with requests.Session() as session:
        expected = session.request(method, server.url_for(path), timeout=5, **kwargs)
    actual = client.request(method, server.url_for(path), **kwargs)
    return expected, actual


def seen(requests_: list[RecordedRequest]) -> list[tuple[str, str, bytes, str | None]]:
    """What the server received, in the parts that must not differ."""
    return [(r.method, r.path, r.body, r.headers.get("Content-Type")) for r in requests_]


def cookie_facts(jar: RequestsCookieJar) -> list[tuple[Any, ...]]:
    """Every attribute of every cookie in a jar that a caller could read."""
    return sorted(
        (c.name, c.value, c.domain, c.path, c.secure, c.expires, c.has_nonstandard_attr("HttpOnly"))
        for c in jar
    )


def headers_without_date(headers: Any) -> dict[str, str]:
    """The headers, minus Date: the two calls may straddle a second."""
    return {k.lower(): v for k, v in headers.items() if k.lower() != "date"}


@pytest.mark.parametrize(
    "reply",
    [
        Reply(json={"a": 1}),
        Reply(status=201, body="créé"),
        Reply(status=404, body="nope", headers={"Content-Type": "text/html"}),
        Reply(status=503, body=b"\x00\x01", headers={"Retry-After": "3"}),
        Reply(status=204),
        Reply(status=302, body="no Location, so not followed"),
        Reply(status=418, body="tea", headers={"Content-Type": "text/plain; charset=latin-1"}),
        Reply(status=599, body="odd"),
    ],
    ids=["json", "text", "html-404", "octets-503", "204", "302-bare", "418-latin1", "599"],
)
def test_status_reason_ok_encoding_and_body_match_requests(
    forge_api_server: ApiServer, client: HttpClient, reply: Reply
) -> None:
    """Status, reason, ok, encoding, headers and body are what requests reports."""
    forge_api_server.add("/r", reply)
    expected, actual = both(forge_api_server, client, "GET", "/r")
    assert (actual.status_code, actual.reason, actual.ok) == (
        expected.status_code,
        expected.reason,
        expected.ok,
    )
    assert actual.encoding == expected.encoding
    assert actual.content == expected.content
    assert headers_without_date(actual.headers) == headers_without_date(expected.headers)
    if expected.encoding is not None:  # requests guesses a charset otherwise; we take UTF-8
        assert actual.text == expected.text
    assert isinstance(actual.elapsed, timedelta)
    assert isinstance(expected.elapsed, timedelta)
    assert actual.raw_response is not None
    assert actual.raw_response.status_code == expected.status_code


@pytest.mark.parametrize(
    "link",
    [
        '<https://a.example/p2>; rel="next", <https://a.example/p9>; rel="last"',
        "<https://a.example/x>; title=\"x, y\"; type='text/html', <https://a.example/plain>",
        "<https://a.example/a>; rel=next,<https://a.example/b>;rel=next",
        "",
    ],
    ids=["next-last", "no-rel", "repeated-rel", "empty"],
)
def test_links_match_requests(forge_api_server: ApiServer, client: HttpClient, link: str) -> None:
    """links parses the Link header exactly as requests does."""
    forge_api_server.add("/l", Reply(body="x", headers={"Link": link} if link else {}))
    expected, actual = both(forge_api_server, client, "GET", "/l")
    assert actual.links == expected.links


@pytest.mark.parametrize(
    "set_cookie",
    [
        "sid=abc123; Path=/; HttpOnly",
        "pref=dark; Max-Age=3600; Path=/app",
        "old=1; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Secure",
        'quoted="a b"; Path=/',
    ],
)
def test_cookies_match_requests(
    forge_api_server: ApiServer, client: HttpClient, set_cookie: str
) -> None:
    """response.cookies holds the same cookies, with the same attributes, as requests'."""
    forge_api_server.add("/c", Reply(body="x", headers={"Set-Cookie": set_cookie}))
    expected, actual = both(forge_api_server, client, "GET", "/c")
    assert isinstance(actual.cookies, RequestsCookieJar)
    assert actual.cookies.get_dict() == expected.cookies.get_dict()
    assert len(actual.cookies) == 1
    facts = cookie_facts(actual.cookies)
    if "Max-Age" in set_cookie:  # an absolute expiry computed at two instants: compare apart
        assert [f[:5] for f in facts] == [f[:5] for f in cookie_facts(expected.cookies)]
    else:
        assert facts == cookie_facts(expected.cookies)


def test_redirect_history_matches_requests(forge_api_server: ApiServer, client: HttpClient) -> None:
    """history lists the same hops (status, URL, reason, Location, cookies, their own
    history), the final response is the same, and the server saw the same requests."""
    forge_api_server.add(
        "/r1", Reply(status=302, headers={"Location": "/r2", "Set-Cookie": "a=1; Path=/"})
    )
    forge_api_server.add(
        "/r2",
        Reply(status=301, headers={"Location": forge_api_server.url_for("/r3?x=1")}),
    )
    forge_api_server.add("/r3", Reply(json={"done": True}, headers={"Set-Cookie": "b=2"}))
    expected, actual = both(forge_api_server, client, "GET", "/r1")
    hops = [(h.status_code, h.url, h.reason, h.headers.get("Location")) for h in actual.history]
    assert hops == [
        (h.status_code, h.url, h.reason, h.headers.get("Location")) for h in expected.history
    ]
    assert [h.status_code for h in actual.history] == [302, 301]
    assert [h.cookies.get_dict() for h in actual.history] == [
        h.cookies.get_dict() for h in expected.history
    ]
    assert [len(h.history) for h in actual.history] == [len(h.history) for h in expected.history]
    assert actual.history[1].history == (actual.history[0],)
    assert (actual.status_code, actual.url, actual.json()) == (
        expected.status_code,
        expected.url,
        expected.json(),
    )
    assert actual.cookies.get_dict() == expected.cookies.get_dict() == {"b": "2"}
    recorded = seen(forge_api_server.requests)
    assert recorded[:3] == recorded[3:]
    assert [path for _, path, _, _ in recorded[:3]] == ["/r1", "/r2", "/r3"]


def test_see_other_after_post_matches_requests(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A 303 after a POST is followed with a bodiless GET, as requests does, and is in history."""
    forge_api_server.add("/orders", Reply(status=303, headers={"Location": "/orders/7"}))
    forge_api_server.add("/orders/7", Reply(json={"id": 7}))
    expected, actual = both(forge_api_server, client, "POST", "/orders", json={"item": 1})
    assert [h.status_code for h in actual.history] == [h.status_code for h in expected.history]
    assert actual.history[0].status_code == 303
    assert actual.json() == expected.json()
    recorded = seen(forge_api_server.requests)
    assert recorded[:2] == recorded[2:]
    assert [(method, path) for method, path, _, _ in recorded[:2]] == [
        ("POST", "/orders"),
        ("GET", "/orders/7"),
    ]


BODIES = [
    b"a\nb\n",
    b"a\r\nb",
    b"\n\nx\n",
    b"no newline",
    b"",
    b"tab\tand\x0bvt\x0cff\rcr",
    "é\nü\r\n✓".encode(),
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize(
    "options",
    [{}, {"delimiter": b"\n"}, {"delimiter": b"\r\n"}, {"chunk_size": 10_000}],
    ids=["default", "lf", "crlf", "big-chunks"],
)
def test_iter_lines_match_requests(
    forge_api_server: ApiServer, client: HttpClient, body: bytes, options: dict[str, Any]
) -> None:
    """iter_lines yields the lines requests yields for a body that fits one chunk."""
    forge_api_server.add("/lines", Reply(body=body))
    expected, actual = both(forge_api_server, client, "GET", "/lines")
    assert list(actual.iter_lines(**options)) == list(expected.iter_lines(**options))


@pytest.mark.parametrize("delimiter", [None, "\n", "ü"])
def test_decoded_iter_lines_match_requests(
    forge_api_server: ApiServer, client: HttpClient, delimiter: str | None
) -> None:
    """With a declared charset, decode_unicode lines are requests' str lines."""
    forge_api_server.add("/lines", Reply(body="é\nü\r\n✓ü\n"))  # text/plain; charset=utf-8
    expected, actual = both(forge_api_server, client, "GET", "/lines")
    assert expected.encoding == "utf-8"
    assert list(actual.iter_lines(decode_unicode=True, delimiter=delimiter)) == list(
        expected.iter_lines(decode_unicode=True, delimiter=delimiter)
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 64, None])
@pytest.mark.parametrize("decode_unicode", [False, True])
def test_iter_content_matches_requests(
    forge_api_server: ApiServer,
    client: HttpClient,
    chunk_size: int | None,
    decode_unicode: bool,
) -> None:
    """iter_content yields the same pieces as requests, decoded or not."""
    forge_api_server.add("/blob", Reply(body="naïve ✓ " * 5))
    expected, actual = both(forge_api_server, client, "GET", "/blob")
    assert list(actual.iter_content(chunk_size, decode_unicode)) == list(
        expected.iter_content(chunk_size, decode_unicode)
    )


@pytest.mark.parametrize("method", ["PROPFIND", "propfind", "M-SEARCH", "TRACE"])
def test_extension_method_reaches_the_server_as_with_requests(
    forge_api_server: ApiServer, client: HttpClient, method: str
) -> None:
    """Any token method is sent as requests sends it: upper-cased, with its body and headers."""
    forge_api_server.add("/dav", Reply(status=207, body="<multistatus/>"))
    expected, actual = both(
        forge_api_server,
        client,
        method,
        "/dav",
        data=b"<propfind/>",
        headers={"Depth": "1", "Content-Type": "application/xml"},
    )
    assert (actual.status_code, actual.content) == (expected.status_code, expected.content)
    first, second = forge_api_server.requests
    assert seen([first]) == seen([second])
    assert first.method == method.upper()
    assert first.headers["Depth"] == second.headers["Depth"] == "1"


# -- step 2: the requests keyword set ---------------------------------------------------


def received(server: ApiServer) -> list[tuple[Any, ...]]:
    """Method, path, query, the headers that matter and the body, multipart boundary unified."""
    facts = []
    for r in server.requests:
        content_type = r.headers.get("Content-Type") or ""
        body = r.body
        if "boundary=" in content_type:
            boundary = content_type.split("boundary=", 1)[1]
            body = body.replace(boundary.encode(), b"B")
            content_type = content_type.replace(boundary, "B")
        facts.append(
            (
                r.method,
                r.path,
                r.query,
                content_type,
                r.headers.get("Authorization"),
                _cookie_set(r.headers.get("Cookie")),
                r.headers.get("X-Extra"),
                body,
            )
        )
    return facts


def _cookie_set(header: str | None) -> list[str] | None:
    """A Cookie header's pairs, sorted. Their order means nothing to a server (RFC 6265
    section 5.4), and requests itself orders them one way on a redirect hop and another on a
    fresh request with the same jar; a redirect hop here is sent as a fresh request."""
    return None if header is None else sorted(header.split("; "))


def _files() -> dict[str, Any]:
    return {
        "plain": b"raw bytes",
        "named": ("report.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv"),
        "with-headers": ("x.txt", "text body", "text/plain", {"X-Part": "1"}),
    }


KEYWORD_CASES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("params", lambda: {"params": {"q": "a b", "page": [1, 2], "none": None}}),
    ("data-form", lambda: {"data": {"name": "x", "multi": ["1", "2"]}}),
    ("data-bytes", lambda: {"data": b"\x00raw\xff"}),
    ("data-file", lambda: {"data": io.BytesIO(b"from a file")}),
    ("json", lambda: {"json": {"a": [1, None, "é"]}}),
    ("headers", lambda: {"headers": {"X-Extra": "yes"}}),
    ("cookies", lambda: {"cookies": {"session": "s3cret", "theme": "dark"}}),
    ("files", lambda: {"files": _files()}),
    ("files-and-data", lambda: {"files": [("f", ("a.txt", b"A"))], "data": {"k": "v"}}),
    ("auth-basic", lambda: {"auth": ("user", "pa:ss")}),
    ("auth-digest-object", lambda: {"auth": requests.auth.HTTPBasicAuth("u", "p")}),
    ("verify-false", lambda: {"verify": False}),
    ("proxies-no-match", lambda: {"proxies": {"https": "http://127.0.0.1:9"}}),
]


@pytest.mark.parametrize(("name", "make"), KEYWORD_CASES, ids=[c[0] for c in KEYWORD_CASES])
def test_keyword_sends_what_requests_sends(
    forge_api_server: ApiServer,
    client: HttpClient,
    name: str,
    make: Callable[[], dict[str, Any]],
) -> None:
    """Each requests keyword makes the server receive exactly what a bare Session sends."""
    forge_api_server.add("/k", Reply(body="ok"))
    with requests.Session() as session:
        session.request("POST", forge_api_server.url_for("/k"), timeout=5, **make())
    client.request("POST", forge_api_server.url_for("/k"), **make())
    expected, actual = received(forge_api_server)
    assert actual == expected, name


@pytest.mark.parametrize(("name", "make"), KEYWORD_CASES, ids=[c[0] for c in KEYWORD_CASES])
def test_keyword_sends_what_requests_sends_from_many_threads(
    forge_api_server: ApiServer,
    client: HttpClient,
    forge_stress: StressRunner,
    name: str,
    make: Callable[[], dict[str, Any]],
) -> None:
    """Eight threads sending the same keyword at once each deliver what requests sends."""
    forge_api_server.add("/k", Reply(body="ok"))
    url = forge_api_server.url_for("/k")
    with requests.Session() as session:
        session.request("POST", url, timeout=5, **make())
    (expected,) = received(forge_api_server)
    report = forge_stress(
        lambda: client.request("POST", url, **make()).text, threads=8, sessions=client
    )
    report.assert_no_errors()
    assert report.results == ["ok"] * 8
    assert received(forge_api_server)[1:] == [expected] * 8, name


def test_allow_redirects_false_and_head_default_match_requests(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """allow_redirects=False returns the 302, and head() does not follow by default, as requests."""
    forge_api_server.add("/from", Reply(status=302, headers={"Location": "/to"}))
    forge_api_server.add("/to", Reply(body="landed"))
    url = forge_api_server.url_for("/from")
    with requests.Session() as session:
        expected = [
            session.get(url, allow_redirects=False, timeout=5).status_code,
            session.head(url, timeout=5).status_code,
            session.head(url, allow_redirects=True, timeout=5).status_code,
            session.request("HEAD", url, timeout=5).status_code,
        ]
    actual = [
        client.get(url, allow_redirects=False).status_code,
        client.head(url).status_code,
        client.head(url, allow_redirects=True).status_code,
        client.request("HEAD", url).status_code,
    ]
    assert actual == expected == [302, 302, 200, 200]
    seen_by_server = received(forge_api_server)
    assert seen_by_server[6:] == seen_by_server[:6]  # 1 + 1 + 2 + 2 requests per side


def test_per_request_auth_beats_the_configured_hook(forge_api_server: ApiServer) -> None:
    """auth= replaces the configured bearer token for that request only."""
    forge_api_server.add("/a", Reply(body="ok"))
    config = HttpClientConfigBuilder().with_bearer_token("configured").build()
    with HttpClient(config) as forge_client:
        forge_client.get(forge_api_server.url_for("/a"), auth=("u", "p"))
        forge_client.get(forge_api_server.url_for("/a"))
    sent = [r.headers.get("Authorization") for r in forge_api_server.requests]
    assert sent == [requests.auth._basic_auth_str("u", "p"), "Bearer configured"]


def test_uploads_and_cookies_from_many_threads(
    forge_api_server: ApiServer, client: HttpClient, forge_stress: StressRunner
) -> None:
    """Every thread's multipart upload and cookies arrive intact, byte for byte as requests'."""
    forge_api_server.add("/up", Reply(body="ok"))
    url = forge_api_server.url_for("/up")
    with requests.Session() as session:
        session.post(url, files=_files(), cookies={"c": "1"}, timeout=5)
    expected = received(forge_api_server)[0]
    report = forge_stress(
        lambda: client.post(url, files=_files(), cookies={"c": "1"}).status_code,
        threads=16,
        sessions=client,
    )
    report.assert_no_errors()
    assert report.results == [200] * 16
    assert received(forge_api_server)[1:] == [expected] * 16
    report.assert_per_thread_sessions(client)


# -- step 3: redirects and streaming --------------------------------------------------

REDIRECT_BODIES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("form", lambda: {"data": {"k": "v"}}),
    ("json", lambda: {"json": {"a": 1}}),
    ("file", lambda: {"data": io.BytesIO(b"file body")}),
    ("multipart", lambda: {"files": {"f": ("a.txt", io.BytesIO(b"A"))}}),
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
@pytest.mark.parametrize(
    "make", [c[1] for c in REDIRECT_BODIES], ids=[c[0] for c in REDIRECT_BODIES]
)
def test_redirect_method_body_and_cookies_match_requests(
    forge_api_server: ApiServer,
    client: HttpClient,
    status: int,
    method: str,
    make: Callable[[], dict[str, Any]],
) -> None:
    """Each redirect status rewrites the method, drops or resends the body, and carries
    headers and cookies (the caller's and the hop's Set-Cookie) exactly as requests does."""
    forge_api_server.add(
        "/src", Reply(status=status, headers={"Location": "/dst", "Set-Cookie": "hop=1"})
    )
    forge_api_server.add("/dst", Reply(body="landed"))
    url = forge_api_server.url_for("/src")
    extra: dict[str, Any] = {"headers": {"X-Extra": "kept"}, "cookies": {"mine": "2"}}
    with requests.Session() as session:
        expected = session.request(method, url, timeout=5, **make(), **extra)
    actual = client.request(method, url, **make(), **extra)
    assert (actual.status_code, actual.url, len(actual.history)) == (
        expected.status_code,
        expected.url,
        len(expected.history),
    )
    recorded = received(forge_api_server)
    assert recorded[2:] == recorded[:2]


@pytest.mark.parametrize(
    "location",
    ["../up/x", "/abs?q=1", "/with#own", "//127.0.0.1:{port}/scheme-relative", "/sp ace/%zz"],
)
def test_location_forms_resolve_as_requests_resolves_them(
    forge_api_server: ApiServer, client: HttpClient, location: str
) -> None:
    """Relative, scheme-relative, query, fragment and unquoted Locations land where requests
    lands, and the original fragment is carried over as requests carries it."""
    target = location.format(port=forge_api_server.url.rsplit(":", 1)[1])
    forge_api_server.add("/a/b/start", Reply(status=302, headers={"Location": target}))
    expected, actual = both(forge_api_server, client, "GET", "/a/b/start#frag")
    assert actual.url == expected.url
    assert actual.history[0].url == expected.history[0].url
    recorded = received(forge_api_server)
    assert recorded[2:] == recorded[:2]


def test_redirects_match_requests_from_many_threads(
    forge_api_server: ApiServer, client: HttpClient, forge_stress: StressRunner
) -> None:
    """16 threads following a POST 302 -> 307 chain at once each see requests' result."""
    forge_api_server.add("/one", Reply(status=302, headers={"Location": "/two"}))
    forge_api_server.add("/two", Reply(status=307, headers={"Location": "/three"}))
    forge_api_server.add("/three", Reply(json={"done": True}))
    url = forge_api_server.url_for("/one")
    with requests.Session() as session:
        expected = session.post(url, data={"k": "v"}, timeout=5)
    sent_by_requests = received(forge_api_server)
    report = forge_stress(
        lambda: [h.status_code for h in client.post(url, data={"k": "v"}).history],
        threads=16,
        sessions=client,
    )
    report.assert_no_errors()
    assert report.results == [[h.status_code for h in expected.history]] * 16
    assert sorted(map(repr, received(forge_api_server)[3:])) == sorted(
        map(repr, sent_by_requests * 16)
    )


def _ported_request(url: str) -> requests.Request:
    return requests.Request(
        "POST",
        url,
        params={"q": "1"},
        data={"k": "v"},
        headers={"X-Extra": "yes"},
        cookies={"c": "1"},
        auth=("u", "p"),
    )


def test_send_takes_requests_request_objects_as_requests_does(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """session.send(prepared), client.send(prepared) and client.send(Request) reach the
    server identically."""
    forge_api_server.add("/ported", Reply(body="ok"))
    url = forge_api_server.url_for("/ported")
    with requests.Session() as session:
        session.send(session.prepare_request(_ported_request(url)), timeout=5)
    responses = [
        client.send(_ported_request(url).prepare()),
        client.send(_ported_request(url)),
    ]
    assert [r.text for r in responses] == ["ok", "ok"]
    expected, *actual = received(forge_api_server)
    assert actual == [expected, expected]


@pytest.mark.parametrize(
    "foreign",
    [
        requests.Request("GET", "http://127.0.0.1:9/", hooks={"response": [print]}),
        "GET http://127.0.0.1:9/",
        requests.Request("GET", None),
    ],
    ids=["hooks", "str", "no-url"],
)
def test_send_refuses_what_it_cannot_honour(client: HttpClient, foreign: Any) -> None:
    """requests hooks, a non-request and a request without a URL are typed errors, unsent."""
    with pytest.raises(InvalidRequestError):
        client.send(foreign)
