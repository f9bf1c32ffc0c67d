"""Differential tests for the lean request path (requestforge._cached_session, docs/design.md "The
request path"): the same input through a stock ``requests.Session`` / ``HTTPAdapter`` and
through ``CachedEnvironmentSession`` / ``PooledAdapter``, comparing the prepared request, the
built response, the cookies and the redirect bookkeeping. No sockets: the adapters' urllib3
responses are built in memory, with the ``http.client`` message requests reads cookies from.
"""

from __future__ import annotations

import http.client
import io
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from http.cookiejar import CookieJar
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.cookies import cookiejar_from_dict as _cookiejar_from_dict
from requests.sessions import merge_setting as _merge_setting
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict, HTTPResponse

from requestforge import (
    HttpClient,
    HttpClientConfigBuilder,
    HttpMethod,
    HttpRequest,
    InvalidRequestError,
)
from requestforge._cached_session import (
    CachedEnvironmentSession,
    PooledAdapter,
    _may_set_cookies,
    _merge,
)

pytestmark = pytest.mark.usefixtures("forge_clean_environment")

URL = "http://api.example.test/v1/items"
# requests' helpers, untyped in the stubs.
cookiejar_from_dict: Callable[..., RequestsCookieJar] = _cookiejar_from_dict
merge_setting: Callable[..., Any] = _merge_setting


def sessions() -> tuple[requests.Session, CachedEnvironmentSession]:
    """A stock session and ours, both with requests' defaults (trust_env on)."""
    return requests.Session(), CachedEnvironmentSession()


def prepared_facts(prepared: requests.PreparedRequest) -> tuple[Any, ...]:
    """Everything a PreparedRequest carries that the adapter or a caller reads."""
    body: Any = prepared.body
    jar = getattr(prepared, "_cookies", None)
    headers = list(prepared.headers.items())
    content_type = str(prepared.headers.get("Content-Type", ""))
    if "boundary=" in content_type:  # a random boundary per preparation: compare without it
        boundary = content_type.split("boundary=", 1)[1]
        headers = [(k, str(v).replace(boundary, "B")) for k, v in headers]
        body = bytes(body).replace(boundary.encode(), b"B")
    elif isinstance(body, io.BytesIO):
        body = body.getvalue()
    elif isinstance(body, Iterator):  # a generator passed through: the same kind of object
        body = type(body)
    return (
        prepared.method,
        prepared.url,
        headers,
        [type(name) for name in prepared.headers],
        body,
        sorted((c.name, c.value, c.domain, c.path) for c in jar) if jar is not None else None,
        type(jar),
        {event: list(hooks) for event, hooks in prepared.hooks.items()},
        prepared._body_position,  # type: ignore[attr-defined]
    )


def on_response(response: requests.Response, **kwargs: Any) -> None:
    """A response hook for the hook-merging cases."""


