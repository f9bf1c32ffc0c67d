"""Tests for requestforge.tokens._data: TokenData and RFC 6749 token responses."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requestforge import RequestForgeError, TokenData, TokenResponseError
from requestforge._redact import redact_text
from requestforge.tokens._data import (
    MAX_EXPIRES_IN,
    MAX_EXTRA_CONTAINERS,
    MAX_EXTRA_DEPTH,
    MAX_EXTRA_MEMBERS,
    MAX_EXTRA_SIZE,
    MAX_STORED_SIZE,
    PARSED_MEMBERS,
    decode_token,
    encode_token,
)
from requestforge_testing import FakeClock

# -- construction ---------------------------------------------------------------------------


def test_only_an_access_token_is_required() -> None:
    """The seeds' TokenData(access_token=...) is a Bearer token that never expires."""
    token = TokenData(access_token="abc")
    assert token.token_type == "Bearer"
    assert token.expires_at is None
    assert not token.is_expired
    assert token.expires_in() is None


def test_token_is_immutable() -> None:
    """A token is shared between threads, so it cannot be changed in place."""
    token = TokenData(access_token="abc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.access_token = "other"  # type: ignore[misc]


@pytest.mark.parametrize("value", ["", "has space", "line\nbreak", "tab\t", 42, None])
def test_access_token_must_be_a_header_safe_string(value: Any) -> None:
    """An empty, non-string or whitespace-carrying token is rejected before it reaches a header."""
    with pytest.raises(TokenResponseError, match="access_token"):
        TokenData(access_token=value)


def test_naive_expiry_is_rejected() -> None:
    """A naive datetime would compare against UTC ambiguously, so it is refused."""
    with pytest.raises(TokenResponseError, match="timezone-aware"):
        TokenData(access_token="abc", expires_at=datetime(2030, 1, 1))


def test_expiry_is_normalised_to_utc() -> None:
    """An aware datetime in another zone is stored as the same instant in UTC."""
    cet = timezone(timedelta(hours=1))
    token = TokenData(access_token="abc", expires_at=datetime(2030, 1, 1, 1, tzinfo=cet))
    assert token.expires_at == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert token.expires_at is not None
    assert token.expires_at.tzinfo == timezone.utc


def test_repr_hides_both_tokens() -> None:
    """Neither the access token nor the refresh token appears in the repr."""
    token = TokenData(access_token="s3cr3t-access", refresh_token="s3cr3t-refresh", scope="read")
    text = repr(token)
    assert "s3cr3t" not in text
    assert "scope='read'" in text
    assert str(token) == text


def test_issued_at_does_not_affect_equality() -> None:
    """Two records of the same token compare equal however they learned when it was issued."""
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert TokenData(access_token="a", issued_at=when) == TokenData(access_token="a")


# -- expiry ----------------------------------------------------------------------------------


def test_is_expired_reads_the_default_clock(forge_clock: FakeClock) -> None:
    """is_expired flips exactly at expires_at on the installed clock, in any thread."""
    token = TokenData(access_token="a", expires_at=forge_clock.now() + timedelta(seconds=60))
    forge_clock.advance(59.999)
    assert not token.is_expired
    forge_clock.advance(0.001)
    assert token.is_expired


def test_expired_reads_the_clock_it_is_given(forge_clock: FakeClock) -> None:
    """expired(clock=) judges by that clock, whatever the default clock says; a token
    without expires_at never expires."""
    own = FakeClock(forge_clock.now())
    token = TokenData(access_token="a", expires_at=own.now() + timedelta(seconds=60))
    own.advance(60)
    assert token.expired(clock=own)
    assert not token.expired()  # the default clock, forge_clock, has not moved
    assert not token.is_expired
    assert not TokenData(access_token="a").expired(clock=own)


def test_expires_in_and_lifetime(forge_clock: FakeClock) -> None:
    """expires_in counts down on the clock; lifetime is fixed from issue to expiry."""
    now = forge_clock.now()
    token = TokenData(access_token="a", issued_at=now, expires_at=now + timedelta(seconds=90))
    forge_clock.advance(30)
    assert token.expires_in() == pytest.approx(60)
    assert token.lifetime == pytest.approx(90)
    other = FakeClock(start=now + timedelta(seconds=100))
    assert token.expires_in(clock=other) == pytest.approx(-10)


@pytest.mark.parametrize(
    ("token_type", "header"),
    [
        ("bearer", "Bearer abc"),
        ("Bearer", "Bearer abc"),
        ("BEARER", "Bearer abc"),
        ("Mac", "MAC abc"),
    ],
)
def test_authorization_header_uses_canonical_scheme(token_type: str, header: str) -> None:
    """A lower-case 'bearer' from the server is sent as 'Bearer', which strict APIs require."""
    assert TokenData(access_token="abc", token_type=token_type).authorization_header == header


# -- from_response ----------------------------------------------------------------------------


def test_from_response_parses_rfc6749(forge_clock: FakeClock) -> None:
    """A full RFC 6749 response becomes a token expiring expires_in seconds from now."""
    token = TokenData.from_response(
        {
            "access_token": "abc",
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": "r1",
            "scope": "read write",
        }
    )
    assert token.access_token == "abc"
    assert token.refresh_token == "r1"
    assert token.scope == "read write"
    assert token.issued_at == forge_clock.now()
    assert token.expires_at == forge_clock.now() + timedelta(seconds=3600)
    assert token.authorization_header == "Bearer abc"


@pytest.mark.parametrize("expires_in", ["3600", " 3600 ", 3600.0, "3600.0"])
def test_from_response_accepts_numeric_strings(forge_clock: FakeClock, expires_in: object) -> None:
    """expires_in may arrive as a string or a float, as several providers send it."""
    token = TokenData.from_response({"access_token": "abc", "expires_in": expires_in})
    assert token.expires_in() == pytest.approx(3600)


def test_from_response_without_expires_in_never_expires() -> None:
    """RFC 6749 makes expires_in optional; without it the token has no expiry of its own."""
    assert TokenData.from_response({"access_token": "abc"}).expires_at is None


def test_from_response_joins_a_scope_list() -> None:
    """A JSON array of scopes (a common deviation) is joined into RFC 6749's string form."""
    assert TokenData.from_response({"access_token": "a", "scope": ["x", "y"]}).scope == "x y"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "JSON object"),
        ("access_token=abc", "JSON object"),
        (None, "JSON object"),
        ({}, "access_token"),
        ({"access_token": ""}, "access_token"),
        ({"access_token": 5}, "access_token"),
        ({"access_token": "a", "expires_in": "soon"}, "expires_in"),
        ({"access_token": "a", "expires_in": -1}, "expires_in"),
        ({"access_token": "a", "expires_in": True}, "expires_in"),
        ({"access_token": "a", "expires_in": "nan"}, "expires_in"),
        ({"access_token": "a", "expires_in": [60]}, "expires_in"),
        ({"access_token": "a", "token_type": ""}, "token_type"),
        ({"access_token": "a", "refresh_token": 7}, "refresh_token"),
        ({"access_token": "a", "scope": {"x": 1}}, "scope"),
    ],
)
def test_from_response_rejects_malformed_responses(data: object, problem: str) -> None:
    """Each malformed response raises a TokenResponseError naming what is wrong."""
    with pytest.raises(TokenResponseError, match=problem) as excinfo:
        TokenData.from_response(data)
    assert isinstance(excinfo.value, RequestForgeError)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    "expires_in",
    [
        1e12,
        1e20,
        10**400,
        MAX_EXPIRES_IN + 1,
        float("inf"),
        float("-inf"),
        float("nan"),
        -0.5,
        False,
        "9" * 5000,
        "1e400",
        "1_000",
        "infinity",
        "\u0663\u0666\u0660\u0660",  # 3600 in Arabic-Indic digits, which float() takes
        "0x10",
        "",
    ],
)
def test_out_of_range_expires_in_is_a_token_response_error(expires_in: object) -> None:
    """Huge, infinite, NaN, negative, boolean or odd-string expires_in: TokenResponseError
    (1e12 and 10**400 were an OverflowError before, to every waiting caller)."""
    with pytest.raises(TokenResponseError, match="expires_in"):
        TokenData.from_response({"access_token": "abc", "expires_in": expires_in})


