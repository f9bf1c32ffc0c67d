"""Cassettes scrub by what the library knows, and vcrpy's logs are redacted while recording.

SecretScrubber against a fixed set of declared secrets (the process-wide knowledge is
swapped for one the test controls), ForgeCassette and the forge_cassette marker recording
real loopback traffic sent through ApiKeyAuthHook with custom names (``Ocp-Apim-...``,
``?subscription-key=``, ``X-Partner-Key``), and the log filter on vcrpy's loggers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import requests

from requestforge import ApiKeyAuthHook, HttpClient, HttpClientConfigBuilder
from requestforge_testing import ApiServer, ForgeCassette, KnownSecrets, OAuthServer, Reply
from requestforge_testing._cassette_logs import VCR_LOGGERS, CassetteLogFilter
from requestforge_testing._cassette_match import same_text
from requestforge_testing._scrubbing import SecretScrubber, is_placeholder
from tests.inner_pytest import run_inner

APIM_KEY = "CANARY-cassette-apim-key-1a2b3c"
QUERY_KEY = "CANARY-cassette-query-key-4d5e6f"
PARTNER_KEY = "CANARY-cassette-partner-key-7a8b9c"
KEYS = (APIM_KEY, QUERY_KEY, PARTNER_KEY)


# -- SecretScrubber by knowledge -------------------------------------------------------------


def test_declared_names_hide_their_values_whole(forge_secrets: KnownSecrets) -> None:
    """A declared header and field are scrubbed whatever they are called; undeclared
    look-alikes are kept."""
    forge_secrets.declare(headers=["Ocp-Apim-Subscription-Key"], fields=["subscription-key", "pin"])
    scrubber = SecretScrubber()
    assert is_placeholder(scrubber.header("Ocp-Apim-Subscription-Key", "k-123"))
    assert scrubber.header("Ocp-Apim-Trace", "k-trace") == "k-trace"
    url = scrubber.url("https://api.example/v1?subscription-key=k-456&page=2")
    assert url == f"https://api.example/v1?subscription-key={scrubber.placeholder('k-456')}&page=2"
    body = scrubber.body(b'{"pin": 4321, "count": 3}', "application/json")
    assert json.loads(body) == {"pin": scrubber.placeholder("4321"), "count": 3}


def test_a_declared_value_is_replaced_wherever_it_appears(forge_secrets: KnownSecrets) -> None:
    """Header, path segment, query under an innocent name, JSON string, form, free text and
    a binary body: the declared value becomes the same placeholder everywhere."""
    secret = "CANARY-declared-value-0f0f"
    forge_secrets.declare(values=[secret])
    scrubber = SecretScrubber()
    mark = scrubber.placeholder(secret)
    assert scrubber.header("X-Echo", f"seen {secret}") == f"seen {mark}"
    assert scrubber.url(f"https://h.example/keys/{secret}?q={secret}") == (
        f"https://h.example/keys/{mark}?q={mark}"
    )
    assert json.loads(scrubber.body(json.dumps({"note": secret}).encode(), "application/json"))
    assert (
        secret
        not in scrubber.body(
            f"a={secret}&b=1".encode(), "application/x-www-form-urlencoded"
        ).decode()
    )
    assert scrubber.raw(b"\x00\xff" + secret.encode()) == b"\x00\xff" + mark.encode()
    assert scrubber.leaks(f"still {secret}") == [mark]


def test_short_declared_values_are_replaced_only_whole(
    forge_secrets: KnownSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A declared value too short to be told apart from text (four letters) hides a whole
    value, not every word containing it."""
    monkeypatch.setattr("requestforge._secrets.MIN_VALUE_LENGTH", 4)
    forge_secrets.declare(values=["k9z7"])
    scrubber = SecretScrubber()
    assert is_placeholder(scrubber.header("X-Other", "k9z7"))
    assert scrubber.text("ak9z7b") == "ak9z7b"


def test_placeholders_framing_and_grant_type_are_never_rewritten(
    forge_secrets: KnownSecrets,
) -> None:
    """A declared value inside a placeholder, a Content-Length, or spelled like a grant type
    leaves them alone: replay must still parse and match them."""
    forge_secrets.declare(values=["scrubbed-777001", "1234567", "password"])
    scrubber = SecretScrubber()
    assert scrubber.text("Bearer forge-scrubbed-777001") == "Bearer forge-scrubbed-777001"
    assert scrubber.header("Content-Length", "1234567") == "1234567"
    form = scrubber.body(b"grant_type=password&username=ann", "application/x-www-form-urlencoded")
    assert form == b"grant_type=password&username=ann"
    assert scrubber.leaks("forge-scrubbed-777001") == []


def test_a_live_placeholder_matches_a_recorded_value() -> None:
    """A value declared only after the recording is a placeholder on the live side alone:
    it still matches, either way round, but other text must still be equal."""
    assert same_text("/orders/42", "/orders/forge-scrubbed-9")
    assert same_text("/orders/forge-scrubbed-9", "/orders/42")
    assert not same_text("/orders/42", "/invoices/forge-scrubbed-9")


# -- ForgeCassette with custom-named API keys ------------------------------------------------


def send_with_keys(server: ApiServer) -> None:
    """One request per custom-named key, each hook as the issue describes it."""
    server.add("/orders", Reply(json={"orders": [], "echo": PARTNER_KEY}))
    hooks = [
        ApiKeyAuthHook(APIM_KEY, header_name="Ocp-Apim-Subscription-Key"),
        ApiKeyAuthHook(QUERY_KEY, query_param="subscription-key"),
        ApiKeyAuthHook(PARTNER_KEY, header_name="X-Partner-Key"),
    ]
    for hook in hooks:
        config = HttpClientConfigBuilder().with_base_url(server.url).with_auth_hook(hook).build()
        with HttpClient(config) as client:
            assert client.get("/orders", params={"page": "1"}).json()["orders"] == []