class TokenAuth(requests.auth.AuthBase):
    """An auth object that sets a header, as a caller's would."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = "Token t"
        return r


REQUESTS: list[tuple[str, Callable[[], requests.Request]]] = [
    ("bare GET", lambda: requests.Request("GET", URL)),
    ("lower-case method", lambda: requests.Request("get", URL)),
    ("no path", lambda: requests.Request("GET", "http://api.example.test")),
    ("query and fragment", lambda: requests.Request("GET", URL + "?a=1#frag")),
    ("quoting", lambda: requests.Request("GET", "http://api.example.test/a b/%zz?q=a b")),
    ("leading blanks", lambda: requests.Request("GET", "  " + URL)),
    ("idna host", lambda: requests.Request("GET", "http://bücher.example/x")),
    ("port", lambda: requests.Request("GET", "http://api.example.test:8080/x")),
    ("non-http scheme", lambda: requests.Request("GET", "mailto:someone@example.test")),
    ("credentials in URL", lambda: requests.Request("GET", "http://u%40x:p%3A@host.test/x")),
    ("params dict", lambda: requests.Request("GET", URL, params={"a": "1", "b": ["2", "3"]})),
    ("params None value", lambda: requests.Request("GET", URL, params={"a": None, "b": "2"})),
    ("params on a query", lambda: requests.Request("GET", URL + "?x=0", params={"a": "1"})),
    ("params list", lambda: requests.Request("GET", URL, params=[("a", "1"), ("a", "2")])),
    ("params string", lambda: requests.Request("GET", URL, params="a=1&b=2")),
    ("params bytes", lambda: requests.Request("GET", URL, params=b"a=1")),
    ("params empty list", lambda: requests.Request("GET", URL, params=[])),
    ("headers", lambda: requests.Request("GET", URL, headers={"X-A": "1", "accept": "x/y"})),
    ("header None removes", lambda: requests.Request("GET", URL, headers={"User-Agent": None})),
    ("bytes header", lambda: requests.Request("GET", URL, headers={b"X-B": b"v"})),
    ("bytes value", lambda: requests.Request("GET", URL, headers={"X-B": b"v"})),
    (
        "header proxy",
        lambda: requests.Request("GET", URL, headers=MappingProxyType({"X-P": "1"})),
    ),
    (
        "header CaseInsensitiveDict",
        lambda: requests.Request("GET", URL, headers=CaseInsensitiveDict({"ACCEPT": "a/b"})),
    ),
    ("POST no body", lambda: requests.Request("POST", URL)),
    ("POST form", lambda: requests.Request("POST", URL, data={"a": "1", "b": ["x", "y"]})),
    ("POST str", lambda: requests.Request("POST", URL, data="raw text")),
    ("POST bytes", lambda: requests.Request("POST", URL, data=b"\x00\x01")),
    ("POST file", lambda: requests.Request("POST", URL, data=io.BytesIO(b"file body"))),
    ("POST empty file", lambda: requests.Request("POST", URL, data=io.BytesIO(b""))),
    ("POST generator", lambda: requests.Request("POST", URL, data=iter([b"a", b"b"]))),
    ("POST json", lambda: requests.Request("POST", URL, json={"a": [1, 2]})),
    ("json with data", lambda: requests.Request("POST", URL, json={"a": 1}, data={"b": "2"})),
    ("files", lambda: requests.Request("POST", URL, files={"f": ("a.txt", b"abc")})),
    (
        "content-type kept",
        lambda: requests.Request("POST", URL, data="x", headers={"Content-Type": "t/x"}),
    ),
    ("basic auth", lambda: requests.Request("GET", URL, auth=("user", "pass"))),
    ("auth object", lambda: requests.Request("GET", URL, auth=TokenAuth())),
    ("auth object and body", lambda: requests.Request("PUT", URL, data=b"abc", auth=TokenAuth())),
    ("empty auth", lambda: requests.Request("GET", URL, auth=())),
    ("cookies dict", lambda: requests.Request("GET", URL, cookies={"a": "1", "b": "2"})),
    ("cookies jar", lambda: requests.Request("GET", URL, cookies=cookiejar_from_dict({"c": "3"}))),
    (
        "cookie header kept",
        lambda: requests.Request("GET", URL, headers={"Cookie": "x=y"}, cookies={"a": "1"}),
    ),
    ("request hook", lambda: requests.Request("GET", URL, hooks={"response": on_response})),
]


@pytest.mark.parametrize("make", [make for _, make in REQUESTS], ids=[name for name, _ in REQUESTS])
def test_prepared_request_matches_requests(make: Callable[[], requests.Request]) -> None:
    """Our prepare_request builds the same PreparedRequest as a stock session, input by input."""
    stock, ours = sessions()
    assert prepared_facts(ours.prepare_request(make())) == prepared_facts(
        stock.prepare_request(make())
    )


def customise(session: requests.Session) -> None:
    """Session-level settings that requests merges into every request."""
    session.headers["X-Session"] = "s"
    session.headers["Accept"] = "application/json"
    session.params = {"key": "k", "drop": "x"}
    session.cookies.set("sid", "abc", domain="api.example.test", path="/")
    session.cookies.set("other", "zzz", domain="elsewhere.test", path="/")
    session.hooks["response"].append(on_response)


@pytest.mark.parametrize("make", [make for _, make in REQUESTS], ids=[name for name, _ in REQUESTS])
def test_prepared_request_with_session_settings_matches_requests(
    make: Callable[[], requests.Request],
) -> None:
    """With session headers, params, cookies and hooks to merge, the result is still requests'."""
    stock, ours = sessions()
    customise(stock)
    customise(ours)
    assert prepared_facts(ours.prepare_request(make())) == prepared_facts(
        stock.prepare_request(make())
    )


