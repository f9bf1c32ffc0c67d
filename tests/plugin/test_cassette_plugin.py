"""The forge_cassette fixture and marker as a user's test file sees them (pytester).

Outcomes and messages of whole pytest runs: record once, replay offline, fail with a
readable diff, per-test scrub rules and matchers. ``test_cassettes.py`` drives
``ForgeCassette`` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from requestforge_testing import (
    ApiServer,
    CassetteError,
    ForgeCassette,
    Reply,
)
from tests.inner_pytest import INNER_ARGS
from tests.plugin.cassette_files import load

RunInner = Callable[..., pytest.RunResult]


@pytest.fixture
def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunInner:
    """Run pytest in-process with only this plugin and without CI in the environment."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*INNER_ARGS, *args)

    return run


FLOW_TEST = """
import os
import pytest
import requests
from requestforge_testing import Reply

VARIANT = os.environ.get("FORGE_VARIANT", "base")

@pytest.mark.forge_cassette
def test_flow(forge_api_server, request):
    forge_api_server.add("/oauth/token", Reply(json={"access_token": "tok-0123456789"}))
    forge_api_server.add("/oauth/other", Reply(json={"access_token": "tok-0123456789"}))
    data = {"grant_type": "client_credentials", "client_id": "c1", "client_secret": "s3cr3t-value"}
    method, path = "POST", "/oauth/token"
    if VARIANT == "method":
        method = "PUT"
    elif VARIANT == "url":
        path = "/oauth/other"
    elif VARIANT == "grant":
        data["grant_type"] = "password"
    elif VARIANT == "parameters":
        data["audience"] = "orders"
        del data["client_id"]
    answer = requests.request(method, forge_api_server.url_for(path), data=data, timeout=5)
    assert answer.json()["access_token"]
    cassette = request.getfixturevalue("forge_cassette")
    if cassette.replaying:
        assert forge_api_server.requests == []
"""


def cassette_file(pytester: pytest.Pytester, test: str = "test_flow") -> Path:
    """Where the inner test module's cassette for ``test`` lives."""
    module = next(pytester.path.glob("test_*.py")).stem
    return pytester.path / "cassettes" / module / f"{test}.yaml"


def test_marker_alone_records_then_replays(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """The marker activates the cassette: the first run records, the next replays offline."""
    pytester.makepyfile(FLOW_TEST)
    run_inner().assert_outcomes(passed=1)
    path = cassette_file(pytester)
    assert path.is_file()
    assert "s3cr3t-value" not in path.read_text()
    assert "tok-0123456789" not in path.read_text()
    run_inner("--forge-record-mode=none").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("method", "method: recorded POST, sent PUT"),
        ("url", "path: recorded /oauth/token, sent /oauth/other"),
        ("grant", "grant_type: recorded 'client_credentials', sent 'password'"),
        ("parameters", "body: not sent: client_id; not recorded: audience"),
    ],
)
def test_replay_mismatch_fails_with_a_readable_diff(
    pytester: pytest.Pytester,
    run_inner: RunInner,
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    expected: str,
) -> None:
    """Code that now sends another method, URL, grant type or parameter set fails on replay
    with the difference spelled out."""
    pytester.makepyfile(FLOW_TEST)
    run_inner().assert_outcomes(passed=1)
    monkeypatch.setenv("FORGE_VARIANT", variant)
    result = run_inner("--forge-record-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*this request is not in the cassette*test_flow.yaml*",
            "*closest recorded request, #1 (not played yet):*",
            "*differences:*",
            f"*{expected}*",
            "*record the cassette again (--forge-record-mode=all*",
        ]
    )