def test_custom_named_keys_never_reach_the_cassette_and_replay(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """Recorded over loopback, no key is in the file (nor the echo of one in a response),
    and the recording replays under record mode none without the server."""
    path = tmp_path / "keys.yaml"
    with ForgeCassette(path):
        send_with_keys(forge_api_server)
    text = path.read_text(encoding="utf-8")
    assert [key for key in KEYS if key in text] == []
    assert "forge-scrubbed-" in text
    forge_api_server.reset()
    with ForgeCassette(path, record_mode="none") as cassette:
        send_with_keys(forge_api_server)
    assert cassette.play_count == 3
    assert forge_api_server.requests == []


INNER_TEST = f"""
import pytest
from requestforge import ApiKeyAuthHook, HttpClient, HttpClientConfigBuilder
from requestforge_testing import Reply

HOOKS = {{
    "apim": lambda: ApiKeyAuthHook({APIM_KEY!r}, header_name="Ocp-Apim-Subscription-Key"),
    "query": lambda: ApiKeyAuthHook({QUERY_KEY!r}, query_param="subscription-key"),
    "partner": lambda: ApiKeyAuthHook({PARTNER_KEY!r}, header_name="X-Partner-Key"),
}}

@pytest.mark.forge_cassette
@pytest.mark.parametrize("name", sorted(HOOKS))
def test_key(forge_api_server, request, name):
    forge_api_server.add("/orders", Reply(json={{"orders": []}}))
    builder = HttpClientConfigBuilder().with_base_url(forge_api_server.url)
    with HttpClient(builder.with_auth_hook(HOOKS[name]()).build()) as client:
        assert client.get("/orders", params={{"page": "1"}}).json() == {{"orders": []}}
    if request.getfixturevalue("forge_cassette").replaying:
        assert forge_api_server.requests == []
"""


def test_the_marker_records_custom_named_keys_scrubbed_and_replays(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the marker, each custom-named key is recorded without the key, and the
    three cassettes replay green under record mode none."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_keys=INNER_TEST)
    run_inner(pytester, monkeypatch).assert_outcomes(passed=3)
    files = sorted((pytester.path / "cassettes" / "test_keys").glob("*.yaml"))
    assert len(files) == 3
    leaked = [(f.name, key) for f in files for key in KEYS if key in f.read_text()]
    assert leaked == []
    run_inner(pytester, monkeypatch, "--forge-record-mode=none").assert_outcomes(passed=3)


# -- vcrpy's logs while a cassette records ---------------------------------------------------


def test_vcrpy_logs_are_redacted_while_recording(
    tmp_path: Path,
    forge_api_server: ApiServer,
    forge_oauth_server: OAuthServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With DEBUG on, vcrpy's request lines and recorded responses (a token in the body)
    show neither the keys nor the issued token, and its records are still there."""
    caplog.set_level(logging.DEBUG)
    with ForgeCassette(tmp_path / "logs.yaml"):
        send_with_keys(forge_api_server)
        token = requests.post(
            forge_oauth_server.token_url,
            data={"grant_type": "client_credentials"},
            auth=("forge-client", "forge-secret"),
            timeout=5,
        ).json()["access_token"]
    vcr_lines = [r.getMessage() for r in caplog.records if r.name.startswith("vcr")]
    assert any(line.startswith("Appending request") for line in vcr_lines)
    assert any("subscription-key=[REDACTED]" in line for line in vcr_lines)
    shown = "\n".join(vcr_lines)
    assert [s for s in (*KEYS, token) if s in shown] == []


def test_the_log_filter_is_removed_when_the_cassette_closes(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """No filter stays on vcrpy's loggers after the cassette, even one that failed."""

    def ours() -> list[str]:
        return [
            name
            for name in VCR_LOGGERS
            if any(isinstance(f, CassetteLogFilter) for f in logging.getLogger(name).filters)
        ]

    forge_api_server.add("/x", Reply(json={}))
    cassette = ForgeCassette(tmp_path / "removed.yaml").open()
    assert ours() == list(VCR_LOGGERS)
    requests.get(forge_api_server.url_for("/x"), timeout=5)
    cassette.close(failed=True)
    assert ours() == []


def test_the_log_filter_redacts_structure_and_what_the_cassette_saw() -> None:
    """A response dict's secret headers and JSON token, a query secret in the line, and a
    secret only the scrubber knows are all hidden; other text stays."""
    scrubber = SecretScrubber()
    scrubber.placeholder("learned-secret-abcdef")
    log_filter = CassetteLogFilter(scrubber.hide)
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Set-Cookie": ["sid=cookie-value-123"], "Content-Type": ["application/json"]},
        "body": {"string": b'{"access_token": "body-token-98765", "kind": "ok"}'},
    }
    record = logging.LogRecord(
        "vcr.cassette",
        logging.INFO,
        __file__,
        1,
        "Appending request %s and response %s (%s)",
        ("GET http://h.example/?api_key=query-key-5555", response, "learned-secret-abcdef"),
        None,
    )
    assert log_filter.filter(record)
    line = record.getMessage()
    assert record.args is None
    hidden = ("cookie-value-123", "body-token-98765", "query-key-5555", "learned-secret-abcdef")
    assert [s for s in hidden if s in line] == []
    assert '"kind": "ok"' in line
    assert "Appending request GET http://h.example/" in line
