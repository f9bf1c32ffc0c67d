"""Properties over the request-side entry points: whatever they are given, the only
exceptions that come out are RequestForgeError subclasses.

Requests go to the loopback ``forge_api_server``: every host name resolves to it for the
test (``socket.getaddrinfo`` is replaced), so arbitrary URLs exercise requests and urllib3
all the way to the socket without a byte leaving 127.0.0.1.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from requestforge import (
    HttpClient,
    HttpClientConfigBuilder,
    HttpMethod,
    HttpRequest,
    RequestForgeError,
)
from requestforge_testing import ApiServer
from tests.fuzzing import FUZZ

# Hypothesis also draws the string literals of this project's source ("invalid_grant", ...):
# a token or secret built from one declares it secret for the whole process, and later
# tests would see it redacted. Each property keeps what it declares to itself.
pytestmark = pytest.mark.usefixtures("forge_secrets")

#: Values that broke an entry point once, mixed into every arbitrary value.
_NASTY: list[object] = [
    None,
    -1,
    0,
    math.inf,
    math.nan,
    1e10,
    10**400,
    "5",
    "",
    "tök…",
    "é…",
    "a\r\nInjected: 1",
    "\x00",
    " leading",
    "http://[::1",
    "http://" + "a" * 64 + ".example.com/",
    "\ud800",
    b"\xff\xfe",
    object(),
    (1, 2, 3),
    [("a", "b")],
    {"a": object()},
    {1: 2},
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(_NASTY),
)
#: Any value: scalars, and lists, tuples and dicts of them (nested a little).
anything = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
    ),
    max_leaves=6,
)
_header_text = st.text(max_size=12) | st.sampled_from(["Accept", "X-Key", "a b", "tök…"])
headers = st.dictionaries(_header_text, st.one_of(st.text(max_size=12), anything), max_size=3)


def _outcome(call: Callable[[], object]) -> None:
    """Run ``call``: returning and raising a RequestForgeError are both fine (the property
    fails on any other exception, which pytest reports)."""
    try:
        result = call()
    except RequestForgeError:
        return
    close = getattr(result, "close", None)
    if callable(close):
        close()


@pytest.fixture
def loopback_everywhere(
    forge_api_server: ApiServer, forge_clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> ApiServer:
    """Every host name and port resolves to the loopback API server, for this test only."""
    port = int(forge_api_server.url.rsplit(":", 1)[1].split("/", 1)[0])
    real = socket.getaddrinfo

    def to_loopback(host: Any, _port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM)

    monkeypatch.setattr(socket, "getaddrinfo", to_loopback)
    return forge_api_server


@pytest.fixture
def client(loopback_everywhere: ApiServer) -> Iterator[HttpClient]:
    """A client with the loopback server as its base URL and a short timeout."""
    config = HttpClientConfigBuilder().with_base_url(loopback_everywhere.url).with_timeout(5)
    with HttpClient(config.build()) as made:
        yield made


# -- builder setters -----------------------------------------------------------------------

#: Every setter, with how many positional arguments it takes (beyond self).
_SETTERS: dict[str, int] = {
    "with_base_url": 1,
    "with_timeout": 1,
    "with_header": 2,
    "with_headers": 1,
    "with_verify_ssl": 1,
    "with_ca_bundle": 1,
    "with_client_cert": 2,
    "with_proxies": 1,
    "with_max_redirects": 1,
    "with_cookies": 1,
    "with_adapter": 2,
    "with_pool_size": 1,
    "with_retry": 1,
    "with_retry_strategy": 1,
    "with_request_hook": 1,
    "with_response_hook": 1,
    "with_error_hook": 1,
    "with_auth_hook": 1,
    "with_bearer_token": 1,
    "with_api_key": 1,
    "with_basic_auth": 2,
    "with_token_auth": 1,
}


@FUZZ
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(_SETTERS)), st.lists(anything, min_size=2, max_size=2)),
        min_size=1,
        max_size=3,
    )
)
def test_builder_setters_raise_only_configuration_errors(
    calls: list[tuple[str, list[object]]],
) -> None:
    """Any setter with any arguments, then build() and repr: RequestForgeError or success."""

    def run() -> object:
        builder = HttpClientConfigBuilder()
        for name, args in calls:
            builder = getattr(builder, name)(*args[: _SETTERS[name]])
        repr(builder)
        config = builder.build()
        repr(config)
        return HttpClient(config)

    _outcome(run)


@FUZZ
@given(
    option=st.text(max_size=12) | st.sampled_from(["base_delay", "max_delay", "jitter"]),
    value=anything,
)
def test_retry_options_raise_only_configuration_errors(option: str, value: object) -> None:
    """with_retry(**options) with any option and value: RequestForgeError or success."""
    _outcome(lambda: HttpClientConfigBuilder().with_retry(2, **{option: value}).build())


# -- request arguments ---------------------------------------------------------------------

_METHODS = st.one_of(st.sampled_from(["GET", "post", "PUT", "PROPFIND", HttpMethod.HEAD]), anything)
_PATHS = st.one_of(
    st.sampled_from(["/", "/a?b=1", "", "x y", "/é"]), st.text(max_size=20), anything
)
_KEYWORDS = {
    "params": st.one_of(st.dictionaries(st.text(max_size=8), anything, max_size=3), anything),
    "data": anything,
    "json": anything,
    "headers": st.one_of(headers, anything),
    "cookies": st.one_of(st.dictionaries(st.text(max_size=8), anything, max_size=2), anything),
    "files": st.one_of(st.dictionaries(st.text(max_size=8), anything, max_size=2), anything),
    "auth": anything,
    "timeout": st.one_of(st.floats(), st.tuples(anything, anything), anything),
    "allow_redirects": anything,
    "proxies": st.one_of(st.dictionaries(st.sampled_from(["http", "https"]), anything), anything),
    "stream": anything,
    "verify": anything,
    "cert": anything,
}
request_keywords = st.fixed_dictionaries({}, optional=_KEYWORDS)


@FUZZ
@given(method=_METHODS, url=_PATHS, keywords=request_keywords)
def test_request_arguments_raise_only_request_errors(
    client: HttpClient, method: Any, url: Any, keywords: dict[str, Any]
) -> None:
    """HttpClient.request with any method, URL and keywords: a response or a
    RequestForgeError, never a built-in exception."""
    _outcome(lambda: client.request(method, url, **keywords))


@FUZZ
@given(
    verb=st.sampled_from(["get", "post", "put", "patch", "delete", "head", "options"]),
    url=_PATHS,
    keywords=request_keywords,
)
def test_verbs_raise_only_request_errors(
    client: HttpClient, verb: str, url: Any, keywords: dict[str, Any]
) -> None:
    """Each verb method with any URL and keywords: a response or a RequestForgeError."""
    _outcome(lambda: getattr(client, verb)(url, **keywords))


_REQUEST_FIELDS = {
    "headers": st.one_of(headers, anything),
    "params": anything,
    "data": anything,
    "json": anything,
    "cookies": anything,
    "files": anything,
    "auth": anything,
    "hooks": st.one_of(st.none(), anything),
}


@FUZZ
@given(
    method=_METHODS,
    url=_PATHS,
    fields=st.fixed_dictionaries({}, optional=_REQUEST_FIELDS),
    prepare=st.booleans(),
)
def test_send_of_requests_objects_raises_only_request_errors(
    client: HttpClient, method: Any, url: Any, fields: dict[str, Any], prepare: bool
) -> None:
    """send() of a requests.Request (or the PreparedRequest it makes) built from anything."""

    def run() -> object:
        try:
            request: Any = requests.Request(method, url, **fields)
            if prepare:
                request = request.prepare()
        except Exception:  # noqa: BLE001 - requests refused it: not ours to judge
            request = requests.Request("GET", f"{client.config.base_url}/")
        return client.send(request)

    _outcome(run)


@FUZZ
@given(anything)
def test_send_of_anything_raises_only_request_errors(client: HttpClient, value: object) -> None:
    """send() of an object that is no request at all raises InvalidRequestError."""
    _outcome(lambda: client.send(value))  # type: ignore[arg-type]


# -- HttpRequest, to_curl, to_dict ---------------------------------------------------------

_MODEL_FIELDS = {
    "headers": st.one_of(headers, anything),
    "params": anything,
    "json_data": anything,
    "data": anything,
    "timeout": anything,
    "cookies": anything,
    "files": anything,
    "auth": anything,
    "allow_redirects": anything,
    "proxies": anything,
    "verify": anything,
    "cert": anything,
    "stream": anything,
}


@FUZZ
@given(method=_METHODS, url=_PATHS, fields=st.fixed_dictionaries({}, optional=_MODEL_FIELDS))
def test_http_request_to_curl_and_to_dict_raise_only_request_errors(
    method: Any, url: Any, fields: dict[str, Any]
) -> None:
    """Constructing an HttpRequest from anything, then to_curl(), to_dict() (redacted and
    not), repr and has_replayable_body: results or RequestForgeError."""

    def run() -> object:
        request = HttpRequest(method, url, **fields)
        request.to_curl()
        request.to_dict()
        request.to_dict(redact=False)
        repr(request)
        return request.has_replayable_body

    _outcome(run)


# -- URLs ----------------------------------------------------------------------------------

_host = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::1", "::1]", "[v1.x]", "a..b", "☃"]),
    st.integers(min_value=1, max_value=300).map(lambda n: "a" * n),
    st.lists(st.integers(min_value=0, max_value=70).map(lambda n: "b" * n), max_size=5).map(
        ".".join
    ),
)
_port = st.one_of(st.just(""), st.integers(-1, 70000).map(lambda n: f":{n}"), st.text(max_size=6))
urls = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, userinfo, host, port, path: f"{scheme}{userinfo}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "//", "http:/"]),
        st.sampled_from(["", "u:p@", "@", "a@b@"]),
        _host,
        _port,
        st.one_of(st.just("/"), st.text(max_size=20)),
    ),
)


@FUZZ
@given(url=urls)
def test_urls_raise_only_request_errors(client: HttpClient, url: str) -> None:
    """GET of any URL text (absolute or joined onto the base): a response or a
    RequestForgeError; every host is the loopback server."""
    _outcome(lambda: client.get(url))


@FUZZ
@given(url=urls)
def test_base_urls_raise_only_configuration_errors(
    loopback_everywhere: ApiServer, url: str
) -> None:
    """with_base_url(any text), build, then a GET of a relative path."""

    def run() -> object:
        config = HttpClientConfigBuilder().with_base_url(url).with_timeout(5).build()
        with HttpClient(config) as made:
            return made.get("/x")

    _outcome(run)