def test_missing_cassette_fails_clearly_under_ci(
    pytester: pytest.Pytester, run_inner: RunInner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CI the default mode is none: no cassette is an error saying how to record it."""
    pytester.makepyfile(FLOW_TEST)
    monkeypatch.setenv("CI", "true")
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*forge_cassette: no cassette at *test_flow.yaml*record mode 'none' only replays*",
            "*pytest --forge-record-mode=once *test_flow*",
        ]
    )
    assert not cassette_file(pytester).exists()


def test_option_overrides_the_marker_and_marker_path_is_used(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """A marker pinning mode none still records when the command line says once, at the
    marker's path."""
    pytester.makepyfile(
        """
        import pytest
        import requests
        from requestforge_testing import Reply

        @pytest.mark.forge_cassette("recorded/pinned.yaml", record_mode="none")
        def test_pinned(forge_api_server, forge_cassette):
            forge_api_server.add("/x", Reply(json={"n": 1}))
            assert requests.get(forge_api_server.url_for("/x"), timeout=5).json() == {"n": 1}
        """
    )
    run_inner().assert_outcomes(errors=1)  # the marker's none: nothing to replay
    run_inner("--forge-record-mode=once").assert_outcomes(passed=1)
    assert (pytester.path / "recorded" / "pinned.yaml").is_file()
    run_inner().assert_outcomes(passed=1)


def test_bad_marker_arguments_fail_the_test(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """An unknown record mode or keyword in the marker is reported, not ignored."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.forge_cassette(record_mode="rewrite")
        def test_mode():
            pass

        @pytest.mark.forge_cassette(mode="once")
        def test_keyword():
            pass
        """
    )
    result = run_inner()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*record_mode must be one of none, once, new_episodes, all*"])
    result.stdout.fnmatch_lines(["*forge_cassette marker takes*mode*"])


SCRUB_TEST = """
import pytest
from requestforge import (
    ClientCredentialsTokenProvider, HttpClient, HttpClientConfigBuilder,
    PasswordGrantTokenProvider, TokenManager,
)

@pytest.mark.forge_cassette
def test_flows(forge_oauth_server, forge_clock):
    server = forge_oauth_server
    server.issue_refresh_tokens = True
    client_credentials = ClientCredentialsTokenProvider(
        server.token_url, "forge-client", "forge-secret", client_auth="body"
    )
    password = PasswordGrantTokenProvider(
        server.token_url, "forge-client", "forge-secret", "forge-user", "forge-password"
    )
    for provider in (client_credentials, password):
        manager = TokenManager(provider)
        config = (
            HttpClientConfigBuilder().with_base_url(server.api_url).with_token_auth(manager)
            .with_header("X-Api-Key", "apikey-90d1c2b3")
            .with_header("Cookie", "sid=cookie-5e6f7a8b")
        )
        with HttpClient(config.build()) as client:
            assert client.get("/data", params={"access_token": "query-4c3b2a19"}).json()["ok"]
            forge_clock.advance(3600)
            assert client.get("/data").json()["ok"]
    with open("issued.txt", "w") as out:
        out.write("\\n".join(server.issued_tokens))
"""


def test_scrubbing_keeps_every_seeded_secret_out_of_the_file(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """Client secret, password, API key, cookie, query token and every issued token or
    refresh token are replaced, consistently, and the scheme names survive."""
    pytester.makepyfile(SCRUB_TEST)
    run_inner().assert_outcomes(passed=1)
    text = cassette_file(pytester, "test_flows").read_text()
    issued = (pytester.path / "issued.txt").read_text().split()
    seeded = ["forge-secret", "forge-password", "apikey-90d1c2b3", "cookie-5e6f7a8b"]
    seeded += ["query-4c3b2a19", "Zm9yZ2UtY2xpZW50OmZvcmdlLXNlY3JldA", "forge-rt-", *issued]
    assert len(issued) == 4
    assert [secret for secret in seeded if secret in text] == []
    for kept in (
        "Basic forge-client:forge-scrubbed-",
        "Bearer forge-scrubbed-",
        "sid=forge-scrubbed-",
    ):
        assert kept in text
    assert "grant_type=refresh_token" in text
    assert "username=forge-user" in text
    run_inner("--forge-record-mode=none").assert_outcomes(passed=1)


def test_threads_fail_loudly_in_the_test_or_at_teardown(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """A thread's request through the cassette fails the test naming the threads, and still
    fails it at teardown when the thread swallowed the error."""
    pytester.makepyfile(
        """
        import threading
        import pytest
        import requests
        from requestforge_testing import CassetteThreadError, Reply

        def in_thread(url, swallow):
            errors = []
            def work():
                try:
                    requests.get(url, timeout=5)
                except CassetteThreadError as exc:
                    errors.append(exc)
            thread = threading.Thread(target=work, name="worker-7")
            thread.start()
            thread.join()
            if errors and not swallow:
                raise errors[0]

        @pytest.mark.forge_cassette
        def test_raises(forge_api_server):
            forge_api_server.add("/x", Reply(json={}))
            in_thread(forge_api_server.url_for("/x"), swallow=False)

        @pytest.mark.forge_cassette
        def test_swallows(forge_api_server):
            forge_api_server.add("/x", Reply(json={}))
            in_thread(forge_api_server.url_for("/x"), swallow=True)
            assert forge_api_server.requests == []
        """
    )
    result = run_inner()
    result.assert_outcomes(failed=1, passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*opened in thread 'MainThread', but thread 'worker-7' sent GET http://loopback-1*"]
    )
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_swallows*", "*refused threads: 'worker-7'*"]
    )
    assert not list(pytester.path.glob("cassettes/*/*.yaml"))


CLOCK_TEST = """
from datetime import timedelta
import pytest
from requestforge import ClientCredentialsTokenProvider

@pytest.mark.forge_cassette(path="cassettes/clock.yaml")
def test_clock(forge_oauth_server, forge_cassette{clock}):
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, "forge-client", "forge-secret"
    )
    token = provider.fetch_token()
    {check}
"""


def test_recorded_time_is_restored_on_forge_clock(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """Recorded on the real clock, replayed with forge_clock: the clock starts at the
    recording's time and the token expires exactly one lifetime after it."""
    pytester.makepyfile(CLOCK_TEST.format(clock="", check="assert token.expires_at"))
    before = datetime.now(timezone.utc)
    run_inner().assert_outcomes(passed=1)
    metadata = load(pytester.path / "cassettes" / "clock.yaml")["requestforge"]
    assert isinstance(metadata, dict)
    when = datetime.fromisoformat(metadata["recorded_at"])
    assert before <= when <= datetime.now(timezone.utc)
    check = (
        "assert forge_clock.now() == forge_cassette.recorded_at == token.issued_at; "
        "assert token.expires_at == forge_cassette.recorded_at + timedelta(seconds=3600)"
    )
    pytester.makepyfile(CLOCK_TEST.format(clock=", forge_clock", check=check))
    run_inner("--forge-record-mode=none").assert_outcomes(passed=1)


def test_failed_test_saves_no_cassette(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """A test that fails while recording leaves no cassette, so the next run records anew."""
    pytester.makepyfile(
        """
        import pytest
        import requests
        from requestforge_testing import Reply

        @pytest.mark.forge_cassette
        def test_fails(forge_api_server):
            forge_api_server.add("/x", Reply(json={}))
            requests.get(forge_api_server.url_for("/x"), timeout=5)
            assert False, "the test itself failed"
        """
    )
    run_inner().assert_outcomes(failed=1)
    assert not list(pytester.path.glob("cassettes/*/*.yaml"))


def test_plugin_lists_option_and_marker_without_importing_vcrpy(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """--forge-record-mode and the marker are registered, and loading the plugin (or running
    a test without a cassette) does not import vcrpy (checked in a fresh interpreter)."""
    run_inner("--help").stdout.fnmatch_lines(["*--forge-record-mode={none,once,new_episodes,all}*"])
    run_inner("--markers").stdout.fnmatch_lines(["*@pytest.mark.forge_cassette(path=None*"])
    pytester.makepyfile(
        """
        import sys

        def test_plain():
            assert not [name for name in sys.modules if name.partition(".")[0] == "vcr"]
        """
    )
    pytester.runpytest_subprocess(*INNER_ARGS).assert_outcomes(passed=1)


def test_a_refused_save_still_stops_intercepting(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """After close() raised because the file could not be saved, HTTP is no longer patched:
    later requests reach the server instead of the dead cassette."""
    forge_api_server.add("/token", Reply(json={"access_token": "tok+en/with-slash"}))
    forge_api_server.add("/echo", Reply(body="you sent tok%2Ben%2Fwith-slash"))
    cassette = ForgeCassette(tmp_path / "leak.yaml").open()
    requests.get(forge_api_server.url_for("/token"), timeout=5)
    requests.get(forge_api_server.url_for("/echo"), timeout=5)
    with pytest.raises(CassetteError):
        cassette.close()
    forge_api_server.add("/after", Reply(json={"live": True}))
    results: list[object] = []
    thread = threading.Thread(
        target=lambda: results.append(
            requests.get(forge_api_server.url_for("/after"), timeout=5).json()
        )
    )
    thread.start()
    thread.join(10)
    assert results == [{"live": True}]  # another thread is not refused by the old cassette


BASIC_TEST = """
import os
import pytest
from requestforge import ClientCredentialsTokenProvider

@pytest.mark.forge_cassette
def test_token(forge_oauth_server):
    client_id = os.environ.get("FORGE_CLIENT_ID", "forge-client")
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, client_id, "forge-secret", max_retries=0
    )
    try:
        assert provider.fetch_token().access_token
    finally:
        provider.close()
"""


def test_a_changed_client_id_fails_replay_through_the_marker(
    pytester: pytest.Pytester, run_inner: RunInner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded with one client id, replayed with another: the test fails with both ids in
    the diff and the secret nowhere in the output."""
    pytester.makepyfile(BASIC_TEST)
    run_inner().assert_outcomes(passed=1)
    assert (
        "Basic forge-client:forge-scrubbed-1" in cassette_file(pytester, "test_token").read_text()
    )
    run_inner("--forge-record-mode=none").assert_outcomes(passed=1)
    monkeypatch.setenv("FORGE_CLIENT_ID", "partner-client")
    result = run_inner("--forge-record-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*differences:*", "*basic_user: recorded 'forge-client', sent 'partner-client'*"]
    )
    assert [line for line in result.outlines if line.startswith("E") and "secret" in line] == []


RULES_TEST = """
import os
import pytest
import requests
from requestforge_testing import Reply

VARIANT = os.environ.get("FORGE_VARIANT", "base")

@pytest.mark.forge_cassette(
    scrub_headers=["X-Partner-Key"], scrub_fields=["pwd"], match_on=("method", "path", "body")
)
def test_login(forge_api_server):
    forge_api_server.add("/login", Reply(json={"ok": True}))
    answer = requests.post(
        forge_api_server.url_for("/login"),
        params={"page": "2" if VARIANT == "query" else "1"},
        data={"user": "bob" if VARIANT == "body" else "ann", "pwd": "pwd-body-1c2d"},
        headers={"X-Partner-Key": "partner-9d0e"},
        timeout=5,
    )
    assert answer.json()["ok"]
"""


def test_marker_rules_scrub_more_and_match_less(
    pytester: pytest.Pytester, run_inner: RunInner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker's scrub_headers and scrub_fields keep their values out of the file; its
    match_on lets a new query replay and fails a new body value, saying what it compared."""
    pytester.makepyfile(RULES_TEST)
    run_inner().assert_outcomes(passed=1)
    text = cassette_file(pytester, "test_login").read_text()
    assert [secret for secret in ("partner-9d0e", "pwd-body-1c2d") if secret in text] == []
    monkeypatch.setenv("FORGE_VARIANT", "query")
    run_inner("--forge-record-mode=none").assert_outcomes(passed=1)
    monkeypatch.setenv("FORGE_VARIANT", "body")
    result = run_inner("--forge-record-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*compared (match_on): method, path, body*", "*body: changed: user 'ann' -> 'bob'*"]
    )


def test_config_fixture_gives_rules_and_the_marker_adds_to_them(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """A forge_cassette_config fixture sets the rules of every cassette in its scope; a
    marker adds names to scrub and may replace match_on."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def forge_cassette_config():
            return {"scrub_headers": ["X-Partner-Key"], "match_on": ["method", "path"]}

        def test_fixture_alone(forge_cassette):
            assert forge_cassette.scrub_headers == {"x-partner-key"}
            assert forge_cassette.scrub_fields == frozenset()
            assert forge_cassette.match_on == ("method", "path")

        @pytest.mark.forge_cassette(scrub_headers=["X-Other"], scrub_fields=["pwd"])
        def test_marker_adds(forge_cassette):
            assert forge_cassette.scrub_headers == {"x-partner-key", "x-other"}
            assert forge_cassette.scrub_fields == {"pwd"}
            assert forge_cassette.match_on == ("method", "path")

        @pytest.mark.forge_cassette(match_on=["body", "method"])
        def test_marker_replaces_match_on(forge_cassette):
            assert forge_cassette.match_on == ("method", "body")
        """
    )
    run_inner().assert_outcomes(passed=3)


def test_bad_rules_fail_the_test_at_setup(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """A wrong rule in the marker or the config fixture is an error before the test body
    runs, naming where it came from and what is accepted."""
    pytester.makepyfile(
        test_inner_bad_marker_rules="""
        import pytest

        @pytest.mark.forge_cassette(scrub_headers="X-Key")
        def test_string():
            raise AssertionError("never runs")

        @pytest.mark.forge_cassette(match_on=["uri"])
        def test_part():
            raise AssertionError("never runs")
        """,
        test_inner_bad_config_rules="""
        import pytest

        @pytest.fixture
        def forge_cassette_config():
            return {"scrub_header": ["X-Key"]}

        def test_typo(forge_cassette):
            raise AssertionError("never runs")
        """,
    )
    result = run_inner()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*forge_cassette marker: scrub_headers must be a list of header names, not the "
            "single string 'X-Key': write [[]'X-Key'[]]"
        ]
    )
    result.stdout.fnmatch_lines(
        ["*forge_cassette marker: match_on: unknown part 'uri' (vcrpy's 'uri' is host, path*"]
    )
    result.stdout.fnmatch_lines(
        ["*forge_cassette_config fixture: unknown option(s) scrub_header: the rules are*"]
    )
    assert "never runs" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


GUARDED_TEST = """
import os
import socket
import pytest
import requests
from requestforge_testing import Reply

REPLAY = bool(os.environ.get("CI"))

@pytest.fixture
def connects(monkeypatch):
    attempts = []
    if REPLAY:  # not one socket may connect
        def refuse(sock, address):
            attempts.append(address)
            raise ConnectionRefusedError(address)
        monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    if REPLAY:
        with open("connects.txt", "a") as out:
            out.write(f"{len(attempts)}\\n")

@pytest.mark.forge_cassette
def test_replayed(forge_api_server, connects):
    forge_api_server.add("/x", Reply(json={"n": 1}))
    assert requests.get(forge_api_server.url_for("/x"), timeout=5).json() == {"n": 1}

@pytest.mark.forge_cassette
def test_unmatched(forge_api_server, connects):
    forge_api_server.add("/x", Reply(json={"n": 1}))
    requests.get(forge_api_server.url_for("/y" if REPLAY else "/x"), timeout=5)
"""


def test_ci_replay_opens_no_connection(
    pytester: pytest.Pytester, run_inner: RunInner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CI (record mode none) neither a replayed nor a refused request makes the inner
    tests' socket guard see a connection attempt."""
    pytester.makepyfile(GUARDED_TEST)
    run_inner().assert_outcomes(passed=2)
    monkeypatch.setenv("CI", "true")
    result = run_inner()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*path: recorded /x, sent /y*"])
    assert (pytester.path / "connects.txt").read_text().split() == ["0", "0"]