@pytest.mark.parametrize("expires_in", [0, 2**31 - 1, 2**32 - 1, MAX_EXPIRES_IN, "1e3"])
def test_long_lived_expires_in_conventions_are_accepted(expires_in: object) -> None:
    """Real servers' "never expires" values (2**31 - 1, 2**32 - 1 s) are within the maximum."""
    token = TokenData.from_response({"access_token": "abc", "expires_in": expires_in})
    assert token.lifetime == pytest.approx(float(expires_in))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "token_type",
    ["Bearer\r\nX-Injected: 1", "Bearer\n", "Bear er", " Bearer", "B\x00", "Bäarer", ""],
)
def test_token_type_must_be_an_rfc9110_token(token_type: str) -> None:
    """A token_type with CR/LF, a space, a control or non-ASCII character is refused: it
    would forge or break the Authorization header of every call for the token's lifetime."""
    with pytest.raises(TokenResponseError, match="token_type"):
        TokenData.from_response({"access_token": "abc", "token_type": token_type})
    with pytest.raises(TokenResponseError, match="token_type"):
        TokenData(access_token="abc", token_type=token_type)


REAL_TOKENS = [
    # A JWT (base64url segments with dots), and RFC 6750 b64token characters.
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl-_~+/==",
    "ya29.a0AfH6SMBx-_abc",  # Google
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",  # GitHub
    "1234567890|aBcDeFgHiJkLmNoP",  # a Facebook app token: "|" is not in b64token
    "2YotnFZFEjr1zCsicMWpAA",  # RFC 6749's example
]


