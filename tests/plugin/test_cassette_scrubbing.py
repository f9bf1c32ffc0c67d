"""What cassettes scrub and how they match: SecretScrubber, RequestView/compare, and a
hypothesis property over whole recorded cassettes (every secret gone, the rest intact)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.serializers import yamlserializer

from requestforge_testing import ApiServer, ForgeCassette, RecordedRequest, Reply
from requestforge_testing._cassette_match import RequestView, compare, same_text
from requestforge_testing._scrubbing import SecretScrubber, is_placeholder

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- SecretScrubber ------------------------------------------------------------------------


def test_a_secret_keeps_its_placeholder_across_places() -> None:
    """A token issued in a JSON body and later sent in a header gets one placeholder."""
    scrubber = SecretScrubber()
    body = scrubber.body(b'{"access_token": "tok-abcdef123"}', "application/json")
    placeholder = json.loads(body)["access_token"]
    assert is_placeholder(placeholder)
    assert scrubber.header("Authorization", "Bearer tok-abcdef123") == f"Bearer {placeholder}"
    assert scrubber.header("X-Echo", "seen tok-abcdef123 here") == f"seen {placeholder} here"


def test_basic_credentials_keep_the_scheme_and_teach_the_password() -> None:
    """Basic credentials become one placeholder; the decoded password is hidden elsewhere."""
    scrubber = SecretScrubber()
    encoded = base64.b64encode(b"client:pass-w0rd-99").decode()
    header = scrubber.header("Authorization", f"Basic {encoded}")
    assert header.startswith("Basic forge-scrubbed-")
    assert "pass-w0rd-99" not in scrubber.text("the password is pass-w0rd-99")


def test_cookies_keep_names_and_attributes() -> None:
    """Cookie and Set-Cookie values are replaced; names, paths and flags survive."""
    scrubber = SecretScrubber()
    assert scrubber.header("Cookie", "a=1; b=2") == "a=forge-scrubbed-1; b=forge-scrubbed-2"
    set_cookie = scrubber.header("Set-Cookie", "sid=xyz; Path=/; HttpOnly")
    assert set_cookie == "sid=forge-scrubbed-3; Path=/; HttpOnly"


def test_credential_metadata_and_numbers_survive() -> None:
    """token_type, *_expires_in, token_type_hint and numbers under secret names are kept:
    replay needs them intact."""
    scrubber = SecretScrubber()
    data = {
        "access_token": "t-1",
        "token_type": "Bearer",
        "refresh_token_expires_in": 7200,
        "error": {"code": 404},
        "token_type_hint": "access_token",
    }
    assert scrubber.json(data) == {**data, "access_token": "forge-scrubbed-1"}
    form = scrubber.body(b"token=t-2&token_type_hint=refresh_token", FORM["Content-Type"])
    assert parse_qsl(form.decode()) == [
        ("token", "forge-scrubbed-2"),
        ("token_type_hint", "refresh_token"),
    ]


def test_loopback_hosts_are_numbered_by_port() -> None:
    """127.0.0.1, localhost and [::1] on one port share a host; another port gets the next;
    loopback URLs inside text are normalised too; other hosts are left alone."""
    scrubber = SecretScrubber()
    assert scrubber.url("http://127.0.0.1:5001/a?q=1") == "http://loopback-1.invalid/a?q=1"
    assert scrubber.url("http://localhost:5001/b") == "http://loopback-1.invalid/b"
    assert scrubber.url("https://[::1]:7002/c") == "https://loopback-2.invalid/c"
    text = scrubber.text('{"next": "http://127.0.0.1:7002/d"}')
    assert text == '{"next": "http://loopback-2.invalid/d"}'
    assert scrubber.url("https://api.example.com:8443/x") == "https://api.example.com:8443/x"


def test_url_user_info_and_secret_query_values_are_replaced() -> None:
    """User info and secret query values are hidden; other parameters keep their encoding."""
    scrubber = SecretScrubber()
    url = scrubber.url("https://ann:pw@api.example.com/p?q=a%20b&access_token=t0k123")
    assert url == ("https://forge-scrubbed-1@api.example.com/p?q=a+b&access_token=forge-scrubbed-2")
    assert scrubber.url("https://api.example.com/p?q=a%20b") == "https://api.example.com/p?q=a%20b"


def test_placeholders_in_input_are_kept_and_never_reused() -> None:
    """Scrubbing is idempotent, and a new secret gets a number after the highest seen."""
    scrubber = SecretScrubber()
    assert scrubber.header("Authorization", "Bearer forge-scrubbed-7") == "Bearer forge-scrubbed-7"
    assert scrubber.placeholder("new-secret") == "forge-scrubbed-8"
    once = scrubber.body(b'{"password": "pw-123456", "n": "x"}', "application/json")
    assert scrubber.body(once, "application/json") == once


def test_short_secrets_are_replaced_only_as_whole_values() -> None:
    """A two-letter password does not mangle every word containing its letters."""
    scrubber = SecretScrubber()
    assert scrubber.placeholder("ab") == "forge-scrubbed-1"
    assert scrubber.text("about") == "about"
    assert scrubber.text("ab") == "forge-scrubbed-1"


def test_binary_bodies_lose_known_secrets() -> None:
    """Bytes that are not UTF-8 text still have known secrets replaced."""
    scrubber = SecretScrubber()
    scrubber.learn("secret-bytes-1")
    body = b"\xff\xfe secret-bytes-1 \x00"
    assert scrubber.body(body, "application/octet-stream") == b"\xff\xfe forge-scrubbed-1 \x00"


def test_leaks_name_placeholders_never_secrets() -> None:
    """A secret still visible in text is reported by its placeholder, in any spelling."""
    scrubber = SecretScrubber()
    scrubber.placeholder("a b+c/secret")
    found = scrubber.leaks("body: a+b%2Bc%2Fsecret")
    assert found == ["forge-scrubbed-1"]
    assert "secret" not in " ".join(found).replace("forge-scrubbed", "")
    assert scrubber.leaks("nothing here") == []


# -- matching ------------------------------------------------------------------------------


def view(
    method: str = "POST", uri: str = "http://h/t", body: bytes = b"", **headers: str
) -> RequestView:
    """A RequestView of a form request."""
    return RequestView.of(method, uri, {**FORM, **headers}, body)


def test_a_recorded_placeholder_matches_any_value() -> None:
    """A scrubbed value matches whatever secret the live request carries, not nothing."""
    assert same_text("Bearer forge-scrubbed-3", "Bearer real-token")
    assert same_text("/users/forge-scrubbed-1/x", "/users/42/x")
    assert not same_text("forge-scrubbed-1", "")
    assert not same_text("plain", "other")


RECORDED = view(body=b"grant_type=x&scope=a", Authorization="Bearer forge-scrubbed-1")
LIVE: dict[str, Any] = {"body": b"grant_type=x&scope=a", "Authorization": "Bearer live-token"}


@pytest.mark.parametrize(
    ("change", "aspect", "detail"),
    [
        ({"method": "PUT"}, "method", "recorded POST, sent PUT"),
        ({"uri": "http://h:81/t"}, "URL", "recorded http://h/t, sent http://h:81/t"),
        ({"uri": "http://h/t?a=1"}, "query", "not recorded: a"),
        ({"body": b"grant_type=y&scope=a"}, "grant type", "recorded 'x', sent 'y'"),
        ({"body": b"grant_type=x&scope=b"}, "parameters", "changed: scope 'a' -> 'b'"),
        ({"body": b"grant_type=x"}, "parameters", "not sent: scope"),
        ({"Authorization": "Basic x"}, "authorization", "recorded bearer, sent basic"),
    ],
)
def test_compare_reports_each_aspect(change: dict[str, Any], aspect: str, detail: str) -> None:
    """Each kind of change is reported once, under its own aspect, in plain words; the
    secret token itself is never a difference."""
    assert compare(RECORDED, view(**LIVE)) == []
    differences = compare(RECORDED, view(**{**LIVE, **change}))
    assert [(d.aspect, d.detail) for d in differences] == [(aspect, detail)]


def test_json_bodies_are_compared_structurally() -> None:
    """Key order does not matter; missing, extra and changed keys are named by path."""
    headers = {"Content-Type": "application/json"}
    recorded = RequestView.of(
        "POST", "http://h/", headers, b'{"a": 1, "b": {"c": "forge-scrubbed-1"}}'
    )
    same = RequestView.of("POST", "http://h/", headers, b'{"b": {"c": "pw"}, "a": 1}')
    other = RequestView.of("POST", "http://h/", headers, b'{"a": 2, "d": null, "b": {}}')
    assert compare(recorded, same) == []
    (difference,) = compare(recorded, other)
    assert difference.aspect == "parameters"
    assert difference.detail == "$.d not recorded, $.a 1 -> 2, $.b.c not sent"


# -- the property: whole cassettes ---------------------------------------------------------

MARKER = "S3CR3T"
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
secret_values = st.text(alphabet=SAFE, max_size=10).map(lambda s: f"{MARKER}{s}")
header_values = (
    st.text(alphabet=SAFE + " /:;=,()", min_size=1, max_size=12)
    .map(str.strip)
    .filter(lambda s: s != "" and MARKER not in s)
)
text_values = st.text(max_size=12).filter(lambda s: MARKER not in s)
SECRET_FIELDS = ["access_token", "refresh_token", "id_token", "client_secret", "password",
                 "assertion", "client_assertion", "api_key", "code"]  # fmt: skip
PUBLIC_FIELDS = ["q", "page", "scope", "username", "client_id", "name", "token_type"]
SECRET_HEADERS = ["X-API-Key", "X-Auth-Token", "X-Partner-Token", "X-Client-Secret"]
PUBLIC_HEADERS = ["Accept", "X-Request-ID", "X-Correlation-ID", "X-Tenant"]

json_leaves = st.one_of(st.none(), st.integers(), text_values)
json_bodies = st.recursive(
    st.dictionaries(st.sampled_from(PUBLIC_FIELDS), json_leaves, max_size=3),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(PUBLIC_FIELDS), children, max_size=3),
        st.dictionaries(
            st.sampled_from(SECRET_FIELDS),
            st.one_of(secret_values, st.lists(secret_values, max_size=2)),
            max_size=2,
        ),
    ),
    max_leaves=10,
)


def expected_json(value: Any) -> Any:
    """The oracle: public leaves unchanged, every value under a secret key a placeholder."""
    if isinstance(value, dict):
        return {k: expected_json(v) if k in PUBLIC_FIELDS else hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expected_json(v) for v in value]
    return value


def hidden(value: Any) -> Any:
    """What the oracle expects where a secret was: a placeholder per string."""
    if isinstance(value, list):
        return [hidden(v) for v in value]
    assert isinstance(value, str)
    return "<placeholder>"


def placeholders_as_marks(value: Any) -> Any:
    """``value`` with every placeholder string replaced by the oracle's mark."""
    if isinstance(value, dict):
        return {k: placeholders_as_marks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholders_as_marks(v) for v in value]
    return "<placeholder>" if isinstance(value, str) and is_placeholder(value) else value