def test_session_auth_and_header_merging_match_requests() -> None:
    """Session auth, a request header of None removing a session header, and request params
    of None removing session params are merged as requests merges them."""
    stock, ours = sessions()
    for session in (stock, ours):
        session.auth = ("session-user", "pw")
        session.headers["X-Drop"] = "1"
        session.params = {"a": "1", "b": "2"}

    def make() -> requests.Request:
        return requests.Request("GET", URL, headers={"x-drop": None}, params={"b": None})

    assert prepared_facts(ours.prepare_request(make())) == prepared_facts(
        stock.prepare_request(make())
    )


def test_the_url_cache_gives_each_request_its_own_prepared_request() -> None:
    """A URL prepared from the cache a second time gives the same result, and changing one
    PreparedRequest's headers does not reach the next one."""
    _, ours = sessions()
    first = ours.prepare_request(requests.Request("GET", URL))
    first.headers["X-Changed"] = "1"
    second = ours.prepare_request(requests.Request("GET", URL))
    assert second.url == first.url
    assert "X-Changed" not in second.headers
    assert second.headers is not first.headers


def test_session_headers_changed_between_requests_are_seen() -> None:
    """A session header changed after a request (the header check is cached per value) is
    sent, and an invalid one is refused as requests refuses it."""
    stock, ours = sessions()
    ours.prepare_request(requests.Request("GET", URL))
    ours.headers["User-Agent"] = "changed"
    assert ours.prepare_request(requests.Request("GET", URL)).headers["User-Agent"] == "changed"
    stock.headers["User-Agent"] = ours.headers["User-Agent"] = "bad\r\nvalue"
    with pytest.raises(requests.exceptions.InvalidHeader) as expected:
        stock.prepare_request(requests.Request("GET", URL))
    with pytest.raises(requests.exceptions.InvalidHeader) as actual:
        ours.prepare_request(requests.Request("GET", URL))
    assert str(actual.value) == str(expected.value)


BAD_REQUESTS: list[tuple[str, Callable[[], requests.Request]]] = [
    ("no scheme", lambda: requests.Request("GET", "api.example.test/x")),
    ("no host", lambda: requests.Request("GET", "http:///x")),
    ("bad label", lambda: requests.Request("GET", "http://*.example.test/")),
    ("bad port", lambda: requests.Request("GET", "http://host.test:99999999/")),
    ("header newline", lambda: requests.Request("GET", URL, headers={"X": "a\nb"})),
    ("header leading space", lambda: requests.Request("GET", URL, headers={"X": " a"})),
    ("header int", lambda: requests.Request("GET", URL, headers={"X": 1})),
    ("header name colon", lambda: requests.Request("GET", URL, headers={"X:Y": "1"})),
    ("json NaN", lambda: requests.Request("POST", URL, json={"a": float("nan")})),
    (
        "stream and files",
        lambda: requests.Request("POST", URL, data=iter([b"a"]), files={"f": b"x"}),
    ),
]


@pytest.mark.parametrize(
    "make", [make for _, make in BAD_REQUESTS], ids=[n for n, _ in BAD_REQUESTS]
)
def test_bad_input_raises_what_requests_raises(make: Callable[[], requests.Request]) -> None:
    """A request requests cannot prepare fails with the same exception and message, twice
    (the second time past the URL cache)."""
    stock, ours = sessions()
    for _ in range(2):
        with pytest.raises(Exception) as expected:  # noqa: PT011 - compared below
            stock.prepare_request(make())
        with pytest.raises(Exception) as actual:  # noqa: PT011 - compared below
            ours.prepare_request(make())
        assert type(actual.value) is type(expected.value)
        assert str(actual.value) == str(expected.value)


header_names = st.sampled_from(["Accept", "accept", "X-Id", "x-id", "User-Agent", "Connection"])
header_values = st.one_of(st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126)))
param_values = st.one_of(st.none(), st.text(max_size=5), st.lists(st.text(max_size=3), max_size=2))


