"""ForgeCassette and the forge_cassette fixture/marker: record once with secrets scrubbed,
replay without the server, fail with a readable diff, refuse other threads, restore time.

These tests drive ``ForgeCassette`` directly against the loopback server;
``test_cassette_plugin.py`` runs pytest inside pytest to check what a user sees.
"""

from __future__ import annotations

import base64
import errno
import gzip
import http.client
import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_plus

import pytest
import requests
import vcr
from requests.adapters import HTTPAdapter

from requestforge import ClientCredentialsTokenProvider, ClientSecretBasic, ConfigurationError
from requestforge_testing import (
    ApiServer,
    CassetteError,
    CassetteMismatchError,
    CassetteThreadError,
    FakeClock,
    ForgeCassette,
    MissingCassetteError,
    OAuthServer,
    Reply,
)
from requestforge_testing._cassette_pytest import cassette_path, resolve_record_mode
from requestforge_testing._cassettes import MATCH_ON
from requestforge_testing._scrubbing import is_placeholder
from tests.plugin.cassette_files import interactions, load, sent_headers

TOKEN = "at-7f3e2d1c0b9a"  # issued by the server, sent back by the client


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
        ({"path": "/tokens"}, "path: recorded /token, sent /tokens"),
        ({"grant": "password"}, "grant_type: recorded 'client_credentials', sent 'password'"),
        ({"extra": "scope"}, "body: not recorded: scope"),
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


def test_new_episodes_numbers_a_new_secret_after_the_recorded_ones(
    recorded: Path, forge_api_server: ApiServer
) -> None:
    """A secret first seen in a new episode takes a number no recorded placeholder has, so
    one placeholder never stands for two secrets in one file."""
    before = set(re.findall(r"forge-scrubbed-\d+", recorded.read_text(encoding="utf-8")))
    forge_api_server.add("/extra", Reply(json={"n": 2}))
    with ForgeCassette(recorded, record_mode="new_episodes"):
        headers = {"Authorization": "Bearer a-secret-only-the-new-episode-sends"}
        requests.get(forge_api_server.url_for("/extra"), headers=headers, timeout=5)
    headers_sent = interactions(recorded)[-1]["request"]["headers"]
    assert isinstance(headers_sent, dict)
    (sent,) = headers_sent["Authorization"]
    assert before
    assert sent.startswith("Bearer forge-scrubbed-")
    assert sent.removeprefix("Bearer ") not in before


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


# -- HTTP Basic: the client id is kept and compared, the secret never --------------------


def fetch_token(token_url: str, client_id: str, secret: str) -> str:
    """One client_credentials grant, the client authenticated by HTTP Basic (the default)."""
    provider = ClientCredentialsTokenProvider(token_url, client_id, secret, max_retries=0)
    try:
        return provider.fetch_token().access_token
    finally:
        provider.close()


@pytest.fixture
def basic_recorded(tmp_path: Path, forge_oauth_server: OAuthServer) -> Path:
    """A token grant recorded with forge-client under HTTP Basic; the server reset after."""
    path = tmp_path / "basic.yaml"
    with ForgeCassette(path):
        fetch_token(forge_oauth_server.token_url, "forge-client", "forge-secret")
    forge_oauth_server.reset()
    return path


def test_basic_is_stored_with_the_client_id_and_without_the_secret(basic_recorded: Path) -> None:
    """The file shows ``Basic forge-client:<placeholder>``: an id a reviewer can read, and
    neither the secret nor the credentials' base64."""
    (headers,) = sent_headers(basic_recorded)
    assert headers["Authorization"] == ["Basic forge-client:forge-scrubbed-1"]
    text = basic_recorded.read_text()
    assert "forge-secret" not in text
    assert base64.b64encode(b"forge-client:forge-secret").decode() not in text


def test_a_changed_client_id_fails_replay_naming_both_ids(
    basic_recorded: Path, forge_oauth_server: OAuthServer
) -> None:
    """Another client id is refused with both ids and no secret in the message; the same id
    with another secret replays; nothing reaches the server either way."""
    with ForgeCassette(basic_recorded, record_mode="none") as cassette:
        assert fetch_token(forge_oauth_server.token_url, "forge-client", "rotated-secret-2")
    assert cassette.all_played
    with (
        pytest.raises(CassetteMismatchError) as caught,
        ForgeCassette(basic_recorded, record_mode="none"),
    ):
        fetch_token(forge_oauth_server.token_url, "partner-client", "partner-secret-3")
    expected = "basic_user: recorded 'forge-client', sent 'partner-client'"
    assert [str(d) for d in caught.value.differences] == [expected]
    message = str(caught.value)
    assert f"    {expected}" in message.splitlines()
    secrets = ("forge-secret", "rotated-secret-2", "partner-secret-3")
    assert [secret for secret in secrets if secret in message] == []
    assert forge_oauth_server.token_requests == []


