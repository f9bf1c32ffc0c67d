"""The harness catches real bugs: three broken implementations fail on every run, the real
TokenManager and HttpClient pass.

The inner tests are deterministic, not lucky: before each round the token is dropped and
the provider paused, and it is resumed only once every thread of the round has looked in
the cache and found it empty (the storage counts who looked). From then on, a manager that
does not re-check the cache under a lock has already decided to fetch in every thread,
while a correct one has one leader inside the provider and everyone else waiting for it.
A shared session is seen by every thread whatever the timing.
"""

from __future__ import annotations

import pytest

from tests.inner_pytest import INNER_ARGS as SHARED_INNER_ARGS

INNER_ARGS = (*SHARED_INNER_ARGS, "-p", "no:randomly")
#: The inner session is run this many times: a broken implementation must fail every time.
RUNS = 3
THREADS = 8
ROUNDS = 5

INNER_TESTS = f"""
import threading

import pytest
import requests

from requestforge import HttpClient, InMemoryTokenStorage, TokenManager
from requestforge_testing import Reply

THREADS = {THREADS}
ROUNDS = {ROUNDS}
KEY = "mutant"


class WatchedStorage(InMemoryTokenStorage):
    \"\"\"Tells when every thread of the round has looked in the cache.\"\"\"

    def __init__(self):
        super().__init__()
        self._looked = set()
        self._cond = threading.Condition()

    def get(self, key):
        token = super().get(key)
        with self._cond:
            self._looked.add(threading.get_ident())
            self._cond.notify_all()
        return token

    def forget_lookers(self):
        with self._cond:
            self._looked.clear()

    def wait_for_lookers(self, n):
        with self._cond:
            return self._cond.wait_for(lambda: len(self._looked) >= n, timeout=20)


class NoLockManager:
    \"\"\"Mutation 1: check the cache, fetch, store; no lock at all.\"\"\"

    def __init__(self, provider, storage):
        self.provider, self.storage = provider, storage

    def get_token(self):
        token = self.storage.get(KEY)
        if token is None:
            token = self.provider.fetch_token()
            self.storage.set(KEY, token)
        return token

    def invalidate(self):
        self.storage.delete(KEY)


class NoRecheckManager(NoLockManager):
    \"\"\"Mutation 2: double-checked locking without the second check.\"\"\"

    def __init__(self, provider, storage):
        super().__init__(provider, storage)
        self.lock = threading.Lock()

    def get_token(self):
        token = self.storage.get(KEY)
        if token is None:
            with self.lock:
                token = self.provider.fetch_token()
                self.storage.set(KEY, token)
        return token


MANAGERS = {{
    "real": lambda provider, storage: TokenManager(provider, storage),
    "no_lock": NoLockManager,
    "no_recheck": NoRecheckManager,
}}


@pytest.mark.parametrize("kind", list(MANAGERS))
def test_single_fetch(kind, forge_stress, forge_token_provider):
    storage = WatchedStorage()
    manager = MANAGERS[kind](forge_token_provider, storage)
    releasers = []

    def release():
        storage.wait_for_lookers(THREADS)
        forge_token_provider.resume()

    def before_round(i):
        manager.invalidate()
        storage.forget_lookers()
        forge_token_provider.pause()
        releaser = threading.Thread(target=release, name=f"releaser-{{i}}")
        releaser.start()
        releasers.append(releaser)

    try:
        report = forge_stress(
            manager.get_token, threads=THREADS, rounds=ROUNDS, before_round=before_round
        )
    finally:
        forge_token_provider.resume()
        for releaser in releasers:
            releaser.join()
    report.assert_no_errors()
    report.assert_single_fetch(forge_token_provider)


class SharedSessionClient(HttpClient):
    \"\"\"Mutation 3: one requests.Session for every thread.\"\"\"

    def __init__(self):
        super().__init__()
        self._shared = requests.Session()

    @property
    def session(self):
        return self._shared

    def close(self):
        super().close()
        self._shared.close()


CLIENTS = {{"real": HttpClient, "shared_session": SharedSessionClient}}


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_per_thread_sessions(kind, forge_stress, forge_api_server):
    forge_api_server.add("/ping", Reply(json={{"ok": True}}))
    url = forge_api_server.url_for("/ping")
    with CLIENTS[kind]() as client:
        report = forge_stress(
            lambda: client.get(url).status_code,
            threads=THREADS,
            rounds=ROUNDS,
            sessions=client,
        )
        report.assert_per_thread_sessions(client)
    report.assert_no_errors()
    assert report.results == [200] * THREADS * ROUNDS
"""

EXPECTED = {
    "test_single_fetch[real]": "passed",
    "test_single_fetch[no_lock]": "failed",
    "test_single_fetch[no_recheck]": "failed",
    "test_per_thread_sessions[real]": "passed",
    "test_per_thread_sessions[shared_session]": "failed",
}


def run_inner(pytester: pytest.Pytester) -> dict[str, tuple[str, str]]:
    """Run the inner tests once; each test's outcome and failure text, by test name."""
    reprec = pytester.inline_run(*INNER_ARGS)
    reports = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    return {r.nodeid.split("::", 1)[1]: (r.outcome, r.longreprtext) for r in reports}


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with only this plugin loaded, holding the inner test file."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_mutants=INNER_TESTS)
    return pytester


def test_every_mutant_fails_on_every_run_and_the_real_ones_pass(inner: pytest.Pytester) -> None:
    """Run the inner session RUNS times: each run fails exactly the three mutants."""
    for _ in range(RUNS):
        outcomes = run_inner(inner)
        assert {name: outcome for name, (outcome, _) in outcomes.items()} == EXPECTED


def test_a_manager_without_a_lock_fetches_in_every_thread_of_every_round(
    inner: pytest.Pytester,
) -> None:
    """The no-lock mutant's failure lists all rounds, each with one fetch per thread."""
    _, text = run_inner(inner)["test_single_fetch[no_lock]"]
    for round_ in range(ROUNDS):
        assert f"round {round_}: {THREADS} fetches, expected 1: fetch #" in text
    assert f"by thread {THREADS - 1} (forge-stress-" in text


def test_a_manager_without_the_recheck_fetches_in_every_thread_of_every_round(
    inner: pytest.Pytester,
) -> None:
    """The lock-but-no-recheck mutant serialises its fetches but still makes one per thread."""
    _, text = run_inner(inner)["test_single_fetch[no_recheck]"]
    assert "expected exactly one token fetch in every round" in text
    for round_ in range(ROUNDS):
        assert f"round {round_}: {THREADS} fetches, expected 1" in text


def test_a_shared_session_is_reported_with_every_thread_that_used_it(
    inner: pytest.Pytester,
) -> None:
    """The shared-session mutant's failure names the one session and all its threads."""
    _, text = run_inner(inner)["test_per_thread_sessions[shared_session]"]
    assert "SharedSessionClient.session is not one session per thread" in text
    assert f"(Session) was shared by {THREADS * ROUNDS} threads: round 0 thread 0 (" in text
