"""Tests for requestforge._redact: the one place that decides what a secret looks like."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requestforge import Secrets, declare_secrets
from requestforge._redact import (
    REDACTED,
    is_credential_field,
    is_secret_field,
    is_secret_header,
    redact_headers,
    redact_json,
    redact_pairs,
    redact_text,
    redact_url,
)

#: What earlier tests declared secret must not change what these tests see hidden.
pytestmark = pytest.mark.usefixtures("forge_secrets")

#: A marker every generated secret value carries, so a leak is easy to find in any output.
MARKER = "S3CR3T"

SECRET_HEADER_NAMES = [
    "Authorization",
    "authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-API-Key",
    "x-api-key",
    "Api-Key",
    "X-Auth-Token",
    "X-Partner-Token",
    "X-Client-Secret",
    "X-Amz-Security-Token",
]
PUBLIC_HEADER_NAMES = [
    "Accept",
    "Content-Type",
    "User-Agent",
    "X-Request-ID",
    "X-Correlation-ID",
    "Host",
]
SECRET_FIELD_NAMES = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "db_password",
    "passwd",
    "api_key",
    "apikey",
    "code",
    "key",
    "sig",
    "signature",
    "assertion",
    "client_assertion",
    "Password",
]
PUBLIC_FIELD_NAMES = ["q", "page", "grant_type", "scope", "username", "client_id", "name", "id"]
FRAGMENTS = ["token", "secret", "password", "passwd", "api_key", "apikey"]

secret_values = st.text(max_size=12).map(lambda s: f"{MARKER}{s}")
public_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=12).filter(
    lambda s: MARKER not in s
)
name_affix = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", max_size=5)
#: Names that contain a secret fragment anywhere, in any case.
fragment_names = st.builds(
    lambda pre, frag, post, upper: (pre + frag + post).upper() if upper else pre + frag + post,
    name_affix,
    st.sampled_from(FRAGMENTS),
    name_affix,
    st.booleans(),
)


@pytest.mark.parametrize("name", SECRET_HEADER_NAMES)
def test_secret_headers_are_recognised(name: str) -> None:
    """Credential-carrying header names are secret in any letter case."""
    assert is_secret_header(name)
    assert is_secret_header(name.upper())


@pytest.mark.parametrize("name", PUBLIC_HEADER_NAMES)
def test_ordinary_headers_are_not_secret(name: str) -> None:
    """Everyday headers are not treated as secrets."""
    assert not is_secret_header(name)


@pytest.mark.parametrize("name", SECRET_FIELD_NAMES)
def test_secret_fields_are_recognised(name: str) -> None:
    """OAuth and password-like query/form field names are secret."""
    assert is_secret_field(name)


@pytest.mark.parametrize("name", PUBLIC_FIELD_NAMES)
def test_ordinary_fields_are_not_secret(name: str) -> None:
    """Ordinary field names, including the OAuth client_id and username, are kept."""
    assert not is_secret_field(name)


@pytest.mark.parametrize("name", SECRET_FIELD_NAMES)
def test_credential_fields_are_the_secret_ones(name: str) -> None:
    """Every field that holds a credential is one for cassettes too."""
    assert is_credential_field(name)


@pytest.mark.parametrize(
    "name",
    ["token_type", "token_type_hint", "refresh_token_expires_in", "token_endpoint", "Token_Type"],
)
def test_credential_metadata_is_secret_for_logs_but_not_a_credential(name: str) -> None:
    """Names that describe a credential are redacted in logs yet kept in cassettes."""
    assert is_secret_field(name)
    assert not is_credential_field(name)


@given(st.one_of(fragment_names, st.text(max_size=20)))
def test_property_credential_fields_are_secret_fields(name: str) -> None:
    """Logs hide at least what cassettes hide: every credential field is a secret field."""
    assert not is_credential_field(name) or is_secret_field(name)


def test_redact_headers_returns_redacted_copy() -> None:
    """Secret header values are replaced, others kept, names and input left untouched."""
    headers = {"Authorization": "Bearer abc", "Accept": "application/json", "Cookie": "s=1"}
    result = redact_headers(headers)
    assert result == {"Authorization": REDACTED, "Accept": "application/json", "Cookie": REDACTED}
    assert headers["Authorization"] == "Bearer abc"


def test_redact_pairs_keeps_order_and_duplicates() -> None:
    """Pairs keep their order and repeated names; only secret values change."""
    pairs = [("q", "a"), ("access_token", "t1"), ("q", "b"), ("access_token", "t2")]
    assert redact_pairs(pairs) == [
        ("q", "a"),
        ("access_token", REDACTED),
        ("q", "b"),
        ("access_token", REDACTED),
    ]


def test_redact_json_walks_nested_values() -> None:
    """Secret keys are redacted at any depth, in dicts inside lists, without mutating input."""
    body: dict[object, Any] = {
        "user": {"name": "ann", "password": "pw1"},
        "items": [{"client_secret": "cs1", "id": 7}, "plain"],
        "grant_type": "password",
        3: "non-string key",
    }
    result = redact_json(body)
    assert result == {
        "user": {"name": "ann", "password": REDACTED},
        "items": [{"client_secret": REDACTED, "id": 7}, "plain"],
        "grant_type": "password",
        3: "non-string key",
    }
    assert body["user"]["password"] == "pw1"


@pytest.mark.parametrize("value", [None, 1, 2.5, True, "text", []])
def test_redact_json_leaves_scalars_alone(value: object) -> None:
    """Values that have no field names pass through unchanged."""
    assert redact_json(value) == value


def test_redact_url_hides_userinfo_and_secret_params() -> None:
    """User info and secret query values are replaced; path and other params survive."""
    result = redact_url("https://ann:pw1@api.example.com/v1/x?page=2&access_token=t0k&api_key=k1")
    assert "pw1" not in result
    assert "t0k" not in result
    assert "k1" not in result
    parts = urlsplit(result)
    assert parts.netloc == "%5BREDACTED%5D@api.example.com"
    assert parts.path == "/v1/x"
    assert parse_qsl(parts.query) == [
        ("page", "2"),
        ("access_token", REDACTED),
        ("api_key", REDACTED),
    ]


def test_redact_url_without_secrets_is_unchanged() -> None:
    """A URL with nothing secret is returned exactly as given (no re-encoding)."""
    url = "https://api.example.com/search?q=a%20b&page=2#top"
    assert redact_url(url) == url


def test_redact_url_decodes_names_before_judging() -> None:
    """A percent-encoded secret parameter name is still recognised."""
    assert "t0k" not in redact_url("https://a.example/?access%5Ftoken=t0k")


def test_redact_url_redacts_fragment_parameters() -> None:
    """Tokens in the fragment (OAuth implicit grant) are redacted too."""
    result = redact_url("https://app.example/cb#access_token=t0k&state=xyz")
    assert "t0k" not in result
    assert "state=xyz" in result


@pytest.mark.parametrize(
    "url",
    ["http://[::1/x?access_token=t0k", "http://ann:pw1@[::1/x?access_token=t0k#code=t0k"],
)
def test_redact_url_survives_unparseable_urls(url: str) -> None:
    """A URL urllib cannot parse is still rendered, with no secret and without raising."""
    result = redact_url(url)
    assert "t0k" not in result
    assert "pw1" not in result
    assert result.startswith("http://")


def test_redacted_url_is_a_valid_url_and_redaction_is_idempotent() -> None:
    """A redacted URL still parses, and redacting it again changes nothing."""
    once = redact_url("https://ann:pw1@api.example.com/x?page=2&access_token=t0k")
    assert urlsplit(once).hostname == "api.example.com"
    assert redact_url(once) == once


@given(st.text())
def test_redact_url_never_raises(url: str) -> None:
    """Redaction is used in reprs and error messages, so it must accept any string."""
    assert isinstance(redact_url(url), str)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(SECRET_HEADER_NAMES), secret_values),
            st.tuples(fragment_names, secret_values),
            st.tuples(st.sampled_from(PUBLIC_HEADER_NAMES), public_values),
        ),
        max_size=8,
    )
)
def test_property_secret_header_values_disappear(pairs: list[tuple[str, str]]) -> None:
    """Every value under a secret header name is gone; every other value survives unchanged."""
    headers = dict(pairs)
    result = redact_headers(headers)
    assert MARKER not in repr(result)
    for name, value in headers.items():
        assert result[name] == (REDACTED if value.startswith(MARKER) else value)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(SECRET_FIELD_NAMES), secret_values),
            st.tuples(fragment_names, secret_values),
            st.tuples(st.sampled_from(PUBLIC_FIELD_NAMES), public_values),
        ),
        max_size=8,
    )
)
def test_property_secret_fields_disappear_from_pairs_and_urls(
    pairs: list[tuple[str, str]],
) -> None:
    """Secret query/form values vanish from pairs and from URLs; the rest round-trips."""
    expected = [(k, REDACTED if v.startswith(MARKER) else v) for k, v in pairs]
    assert redact_pairs(pairs) == expected
    url = "https://api.example.com/p?" + urlencode(pairs)
    redacted = redact_url(url)
    assert MARKER not in redacted
    assert parse_qsl(urlsplit(redacted).query, keep_blank_values=True) == expected


json_leaves = st.one_of(st.none(), st.integers(), public_values)


def _json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nested JSON where secret names hold marked secrets (or whole subtrees)."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(PUBLIC_FIELD_NAMES), children, max_size=3),
            st.dictionaries(
                st.one_of(st.sampled_from(SECRET_FIELD_NAMES), fragment_names),
                st.one_of(secret_values, st.lists(secret_values, max_size=2)),
                max_size=2,
            ),
        ),
        max_leaves=12,
    )


def _expected_json(value: Any) -> Any:
    """The oracle: every key not drawn from the public names is a secret one."""
    if isinstance(value, dict):
        return {
            k: _expected_json(v) if k in PUBLIC_FIELD_NAMES else REDACTED for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expected_json(v) for v in value]
    return value


@given(_json_values(json_leaves))
def test_property_secret_json_fields_disappear(body: Any) -> None:
    """Every value under a secret JSON key, at any depth, is gone; the rest is unchanged."""
    result = redact_json(body)
    assert MARKER not in json.dumps(result)
    assert result == _expected_json(body)


# -- issue 11: more names, redaction by knowledge, free text -------------------------------


@pytest.mark.parametrize(
    "name", ["pwd", "db_pwd", "credentials", "aws_credential", "X-Amz-Signature", "private_key"]
)
def test_more_secret_names_are_caught_by_the_second_net(name: str) -> None:
    """Names seen in the wild that the old fragments missed are secret, and credentials."""
    assert is_secret_field(name)
    assert is_secret_header(name)
    assert is_credential_field(name)


@pytest.mark.parametrize("name", ["token_type", "signature_method", "credentials_supported"])
def test_metadata_about_credentials_still_replays(name: str) -> None:
    """Facts about a credential stay out of is_credential_field, so cassettes keep them."""
    assert is_secret_field(name)
    assert not is_credential_field(name)


def test_declared_names_are_secret_whatever_they_are_called() -> None:
    """A header or field a component declared is secret although no rule says so."""
    assert not is_secret_header("X-Canary-Declared")
    declare_secrets(Secrets.of(headers=["X-Canary-Declared"], fields=["canary-declared"]))
    assert is_secret_header("x-canary-declared")
    assert is_secret_field("Canary-Declared")
    assert is_credential_field("canary-declared")
    assert redact_url("https://h/p?canary-declared=v&page=2") == (
        "https://h/p?canary-declared=[REDACTED]&page=2"
    )


def test_declared_values_are_hidden_under_any_name() -> None:
    """A declared value in an ordinary header, pair, JSON string or URL path is hidden."""
    declare_secrets(Secrets.of(values=["CANARY-ANYWHERE-91"]))
    assert redact_headers({"X-Plain": "CANARY-ANYWHERE-91"}) == {"X-Plain": REDACTED}
    assert redact_pairs([("q", "CANARY-ANYWHERE-91")]) == [("q", REDACTED)]
    assert redact_json({"a": ["CANARY-ANYWHERE-91"]}) == {"a": [REDACTED]}
    assert "CANARY-ANYWHERE-91" not in redact_url("https://h/keys/CANARY-ANYWHERE-91/x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Max retries exceeded with url: /api?access_token=CANARY-Q1&page=2 (Caused by X)",
            "Max retries exceeded with url: /api?access_token=[REDACTED]&page=2 (Caused by X)",
        ),
        (
            "proxy http://bob:CANARY-PW@proxy:3128 down",
            "proxy http://%5BREDACTED%5D@proxy:3128 down",
        ),
        ('{"pwd": "CANARY-J\\"1", "user": "ann"}', '{"pwd": "[REDACTED]", "user": "ann"}'),
        ("sent Bearer eyJ.CANARY.7f3a", "sent Bearer [REDACTED]"),
        ("needs Bearer authentication", "needs Bearer authentication"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact_text_hides_secrets_in_free_text(text: str, expected: str) -> None:
    """Query secrets, URL user info, quoted JSON secrets and bearer tokens in prose go."""
    assert redact_text(text) == expected