@settings(max_examples=150, deadline=None)
@given(
    request_headers=st.dictionaries(header_names, header_values, max_size=4),
    session_headers=st.dictionaries(header_names, header_values, max_size=4),
    params=st.dictionaries(st.text(min_size=1, max_size=4), param_values, max_size=3),
    kind=st.sampled_from([dict, OrderedDict, CaseInsensitiveDict, MappingProxyType]),
)
def test_merges_match_requests_for_any_headers_and_params(
    request_headers: dict[str, str | None],
    session_headers: dict[str, str | None],
    params: dict[str, Any],
    kind: Callable[[Any], Any],
) -> None:
    """Any mix of request and session headers (None values, names differing in case) and
    params prepares as requests prepares it."""
    stock, ours = sessions()
    for session in (stock, ours):
        session.headers = CaseInsensitiveDict(session_headers)  # type: ignore[arg-type]

    def make() -> requests.Request:
        return requests.Request("GET", URL, headers=kind(request_headers), params=params)

    try:
        expected = prepared_facts(stock.prepare_request(make()))
    except ValueError as error:  # an invalid header: ours must refuse it the same way
        with pytest.raises(type(error), match=None):
            ours.prepare_request(make())
        return
    assert prepared_facts(ours.prepare_request(make())) == expected


MERGE_CASES: list[tuple[Any, Any]] = [
    (None, None),
    ({"a": "1"}, None),
    (None, {"a": "1"}),
    ({"a": "1", "b": None}, {"b": "2", "c": "3"}),
    (OrderedDict([("z", "1"), ("a", "2")]), {"a": "0", "m": "1"}),
    (MappingProxyType({"a": None}), {"a": "1"}),
    (CaseInsensitiveDict({"ACCEPT": "x"}), CaseInsensitiveDict({"accept": "y", "B": "2"})),
    ([("a", "1")], {"b": "2"}),
    ({"a": "1"}, [("b", "2")]),
    (True, False),
    ("/ca.pem", True),
    (("c", "k"), None),
]


@pytest.mark.parametrize(("request_setting", "session_setting"), MERGE_CASES)
@pytest.mark.parametrize("dict_class", [OrderedDict, CaseInsensitiveDict])
def test_merge_matches_requests_merge_setting(
    request_setting: Any, session_setting: Any, dict_class: type[Any]
) -> None:
    """_merge returns what requests' merge_setting returns: same type, same items in order."""
    expected: Any = merge_setting(request_setting, session_setting, dict_class=dict_class)
    actual = _merge(request_setting, session_setting, dict_class)
    assert type(actual) is type(expected)
    if isinstance(expected, dict_class):
        assert list(actual.items()) == list(expected.items())
    else:
        assert actual == expected


# -- responses -----------------------------------------------------------------------------


def urllib3_response(
    head: bytes, body: bytes = b"", *, status: int = 200, reason: str = "OK"
) -> HTTPResponse:
    """A urllib3 response with the ``http.client`` message requests reads cookies from."""
    message = http.client.parse_headers(io.BytesIO(head + b"\r\n"))

    class Original:
        """Stands in for the http.client response (only ``msg`` is read)."""

        msg = message

        def isclosed(self) -> bool:
            return True

    return HTTPResponse(
        body=io.BytesIO(body),
        headers=HTTPHeaderDict(list(message.items())),
        status=status,
        reason=reason,
        preload_content=False,
        decode_content=False,
        original_response=Original(),  # type: ignore[arg-type]
    )


HEADS = [
    b"Content-Type: application/json\r\nContent-Length: 2\r\n",
    b"Content-Type: text/html; charset=ISO-8859-1\r\n",
    b"Content-Type: text/plain\r\n",
    b"X-Many: 1\r\nx-many: 2\r\nX-MANY: 3\r\n",
    b"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Domain=api.example.test\r\n",
    b"set-cookie: lower=1\r\n",
    b"Set-Cookie2: v2=1; Version=1\r\n",
    b"",
]


