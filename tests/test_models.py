"""Tests for requestforge._models: the immutable request/response and the per-request context."""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
import shlex
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from requestforge import (
    ExtensionMethod,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    HttpStatusError,
    InvalidRequestError,
    RequestContext,
    ResponseDecodeError,
)
from requestforge._redact import REDACTED

SECRETS = ("t0k3n-abc", "c00kie-val", "k3y-123", "qs-t0k", "hunter2", "cl13nt-s3cr3t", "pw-form")


def _secret_request() -> HttpRequest:
    """A POST carrying a credential in every place a credential can hide."""
    return HttpRequest(
        HttpMethod.POST,
        "https://api.example.com/v1/items?access_token=qs-t0k&page=2",
        headers={
            "Authorization": "Bearer t0k3n-abc",
            "Cookie": "session=c00kie-val",
            "X-API-Key": "k3y-123",
            "X-Request-ID": "req-42",
        },
        params={"q": "books", "api_key": "k3y-123"},
        json_data={"user": "ann", "password": "hunter2", "client_secret": "cl13nt-s3cr3t"},
    )


# -- HttpMethod ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        (HttpMethod.GET, True),
        (HttpMethod.HEAD, True),
        (HttpMethod.PUT, True),
        (HttpMethod.DELETE, True),
        (HttpMethod.OPTIONS, True),
        (HttpMethod.TRACE, True),
        (HttpMethod.POST, False),
        (HttpMethod.PATCH, False),
    ],
)
def test_method_idempotency_follows_rfc_9110(method: HttpMethod, idempotent: bool) -> None:
    """POST and PATCH are the only non-idempotent methods."""
    assert method.is_idempotent is idempotent


def test_method_compares_equal_to_its_name() -> None:
    """A method equals and prints as its upper-case name."""
    other: str = "POST"
    assert HttpMethod.GET == "GET"
    assert other != HttpMethod.GET
    assert str(HttpMethod.PATCH) == "PATCH"
    assert f"{HttpMethod.DELETE}" == "DELETE"


@pytest.mark.parametrize("name", ["get", "Get", "GET"])
def test_method_from_any_case(name: str) -> None:
    """HttpMethod and HttpRequest accept a method name in any case."""
    assert HttpMethod(name) is HttpMethod.GET
    assert HttpRequest(name, "https://a.example").method is HttpMethod.GET  # type: ignore[arg-type]


def test_unknown_method_is_rejected() -> None:
    """An unknown method name raises ValueError instead of creating a bogus member."""
    with pytest.raises(ValueError, match="FETCH"):
        HttpMethod("FETCH")


# -- ExtensionMethod ----------------------------------------------------------------------

#: Not RFC 9110 tokens: empty, separators, whitespace, line breaks, non-ASCII, not a str.
NON_TOKENS: list[object] = [
    "",
    "GET /x",
    "PROP FIND",
    "GET\r\nX-Injected: 1",
    "GET\n",
    "PROPFIND\t",
    "(GET)",
    "G:ET",
    "PRÖPFIND",
    "\u00df",  # "ß".upper() is "SS": checked before upper-casing
    b"GET",
    42,
    None,
]


@pytest.mark.parametrize("name", ["PROPFIND", "propfind", "PropFind"])
def test_extension_method_from_any_case(name: str) -> None:
    """A non-standard token becomes an upper-cased ExtensionMethod, as requests sends it."""
    request = HttpRequest(name, "https://a.example")  # type: ignore[arg-type]
    assert isinstance(request.method, ExtensionMethod)
    assert request.method == "PROPFIND"
    assert (request.method.value, request.method.name, str(request.method)) == ("PROPFIND",) * 3
    assert repr(request.method) == "ExtensionMethod('PROPFIND')"


@pytest.mark.parametrize("name", ["M-SEARCH", "X.Y_Z~1", "!#$%&'*+-.^_`|~"])
def test_every_tchar_is_accepted_in_a_method(name: str) -> None:
    """Any string of RFC 9110 tchars is a method."""
    assert ExtensionMethod(name) == name.upper()


def test_extension_method_is_never_idempotent_and_pickles() -> None:
    """An extension method is not idempotent, and survives pickling as itself."""
    method = ExtensionMethod("mkcol")
    assert method.is_idempotent is False
    restored = pickle.loads(pickle.dumps(method))  # noqa: S301 - our own bytes
    assert type(restored) is ExtensionMethod
    assert restored == "MKCOL"


