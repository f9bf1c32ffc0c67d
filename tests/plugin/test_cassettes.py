"""ForgeCassette and the forge_cassette fixture/marker: record once with secrets scrubbed,
replay without the server, fail with a readable diff, refuse other threads, restore time.

The first half drives ``ForgeCassette`` directly against the loopback server; the second
runs pytest inside pytest (``pytester``) to check what a user sees: outcomes and messages.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import vcr
from vcr.serializers import yamlserializer

from requestforge import ConfigurationError
from requestforge_testing import (
    ApiServer,
    CassetteError,
    CassetteMismatchError,
    CassetteThreadError,
    FakeClock,
    ForgeCassette,
    MissingCassetteError,
    Reply,
)
from requestforge_testing._cassette_pytest import cassette_path, resolve_record_mode

TOKEN = "at-7f3e2d1c0b9a"  # issued by the server, sent back by the client


def load(path: Path) -> dict[str, object]:
    """The cassette file as YAML data."""
    data = yamlserializer.deserialize(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interactions(path: Path) -> list[dict[str, dict[str, object]]]:
    """The recorded interactions of a cassette file."""
    found = load(path)["interactions"]
    assert isinstance(found, list)
    return found


def token_then_api(server: ApiServer) -> Callable[[], dict[str, object]]:
    """Script a token endpoint and an API that wants its token; return the client's flow."""
    server.add("/token", Reply(json={"access_token": TOKEN, "token_type": "Bearer"}))
    server.add_handler(
        "/api/items",
        lambda r: Reply(json={"ok": r.headers.get("Authorization") == f"Bearer {TOKEN}"}),
    )

    def flow() -> dict[str, object]:
        token = requests.post(
            server.url_for("/token"),
            data={"grant_type": "client_credentials", "client_secret": "cs-51c0e7a2"},
            timeout=5,
        ).json()["access_token"]
        answer = requests.get(
            server.url_for("/api/items"), headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        result = answer.json()
        assert isinstance(result, dict)
        return result

    return flow


@pytest.fixture
def recorded(tmp_path: Path, forge_api_server: ApiServer) -> Path:
    """A cassette recorded from the token-then-API flow; the server is reset afterwards."""
    path = tmp_path / "flow.yaml"
    flow = token_then_api(forge_api_server)
    with ForgeCassette(path):
        assert flow() == {"ok": True}
    forge_api_server.reset()
    return path


# -- ForgeCassette directly ----------------------------------------------------------------


def test_replay_sends_nothing_to_the_server(recorded: Path, forge_api_server: ApiServer) -> None:
    """Replayed under record mode none, the flow gets the recorded answers with no server."""
    flow = token_then_api(forge_api_server)
    forge_api_server.reset()  # no scripts: a request reaching the server would get a 404
    with ForgeCassette(recorded, record_mode="none") as cassette:
        assert flow() == {"ok": True}
        assert cassette.replaying
    assert cassette.play_count == 2
    assert cassette.all_played
    assert forge_api_server.requests == []


def test_the_same_secret_gets_the_same_placeholder(recorded: Path) -> None:
    """The issued token and the Authorization that carries it share one placeholder."""
    token_call, api_call = interactions(recorded)
    issued = json.loads(str(token_call["response"]["body"]["string"]))["access_token"]  # type: ignore[index]
    sent = api_call["request"]["headers"]["Authorization"]  # type: ignore[index]
    assert issued.startswith("forge-scrubbed-")
    assert sent == [f"Bearer {issued}"]
    assert TOKEN not in recorded.read_text()
    assert "cs-51c0e7a2" not in recorded.read_text()


def test_loopback_host_is_stable_and_unresolvable(
    recorded: Path, forge_api_server: ApiServer
) -> None:
    """The server's random port is replaced by loopback-1.invalid in every URI."""
    uris = [i["request"]["uri"] for i in interactions(recorded)]
    assert uris == ["http://loopback-1.invalid/token", "http://loopback-1.invalid/api/items"]
    assert str(forge_api_server.url.rpartition(":")[2]) not in recorded.read_text()


def test_file_is_plain_vcrpy_yaml(recorded: Path) -> None:
    """Stock vcrpy loads the file and replays a request to the placeholder host from it."""
    with vcr.VCR(record_mode="none").use_cassette(str(recorded)) as cassette:
        assert len(cassette) == 2
        answer = requests.post("http://loopback-1.invalid/token", timeout=5)
    assert answer.json()["access_token"].startswith("forge-scrubbed-")


def test_recorded_time_is_kept_and_restored(tmp_path: Path, forge_api_server: ApiServer) -> None:
    """The recording's clock time is stored, and a FakeClock is set back to it on replay."""
    path = tmp_path / "timed.yaml"
    flow = token_then_api(forge_api_server)
    recording_clock = FakeClock(datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc))
    with ForgeCassette(path, clock=recording_clock) as cassette:
        flow()
    assert cassette.recorded_at == recording_clock.now()
    assert load(path)["requestforge"] == {"format": 1, "recorded_at": "2031-05-06T07:08:09+00:00"}
    replay_clock = FakeClock()
    with ForgeCassette(path, record_mode="none", clock=replay_clock):
        assert replay_clock.now() == datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
        flow()


