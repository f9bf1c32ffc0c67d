"""What cassettes scrub and how they match: SecretScrubber (HTTP Basic's client id kept,
its secret hidden; extra names per test), RequestView/compare (per part, ``match_on``), the
checks on those options, and a hypothesis property over whole recorded cassettes (every
secret gone, the rest intact)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.serializers import yamlserializer

from requestforge import ConfigurationError
from requestforge_testing import ApiServer, ForgeCassette, RecordedRequest, Reply
from requestforge_testing._cassette_match import ASPECTS, RequestView, compare, same_text
from requestforge_testing._cassette_rules import MATCH_ON, CassetteRules
from requestforge_testing._scrubbing import SecretScrubber, basic_credentials, is_placeholder

#: What earlier tests declared secret must not change what these tests see hidden.
pytestmark = pytest.mark.usefixtures("forge_secrets")

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


def basic(user: str, secret: str) -> str:
    """An ``Authorization`` value with HTTP Basic credentials, as a client sends it."""
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


def test_basic_credentials_keep_the_client_id_and_hide_the_secret() -> None:
    """Basic is stored as ``Basic <id>:<placeholder>``, scrubbing it again changes nothing,
    and the secret is hidden wherever else it turns up."""
    scrubber = SecretScrubber()
    stored = scrubber.header("Authorization", basic("client-a", "pass-w0rd-99"))
    assert stored == "Basic client-a:forge-scrubbed-1"
    assert scrubber.header("Authorization", stored) == stored
    assert scrubber.text("the password is pass-w0rd-99") == "the password is forge-scrubbed-1"
    assert basic_credentials(stored.partition(" ")[2]) == ("client-a", "forge-scrubbed-1")
    proxy = scrubber.header("Proxy-Authorization", basic("proxy-user", "proxy-pass-1"))
    assert proxy == "Basic proxy-user:forge-scrubbed-2"


@pytest.mark.parametrize(
    ("user", "secret"),
    [
        ("my+app%40example.com", "s3cret%2F%2Bvalue"),  # RFC 6749 section 2.3.1, form-encoded
        ("my app@example.com", "s3cret/+value"),  # plain RFC 7617, as requests' auth= sends
    ],
)
def test_form_encoded_and_plain_ids_are_kept_as_sent(user: str, secret: str) -> None:
    """The id is stored exactly as it was sent, encoded or not, and both the sent and the
    form-decoded spelling of the secret are hidden elsewhere."""
    scrubber = SecretScrubber()
    assert scrubber.header("Authorization", basic(user, secret)) == f"Basic {user}:forge-scrubbed-1"
    assert scrubber.text(f"<{secret}>") == "<forge-scrubbed-1>"
    assert is_placeholder(scrubber.text(unquote_plus(secret)))


@pytest.mark.parametrize("secret", ["", "X", "abc"])
def test_an_api_key_sent_as_the_basic_user_is_hidden_whole(secret: str) -> None:
    """With an empty or dummy secret (``KEY:``, ``KEY:X``) the user part is the credential:
    the whole value becomes one placeholder, and the key is hidden elsewhere too."""
    scrubber = SecretScrubber()
    assert scrubber.header("Authorization", basic("key-9f8e7d6c5b4a", secret)) == (
        "Basic forge-scrubbed-1"
    )
    assert is_placeholder(scrubber.text("key-9f8e7d6c5b4a"))


def test_credentials_that_are_not_user_and_secret_become_one_placeholder() -> None:
    """Not base64, not UTF-8, no colon, or an old cassette's single placeholder: the whole
    credentials are one placeholder, as before."""
    scrubber = SecretScrubber()
    no_colon = "Basic " + base64.b64encode(b"just-a-key-1234").decode()
    not_utf8 = "Basic " + base64.b64encode(b"\xff\xfe:secret-1234").decode()
    for value in ("Basic not*base64", no_colon, not_utf8):
        assert is_placeholder(scrubber.header("Authorization", value).partition(" ")[2])
    assert scrubber.header("Authorization", "Basic forge-scrubbed-2") == "Basic forge-scrubbed-2"


def test_extra_headers_and_fields_are_scrubbed_too() -> None:
    """Names given per test are secrets on top of the defaults, case-insensitively: a whole
    header, form, query and JSON values at any depth (numbers too), and Basic whole."""
    scrubber = SecretScrubber(
        extra_headers=["X-Partner-Key", "Authorization"], extra_fields=["PWD", "pin"]
    )
    assert scrubber.header("x-partner-key", "partner-1234") == "forge-scrubbed-1"
    assert scrubber.header("Authorization", basic("client-a", "secret-value")) == (
        "Basic forge-scrubbed-2"
    )
    assert scrubber.body(b"user=ann&pwd=hunter22", FORM["Content-Type"]) == (
        b"user=ann&pwd=forge-scrubbed-3"
    )
    assert scrubber.url("https://h/p?Pwd=q-123456&q=1") == "https://h/p?Pwd=forge-scrubbed-4&q=1"
    data = {"Pin": 4321, "n": 5, "deep": {"pwd": ["a", 2, True]}, "access_token": 7}
    assert scrubber.json(data) == {
        "Pin": "forge-scrubbed-5",
        "n": 5,
        "deep": {"pwd": ["forge-scrubbed-6", "forge-scrubbed-7", True]},
        "access_token": 7,  # the defaults still leave numbers alone
    }
    assert SecretScrubber(extra_headers=["X-Other"]).header("X-Api-Key", "k") == (
        "forge-scrubbed-1"
    )


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
        ({"uri": "https://h/t"}, "host", "recorded http://h, sent https://h"),
        ({"uri": "http://h:81/t"}, "host", "recorded http://h, sent http://h:81"),
        ({"uri": "http://h/u"}, "path", "recorded /t, sent /u"),
        ({"uri": "http://h/t?a=1"}, "query", "not recorded: a"),
        ({"body": b"grant_type=y&scope=a"}, "grant_type", "recorded 'x', sent 'y'"),
        ({"body": b"grant_type=x&scope=b"}, "body", "changed: scope 'a' -> 'b'"),
        ({"body": b"grant_type=x"}, "body", "not sent: scope"),
        ({"Authorization": "Basic x"}, "auth_scheme", "recorded bearer, sent basic"),
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
    assert difference.aspect == "body"
    assert difference.detail == "$.d not recorded, $.a 1 -> 2, $.b.c not sent"


BASIC_A = "Basic client-a:forge-scrubbed-1"


@pytest.mark.parametrize(
    ("sent", "detail"),
    [
        ("Basic client-a:forge-scrubbed-9", None),  # another secret: still a match
        ("Basic client-b:forge-scrubbed-1", "recorded 'client-a', sent 'client-b'"),
        ("Bearer forge-scrubbed-2", "recorded 'client-a', sent no Basic credentials"),
        ("Basic forge-scrubbed-3", "recorded 'client-a', sent Basic credentials scrubbed whole"),
    ],
)
def test_the_basic_user_is_compared_and_the_secret_never(sent: str, detail: str | None) -> None:
    """The client id of Basic must be the recorded one; its secret may be any."""
    differences = compare(view(Authorization=BASIC_A), view(Authorization=sent))
    users = [d.detail for d in differences if d.aspect == "basic_user"]
    if detail is None:
        assert differences == []
    else:
        assert len(users) == 1
        assert users[0].startswith(detail)
        assert "forge-scrubbed" not in users[0]


@pytest.mark.parametrize(
    ("recorded", "sent", "where"),
    [
        ("my+app%40example.com", "my app@example.com", "in the recording only"),
        ("my app@example.com", "my+app%40example.com", "in the request only"),
        ("my%20app%40example.com", "my+app%40example.com", "differently"),
    ],
)
def test_an_id_that_differs_only_in_its_form_encoding_says_so(
    recorded: str, sent: str, where: str
) -> None:
    """Plain and form-encoded spellings differ on the wire, and the message names the one
    id they both stand for."""
    (difference,) = compare(
        view(Authorization=f"Basic {recorded}:forge-scrubbed-1"),
        view(Authorization=f"Basic {sent}:forge-scrubbed-1"),
    )
    assert str(difference) == (
        f"basic_user: recorded {recorded!r}, sent {sent!r} (the same id 'my app@example.com', "
        f"form-encoded {where}: RFC 6749 section 2.3.1 form-encodes an OAuth client id "
        "before Basic)"
    )


def test_credentials_recorded_whole_match_any_user() -> None:
    """An old cassette's ``Basic forge-scrubbed-1`` (or a key hidden whole) promises no user."""
    assert compare(view(Authorization="Basic forge-scrubbed-1"), view(Authorization=BASIC_A)) == []