def test_standard_names_stay_http_methods() -> None:
    """A standard name is always the HttpMethod member, never an ExtensionMethod."""
    assert HttpRequest("trace", "https://a.example").method is HttpMethod.TRACE  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=r"use HttpMethod\.GET"):
        ExtensionMethod("get")


@pytest.mark.parametrize("name", NON_TOKENS)
def test_non_token_methods_are_invalid_requests(name: object) -> None:
    """A method that is not an RFC 9110 token raises InvalidRequestError naming the rule."""
    with pytest.raises(InvalidRequestError, match="RFC 9110 token"):
        HttpRequest(name, "https://a.example")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="RFC 9110 token"):
        ExtensionMethod(name)  # type: ignore[arg-type]


def test_rejected_method_is_quoted_short() -> None:
    """The message quotes at most 40 characters of a rejected method."""
    with pytest.raises(InvalidRequestError) as excinfo:
        ExtensionMethod("X " + "y" * 500)
    assert len(str(excinfo.value)) < 160


def test_curl_and_dict_show_an_extension_method() -> None:
    """to_curl() and to_dict() carry the extension method."""
    request = HttpRequest("propfind", "https://a.example/dav", headers={"Depth": "1"})  # type: ignore[arg-type]
    assert shlex.split(request.to_curl())[:3] == ["curl", "-X", "PROPFIND"]
    assert request.to_dict()["method"] == "PROPFIND"
    assert repr(request) == "HttpRequest(method='PROPFIND', url='https://a.example/dav')"


# -- HttpRequest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "kept"),
    [(5, 5.0), (0.25, 0.25), ((3, 10), (3.0, 10.0)), ((0.5, 2.5), (0.5, 2.5)), (None, None)],
)
def test_request_timeout_is_a_number_or_a_pair(timeout: Any, kept: Any) -> None:
    """A timeout is kept as float seconds, or a (connect, read) pair of floats."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", timeout=timeout)
    assert request.timeout == kept
    assert request.to_dict()["timeout"] == kept


@pytest.mark.parametrize(
    "timeout",
    [
        0,
        0.0,
        -1,
        math.nan,
        math.inf,
        True,
        "5",
        (1,),
        (1, 2, 3),
        (0, 5),
        (5, -1),
        (5, math.inf),
        (None, 5),
        (5, None),
        (True, 5),
        [3, 10],
    ],
)
def test_bad_request_timeouts_are_invalid_requests(timeout: Any) -> None:
    """Zero, negative, NaN, infinite, bool, str and malformed pairs raise InvalidRequestError."""
    with pytest.raises(InvalidRequestError, match="timeout"):
        HttpRequest(HttpMethod.GET, "https://a.example", timeout=timeout)


def test_request_attributes_cannot_be_assigned() -> None:
    """A request is frozen: assigning a field raises."""
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "https://b.example"  # type: ignore[misc]


def test_request_headers_and_params_are_read_only() -> None:
    """Headers and params are read-only mappings, detached from the caller's dicts."""
    headers = {"Accept": "text/plain"}
    params = {"q": "x"}
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers=headers, params=params)
    with pytest.raises(TypeError):
        request.headers["Accept"] = "text/html"  # type: ignore[index]
    with pytest.raises(TypeError):
        request.params["q"] = "y"  # type: ignore[index]
    headers["Accept"] = "changed"
    params["q"] = "changed"
    assert request.headers["Accept"] == "text/plain"
    assert request.params["q"] == "x"


def test_request_defaults_are_empty_mappings() -> None:
    """A request built without headers or params has empty, read-only ones."""
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    assert dict(request.headers) == {}
    assert dict(request.params) == {}
    with pytest.raises(TypeError):
        request.headers["X"] = "y"  # type: ignore[index]


def test_with_headers_replaces_case_insensitively() -> None:
    """with_headers replaces a header spelled in another case and leaves the original alone."""
    original = HttpRequest(
        HttpMethod.GET,
        "https://a.example",
        headers={"content-type": "text/plain", "Accept": "*/*"},
    )
    updated = original.with_headers({"Content-Type": "application/json", "X-New": "1"})
    assert dict(updated.headers) == {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "X-New": "1",
    }
    assert dict(original.headers) == {"content-type": "text/plain", "Accept": "*/*"}
    assert updated is not original
    with pytest.raises(TypeError):
        updated.headers["X-New"] = "2"  # type: ignore[index]