def test_match_on_without_basic_user_replays_another_client(
    basic_recorded: Path, forge_oauth_server: OAuthServer
) -> None:
    """Leaving basic_user out of match_on accepts any client id."""
    parts = [part for part in MATCH_ON if part != "basic_user"]
    with ForgeCassette(basic_recorded, record_mode="none", match_on=parts) as cassette:
        fetch_token(forge_oauth_server.token_url, "partner-client", "partner-secret-3")
    assert cassette.all_played
    assert cassette.match_on == tuple(parts)


def test_a_form_encoded_client_id_is_kept_as_sent(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """An id the OAuth client form-encodes (RFC 6749) is stored as sent with both spellings
    of its secret hidden, and a replay that sends it plain (requests' ``auth=``) fails
    saying that only the encoding differs."""
    path = tmp_path / "encoded.yaml"
    token_url = forge_api_server.url_for("/token")
    forge_api_server.add("/token", Reply(json={"access_token": TOKEN, "expires_in": 60}))
    client_id, secret = "my app@example.com", "s3cret/+value"
    provider = ClientCredentialsTokenProvider(
        token_url,
        client_id,
        None,
        client_auth=ClientSecretBasic(secret, encoding="form"),  # RFC 6749's strict form
        max_retries=0,
    )
    with ForgeCassette(path):
        provider.fetch_token()
    provider.close()
    text = path.read_text()
    assert "Basic my+app%40example.com:forge-scrubbed-1" in text
    assert [spelling for spelling in (secret, quote_plus(secret)) if spelling in text] == []
    data = {"grant_type": "client_credentials"}
    with pytest.raises(CassetteMismatchError) as caught, ForgeCassette(path, record_mode="none"):
        requests.post(token_url, data=data, auth=(client_id, secret), timeout=5)
    (difference,) = caught.value.differences
    assert difference.aspect == "basic_user"
    assert difference.detail.startswith(
        "recorded 'my+app%40example.com', sent 'my app@example.com' (the same id "
        "'my app@example.com', form-encoded in the recording only"
    )


# -- rules per test: more secrets, fewer parts compared --------------------------------------


def partner_login(server: ApiServer, *, user: str = "ann", page: str = "1") -> Any:
    """A login that sends a partner key header, a pwd field (form and query) and gets one
    back in JSON."""
    answer = requests.post(
        server.url_for("/login"),
        params={"page": page, "pwd": "pwd-query-7a8b"},
        data={"user": user, "pwd": "pwd-body-1c2d"},
        headers={"X-Partner-Key": "partner-9d0e"},
        timeout=5,
    )
    return answer.json()


def test_extra_names_are_scrubbed_and_match_on_narrows_replay(
    tmp_path: Path, forge_api_server: ApiServer
) -> None:
    """scrub_headers and scrub_fields hide what the defaults do not know is secret; with
    match_on=(method, path, body) another query replays and another body value is refused,
    the message naming the parts compared."""
    path = tmp_path / "partner.yaml"
    forge_api_server.add("/login", Reply(json={"ok": True, "Pwd": "pwd-echo-3f4a", "pin": 4321}))
    headers, fields = ["x-partner-key"], ["PWD", "pin"]
    with ForgeCassette(path, scrub_headers=headers, scrub_fields=fields) as cassette:
        assert partner_login(forge_api_server) == {"ok": True, "Pwd": "pwd-echo-3f4a", "pin": 4321}
    assert cassette.scrub_headers == frozenset({"x-partner-key"})
    assert cassette.scrub_fields == frozenset({"pwd", "pin"})
    text = path.read_text()
    seeded = ["partner-9d0e", "pwd-query-7a8b", "pwd-body-1c2d", "pwd-echo-3f4a", "4321"]
    assert [secret for secret in seeded if secret in text] == []
    assert is_placeholder(sent_headers(path)[0]["X-Partner-Key"][0])

    def replay() -> ForgeCassette:
        return ForgeCassette(
            path,
            record_mode="none",
            scrub_headers=headers,
            scrub_fields=fields,
            match_on=("method", "path", "body"),
        )

    with replay():
        assert partner_login(forge_api_server, page="2")["ok"]
    with pytest.raises(CassetteMismatchError) as caught, replay():
        partner_login(forge_api_server, user="bob")
    assert [str(d) for d in caught.value.differences] == ["body: changed: user 'ann' -> 'bob'"]
    assert "  compared (match_on): method, path, body" in str(caught.value).splitlines()
    assert len(forge_api_server.requests) == 1  # the recording's


# -- record mode none: never a connection ----------------------------------------------------


def http_client_get(server: ApiServer, path: str) -> object:
    """A GET through ``http.client`` itself, below requests and urllib3."""
    host, _, port = server.url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def idle_connections(session: requests.Session, url: str) -> list[Any]:
    """The live keep-alive connections in ``session``'s pools: vcrpy takes them out of the
    pool (8.5 without closing them), so a test keeps them to close them itself."""
    pools = cast("HTTPAdapter", session.get_adapter(url)).poolmanager.pools
    queues = [pools[key].pool for key in pools.keys()]  # noqa: SIM118 - not a dict
    return [c for queue in queues if queue is not None for c in queue.queue if c is not None]


@contextmanager
def no_connections() -> Iterator[list[object]]:
    """Refuse and note every socket connect, from any thread, while in the block."""
    attempts: list[object] = []

    def connect(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(
            errno.ECONNREFUSED, f"the test forbids connecting to {address}"
        )

    def connect_ex(sock: socket.socket, address: object) -> int:
        attempts.append(address)
        return errno.ECONNREFUSED

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield attempts


def test_record_mode_none_never_opens_a_connection(
    recorded: Path, forge_api_server: ApiServer
) -> None:
    """Under mode none, a replayed request, unmatched ones (another path, HTTPS, another
    host, http.client, a session holding a live keep-alive connection), a repeat and
    another thread's request all end without one socket connect or request reaching a
    server; and the same guard does see a real request."""
    flow = token_then_api(forge_api_server)
    forge_api_server.add("/warm", Reply(json={"warm": True}))
    session = requests.Session()
    assert session.get(forge_api_server.url_for("/warm"), timeout=5).json() == {"warm": True}
    idle = idle_connections(session, forge_api_server.url)
    assert len(idle) == 1
    accepted = forge_api_server.connections_accepted
    refused: list[CassetteError] = []

    def attempt(request: Callable[[], object]) -> None:
        try:
            request()
        except CassetteError as exc:
            refused.append(exc)

    unmatched = [
        lambda: requests.get(forge_api_server.url_for("/nowhere"), timeout=5),
        lambda: requests.post("https://127.0.0.1:9/token", timeout=5),
        lambda: requests.get("https://api.example.com/token", timeout=5),
        lambda: http_client_get(forge_api_server, "/http-client"),
        lambda: session.get(forge_api_server.url_for("/warm"), timeout=5),
        flow,  # played already
    ]
    with no_connections() as attempts:
        cassette = ForgeCassette(recorded, record_mode="none").open()
        assert flow() == {"ok": True}
        for request in unmatched:
            attempt(request)
        thread = threading.Thread(target=attempt, args=(flow,))
        thread.start()
        thread.join()
        with pytest.raises(CassetteError, match=r"7 request\(s\) refused"):
            cassette.close()
    assert attempts == []
    assert [type(e) for e in refused] == [CassetteMismatchError] * 6 + [CassetteThreadError]
    assert [r.path for r in forge_api_server.requests] == ["/warm"]
    assert forge_api_server.connections_accepted == accepted
    session.close()
    idle[0].close()
    with no_connections() as attempts, pytest.raises(requests.ConnectionError):
        requests.get(forge_api_server.url_for("/warm"), timeout=5)
    assert len(attempts) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"path": ""}, "path must be a non-empty path"),
        ({"path": 3}, "path must be a non-empty path"),
        ({"path": "c.yaml", "record_mode": "rewrite"}, "record_mode must be one of"),
        ({"path": "c.yaml", "clock": object()}, "clock must be a FakeClock"),
        ({"path": "c.yaml", "match_on": ["uri"]}, "match_on: unknown part 'uri'"),
        ({"path": "c.yaml", "scrub_fields": "pwd"}, "scrub_fields must be a list of field"),
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
    with pytest.raises(
        ModuleNotFoundError, match=r"vcrpy not installed\): pip install 'requestforge\[testing\]'"
    ):
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