@pytest.mark.parametrize("access_token", REAL_TOKENS)
def test_real_tokens_are_accepted(access_token: str) -> None:
    """JWTs and opaque tokens with ~+/=-._| pass: the rule is printable ASCII, not b64token."""
    data = {"access_token": access_token, "refresh_token": access_token}
    token = TokenData.from_response(data)
    assert token.authorization_header == f"Bearer {access_token}"


@pytest.mark.parametrize(
    "access_token", ["sEcReT\u00e9t\u00e9", "sEcReT\u00a0nbsp", "sEcReT\x7fdel", "sEcReT\r\nx"]
)
def test_non_printable_tokens_are_refused_without_being_quoted(access_token: str) -> None:
    """A non-ASCII or control character in access_token or refresh_token is a
    TokenResponseError whose message never contains the token."""
    for field in ("access_token", "refresh_token"):
        data = {"access_token": "abc", field: access_token}
        with pytest.raises(TokenResponseError, match=field) as excinfo:
            TokenData.from_response(data)
        assert "sEcReT" not in str(excinfo.value)


def test_a_refresh_token_may_hold_a_space() -> None:
    """RFC 6749 appendix A: a refresh token is 1*VSCHAR, space included (it is never a
    header word, unlike the access token)."""
    token = TokenData.from_response({"access_token": "abc", "refresh_token": "two words"})
    assert token.refresh_token == "two words"


def test_an_expiry_out_of_range_in_utc_is_a_token_response_error() -> None:
    """Year 1 at +14:00 is before datetime.min in UTC: TokenResponseError, not OverflowError."""
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    with pytest.raises(TokenResponseError, match="expires_at"):
        TokenData(access_token="abc", expires_at=early)


def test_from_response_error_never_quotes_the_token() -> None:
    """An error about a token response does not echo the secret it carried."""
    with pytest.raises(TokenResponseError) as excinfo:
        TokenData.from_response({"access_token": "s3cr3t value", "expires_in": 60})
    assert "s3cr3t" not in str(excinfo.value)


_token_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
).map(lambda text: f"sEcReT{text}")