def test_header_lookup_ignores_case() -> None:
    """header() finds a header by any spelling and returns the default when it is absent."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers={"X-Trace": "t1"})
    assert request.header("x-trace") == "t1"
    assert request.header("X-TRACE") == "t1"
    assert request.header("X-Other") is None
    assert request.header("X-Other", "dflt") == "dflt"


def test_to_dict_redacts_every_secret() -> None:
    """to_dict hides header, query, param and JSON secrets but keeps the ordinary values."""
    view = _secret_request().to_dict()
    text = repr(view)
    for secret in SECRETS:
        assert secret not in text
    assert view["method"] == "POST"
    assert view["headers"]["Authorization"] == REDACTED
    assert view["headers"]["X-Request-ID"] == "req-42"
    assert view["params"] == {"q": "books", "api_key": REDACTED}
    assert view["json"] == {"user": "ann", "password": REDACTED, "client_secret": REDACTED}
    assert "page=2" in view["url"]


def test_to_dict_can_show_raw_values() -> None:
    """to_dict(redact=False) is the unredacted view, for debugging on purpose."""
    view = _secret_request().to_dict(redact=False)
    assert view["headers"]["Authorization"] == "Bearer t0k3n-abc"
    assert view["json"]["password"] == "hunter2"


def test_to_dict_redacts_form_bodies() -> None:
    """A form body's secret fields are redacted in to_dict."""
    request = HttpRequest(
        HttpMethod.POST,
        "https://a.example/token",
        data={"grant_type": "password", "username": "ann", "password": "pw-form"},
    )
    data = request.to_dict()["data"]
    assert "pw-form" not in data
    assert dict(parse_qsl(data)) == {
        "grant_type": "password",
        "username": "ann",
        "password": REDACTED,
    }


def test_to_curl_is_a_shell_command_with_secrets_redacted() -> None:
    """to_curl yields a shell-quoted curl command; secrets are redacted, the rest kept."""
    command = _secret_request().to_curl()
    for secret in SECRETS:
        assert secret not in command
    argv = shlex.split(command)
    assert argv[:3] == ["curl", "-X", "POST"]
    url = urlsplit(argv[3])
    assert (url.scheme, url.netloc, url.path) == ("https", "api.example.com", "/v1/items")
    assert dict(parse_qsl(url.query)) == {
        "access_token": REDACTED,
        "page": "2",
        "q": "books",
        "api_key": REDACTED,
    }
    headers = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-H"]
    assert "Authorization: [REDACTED]" in headers
    assert "Cookie: [REDACTED]" in headers
    assert "X-API-Key: [REDACTED]" in headers
    assert "X-Request-ID: req-42" in headers
    assert "Content-Type: application/json" in headers
    body = argv[argv.index("--data-raw") + 1]
    assert body == '{"user":"ann","password":"[REDACTED]","client_secret":"[REDACTED]"}'


def test_to_curl_quotes_awkward_values() -> None:
    """Values with spaces and quotes survive a round trip through the shell's word splitting."""
    request = HttpRequest(
        HttpMethod.PUT,
        "https://a.example/x",
        headers={"X-Note": 'it\'s a "test" $HOME'},
        data="plain text; rm -rf /",
    )
    argv = shlex.split(request.to_curl())
    assert 'X-Note: it\'s a "test" $HOME' in argv
    assert argv[-2:] == ["--data-raw", "plain text; rm -rf /"]


def test_to_curl_redacts_form_fields() -> None:
    """Form bodies, as a dict or an encoded string, have their secret fields redacted."""
    as_dict = HttpRequest(
        HttpMethod.POST,
        "https://a.example/token",
        data={"grant_type": "client_credentials", "client_secret": "pw-form"},
    )
    as_text = HttpRequest(
        HttpMethod.POST,
        "https://a.example/token",
        data="grant_type=client_credentials&client_secret=pw-form",
    )
    for request in (as_dict, as_text):
        argv = shlex.split(request.to_curl())
        body = argv[argv.index("--data-raw") + 1]
        assert dict(parse_qsl(body)) == {
            "grant_type": "client_credentials",
            "client_secret": REDACTED,
        }


def _chunks() -> Iterator[bytes]:
    yield b"a"


