"""The suite-wide stress knobs: ``--forge-stress-seed`` and ``--forge-stress-repeat``.

Each test writes a user's test file that prints the seeds its ``forge_stress`` runs used,
runs it with pytester, and reads them back.
"""

from __future__ import annotations

import re

import pytest

from requestforge_testing._stress import DEFAULTS
from tests.inner_pytest import INNER_ARGS

SEEDS = """
    import pytest

    def test_function(forge_stress):
        report = forge_stress(lambda: None, threads=2, schedules=3)
        print(f"function seed={report.seed}")

    @pytest.mark.forge_stress(threads=2)
    def test_marker():
        pass

    def test_plain():
        print("plain ran")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with only this plugin loaded, and the seed-printing test file written."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_seeds=SEEDS)
    return pytester


def seeds_of(result: pytest.RunResult) -> list[int]:
    """The seeds the test file printed, in run order."""
    return [int(seed) for seed in re.findall(r"function seed=(\d+)", result.stdout.str())]


def test_the_seed_option_sets_every_run_that_gives_none(inner: pytest.Pytester) -> None:
    """--forge-stress-seed=N is the seed of a forge_stress call without seed=."""
    result = inner.runpytest(*INNER_ARGS, "-s", "--forge-stress-seed=4242")
    result.assert_outcomes(passed=3)
    assert seeds_of(result) == [4242]


def test_without_the_option_every_run_draws_a_new_seed(inner: pytest.Pytester) -> None:
    """Without --forge-stress-seed, two runs of the same test use different seeds."""
    seeds = [seeds_of(inner.runpytest(*INNER_ARGS, "-s", "-k", "function")) for _ in range(3)]
    assert len({tuple(s) for s in seeds}) > 1


def test_the_ini_setting_is_the_default_and_the_option_beats_it(inner: pytest.Pytester) -> None:
    """forge_stress_seed in the ini file applies, and --forge-stress-seed overrides it."""
    inner.makeini("[pytest]\nforge_stress_seed = 77\n")
    assert seeds_of(inner.runpytest(*INNER_ARGS, "-s")) == [77]
    assert seeds_of(inner.runpytest(*INNER_ARGS, "-s", "--forge-stress-seed=5")) == [5]


def test_repeat_runs_each_stress_test_n_times_with_seeds_of_their_own(
    inner: pytest.Pytester,
) -> None:
    """--forge-stress-repeat=N runs the fixture's and the marker's tests N times (the
    others once), and no two repetitions share a schedule's seed."""
    result = inner.runpytest(
        *INNER_ARGS, "-s", "-v", "--forge-stress-repeat=3", "--forge-stress-seed=100"
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "*test_function?stress-1-of-3? function seed=*",
            "*test_function?stress-3-of-3? function seed=*",
            "*test_marker?stress-2-of-3? PASSED*",
        ]
    )
    assert result.stdout.str().count("plain ran") == 1
    assert seeds_of(result) == [100, 103, 106]  # schedules=3: seeds 100-102, 103-105, 106-108


def test_the_repeat_ini_setting_applies(inner: pytest.Pytester) -> None:
    """forge_stress_repeat in the ini file repeats the stress tests too."""
    inner.makeini("[pytest]\nforge_stress_repeat = 2\n")
    inner.runpytest(*INNER_ARGS).assert_outcomes(passed=5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--forge-stress-seed=-1"], "--forge-stress-seed must be an integer >= 0, got '-1'"),
        (["--forge-stress-seed=abc"], "--forge-stress-seed must be an integer >= 0, got 'abc'"),
        (["--forge-stress-repeat=0"], "--forge-stress-repeat must be an integer >= 1, got '0'"),
    ],
)
def test_a_bad_value_is_a_usage_error(
    inner: pytest.Pytester, args: list[str], message: str
) -> None:
    """A seed or repeat count that is not a fitting integer stops the run with one line."""
    result = inner.runpytest(*INNER_ARGS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_bad_ini_value_names_the_ini_setting(inner: pytest.Pytester) -> None:
    """A bad forge_stress_repeat in the ini file is reported as the ini setting's error."""
    inner.makeini("[pytest]\nforge_stress_repeat = many\n")
    result = inner.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini forge_stress_repeat must be an integer >= 1, got 'many'*"])


def test_an_inner_run_leaves_the_outer_defaults_alone(inner: pytest.Pytester) -> None:
    """The seed an inner pytest run sets is gone once that run is over."""
    before = (DEFAULTS.seed, DEFAULTS.offset)
    inner.runpytest(*INNER_ARGS, "--forge-stress-seed=9", "--forge-stress-repeat=2")
    assert (DEFAULTS.seed, DEFAULTS.offset) == before


def test_the_printed_seed_replays_the_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure's seed line, given back as --forge-stress-seed, gives the same failure."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        test_lost_update="""
        class Counter:
            def __init__(self):
                self.calls = 0

            def call(self):
                self.calls += 1


        def test_counts(forge_stress):
            counter = Counter()
            report = forge_stress(counter.call, threads=4)
            report.assert_count(counter.calls, name="calls")
        """
    )
    first = pytester.runpytest(*INNER_ARGS)
    first.assert_outcomes(failed=1)
    found = re.search(r"seed (\d+): replay", first.stdout.str())
    assert found is not None
    lost = re.search(r"calls is \d+, expected 4", first.stdout.str())
    assert lost is not None
    again = pytester.runpytest(*INNER_ARGS, f"--forge-stress-seed={found.group(1)}")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"*{lost.group(0)}*", f"*seed {found.group(1)}: replay*"])