def test_only_the_parts_asked_for_are_compared() -> None:
    """``aspects`` leaves the other parts out; body includes the grant type when grant_type
    is not compared on its own."""
    recorded = view(body=b"grant_type=x&scope=a", Authorization=BASIC_A)
    live = view(
        "PUT", "https://o/u?q=1", b"grant_type=y&scope=b", Authorization="Bearer t-1", DPoP="p"
    )
    assert [d.aspect for d in compare(recorded, live)] == list(ASPECTS)
    assert [str(d) for d in compare(recorded, live, ("body",))] == [
        "body: changed: grant_type 'x' -> 'y', scope 'a' -> 'b'"
    ]
    assert compare(recorded, live, ("query", "body")) == compare(recorded, live, ("body", "query"))
    assert compare(recorded, view(body=b"grant_type=x&scope=a"), ("method", "path")) == []


# -- the options a test gives: CassetteRules -----------------------------------------------


def test_rules_are_normalised() -> None:
    """Names become lower case and match_on follows the order of MATCH_ON, once each."""
    rules = CassetteRules.of(
        scrub_headers=("X-Key",), scrub_fields=["PWD"], match_on=["body", "method", "body"]
    )
    assert rules == CassetteRules(frozenset({"x-key"}), frozenset({"pwd"}), ("method", "body"))
    assert CassetteRules.of().match_on == MATCH_ON == ASPECTS