@settings(max_examples=60, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(SECRET_HEADERS + PUBLIC_HEADERS), header_values | secret_values, max_size=4
    ),
    credentials=st.tuples(secret_values, secret_values),
    form=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(SECRET_FIELDS), secret_values),
            st.tuples(st.sampled_from(PUBLIC_FIELDS), text_values),
        ),
        max_size=6,
    ),
    reply=json_bodies,
)
def test_property_every_seeded_secret_is_gone_and_the_rest_survives(
    forge_api_server_session: ApiServer,
    headers: dict[str, str],
    credentials: tuple[str, str],
    form: list[tuple[str, str]],
    reply: Any,
) -> None:
    """Whatever the headers, form and JSON reply, the cassette file holds no seeded secret,
    and every non-secret header, form value and JSON value reads back unchanged."""
    headers = {k: v for k, v in headers.items() if (k in SECRET_HEADERS) == v.startswith(MARKER)}
    bearer, cookie = credentials

    def answer(request: RecordedRequest) -> Reply:
        return Reply(json=reply, headers={"Set-Cookie": f"sid={cookie}; Path=/"})

    forge_api_server_session.add_handler("/property", answer)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "property.yaml"
        with ForgeCassette(path):
            requests.post(
                forge_api_server_session.url_for("/property"),
                headers={**headers, "Authorization": f"Bearer {bearer}"},
                data=form,
                timeout=5,
            )
        text = path.read_text(encoding="utf-8")
    assert MARKER not in text
    (interaction,) = yamlserializer.deserialize(text)["interactions"]
    sent, got = interaction["request"], interaction["response"]
    for name, value in headers.items():
        assert is_placeholder(sent["headers"][name][0]) == (name in SECRET_HEADERS)
        if name in PUBLIC_HEADERS:
            assert sent["headers"][name] == [value]
    assert sent["headers"]["Authorization"][0].startswith("Bearer forge-scrubbed-")
    body = sent["body"] or ""
    sent_form = parse_qsl(body if isinstance(body, str) else body.decode(), keep_blank_values=True)
    expected_form = [(k, "<placeholder>" if k in SECRET_FIELDS else v) for k, v in form]
    assert [(k, "<placeholder>" if is_placeholder(v) else v) for k, v in sent_form] == expected_form
    assert placeholders_as_marks(json.loads(got["body"]["string"])) == expected_json(reply)
    assert got["headers"]["Set-Cookie"][0].startswith("sid=forge-scrubbed-")