@given(
    access_token=_token_text,
    expires_in=st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=10**8),
        st.integers(min_value=0, max_value=10**8).map(str),
    ),
    refresh_token=st.one_of(st.none(), _token_text),
    extra=st.dictionaries(st.sampled_from(["id_token", "foo", "ext_expires_in"]), st.integers()),
)
def test_from_response_round_trips_valid_responses(
    access_token: str,
    expires_in: int | str | None,
    refresh_token: str | None,
    extra: dict[str, int],
) -> None:
    """Any valid response parses to the same access token, refresh token and lifetime."""
    data: dict[str, object] = {"access_token": access_token, **extra}
    if expires_in is not None:
        data["expires_in"] = expires_in
    if refresh_token is not None:
        data["refresh_token"] = refresh_token
    clock = FakeClock()
    token = TokenData.from_response(data, clock=clock)
    assert token.access_token == access_token
    assert token.refresh_token == refresh_token
    if expires_in is None:
        assert token.expires_at is None
    else:
        assert token.lifetime == pytest.approx(float(expires_in))
    assert access_token not in repr(token)


@given(
    st.one_of(
        st.lists(st.integers()),
        st.text(),
        st.integers(),
        st.dictionaries(st.sampled_from(["token", "expires_in", "scope"]), st.text()),
    )
)
def test_from_response_rejects_anything_without_an_access_token(data: object) -> None:
    """Whatever the shape, a body without an access_token string is a TokenResponseError."""
    with pytest.raises(TokenResponseError):
        TokenData.from_response(data)


# -- the storage format -------------------------------------------------------------------------


@given(
    access_token=_token_text,
    refresh_token=st.one_of(st.none(), _token_text),
    scope=st.one_of(st.none(), st.text(max_size=20)),
    lifetime=st.one_of(st.none(), st.floats(min_value=0, max_value=10**7)),
)
def test_encoded_token_round_trips(
    access_token: str, refresh_token: str | None, scope: str | None, lifetime: float | None
) -> None:
    """decode_token(encode_token(t)) gives back every field, issued_at included."""
    now = FakeClock().now()
    token = TokenData(
        access_token=access_token,
        refresh_token=refresh_token,
        scope=scope,
        issued_at=now,
        expires_at=None if lifetime is None else now + timedelta(seconds=lifetime),
    )
    decoded = decode_token(encode_token(token))
    assert decoded == token
    assert decoded.issued_at == token.issued_at


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'{"v": 3, "access_token": "a", "token_type": "Bearer"}',
        b'{"access_token": "a", "token_type": "Bearer"}',
        b'{"v": 1, "token_type": "Bearer"}',
        b'{"v": 1, "access_token": "a", "token_type": "Bearer", "expires_at": "soon"}',
        b'{"v": 1, "access_token": "a", "token_type": "Bearer", "expires_at": 5}',
        b'{"v": 1, "access_token": "a b", "token_type": "Bearer"}',
        b"\x80\x04\x95pickled",
    ],
)
def test_decode_rejects_anything_foreign_without_quoting_it(raw: bytes) -> None:
    """A corrupt, foreign or other-version value is a TokenResponseError (a ValueError) that
    does not echo the value."""
    with pytest.raises(TokenResponseError, match=r"token|expires_at") as excinfo:
        decode_token(raw)
    assert "pickled" not in str(excinfo.value)
    assert "a b" not in str(excinfo.value)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"v":1,"access_token":' + '{"a":' * 100_000 + "1" + "}" * 100_001,
        '{"v":1,"access_token":"a","token_type":"Bearer","x":' + "[" * 100_000,
        '"' + '\\"' * 100_000,
    ],
    ids=["deep-array", "deep-object", "unclosed", "unterminated-string"],
)
def test_decode_refuses_deep_nesting_before_parsing(raw: str) -> None:
    """100,000-deep JSON is a TokenResponseError (it was a RecursionError on every read)."""
    with pytest.raises(TokenResponseError, match="stored token"):
        decode_token(raw)


def test_decode_reads_brackets_inside_strings() -> None:
    """Brackets inside the record's strings (a scope, a token) are not nesting."""
    token = TokenData(access_token="a{b[c}", scope="read:[x] {y}")
    assert decode_token(encode_token(token)) == token