def test_later_rules_add_names_and_replace_match_on() -> None:
    """A marker on top of a config fixture adds secrets (never drops one) and may narrow
    or widen match_on."""
    base = CassetteRules.of(scrub_headers=["X-A"], match_on=["method"])
    assert base.extended({"scrub_headers": ["X-B"]}) == CassetteRules(
        frozenset({"x-a", "x-b"}), frozenset(), ("method",)
    )
    assert base.extended({"match_on": ["path"]}).match_on == ("path",)
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) record_mode: the rules are"):
        base.extended({"record_mode": "none"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scrub_headers": "X-Key"}, "scrub_headers must be a list of header names, not the "
         "single string 'X-Key': write ['X-Key']"),
        ({"scrub_headers": ["X Key"]}, "scrub_headers: 'X Key' is not a header name"),
        ({"scrub_headers": [None]}, "scrub_headers: each header name is a non-empty string"),
        ({"scrub_fields": 3}, "scrub_fields must be a list of field names, got 3"),
        ({"scrub_fields": [""]}, "scrub_fields: each field name is a non-empty string, not ''"),
        ({"match_on": "method"}, "match_on must be a list of parts, not the single string"),
        ({"match_on": ["method", "uri"]}, "match_on: unknown part 'uri' (vcrpy's 'uri' is "
         "host, path and query here); the parts are method, host, path, query, grant_type, "
         "body, auth_scheme, basic_user"),
        ({"match_on": []}, "match_on must name at least one part"),
    ],
)  # fmt: skip
def test_bad_rules_are_configuration_errors(options: dict[str, Any], message: str) -> None:
    """Each mistake is refused by ForgeCassette at construction, saying what is accepted."""
    with pytest.raises(ConfigurationError) as caught:
        ForgeCassette("c.yaml", **options)
    assert str(caught.value).startswith(message)


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
    credentials=st.tuples(
        secret_values,
        secret_values,
        secret_values,
        st.text(alphabet=SAFE, min_size=1, max_size=12).filter(lambda s: MARKER not in s),
    ),
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
    credentials: tuple[str, str, str, str],
    form: list[tuple[str, str]],
    reply: Any,
) -> None:
    """Whatever the headers, form and JSON reply, the cassette file holds no seeded secret,
    and every non-secret header, form value, JSON value and Basic user reads back unchanged."""
    headers = {k: v for k, v in headers.items() if (k in SECRET_HEADERS) == v.startswith(MARKER)}
    bearer, cookie, basic_secret, basic_user = credentials

    def answer(request: RecordedRequest) -> Reply:
        return Reply(json=reply, headers={"Set-Cookie": f"sid={cookie}; Path=/"})

    forge_api_server_session.add_handler("/property", answer)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "property.yaml"
        with ForgeCassette(path):
            requests.post(
                forge_api_server_session.url_for("/property"),
                headers={
                    **headers,
                    "Authorization": f"Bearer {bearer}",
                    "Proxy-Authorization": basic(basic_user, basic_secret),
                },
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
    scheme, _, stored = sent["headers"]["Proxy-Authorization"][0].partition(" ")
    user, secret = basic_credentials(stored) or ("", "")
    assert (scheme, user, is_placeholder(secret)) == ("Basic", basic_user, True)
    body = sent["body"] or ""
    sent_form = parse_qsl(body if isinstance(body, str) else body.decode(), keep_blank_values=True)
    expected_form = [(k, "<placeholder>" if k in SECRET_FIELDS else v) for k, v in form]
    assert [(k, "<placeholder>" if is_placeholder(v) else v) for k, v in sent_form] == expected_form
    assert placeholders_as_marks(json.loads(got["body"]["string"])) == expected_json(reply)
    assert got["headers"]["Set-Cookie"][0].startswith("sid=forge-scrubbed-")