def response_facts(response: requests.Response) -> tuple[Any, ...]:
    """What a caller reads of a built response."""
    return (
        response.status_code,
        list(response.headers.items()),
        response.encoding,
        response.reason,
        response.url,
        sorted((c.name, c.value, c.domain, c.path) for c in response.cookies),
        response.request,
        response.raw,
    )


@pytest.mark.parametrize("head", HEADS)
def test_built_response_matches_requests(head: bytes) -> None:
    """PooledAdapter.build_response gives the response HTTPAdapter.build_response gives."""
    prepared = requests.Session().prepare_request(requests.Request("GET", URL))
    raw = urllib3_response(head)
    expected = HTTPAdapter().build_response(prepared, raw)
    adapter = PooledAdapter()
    actual = adapter.build_response(prepared, raw)
    assert response_facts(actual) == response_facts(expected)
    assert actual.connection is adapter


class RecordingJar(RequestsCookieJar):
    """A jar whose extraction is its own: it must be called even without Set-Cookie."""

    def __init__(self) -> None:
        super().__init__()
        self.extractions = 0

    def extract_cookies(self, response: Any, request: Any) -> None:
        self.extractions += 1
        super().extract_cookies(response, request)


def test_a_jar_with_its_own_extraction_is_always_asked() -> None:
    """Cookie extraction is skipped only for the stdlib's extraction and no Set-Cookie."""
    quiet = urllib3_response(b"Content-Type: text/plain\r\n")
    setting = urllib3_response(b"Set-Cookie: a=1\r\n")
    assert not _may_set_cookies(RequestsCookieJar(), quiet)
    assert _may_set_cookies(RequestsCookieJar(), setting)
    assert _may_set_cookies(RecordingJar(), quiet)
    assert _may_set_cookies(CookieJar(), setting)