@pytest.mark.parametrize("raw", [b"", 42, None, b"x" * (MAX_STORED_SIZE + 1)])
def test_decode_refuses_what_is_not_a_small_text(raw: Any) -> None:
    """Empty, non-text or oversized stored values are a TokenResponseError too."""
    with pytest.raises(TokenResponseError, match="stored token"):
        decode_token(raw)


# -- extra members, refresh-token expiry, issued_token_type (issue 13) -----------------------

ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJpZC10b2tlbi1zdWJqZWN0In0.aWQtdG9rZW4tc2ln"
#: What Entra, Okta, Salesforce and Keycloak answer beside RFC 6749's five members.
PROVIDER_RESPONSE: dict[str, Any] = {
    "access_token": "abc",
    "token_type": "Bearer",
    "expires_in": 3600,
    "refresh_token": "r1",
    "scope": "openid",
    "id_token": ID_TOKEN,  # Entra, Okta, Google, Keycloak
    "ext_expires_in": 3600,  # Entra
    "instance_url": "https://example.my.salesforce.com",  # Salesforce
    "issued_at": "1278448832702",  # Salesforce: epoch milliseconds as a string
    "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},  # RFC 9449
    "refresh_expires_in": 1800,  # Keycloak
    "not-before-policy": 0,  # Keycloak
    "session_state": "b4b6c2f8-3f34-4b2f-9f52-3a3a0c9d1f6e",  # Keycloak
    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",  # RFC 8693
}


def test_from_response_keeps_every_other_member_in_extra(forge_clock: FakeClock) -> None:
    """Members TokenData has no field for are kept as they came; the parsed ones are not."""
    token = TokenData.from_response(PROVIDER_RESPONSE)
    assert dict(token.extra) == {
        "id_token": ID_TOKEN,
        "ext_expires_in": 3600,
        "instance_url": "https://example.my.salesforce.com",
        "issued_at": "1278448832702",
        "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        "not-before-policy": 0,
        "session_state": "b4b6c2f8-3f34-4b2f-9f52-3a3a0c9d1f6e",
    }
    assert token.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert token.refresh_expires_at == forge_clock.now() + timedelta(seconds=1800)
    assert token.issued_at == forge_clock.now()  # the field, not Salesforce's member
    assert TokenData.from_response({"access_token": "abc"}).extra == {}


def test_the_id_token_never_shows_in_a_repr_or_a_redacted_text() -> None:
    """id_token is secret-named: the token's repr names it only, the mapping's repr hides it,
    and its value is declared secret, so log lines and error texts redact it."""
    token = TokenData.from_response(PROVIDER_RESPONSE)
    assert ID_TOKEN not in repr(token)
    assert "extra=<cnf, ext_expires_in, id_token," in repr(token)
    assert ID_TOKEN not in repr(token.extra)
    assert ID_TOKEN not in str(token.extra)
    assert "example.my.salesforce.com" in repr(token.extra)  # not a secret: shown
    assert ID_TOKEN not in redact_text(f"the server said {ID_TOKEN} and more")


def test_a_secret_nested_in_an_extra_member_is_declared(forge_clock: FakeClock) -> None:
    """A string under a credential name at any depth of extra is redacted from texts."""
    nested = "nEsTeD-secret-value-42"
    token = TokenData.from_response({"access_token": "abc", "tokens": {"x": {"id_token": nested}}})
    assert token.extra["tokens"]["x"]["id_token"] == nested
    assert nested not in repr(token.extra)
    assert nested not in redact_text(f"log: {nested}")