class _Pipe(io.RawIOBase):
    """A readable stream that cannot seek, like a socket or a pipe."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("data", "replayable"),
    [
        (None, True),
        (b"bytes", True),
        (bytearray(b"bytes"), True),
        ("text", True),
        ({"a": "1"}, True),
        ([("a", "1")], True),
        (io.BytesIO(b"file"), True),
        (_chunks(), False),
        (iter([b"a"]), False),
        (_Pipe(), False),
    ],
)
def test_has_replayable_body(data: Any, replayable: bool) -> None:
    """Bodies that can be sent twice are replayable; generators and pipes are not."""
    request = HttpRequest(HttpMethod.POST, "https://a.example", data=data)
    assert request.has_replayable_body is replayable


def test_request_repr_hides_secrets() -> None:
    """repr shows method and redacted URL only."""
    text = repr(_secret_request())
    assert text.startswith("HttpRequest(method='POST'")
    for secret in SECRETS:
        assert secret not in text


# -- HttpResponse -------------------------------------------------------------------------


def _response(
    status: int = 200,
    content: bytes = b"",
    *,
    url: str = "https://api.example.com/x",
    encoding: str | None = None,
    request: HttpRequest | None = None,
    reason: str = "",
) -> HttpResponse:
    return HttpResponse(
        status_code=status,
        headers={},
        content=content,
        url=url,
        request=request,
        reason=reason,
        encoding=encoding,
    )


def test_text_uses_declared_encoding() -> None:
    """text decodes with the server's charset, UTF-8 when none was declared."""
    assert _response(content="café".encode("latin-1"), encoding="latin-1").text == "café"
    assert _response(content="café".encode()).text == "café"


def test_text_survives_an_unknown_charset() -> None:
    """A charset Python does not know falls back to UTF-8 instead of raising."""
    assert _response(content="ok ✓".encode(), encoding="x-no-such-charset").text == "ok ✓"


def test_json_parses_the_body() -> None:
    """json() returns the decoded body."""
    assert _response(content=b'{"a": [1, 2]}').json() == {"a": [1, 2]}


def test_json_raises_response_decode_error() -> None:
    """Invalid JSON raises ResponseDecodeError, a ValueError carrying the response."""
    response = _response(content=b"<html>", url="https://a.example/x?access_token=qs-t0k")
    with pytest.raises(ResponseDecodeError) as excinfo:
        response.json()
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.response is response
    assert "qs-t0k" not in str(excinfo.value)


@pytest.mark.parametrize("content", [b"", b"not json", b"\xff\xfe\x00"])
def test_json_or_none_returns_none_for_non_json(content: bytes) -> None:
    """json_or_none() is None for an empty or non-JSON body."""
    assert _response(content=content).json_or_none() is None


def test_json_or_none_parses_json() -> None:
    """json_or_none() returns the parsed body when it is JSON."""
    assert _response(content=b"[1]").json_or_none() == [1]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (199, None),
        (200, "success"),
        (299, "success"),
        (300, "redirect"),
        (399, "redirect"),
        (400, "client"),
        (499, "client"),
        (500, "server"),
        (599, "server"),
    ],
)
def test_status_classes_at_their_boundaries(status: int, kind: str | None) -> None:
    """Exactly one status class is true at each boundary (none for 1xx)."""
    response = _response(status)
    assert response.is_success is (kind == "success")
    assert response.is_redirect is (kind == "redirect")
    assert response.is_client_error is (kind == "client")
    assert response.is_server_error is (kind == "server")


@pytest.mark.parametrize("status", [200, 204, 299, 304])
def test_raise_for_status_returns_self_below_400(status: int) -> None:
    """raise_for_status returns the response itself when it is not an error."""
    response = _response(status)
    assert response.raise_for_status() is response


@pytest.mark.parametrize(("status", "kind"), [(400, "client error"), (503, "server error")])
def test_raise_for_status_raises_http_status_error(status: int, kind: str) -> None:
    """A 4xx/5xx raises HttpStatusError carrying the response, with a redacted URL."""
    request = HttpRequest(HttpMethod.GET, "https://a.example/x?access_token=qs-t0k")
    response = _response(
        status, url="https://a.example/x?access_token=qs-t0k", request=request, reason="Nope"
    )
    with pytest.raises(HttpStatusError) as excinfo:
        response.raise_for_status()
    assert excinfo.value.response is response
    assert excinfo.value.request is request
    message = str(excinfo.value)
    assert f"{status} {kind} (Nope)" in message
    assert "qs-t0k" not in message