def test_missing_cassette_under_none_says_how_to_record(tmp_path: Path) -> None:
    """Record mode none without a file fails on entry, naming the file and the fix."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(MissingCassetteError) as caught, ForgeCassette(path, record_mode="none"):
        pass  # pragma: no cover - never entered
    assert "absent.yaml" in str(caught.value)
    assert "--forge-record-mode=once" in str(caught.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"method": "PUT"}, "method: recorded POST, sent PUT"),
        ({"path": "/tokens"}, "URL: recorded http://loopback-1.invalid/token, sent"),
        ({"grant": "password"}, "grant type: recorded 'client_credentials', sent 'password'"),
        ({"extra": "scope"}, "parameters: not recorded: scope"),
    ],
)
def test_mismatch_names_what_differs(
    recorded: Path, forge_api_server: ApiServer, change: dict[str, str], expected: str
) -> None:
    """A changed method, URL, grant type or parameter set is refused with that difference,
    the request never reaches the server, and the cassette file is left as it was."""
    before = recorded.read_text()
    data = {"grant_type": change.get("grant", "client_credentials"), "client_secret": "x"}
    if "extra" in change:
        data[change["extra"]] = "read"
    url = forge_api_server.url_for(change.get("path", "/token"))
    cassette = ForgeCassette(recorded, record_mode="none")
    with pytest.raises(CassetteMismatchError) as caught, cassette:
        requests.request(change.get("method", "POST"), url, data=data, timeout=5)
    message = str(caught.value)
    assert expected in message
    assert "closest recorded request, #1 (not played yet)" in message
    assert [d.aspect for d in caught.value.differences] == [expected.partition(":")[0]]
    assert forge_api_server.requests == []
    assert recorded.read_text() == before


def test_a_request_sent_more_often_than_recorded_is_refused(
    recorded: Path, forge_api_server: ApiServer
) -> None:
    """Replaying one interaction twice is refused, saying it was already played back."""
    flow = token_then_api(forge_api_server)
    cassette = ForgeCassette(recorded, record_mode="none").open()
    flow()
    with pytest.raises(CassetteMismatchError) as caught:
        flow()
    cassette.close(failed=True)
    assert "it matches recorded request #1, which was already played back" in str(caught.value)
    assert caught.value.differences == ()


def test_a_caught_refusal_is_raised_again_on_close(
    recorded: Path, forge_api_server: ApiServer
) -> None:
    """Code that swallows the refusal does not hide it: closing the cassette raises it."""
    cassette = ForgeCassette(recorded, record_mode="none").open()
    with pytest.raises(CassetteMismatchError):
        requests.delete(forge_api_server.url_for("/token"), timeout=5)
    with pytest.raises(CassetteMismatchError) as caught:
        cassette.close()
    assert "caught by the code under test" in str(caught.value)


@pytest.mark.parametrize("mode", ["once", "none"])
def test_another_thread_is_refused_loudly(
    tmp_path: Path, forge_api_server: ApiServer, mode: str
) -> None:
    """A request from a second thread fails naming both threads, never reaches the server,
    and is raised again when the cassette closes although the thread swallowed it."""
    path = tmp_path / "threads.yaml"
    forge_api_server.add("/ping", Reply(json={"pong": True}))
    if mode == "none":
        with ForgeCassette(path):
            requests.get(forge_api_server.url_for("/ping"), timeout=5)
        forge_api_server.reset()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            requests.get(forge_api_server.url_for("/ping"), timeout=5)
        except CassetteThreadError as exc:
            errors.append(exc)

    cassette = ForgeCassette(path, record_mode=mode).open()
    thread = threading.Thread(target=worker, name="forge-worker")
    thread.start()
    thread.join()
    with pytest.raises(CassetteThreadError) as caught:
        cassette.close()
    assert len(errors) == 1
    assert "thread 'MainThread', but thread 'forge-worker' sent GET" in str(errors[0])
    assert (caught.value.owner, caught.value.offender) == ("MainThread", "forge-worker")
    assert forge_api_server.requests == []


def test_a_failed_recording_is_not_saved(tmp_path: Path, forge_api_server: ApiServer) -> None:
    """An exception out of the block leaves no (half) cassette behind."""
    path = tmp_path / "failed.yaml"
    flow = token_then_api(forge_api_server)

    def record_then_fail() -> None:
        with ForgeCassette(path):
            flow()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        record_then_fail()
    assert not path.exists()


def test_record_mode_all_records_from_scratch(recorded: Path, forge_api_server: ApiServer) -> None:
    """Mode all neither replays nor merges: the file then holds only the new recording."""
    forge_api_server.add("/other", Reply(json={"n": 1}))
    with ForgeCassette(recorded, record_mode="all") as cassette:
        requests.get(forge_api_server.url_for("/other"), timeout=5)
        assert not cassette.replaying
    assert [i["request"]["uri"] for i in interactions(recorded)] == [
        "http://loopback-1.invalid/other"
    ]
    assert len(forge_api_server.requests) == 1


def test_new_episodes_adds_to_the_recording(recorded: Path, forge_api_server: ApiServer) -> None:
    """Mode new_episodes replays what it has and records what it has not."""
    flow = token_then_api(forge_api_server)
    forge_api_server.add("/extra", Reply(json={"n": 2}))
    with ForgeCassette(recorded, record_mode="new_episodes") as cassette:
        flow()
        requests.get(forge_api_server.url_for("/extra"), timeout=5)
    assert (cassette.play_count, cassette.recorded_count) == (2, 1)
    assert [r.path for r in forge_api_server.requests] == ["/extra"]
    assert len(interactions(recorded)) == 3


def test_gzipped_secrets_are_scrubbed(tmp_path: Path, forge_api_server: ApiServer) -> None:
    """A compressed token response is decoded before scrubbing, so its token is hidden too."""
    path = tmp_path / "gzip.yaml"
    body = gzip.compress(json.dumps({"access_token": TOKEN}).encode())
    forge_api_server.add(
        "/token",
        Reply(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}),
    )
    with ForgeCassette(path):
        assert (
            requests.get(forge_api_server.url_for("/token"), timeout=5).json()["access_token"]
            == TOKEN
        )
    assert TOKEN not in path.read_text()
    with ForgeCassette(path, record_mode="none"):
        replayed = requests.get(forge_api_server.url_for("/token"), timeout=5).json()
    assert replayed["access_token"].startswith("forge-scrubbed-")


def test_a_secret_the_scrubber_cannot_rewrite_stops_the_save(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """A known secret still visible (here percent-encoded in a text body) means the file is
    not written at all, and the error names its placeholder, not the secret."""
    path = tmp_path / "leak.yaml"
    secret = "tok+en/with-slash"
    forge_api_server.add("/token", Reply(json={"access_token": secret}))
    forge_api_server.add("/echo", Reply(body="you sent tok%2Ben%2Fwith-slash"))
    cassette = ForgeCassette(path).open()
    requests.get(forge_api_server.url_for("/token"), timeout=5)
    requests.get(forge_api_server.url_for("/echo"), timeout=5)
    with pytest.raises(CassetteError) as caught:
        cassette.close()
    assert "standing for forge-scrubbed-1 would still be visible" in str(caught.value)
    assert "tok" not in str(caught.value).replace("token", "")
    assert not path.exists()


def test_a_secret_that_is_also_a_field_name_is_saved(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """The password 'password' is hidden as a value while the field name stays readable."""
    path = tmp_path / "password.yaml"
    forge_api_server.add("/login", Reply(json={"ok": True}))
    with ForgeCassette(path):
        requests.post(
            forge_api_server.url_for("/login"),
            data={"username": "ann", "password": "password"},
            timeout=5,
        )
    (interaction,) = interactions(path)
    assert interaction["request"]["body"] == "username=ann&password=forge-scrubbed-1"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"path": ""}, "path must be a non-empty path"),
        ({"path": 3}, "path must be a non-empty path"),
        ({"path": "c.yaml", "record_mode": "rewrite"}, "record_mode must be one of"),
        ({"path": "c.yaml", "clock": object()}, "clock must be a FakeClock"),
    ],
)
def test_bad_arguments_are_configuration_errors(arguments: dict[str, object], message: str) -> None:
    """Wrong path, record mode or clock types fail at construction."""
    with pytest.raises(ConfigurationError, match=message):
        ForgeCassette(**arguments)  # type: ignore[arg-type]


def test_a_cassette_is_opened_once_and_closed_once(tmp_path: Path) -> None:
    """Opening a used cassette again, or closing one that is not open, is a RuntimeError."""
    cassette = ForgeCassette(tmp_path / "once.yaml")
    with pytest.raises(RuntimeError, match="is not open"):
        cassette.close()
    with cassette:
        pass
    with pytest.raises(RuntimeError, match="used once"):
        cassette.open()
    assert not (tmp_path / "once.yaml").exists()  # nothing recorded, nothing written


def test_missing_vcrpy_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without vcrpy, opening a cassette says which package to install."""
    monkeypatch.setitem(sys.modules, "vcr.cassette", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'vcrpy>=8.5'"):
        ForgeCassette(tmp_path / "c.yaml").open()


def test_cassette_errors_are_assertion_errors() -> None:
    """Every refusal is an AssertionError, so pytest reports a failure, not a crash."""
    for error in (CassetteMismatchError, CassetteThreadError, MissingCassetteError):
        assert issubclass(error, CassetteError)
    assert issubclass(CassetteError, AssertionError)


@pytest.mark.parametrize(
    ("option", "marker", "ci", "expected"),
    [
        (None, None, "", "once"),
        (None, None, "true", "none"),
        (None, None, "false", "once"),
        (None, "new_episodes", "true", "new_episodes"),
        ("all", "none", "true", "all"),
    ],
)
def test_record_mode_precedence(
    option: str | None, marker: str | None, ci: str, expected: str
) -> None:
    """Command line, then marker, then none under CI, else once."""
    assert resolve_record_mode(option, marker, {"CI": ci}) == expected


def test_default_cassette_path(request: pytest.FixtureRequest) -> None:
    """<test dir>/cassettes/<module>/<test>.yaml, relative overrides from the test's dir."""
    here = Path(__file__).parent
    assert cassette_path(request.node) == (
        here / "cassettes" / "test_cassettes" / "test_default_cassette_path.yaml"
    )
    assert cassette_path(request.node, "data/x.yaml") == here / "data" / "x.yaml"


# -- the plugin, as users see it (pytester) ------------------------------------------------

INNER_ARGS: tuple[str, ...] = ("-p", "requestforge_testing", "-p", "no:cacheprovider")
INNER_ARGS += ("--strict-markers", "-W", "error")

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
        ("url", "URL: recorded http://loopback-1.invalid/oauth/token, sent "),
        ("grant", "grant type: recorded 'client_credentials', sent 'password'"),
        ("parameters", "parameters: not sent: client_id; not recorded: audience"),
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
    for kept in ("Basic forge-scrubbed-", "Bearer forge-scrubbed-", "sid=forge-scrubbed-"):
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