def test_extra_cannot_be_changed_through_what_it_returns() -> None:
    """extra is immutable: no item assignment, and an object read from it is a fresh copy."""
    token = TokenData.from_response(PROVIDER_RESPONSE)
    with pytest.raises(TypeError):
        token.extra["cnf"] = {}  # type: ignore[index]
    token.extra["cnf"]["jkt"] = "changed"
    assert token.extra["cnf"] == {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.extra = {}  # type: ignore[misc]


def test_tokens_with_extras_stay_hashable_and_compare_by_value() -> None:
    """Equality and the hash cover extra (member order aside) but not issued_at, as before."""
    first = TokenData.from_response(PROVIDER_RESPONSE, clock=FakeClock())
    again = TokenData.from_response(dict(reversed(PROVIDER_RESPONSE.items())), clock=FakeClock())
    other = TokenData.from_response({**PROVIDER_RESPONSE, "id_token": "x.y.z"}, clock=FakeClock())
    assert first == again
    assert hash(first) == hash(again)
    assert first != other
    assert len({first, again, other}) == 2
    assert first.extra == dict(first.extra)  # a mapping compares equal to its dict
    plain = TokenData(access_token="a")
    assert plain == TokenData(access_token="a", extra={})
    assert hash(plain) == hash(TokenData(access_token="a"))


@pytest.mark.parametrize(
    ("members", "seconds"),
    [
        ({"refresh_expires_in": 1800}, 1800),  # Keycloak
        ({"refresh_token_expires_in": 15_897_600}, 15_897_600),  # GitHub, Azure
        ({"refresh_token_expires_in": "7200"}, 7200),
        ({"refresh_expires_in": 1800, "refresh_token_expires_in": 900}, 900),  # the earlier
        ({"refresh_expires_in": 0}, None),  # Keycloak's offline token: no expiry
        ({"refresh_expires_in": "soon"}, None),
        ({"refresh_expires_in": -5}, None),
        ({"refresh_expires_in": 10**400}, None),
        ({"refresh_expires_in": [1]}, None),
        ({}, None),
    ],
)
def test_refresh_expires_at_comes_from_either_member(
    forge_clock: FakeClock, members: dict[str, object], seconds: float | None
) -> None:
    """refresh_expires_at counts from now; an odd value leaves it None instead of failing
    the response, since these members were ignored before."""
    token = TokenData.from_response({"access_token": "abc", "refresh_token": "r", **members})
    expected = None if seconds is None else forge_clock.now() + timedelta(seconds=seconds)
    assert token.refresh_expires_at == expected
    assert "refresh_expires_in" not in token.extra
    assert "refresh_token_expires_in" not in token.extra


@pytest.mark.parametrize("value", [5, "", "has space", "x" * 300, "caf\u00e9", None])
def test_an_odd_issued_token_type_is_left_out(value: object) -> None:
    """An issued_token_type that is not a printable URI is None, and the token still parses."""
    token = TokenData.from_response({"access_token": "abc", "issued_token_type": value})
    assert token.issued_token_type is None
    assert "issued_token_type" not in token.extra


def _deep_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        10**400,
        _deep_list(100_000),
        _deep_list(MAX_EXTRA_DEPTH + 1),
        [[] for _ in range(MAX_EXTRA_CONTAINERS + 1)],
        {1: "non-string key"},
        b"bytes",
        object(),
        "x" * (MAX_EXTRA_SIZE + 1),
    ],
    ids=[
        "nan",
        "inf",
        "huge-int",
        "100000-deep",
        "one-too-deep",
        "too-many-arrays",
        "int-key",
        "bytes",
        "object",
        "too-large",
    ],
)
def test_an_unbounded_extra_member_is_dropped_and_the_rest_kept(value: object) -> None:
    """A member that is not a bounded JSON value is left out of extra; the token and its other
    members are unaffected (no RecursionError or OverflowError either)."""
    token = TokenData.from_response({"access_token": "abc", "odd": value, "ext_expires_in": 1})
    assert dict(token.extra) == {"ext_expires_in": 1}