def test_response_repr_hides_secret_query() -> None:
    """The response repr shows status, method and a redacted URL."""
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    response = _response(404, url="https://a.example/x?access_token=qs-t0k", request=request)
    text = repr(response)
    assert "qs-t0k" not in text
    assert text.startswith("<HttpResponse [404] GET https://a.example/x?access_token=")


def test_response_is_frozen() -> None:
    """A response is frozen: assigning a field raises."""
    response = _response()
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status_code = 500  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.history = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (100, True),
        (200, True),
        (399, True),
        (400, False),
        (404, False),
        (503, False),
        (599, False),
        (600, False),
    ],
)
def test_ok_means_below_400(status: int, ok: bool) -> None:
    """ok is True exactly when raise_for_status() would not raise."""
    response = _response(status)
    assert response.ok is ok
    if ok:
        assert response.raise_for_status() is response
    else:
        with pytest.raises(HttpStatusError):
            response.raise_for_status()


def test_elapsed_is_a_timedelta_of_elapsed_ms() -> None:
    """elapsed is elapsed_ms as a timedelta."""
    response = dataclasses.replace(_response(), elapsed_ms=1234.5)
    assert response.elapsed == timedelta(seconds=1.2345)
    assert _response().elapsed == timedelta(0)


def test_links_parse_the_link_header_in_any_case() -> None:
    """links is keyed by rel (else URL) and finds the header whatever its spelling."""
    header = '<https://a.example/p2>; rel="next", <https://a.example/p9>; rel=last, <https://a.example/x>'
    response = HttpResponse(200, {"LINK": header}, b"", "https://a.example/p1")
    assert response.links == {
        "next": {"url": "https://a.example/p2", "rel": "next"},
        "last": {"url": "https://a.example/p9", "rel": "last"},
        "https://a.example/x": {"url": "https://a.example/x"},
    }
    assert _response().links == {}


def test_cookies_without_raw_response_are_empty() -> None:
    """A response built by hand has an empty cookie jar and no raw_response."""
    response = _response()
    assert response.raw_response is None
    assert isinstance(response.cookies, requests.cookies.RequestsCookieJar)
    assert len(response.cookies) == 0


def test_cookies_are_a_fresh_copy_on_every_access() -> None:
    """Changing the jar cookies returned changes neither the response nor its raw_response."""
    raw = requests.Response()
    raw.cookies.set("sid", "abc", domain="a.example", path="/")
    response = dataclasses.replace(_response(), raw_response=raw)
    jar = response.cookies
    jar.set("sid", "changed", domain="a.example", path="/")
    jar.set("extra", "1")
    assert response.cookies.get_dict() == {"sid": "abc"}
    assert raw.cookies.get_dict() == {"sid": "abc"}


def test_raw_response_is_not_part_of_equality_or_repr() -> None:
    """Two responses that differ only in raw_response are equal, and repr never shows it."""
    bare = _response(200, b"x")
    raw = requests.Response()
    wrapped = dataclasses.replace(bare, raw_response=raw)
    assert wrapped == bare
    assert "Response" not in repr(wrapped).replace("<HttpResponse", "")
    assert dataclasses.replace(bare, history=(bare,)) != bare


@pytest.mark.parametrize(
    ("chunk_size", "chunks"),
    [
        (1, [b"a", b"b", b"c", b"d", b"e"]),
        (2, [b"ab", b"cd", b"e"]),
        (5, [b"abcde"]),
        (99, [b"abcde"]),
        (None, [b"abcde"]),
    ],
)
def test_iter_content_slices_the_body(chunk_size: int | None, chunks: list[bytes]) -> None:
    """iter_content yields the body in chunk_size pieces, all at once for None."""
    assert list(_response(content=b"abcde").iter_content(chunk_size)) == chunks
    assert list(_response().iter_content(chunk_size)) == []


def test_iter_content_decodes_incrementally_to_text() -> None:
    """decode_unicode pieces join to text, also when a chunk splits a multi-byte character."""
    content = "çà ✓ ok".encode()
    response = _response(content=content, encoding="utf-8")
    pieces = list(response.iter_content(1, decode_unicode=True))
    assert "".join(pieces) == response.text == "çà ✓ ok"
    assert all(isinstance(p, str) and p for p in pieces)
    latin = _response(content="café".encode("latin-1"), encoding="ISO-8859-1")
    assert "".join(latin.iter_content(2, True)) == "café"
    undeclared = _response(content="naïve".encode())
    assert "".join(undeclared.iter_content(decode_unicode=True)) == "naïve"
    unknown = _response(content=b"ok", encoding="x-no-such-charset")
    assert list(unknown.iter_content(None, decode_unicode=True)) == ["ok"]


