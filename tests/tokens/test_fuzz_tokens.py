"""Property tests over the token side's public entry points: whatever goes in, what comes
out is a value or a RequestForgeError, never a built-in exception (issue 11).

``FUZZ`` sets the number of examples: small in the suite, 2,000 or more when
``benchmarks/bench_fuzz.py`` runs this file with ``FORGE_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import django  # type: ignore[import-untyped]
import pytest
from django.conf import settings  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    DjangoCacheTokenStorage,
    FetchContext,
    HeaderTokenFetcher,
    InMemoryTokenStorage,
    PasswordGrantTokenProvider,
    PipelineTokenProvider,
    RedisTokenStorage,
    RequestForgeError,
    TokenData,
    TokenFetchPipeline,
    TokenManager,
)
from requestforge.tokens._data import MAX_EXPIRES_IN, decode_token, encode_token
from requestforge_testing import FakeClock, FakeTokenFetcher, FakeTokenProvider
from tests.fuzzing import FUZZ

# Hypothesis also draws the string literals of this project's source ("invalid_grant", ...):
# a token or secret built from one declares it secret for the whole process, and later
# tests would see it redacted. Each property keeps what it declares to itself.
pytestmark = pytest.mark.usefixtures("forge_secrets")

if not settings.configured:  # the same settings as tests/tokens/storage/test_django.py
    settings.configure(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        USE_TZ=True,
    )
    django.setup()

FIELDS = [
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "v",
    # issue 13: parsed into fields, or kept in extra
    "refresh_expires_in",
    "refresh_token_expires_in",
    "issued_token_type",
    "id_token",
    "cnf",
    "extra",
]


class Deep(list[object]):
    """A list nested ``depth`` deep; its repr is short, so Hypothesis can print an example
    holding one (the pretty-printer itself recurses, and would fail on the real thing)."""

    def __repr__(self) -> str:
        return f"_nested({self.depth})"

    depth = 0


def _nested(depth: int) -> Deep:
    value: object = 0
    for _ in range(depth - 1):
        value = [value]
    deep = Deep([value])
    deep.depth = depth
    return deep


#: JSON scalars at their edges: huge ints, inf/NaN, control characters and any unicode.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.text(),
    st.from_regex(r"\s*-?[0-9_.eE+\-x]{1,30}\s*", fullmatch=True),
    st.sampled_from(["Bearer", "bearer", "Bearer\r\nX-Injected: 1", "1e400"]),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),
)
#: Any JSON-like value, shallow ones and a few very deep lists.
shallow = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
json_values = st.one_of(shallow, st.integers(min_value=100, max_value=5000).map(_nested))
#: Strings a token might be: printable ones that pass, and ones with anything in them.
tokenish = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    st.text(max_size=40),
)
responses = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=8),
    st.fixed_dictionaries(
        {"access_token": tokenish},
        optional={
            "token_type": st.one_of(tokenish, json_values),
            "expires_in": json_values,
            "refresh_token": st.one_of(tokenish, json_values),
            "scope": st.one_of(st.text(), st.lists(st.text(), max_size=3), json_values),
        },
    ),
    json_values,
)


@FUZZ
@given(data=responses)
def test_from_response_raises_only_token_response_errors(data: object) -> None:
    """Any JSON-like body is a token that is safe to send and store, or a RequestForgeError."""
    try:
        token = TokenData.from_response(data, clock=FakeClock())
    except RequestForgeError:
        return
    header = token.authorization_header
    header.encode("ascii")  # every character of it can go on the wire
    assert "\r" not in header
    assert "\n" not in header
    assert token.lifetime is None or 0 <= token.lifetime <= MAX_EXPIRES_IN
    assert decode_token(encode_token(token)) == token


#: Stored records with any value in any field, as another process might have written them.
records = st.dictionaries(
    st.sampled_from([*FIELDS, "expires_at", "issued_at", "refresh_expires_at"]),
    shallow,
    max_size=8,
).map(json.dumps)
#: Format-2 records (issue 13) with anything in their new fields.
v2_records = st.fixed_dictionaries(
    {"v": st.just(2), "access_token": tokenish, "token_type": st.just("Bearer")},
    optional={
        "extra": st.dictionaries(st.text(max_size=10), shallow, max_size=6) | shallow,
        "issued_token_type": st.one_of(tokenish, shallow),
        "refresh_expires_at": shallow,
    },
).map(json.dumps)
stored = st.one_of(
    st.binary(),
    st.text(),
    records,
    records.map(str.encode),
    v2_records,
    st.integers(min_value=1, max_value=200_000).map(
        lambda n: '{"v":2,"access_token":"a","token_type":"Bearer","extra":{"x":' + "[" * n
    ),
    st.integers(min_value=1, max_value=200_000).map(
        lambda n: (
            '{"v":2,"access_token":"a","token_type":"Bearer","extra":{"x":[' + "[]," * n + "[]]}}"
        )
    ),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=200_000).map(lambda n: '{"v":1,"a":' + "{" * n),
)


@FUZZ
@given(raw=stored)
def test_decode_token_raises_only_token_response_errors(raw: bytes | str) -> None:
    """Any stored text or bytes (deep nesting included) decodes or is a RequestForgeError."""
    try:
        token = decode_token(raw)
    except RequestForgeError:
        return
    assert isinstance(token, TokenData)


# -- constructors with arbitrary arguments -------------------------------------------------

anything = st.one_of(
    shallow,
    st.integers(min_value=1100, max_value=3000).map(_nested),  # deeper than repr() goes
    st.binary(max_size=8),
    st.builds(object),
    st.sampled_from([FakeClock(), InMemoryTokenStorage(), FakeTokenProvider(), str, print]),
)


def _either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right kind, so the checks after the first one are reached too."""
    return st.one_of(valid, valid, anything)


