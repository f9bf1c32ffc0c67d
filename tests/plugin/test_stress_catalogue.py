"""The catalogue of user bugs (``catalogue_of_user_bugs.py``), run as a user's test file.

Each bug must fail, with the message of the guarantee it breaks, and each correct twin must
pass, on the defaults and on every run. The suite runs the catalogue a few times;
``benchmarks/bench_stress_catalogue.py`` runs it a hundred times and counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.inner_pytest import INNER_ARGS

CATALOGUE = Path(__file__).with_name("catalogue_of_user_bugs.py")
#: Each run is a new random seed per forge_stress call: three runs, three schedules each.
RUNS = 3
#: What the failure of each bug must say, by test name (a parametrized id wins over it).
EXPECTED = {
    "test_a_token_cache_fetches_once[bug-stale_read]": "isinstance(token, TokenData)",
    "test_a_token_cache_fetches_once": "assert_single_fetch: expected exactly one token fetch",
    "test_a_lazily_made_manager_fetches_once": "assert_single_fetch: expected exactly one",
    "test_every_thread_gets_the_first_token": "== 'fake-access-1'",
    "test_the_token_is_stored_before_the_lock_is_released": "assert_single_fetch: expected",
    "test_the_storage_is_written_before_the_lock_is_released": "assert_single_fetch: expected",
    "test_a_response_hook_counts_every_response": "updates were lost",
    "test_a_call_counter_counts_every_call": "updates were lost",
    "test_two_clients_never_share_a_session": "not one session per thread and client",
    "test_each_thread_keeps_one_session": "is not one session per thread (",
    "test_no_token_is_handed_out_about_to_expire": "assert_fresh_tokens: 16 of 16 tokens",
    "test_a_burst_of_401s_refreshes_once": "assert_single_fetch: expected exactly one",
    "test_each_service_gets_its_own_token": "assert_single_fetch: expected exactly one",
}
#: The user's own assertion, not one of the report's: no seed line to expect.
OWN_ASSERTIONS = {"test_a_token_cache_fetches_once[bug-stale_read]"}
REPLAY = re.compile(r"seed \d+: replay with forge_stress\(\.\.\., seed=\d+\)")


def run_catalogue(pytester: pytest.Pytester) -> dict[str, pytest.TestReport]:
    """Every catalogue test's call report, by test name, from one inner run."""
    recorder = pytester.inline_run(*INNER_ARGS, "test_user_bug_catalogue.py")
    reports = recorder.getreports("pytest_runtest_logreport")
    assert not [r.nodeid for r in reports if r.when != "call" and not r.passed]
    return {r.nodeid.partition("::")[2]: r for r in reports if r.when == "call"}


def expected_message(name: str) -> str:
    """The text the failure of the bug ``name`` must contain."""
    return EXPECTED.get(name) or EXPECTED[name.partition("[")[0]]


def test_every_bug_fails_and_every_twin_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the defaults, in every run, each bug fails with its message and each twin passes."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user_bug_catalogue=CATALOGUE.read_text())
    for _ in range(RUNS):
        reports = run_catalogue(pytester)
        bugs = {name: r for name, r in reports.items() if "bug" in name.partition("[")[2]}
        twins = {name: r for name, r in reports.items() if name not in bugs}
        assert len(bugs) >= 15
        assert len(twins) == len(bugs)
        assert [name for name, r in twins.items() if not r.passed] == []
        assert [name for name, r in bugs.items() if not r.failed] == []
        unexplained = [
            name for name, r in bugs.items() if expected_message(name) not in r.longreprtext
        ]
        assert unexplained == []
        no_seed = [
            name
            for name, r in bugs.items()
            if name not in OWN_ASSERTIONS and not REPLAY.search(r.longreprtext)
        ]
        assert no_seed == []
