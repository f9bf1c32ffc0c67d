"""The plugin as a user's test file sees it (pytester): the fixture, and the marker that
runs the test body itself from many threads."""

from __future__ import annotations

import sys
import threading
import warnings

import pytest

import requestforge_testing
from requestforge_testing import (
    ForgeStressWarning,
    StressRunner,
    forge_stress,
)
from tests.inner_pytest import INNER_ARGS

# -- the plugin, as a user's test file sees it ----------------------------------------------


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with only this plugin loaded (autoloaded plugins could mask what it does)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_forge_stress_is_the_plain_function_in_the_package() -> None:
    """The package attribute is the callable function, not a pytest fixture definition."""
    assert requestforge_testing.forge_stress is forge_stress
    assert type(forge_stress).__name__ == "function"
    assert forge_stress(lambda: 1, threads=1).results == [1]


def test_the_new_fixtures_work_in_a_user_test_file(inner: pytest.Pytester) -> None:
    """forge_stress, forge_token_provider and forge_token_provider_factory work with -p."""
    inner.makepyfile(
        """
        import requestforge_testing
        from requestforge import TokenManager
        from requestforge_testing import FakeTokenProvider, forge_stress as plain_stress

        def test_stress_fixture(forge_stress, forge_token_provider):
            assert forge_stress is plain_stress is requestforge_testing.forge_stress
            manager = TokenManager(forge_token_provider)
            report = forge_stress(manager.get_token, threads=8, rounds=2)
            report.assert_no_errors()
            assert forge_token_provider.fetch_count == 1

        def test_plain_import_is_callable():
            assert plain_stress(lambda: 2, threads=3).results == [2, 2, 2]

        def test_factory(forge_token_provider_factory):
            one = forge_token_provider_factory(lifetime=None, service_name="a")
            two = forge_token_provider_factory(refresh_tokens=True)
            assert isinstance(one, FakeTokenProvider) and one is not two
            assert one.fetch_token().expires_at is None
            assert two.fetch_token().refresh_token == "fake-refresh-1"
        """
    )
    result = inner.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=3)


def test_the_fixtures_are_listed_under_their_public_names(inner: pytest.Pytester) -> None:
    """pytest --fixtures shows forge_stress by its registered name, not the attribute's."""
    inner.makepyfile("def test_nothing(): pass")
    result = inner.runpytest(*INNER_ARGS, "--fixtures")
    assert result.ret == 0
    for name in ("forge_stress", "forge_token_provider", "forge_token_provider_factory"):
        result.stdout.fnmatch_lines([f"{name} *"])
    assert "forge_stress_fixture" not in result.stdout.str()