def _kwargs(**params: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: _either(v) for k, v in params.items()})


URL = st.sampled_from(["http://127.0.0.1:9/token", "https://auth.example/t", "/relative", ""])
SECONDS = st.floats(allow_nan=True) | st.integers(min_value=-5, max_value=10**30)
CLOCK = st.none() | st.just(FakeClock())
NAMES = st.sampled_from(["a", "b", "step", ""]) | st.text(max_size=5)


def _fetchers() -> st.SearchStrategy[list[FakeTokenFetcher]]:
    return st.lists(NAMES.filter(str.strip).map(FakeTokenFetcher), max_size=3)


CONSTRUCTORS: dict[str, tuple[Callable[..., Any], st.SearchStrategy[dict[str, Any]]]] = {
    "TokenData": (
        lambda **kw: TokenData(kw.pop("access_token", "t"), **kw),
        _kwargs(
            access_token=tokenish,
            token_type=tokenish,
            expires_at=st.none() | st.datetimes(timezones=st.timezones()),
            refresh_token=st.none() | tokenish,
            scope=st.none() | st.text(),
            issued_at=st.none() | st.datetimes(timezones=st.timezones()),
            refresh_expires_at=st.none() | st.datetimes(timezones=st.timezones()),
            issued_token_type=st.none() | tokenish,
            extra=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values),
        ),
    ),
    "TokenManager": (
        lambda **kw: TokenManager(kw.pop("provider", FakeTokenProvider()), **kw),
        _kwargs(
            provider=st.builds(FakeTokenProvider),
            storage=st.none() | st.builds(InMemoryTokenStorage),
            cache_key=st.none() | NAMES,
            leeway=SECONDS,
            refresh_window=SECONDS,
            wait_timeout=SECONDS,
            clock=CLOCK,
        ),
    ),
    "ClientCredentialsTokenProvider": (
        lambda **kw: ClientCredentialsTokenProvider(
            kw.pop("token_url", "http://127.0.0.1:9/t"), kw.pop("client_id", "id"), None, **kw
        ),
        _kwargs(
            token_url=URL,
            client_id=NAMES,
            scope=st.none() | st.text() | st.lists(st.text(), max_size=3),
            audience=st.none() | st.text(),
            extra_params=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8)),
            client_auth=st.sampled_from(["basic", "body", "jwt"]),
            timeout=SECONDS,
            max_retries=st.integers(min_value=-2, max_value=5),
            service_name=st.none() | NAMES,
            clock=CLOCK,
        ),
    ),
    "PasswordGrantTokenProvider": (
        lambda **kw: PasswordGrantTokenProvider(
            "http://127.0.0.1:9/t",
            "id",
            kw.pop("client_secret", "secret"),
            kw.pop("username", "user"),
            kw.pop("password", "pw"),
            **kw,
        ),
        _kwargs(client_secret=st.none() | st.text(), username=NAMES, password=st.text()),
    ),
    "HeaderTokenFetcher": (
        lambda **kw: HeaderTokenFetcher(
            kw.pop("name", "h"), kw.pop("url", "http://x.test/t"), **kw
        ),
        _kwargs(
            name=NAMES,
            url=URL,
            header_name=st.sampled_from(["X-Auth-Token", "Bad Header", ""]),
            method=st.sampled_from(["POST", "GET", "BAD METHOD", ""]),
            depends_on=st.lists(NAMES, max_size=2),
            ttl=st.none() | SECONDS,
            json=shallow,
            token_type=tokenish,
            clock=CLOCK,
        ),
    ),
    "BodyTokenFetcher": (
        lambda **kw: BodyTokenFetcher(kw.pop("name", "b"), kw.pop("url", "http://x.test/t"), **kw),
        _kwargs(
            name=NAMES,
            token_path=st.sampled_from(["access_token", "data.token", "", "a..b"]),
            expires_in_path=st.none() | st.sampled_from(["expires_in", ""]),
            refresh_token_path=st.none() | st.sampled_from(["refresh", "."]),
            data=shallow,
            auth_from=st.none() | NAMES,
        ),
    ),
    "TokenFetchPipeline": (
        lambda **kw: TokenFetchPipeline(kw.pop("steps", [FakeTokenFetcher("a")]), **kw),
        _kwargs(
            steps=_fetchers(),
            storage=st.none() | st.builds(InMemoryTokenStorage),
            key_prefix=NAMES,
            clock=CLOCK,
            lock_timeout=SECONDS,
        ),
    ),
    "PipelineTokenProvider": (
        lambda **kw: PipelineTokenProvider(
            kw.pop("pipeline", TokenFetchPipeline([FakeTokenFetcher("a")])),
            kw.pop("service_name", "svc"),
        ),
        _kwargs(
            pipeline=st.builds(lambda: TokenFetchPipeline([FakeTokenFetcher("a")])),
            service_name=NAMES,
        ),
    ),
    "FetchContext": (
        FetchContext,
        _kwargs(
            tokens=st.dictionaries(NAMES, st.builds(TokenData, st.just("t"))),
            metadata=st.dictionaries(st.text(max_size=4), shallow),
        ),
    ),
    "RedisTokenStorage": (
        lambda **kw: RedisTokenStorage(kw.pop("client", "redis://127.0.0.1:9/0"), **kw),
        _kwargs(
            client=st.sampled_from(["redis://127.0.0.1:9/0", "redis://", "nope://x", ""]),
            namespace=st.sampled_from(["requestforge", "a{b}", ""]) | st.text(max_size=5),
            lock_lease=SECONDS,
            on_unavailable=st.sampled_from(["raise", "local", "ignore"]),
            clock=CLOCK,
        ),
    ),
    "DjangoCacheTokenStorage": (
        DjangoCacheTokenStorage,
        _kwargs(
            cache_alias=st.sampled_from(["default", "missing", ""]),
            key_prefix=st.sampled_from(["requestforge", "has space", "x" * 300, ""]),
            lock_lease=SECONDS,
            clock=CLOCK,
        ),
    ),
}


@FUZZ
@given(
    case=st.sampled_from(sorted(CONSTRUCTORS)).flatmap(
        lambda name: st.tuples(st.just(name), CONSTRUCTORS[name][1])
    )
)
def test_token_side_constructors_raise_only_requestforge_errors(
    case: tuple[str, dict[str, Any]],
) -> None:
    """Every token-side public class, built with arbitrary arguments, is built or refuses
    with a RequestForgeError (a ConfigurationError or TokenResponseError)."""
    name, kwargs = case
    build = CONSTRUCTORS[name][0]
    try:
        built = build(**kwargs)
    except RequestForgeError:
        return
    if isinstance(built, TokenData):  # whatever it was built with, it stores and reads back
        assert decode_token(encode_token(built)) == built
    close = getattr(built, "close", None)
    if callable(close):
        close()