def test_extra_keeps_its_first_members_up_to_the_bounds() -> None:
    """Past MAX_EXTRA_MEMBERS members the rest are dropped; nesting up to the depth is kept."""
    many = {f"m{i:03}": i for i in range(MAX_EXTRA_MEMBERS + 5)}
    token = TokenData.from_response({"access_token": "abc", **many})
    assert len(token.extra) == MAX_EXTRA_MEMBERS
    deepest = _deep_list(MAX_EXTRA_DEPTH)
    assert TokenData.from_response({"access_token": "a", "d": deepest}).extra["d"] == deepest


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"extra": {"odd": float("nan")}}, "finite"),
        ({"extra": {"odd": _deep_list(50)}}, "nested"),
        ({"extra": {"access_token": "x"}}, "access_token"),
        ({"extra": {"": 1}}, "names"),
        ({"extra": {7: 1}}, "names"),
        ({"extra": ["not", "a", "mapping"]}, "mapping"),
        ({"issued_token_type": "has space"}, "issued_token_type"),
        ({"issued_token_type": 5}, "issued_token_type"),
        ({"issued_token_type": "u" * 300}, "issued_token_type"),
        ({"refresh_expires_at": datetime(2030, 1, 1)}, "refresh_expires_at"),
    ],
)
def test_the_constructor_refuses_bad_new_fields(kwargs: dict[str, Any], problem: str) -> None:
    """Built directly, a bad extra, issued_token_type or refresh_expires_at is a
    TokenResponseError naming it (from_response drops such members instead)."""
    with pytest.raises(TokenResponseError, match=problem):
        TokenData(access_token="abc", **kwargs)


def test_replace_keeps_the_new_fields() -> None:
    """dataclasses.replace (the manager's way to stamp issued_at) carries extra and the rest."""
    token = TokenData.from_response(PROVIDER_RESPONSE)
    copy = dataclasses.replace(token, issued_at=None)
    assert (copy.extra, copy.refresh_expires_at, copy.issued_token_type) == (
        token.extra,
        token.refresh_expires_at,
        token.issued_token_type,
    )
    assert copy.extra is token.extra


# -- the storage format, versions 1 and 2 (issue 13) ------------------------------------------

#: Exactly what encode_token wrote before issue 13 (format 1), for a full and a bare token.
V1_FULL = (
    b'{"v":1,"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer",'
    b'"expires_at":"2030-01-01T13:00:00+00:00","refresh_token":"r-1 two","scope":"read write",'
    b'"issued_at":"2030-01-01T12:00:00+00:00"}'
)
V1_BARE = (
    b'{"v":1,"access_token":"abc","token_type":"Bearer","expires_at":null,'
    b'"refresh_token":null,"scope":null,"issued_at":null}'
)
NOON = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)


def test_format_1_still_reads() -> None:
    """A record an older release wrote decodes to the same token, with no new fields."""
    full = decode_token(V1_FULL)
    assert full == TokenData(
        access_token="eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        expires_at=NOON + timedelta(hours=1),
        refresh_token="r-1 two",
        scope="read write",
    )
    assert full.issued_at == NOON
    assert (full.refresh_expires_at, full.issued_token_type, full.extra) == (None, None, {})
    assert decode_token(V1_BARE) == TokenData(access_token="abc")


def test_format_2_is_written_and_pinned() -> None:
    """encode_token writes version 2: the format-1 fields, then refresh_expires_at and
    issued_token_type, then extra (only when it has members) in canonical JSON."""
    bare = TokenData(access_token="abc")
    assert encode_token(bare) == (
        b'{"v":2,"access_token":"abc","token_type":"Bearer","expires_at":null,'
        b'"refresh_token":null,"scope":null,"issued_at":null,"refresh_expires_at":null,'
        b'"issued_token_type":null}'
    )
    full = TokenData(
        access_token="abc",
        expires_at=NOON + timedelta(hours=1),
        refresh_token="r1",
        issued_at=NOON,
        refresh_expires_at=NOON + timedelta(hours=8),
        issued_token_type="urn:ietf:params:oauth:token-type:jwt",
        extra={"ext_expires_in": 3600, "cnf": {"jkt": "k"}, "n\u00e9": ["\u00e9", 1.5, None]},
    )
    raw = encode_token(full)
    assert raw == (
        b'{"v":2,"access_token":"abc","token_type":"Bearer",'
        b'"expires_at":"2030-01-01T13:00:00+00:00","refresh_token":"r1","scope":null,'
        b'"issued_at":"2030-01-01T12:00:00+00:00","refresh_expires_at":"2030-01-01T20:00:00+00:00",'
        b'"issued_token_type":"urn:ietf:params:oauth:token-type:jwt",'
        b'"extra":{"cnf":{"jkt":"k"},"ext_expires_in":3600,"n\\u00e9":["\\u00e9",1.5,null]}}'
    )
    decoded = decode_token(raw)
    assert decoded == full
    assert decoded.refresh_expires_at == full.refresh_expires_at
    assert decoded.extra["n\u00e9"] == ["\u00e9", 1.5, None]