def test_pytest_registers_fixtures_from_underscore_attributes(inner: pytest.Pytester) -> None:
    """A plugin's fixture held under a private attribute is registered by its name= (which is
    how the package keeps ``forge_stress`` the plain function)."""
    inner.makepyfile(
        hidden_plugin="""
        import pytest

        @pytest.fixture(name="shown")
        def _private_attribute():
            return "from a private attribute"
        """,
        test_user="""
        def test_uses_it(shown):
            assert shown == "from a private attribute"
        """,
    )
    inner.syspathinsert()
    result = inner.runpytest("-p", "hidden_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_forge_token_provider_is_resumed_after_a_failing_test(inner: pytest.Pytester) -> None:
    """A test that fails with its provider paused does not leave a caller blocked."""
    inner.makepyfile(
        """
        import threading

        HELD = []

        def test_fails_while_paused(forge_token_provider):
            forge_token_provider.pause()
            thread = threading.Thread(target=forge_token_provider.fetch_token)
            thread.start()
            HELD.append(thread)
            assert forge_token_provider.wait_until_called(1)
            raise AssertionError("failing with the provider paused")

        def test_the_caller_was_released():
            HELD[0].join(timeout=10)
            assert not HELD[0].is_alive()
        """
    )
    result = inner.runpytest(*INNER_ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)


# -- the marker form: the test body itself from many threads ----------------------------------


def test_the_marker_runs_the_body_from_many_threads_sharing_fixtures(
    inner: pytest.Pytester,
) -> None:
    """@pytest.mark.forge_stress(threads=4, rounds=3) calls the body 12 times, from 4 distinct
    worker threads per round, with one fixture value; unmarked tests run once, normally."""
    inner.makepyfile(
        """
        import threading
        import pytest

        SEEN = []

        @pytest.fixture
        def shared():
            return object()

        @pytest.mark.forge_stress(threads=4, rounds=3)
        def test_body(shared):
            SEEN.append((threading.current_thread().name, threading.get_ident(), id(shared)))

        def test_check():
            assert threading.current_thread() is threading.main_thread()
            assert len(SEEN) == 12
            assert len({fixture for _, _, fixture in SEEN}) == 1
            main = threading.main_thread().ident
            assert main not in {ident for _, ident, _ in SEEN}
            for r in range(3):
                names = {n for n, _, _ in SEEN if f"-r{r}-" in n}
                assert len(names) == 4
        """
    )
    result = inner.runpytest(*INNER_ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_marker_defaults_to_eight_threads_and_one_round(inner: pytest.Pytester) -> None:
    """A bare @pytest.mark.forge_stress runs the body from 8 threads, once each."""
    inner.makepyfile(
        """
        import threading
        import pytest

        NAMES = []

        @pytest.mark.forge_stress
        def test_body():
            NAMES.append(threading.current_thread().name)

        def test_check():
            assert len(NAMES) == len(set(NAMES)) == 8
            assert all("-r0-" in name for name in NAMES)
        """
    )
    result = inner.runpytest(*INNER_ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_failing_thread_fails_the_marked_test_naming_it(inner: pytest.Pytester) -> None:
    """Errors in some threads fail the test with one line per failed thread, and the first
    error's own traceback."""
    inner.makepyfile(
        """
        import threading
        import pytest

        @pytest.mark.forge_stress(threads=4)
        def test_body():
            name = threading.current_thread().name
            assert not name.endswith(("-t1", "-t3")), "odd thread " + name
        """
    )
    result = inner.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: odd thread forge-stress-*-r0-t*",
            "*2 of 4 forge_stress calls failed (4 threads x 1 round):",
            "*round 0 thread 1 (forge-stress-*-r0-t1): AssertionError: odd thread *",
            "*round 0 thread 3 (forge-stress-*-r0-t3): AssertionError: odd thread *",
        ]
    )


def test_a_skip_in_every_thread_skips_the_marked_test(inner: pytest.Pytester) -> None:
    """pytest.skip in every thread skips the test; in only some threads it is a failure."""
    inner.makepyfile(
        """
        import threading
        import pytest

        @pytest.mark.forge_stress(threads=3)
        def test_everywhere():
            pytest.skip("not on this platform")

        @pytest.mark.forge_stress(threads=3)
        def test_somewhere():
            if threading.current_thread().name.endswith("-t0"):
                pytest.skip("only one")
        """
    )
    result = inner.runpytest(*INNER_ARGS, "-rs")
    result.assert_outcomes(skipped=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*1 of 3 forge_stress calls failed*", "*not on this platform*"], consecutive=False
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("forge_stress(threads=2, round=3)", "*unexpected argument(s) round; it takes threads*"),
        ("forge_stress(4)", "*takes keyword arguments only*got positional (4,)*"),
        ("forge_stress(threads=0)", "*threads must be an int >= 1, got 0*"),
    ],
)
def test_bad_marker_arguments_fail_the_test_clearly(
    inner: pytest.Pytester, marker: str, message: str
) -> None:
    """Unknown, positional or invalid marker arguments fail the test with what was wrong."""
    inner.makepyfile(
        f"""
        import pytest

        CALLS = []

        @pytest.mark.{marker}
        def test_body():
            CALLS.append(1)

        def test_never_called():
            assert CALLS == []
        """
    )
    result = inner.runpytest(*INNER_ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([message])


def test_the_marker_refuses_async_tests(inner: pytest.Pytester) -> None:
    """An async test with the marker fails with a message instead of running un-awaited."""
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.forge_stress(threads=2)
        async def test_body():
            pass
        """
    )
    result = inner.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*forge_stress cannot run the async test*"])


def test_the_marker_is_registered_with_its_signature(inner: pytest.Pytester) -> None:
    """pytest --markers lists forge_stress with the defaults it really uses."""
    inner.makepyfile("def test_nothing(): pass")
    result = inner.runpytest(*INNER_ARGS, "--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.forge_stress(threads=8, rounds=1, switch_interval=1e-06, timeout=30.0, "
            "seed=None, schedules=1, preempt=True, preempt_packages=()):*"
        ]
    )


class _Tally:
    """A read-modify-write without a lock, for the preemption warnings below."""

    def __init__(self) -> None:
        self.calls = 0

    def call(self) -> None:
        self.calls += 1


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ preempts with sys.monitoring")
def test_a_thread_with_a_tracer_already_is_reported_not_silently_unpreempted(
    forge_stress: StressRunner,
) -> None:
    """Under another tracer (coverage.py's, on 3.10/3.11) a ForgeStressWarning says that
    the calls ran without forced interleavings."""

    def tracer(frame: object, event: str, arg: object) -> None:
        return None

    threading.settrace(tracer)
    try:
        with pytest.warns(ForgeStressWarning, match=r"16 of 16 calls .*coverage\.py"):
            forge_stress(_Tally().call, threads=16)
    finally:
        threading.settrace(None)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.10/3.11 preempt with sys.settrace")
def test_no_free_monitoring_tool_is_reported_not_silently_unpreempted(
    forge_stress: StressRunner,
) -> None:
    """When every sys.monitoring tool id forge_stress may take is in use, a
    ForgeStressWarning says the calls ran without forced interleavings."""
    monitoring = sys.monitoring  # type: ignore[attr-defined]
    taken = [tool for tool in (3, 4, 5) if monitoring.get_tool(tool) is None]
    for tool in taken:
        monitoring.use_tool_id(tool, "a profiler of the user's")
    try:
        with pytest.warns(ForgeStressWarning, match="8 of 8 calls .* tool id"):
            forge_stress(_Tally().call, threads=8)
    finally:
        for tool in taken:
            monitoring.free_tool_id(tool)


def test_preempt_false_never_warns(forge_stress: StressRunner) -> None:
    """With preempt=False nothing is traced and nothing is warned, tracer or not."""
    threading.settrace(lambda *_: None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report = forge_stress(_Tally().call, threads=4, preempt=False)
    finally:
        threading.settrace(None)
    report.assert_no_errors()