@pytest.mark.parametrize("chunk_size", [0, -1, 1.5, "1", True])
def test_bad_chunk_size_is_an_invalid_request(chunk_size: Any) -> None:
    """A chunk_size that is not None or a positive int raises at call time, not when iterated."""
    response = _response(content=b"abc")
    with pytest.raises(InvalidRequestError, match="chunk_size"):
        response.iter_content(chunk_size)
    with pytest.raises(InvalidRequestError, match="chunk_size"):
        response.iter_lines(chunk_size)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 512, None])
def test_iter_lines_does_not_depend_on_chunk_size(chunk_size: int | None) -> None:
    """Lines are split over the whole body: a CRLF across a chunk boundary adds no empty line."""
    response = _response(content=b"ab\r\ncd\n\nef")
    assert list(response.iter_lines(chunk_size)) == [b"ab", b"cd", b"", b"ef"]
    assert list(response.iter_lines(chunk_size, delimiter=b"\n")) == [b"ab\r", b"cd", b"", b"ef"]


def test_iter_lines_decodes_and_handles_empty_bodies() -> None:
    """decode_unicode yields str lines; an empty body yields no line at all."""
    response = _response(content="é1\né2\n".encode("latin-1"), encoding="latin-1")
    assert list(response.iter_lines(decode_unicode=True)) == ["é1", "é2"]
    assert list(response.iter_lines(decode_unicode=True, delimiter="2")) == ["é1\né", "\n"]
    assert list(_response().iter_lines()) == []
    assert list(_response().iter_lines(delimiter=b";")) == []


def test_iter_lines_delimiter_must_match_the_decoding() -> None:
    """A str delimiter on bytes lines (or the reverse) raises InvalidRequestError."""
    response = _response(content=b"a;b")
    with pytest.raises(InvalidRequestError, match="delimiter must be bytes"):
        response.iter_lines(delimiter=";")  # type: ignore[call-overload]
    with pytest.raises(InvalidRequestError, match="delimiter must be str"):
        response.iter_lines(decode_unicode=True, delimiter=b";")  # type: ignore[call-overload]


# -- RequestContext -----------------------------------------------------------------------


def test_context_counts_attempts() -> None:
    """increment_attempt returns the new count and is_retry turns true after the first."""
    context = RequestContext(request=HttpRequest(HttpMethod.GET, "https://a.example"))
    assert context.attempt == 0
    assert context.is_retry is False
    assert context.increment_attempt() == 1
    assert context.is_retry is True
    assert context.increment_attempt() == 2
    assert context.attempt == 2


def test_context_metadata_is_per_instance() -> None:
    """Each context gets its own metadata dict."""
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    first = RequestContext(request=request)
    second = RequestContext(request=request)
    first.metadata["k"] = "v"
    assert second.metadata == {}
    assert first.metadata is not second.metadata


def test_bad_model_arguments_are_invalid_requests() -> None:
    """HttpRequest refuses a URL that is no string, headers/params that are no mappings and
    a data= requests cannot encode; to_curl() refuses a json that does not encode."""
    from requestforge import InvalidRequestError, InvalidURLError

    with pytest.raises(InvalidURLError, match="url must be a string"):
        HttpRequest(HttpMethod.GET, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="headers must be a mapping"):
        HttpRequest(HttpMethod.GET, "https://a.example", headers=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="params names must be strings"):
        HttpRequest(HttpMethod.GET, "https://a.example", params={1: object()})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequestError, match="data must be"):
        HttpRequest(HttpMethod.POST, "https://a.example", data=12345)
    request = HttpRequest(HttpMethod.POST, "https://a.example", json_data=object())
    with pytest.raises(InvalidRequestError, match="json is not JSON-serialisable"):
        request.to_curl()
    assert request.to_dict()["method"] == "POST"


def test_a_blank_header_may_be_built_and_replaced() -> None:
    """A request may hold a blank header while being built (a hook replaces it); only the
    client refuses to send leading whitespace."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers={"X-Id": " "})
    assert request.with_headers({"X-Id": "7"}).header("X-Id") == "7"