def test_a_provider_response_round_trips_through_the_storage_format() -> None:
    """Every field of a real provider's response survives encode and decode."""
    token = TokenData.from_response(PROVIDER_RESPONSE)
    decoded = decode_token(encode_token(token))
    assert decoded == token
    assert hash(decoded) == hash(token)
    assert (decoded.refresh_expires_at, decoded.issued_at) == (
        token.refresh_expires_at,
        token.issued_at,
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":2,"access_token":"a","token_type":"Bearer","extra":[1]}',
        b'{"v":2,"access_token":"a","token_type":"Bearer","extra":{"x":NaN}}',
        b'{"v":2,"access_token":"a","token_type":"Bearer","extra":{"access_token":"b"}}',
        b'{"v":2,"access_token":"a","token_type":"Bearer","issued_token_type":7}',
        b'{"v":2,"access_token":"a","token_type":"Bearer","refresh_expires_at":"noon"}',
        b'{"v":2,"access_token":"a","token_type":"Bearer","extra":{"x":'
        + b"[" * (MAX_EXTRA_DEPTH + 1)
        + b"]" * (MAX_EXTRA_DEPTH + 1)
        + b"}}",
        b'{"v":2,"access_token":"a","token_type":"Bearer","extra":{"x":['
        + b"[]," * (MAX_EXTRA_CONTAINERS + 1)
        + b"[]]}}",
        b'{"v":3,"access_token":"a","token_type":"Bearer"}',
    ],
    ids=[
        "extra-list",
        "nan",
        "parsed-member",
        "type-not-text",
        "bad-time",
        "too-deep",
        "too-wide",
        "future-version",
    ],
)
def test_a_bad_format_2_record_is_a_token_response_error(raw: bytes) -> None:
    """A v2 record whose new fields are malformed or beyond the bounds reads as a miss."""
    with pytest.raises(TokenResponseError, match=r"stored token|extra|issued_token_type|finite"):
        decode_token(raw)


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(
    extra=st.dictionaries(st.text(min_size=1, max_size=12), _json, max_size=6),
    issued_token_type=st.none() | st.from_regex(r"urn:[a-z:]{1,30}", fullmatch=True),
    refresh_lifetime=st.none() | st.floats(min_value=0, max_value=10**7),
)
def test_format_2_round_trips_any_bounded_extra(
    extra: dict[str, Any], issued_token_type: str | None, refresh_lifetime: float | None
) -> None:
    """Any bounded JSON extra, any issued_token_type and refresh expiry decode as written."""
    extra = {k: v for k, v in extra.items() if k not in PARSED_MEMBERS}
    now = FakeClock().now()
    token = TokenData(
        access_token="abc",
        issued_at=now,
        refresh_expires_at=None
        if refresh_lifetime is None
        else now + timedelta(seconds=refresh_lifetime),
        issued_token_type=issued_token_type,
        extra=extra,
    )
    decoded = decode_token(encode_token(token))
    assert decoded == token
    assert decoded.extra == extra
    assert hash(decoded) == hash(token)


def test_a_token_with_extras_pickles_with_a_fresh_hash() -> None:
    """A token pickled in another process (another str-hash salt) unpickles equal and with
    this process's hash, because extra is rebuilt rather than restored with its hash."""
    script = (
        "import pickle, sys\n"
        "from requestforge import TokenData\n"
        "token = TokenData(access_token='abc', extra={'cnf': {'jkt': 'k'}, 'ext': 1})\n"
        "sys.stdout.write(pickle.dumps(token).hex())\n"
    )
    done = subprocess.run(  # noqa: S603 - our own script, our own interpreter
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    copy = pickle.loads(bytes.fromhex(done.stdout))  # noqa: S301 - our own bytes
    token = TokenData(access_token="abc", extra={"ext": 1, "cnf": {"jkt": "k"}})
    assert copy == token
    assert hash(copy) == hash(token)
    assert {copy: 1}[token] == 1