class ScriptedAdapter(HTTPAdapter):
    """Answers from a script of (head, body, status) per URL, through HTTPAdapter's own
    build_response (or PooledAdapter's, when it is one)."""

    def __init__(self, script: dict[str, tuple[bytes, bytes, int]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.sent: list[tuple[str | None, str | None, list[tuple[str, Any]]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((request.method, request.url, sorted(request.headers.items())))
        head, body, status = self.script[request.url or ""]
        return self.build_response(request, urllib3_response(head, body, status=status))


class ScriptedPooledAdapter(ScriptedAdapter, PooledAdapter):
    """The same script, through PooledAdapter's build_response."""


SCRIPT: dict[str, tuple[bytes, bytes, int]] = {
    URL: (b"Content-Type: text/plain\r\n", b"plain", 200),
    URL + "/cookie": (b"Set-Cookie: sid=1; Path=/\r\n", b"set", 200),
    URL + "/redirect": (b"Location: /v1/items/cookie\r\nSet-Cookie: hop=1; Path=/\r\n", b"", 302),
    URL + "/bad-location": (b"Location: /caf\xe9\r\n", b"", 302),
    "http://api.example.test/caf%C3%A9": (b"", b"moved", 200),
    "http://api.example.test/caf%E9": (b"", b"moved", 200),
    URL + "/loop": (b"Location: /v1/items/loop\r\n", b"", 302),
}


def sent_through(
    session: requests.Session, adapter: ScriptedAdapter, path: str, **kwargs: Any
) -> tuple[Any, ...]:
    """Send through ``session`` with ``adapter`` mounted; what the caller and the jar see."""
    session.mount("http://", adapter)
    response = session.get(URL + path, timeout=5, **kwargs)
    nxt = response.next
    return (
        response.status_code,
        response.url,
        response.content,
        [(h.status_code, h.url) for h in response.history],
        sorted((c.name, c.value) for c in session.cookies),
        (nxt.method, nxt.url, sorted(nxt.headers.items())) if nxt is not None else None,
        type(response.elapsed),
        adapter.sent,
    )


@pytest.mark.parametrize("path", ["", "/cookie", "/redirect"])
@pytest.mark.parametrize("allow_redirects", [True, False])
@pytest.mark.parametrize("stream", [True, False])
def test_send_matches_requests(path: str, allow_redirects: bool, stream: bool) -> None:
    """Session.send persists the same cookies, follows (or records as .next) the same
    redirects and returns the same response as a stock session."""
    stock, ours = sessions()
    expected = sent_through(
        stock, ScriptedAdapter(SCRIPT), path, allow_redirects=allow_redirects, stream=stream
    )
    actual = sent_through(
        ours, ScriptedPooledAdapter(SCRIPT), path, allow_redirects=allow_redirects, stream=stream
    )
    assert actual == expected


def test_send_keeps_requests_redirect_limit() -> None:
    """A redirect loop ends in requests' TooManyRedirects, after as many hops."""
    stock, ours = sessions()
    for session in (stock, ours):
        session.max_redirects = 3
    stock_adapter, our_adapter = ScriptedAdapter(SCRIPT), ScriptedPooledAdapter(SCRIPT)
    with pytest.raises(requests.TooManyRedirects) as expected:
        sent_through(stock, stock_adapter, "/loop")
    with pytest.raises(requests.TooManyRedirects) as actual:
        sent_through(ours, our_adapter, "/loop")
    assert str(actual.value) == str(expected.value)
    assert len(our_adapter.sent) == len(stock_adapter.sent) == 4


def test_send_refuses_an_unprepared_request_as_requests_does() -> None:
    """Session.send of a requests.Request raises requests' own ValueError."""
    with pytest.raises(ValueError, match="You can only send PreparedRequests"):
        CachedEnvironmentSession().send(requests.Request("GET", URL))  # type: ignore[arg-type]


def test_send_runs_response_hooks_as_requests_does() -> None:
    """Response hooks run as in requests: a session's alone, or the request's in its place."""
    seen: list[str] = []

    def record(response: requests.Response, **kwargs: Any) -> None:
        seen.append(f"{response.status_code} stream={kwargs['stream']}")

    def replace_it(response: requests.Response, **kwargs: Any) -> requests.Response:
        replacement = requests.Response()
        replacement.status_code = 299
        replacement._content = b"replaced"
        return replacement

    results = []
    for session in sessions():
        seen.clear()
        session.hooks["response"].append(record)
        session.mount("http://", ScriptedAdapter(SCRIPT))
        session.get(URL, timeout=5)
        session.get(URL, hooks={"response": [record, record]}, timeout=5)
        replaced = session.get(URL, hooks={"response": replace_it}, timeout=5)
        results.append((list(seen), replaced.status_code, replaced.content))
    assert results[0] == results[1]
    assert results[0] == (["200 stream=False"] * 3, 299, b"replaced")


# -- the adapter's per-host work -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://h.test/x", "https://h.test/x", "https://H.test:8443/x?q=1", "http://h.test:80/"],
)
@pytest.mark.parametrize("verify", [True, False, "/no/such/ca.pem"])
@pytest.mark.parametrize("cert", [None, "/c.pem", ("/c.pem", "/k.pem")])
def test_pool_key_attributes_match_requests(url: str, verify: Any, cert: Any) -> None:
    """The pool key attributes are requests' own, from the cache as on the first call, and
    changing what one call returned does not change the next."""
    prepared = requests.Session().prepare_request(requests.Request("GET", url))
    expected = HTTPAdapter().build_connection_pool_key_attributes(prepared, verify, cert)
    adapter = PooledAdapter()
    first = adapter.build_connection_pool_key_attributes(prepared, verify, cert)
    first[0]["host"] = "changed"
    first[1]["cert_reqs"] = "changed"
    second = adapter.build_connection_pool_key_attributes(prepared, verify, cert)
    assert second == expected


def test_a_ca_directory_gives_the_pool_requests_gives(tmp_path: Path) -> None:
    """A CA path that is a directory becomes ca_cert_dir, a file ca_certs, as in requests."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    prepared = requests.Session().prepare_request(requests.Request("GET", "https://h.test/"))
    for verify in (str(tmp_path), str(ca_file)):
        expected = HTTPAdapter().build_connection_pool_key_attributes(prepared, verify)
        actual = PooledAdapter().build_connection_pool_key_attributes(prepared, verify)
        assert actual == expected
    assert (
        "ca_cert_dir"
        in PooledAdapter().build_connection_pool_key_attributes(prepared, str(tmp_path))[1]
    )


@pytest.mark.parametrize("proxies", [{}, None, {"http": "http://proxy.test:3128"}])
def test_connection_and_request_url_match_requests(proxies: Any) -> None:
    """With and without proxies the adapter asks urllib3 for the pool requests would, and
    sends the same request target."""
    prepared = requests.Session().prepare_request(requests.Request("GET", URL + "?q=1#f"))
    stock, ours = HTTPAdapter(), PooledAdapter()
    for _ in range(2):
        expected = stock.get_connection_with_tls_context(prepared, True, proxies=proxies)
        actual = ours.get_connection_with_tls_context(prepared, True, proxies=proxies)
        assert (type(actual), actual.host, actual.port, actual.scheme) == (
            type(expected),
            expected.host,
            expected.port,
            expected.scheme,
        )
        assert ours.request_url(prepared, proxies) == stock.request_url(prepared, proxies)


def test_evicted_pools_are_replaced_as_requests_replaces_them() -> None:
    """With room for one pool, alternating hosts get a fresh pool each time, as with
    requests' own adapter: the attributes are cached, the pool itself never is."""

    def pattern(adapter: HTTPAdapter) -> list[bool]:
        one = requests.Session().prepare_request(requests.Request("GET", "http://one.test/"))
        two = requests.Session().prepare_request(requests.Request("GET", "http://two.test/"))
        first = adapter.get_connection_with_tls_context(one, True, proxies={})
        same = adapter.get_connection_with_tls_context(one, True, proxies={})
        adapter.get_connection_with_tls_context(two, True, proxies={})
        again = adapter.get_connection_with_tls_context(one, True, proxies={})
        return [same is first, again is first]

    assert pattern(PooledAdapter(pool_connections=1)) == pattern(HTTPAdapter(pool_connections=1))
    assert pattern(PooledAdapter(pool_connections=1)) == [True, False]


def test_responses_mock_still_sees_the_clients_requests() -> None:
    """``responses`` patches HTTPAdapter.send; PooledAdapter keeps requests' send, so a
    client's request is answered by the mock."""
    with responses.RequestsMock() as mock:
        mock.get(URL, json={"mocked": True}, headers={"Set-Cookie": "m=1"})
        with HttpClient(HttpClientConfigBuilder().with_timeout(5).build()) as client:
            response = client.get(URL)
            assert isinstance(client.session.get_adapter(URL), PooledAdapter)
            assert response.json() == {"mocked": True}
            assert client.session.cookies.get("m") == "1"


# -- HttpRequest.with_headers ----------------------------------------------------------------


def request_fields(request: HttpRequest) -> dict[str, Any]:
    """Every field of an HttpRequest."""
    return {f.name: getattr(request, f.name) for f in fields(request)}


@pytest.mark.parametrize(
    "request_",
    [
        HttpRequest(HttpMethod.GET, URL),
        HttpRequest(
            HttpMethod.POST,
            URL,
            headers={"X-A": "1", "accept": "a/b"},
            params={"q": ["1", "2"]},
            data={"f": "v"},
            timeout=(1, 2),
            cookies={"c": "1"},
            auth=("u", "p"),
            allow_redirects=False,
            proxies={"http": "http://p.test:1"},
            verify=False,
            stream=True,
        ),
    ],
)
def test_with_headers_matches_replace(request_: HttpRequest) -> None:
    """with_headers gives the request dataclasses.replace would (which checks every field)."""
    added = {"ACCEPT": "x/y", "X-New": "2"}
    actual = request_.with_headers(added)
    expected = replace(request_, headers=MappingProxyType(dict(request_fields(actual)["headers"])))
    assert request_fields(actual) == request_fields(expected)
    assert type(actual.headers) is MappingProxyType
    assert actual.header("accept") == "x/y"
    assert request_.header("x-new") is None


def test_with_headers_refuses_a_bad_header_as_construction_does() -> None:
    """An invalid header added by with_headers raises the error the constructor raises."""
    with pytest.raises(InvalidRequestError) as expected:
        HttpRequest(HttpMethod.GET, URL, headers={"X": "a\nb"})
    with pytest.raises(InvalidRequestError) as actual:
        HttpRequest(HttpMethod.GET, URL).with_headers({"X": "a\nb"})
    assert str(actual.value) == str(expected.value)
