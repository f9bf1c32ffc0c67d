"""The plugin as users load it: fixtures work, nothing is autouse, nothing leaks out of a test."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import requestforge_testing
from requestforge._clock import get_default_clock
from tests.inner_pytest import INNER_ARGS

# Run the inner pytest like CI runs ours: plugin loaded explicitly, warnings and markers strict.
PROJECT_ROOT = Path(requestforge_testing.__file__).resolve().parent.parent

RunInner = Callable[..., pytest.RunResult]


@pytest.fixture
def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunInner:
    """Run pytest in-process with only this plugin: autoloaded plugins could mask what it does
    alone, and hypothesis's would be re-imported by every run, costing seconds each."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*INNER_ARGS, *args)

    return run


def test_fixtures_work_in_a_user_test_file(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """A user's tests can use forge_api_server and forge_clock together and pass."""
    pytester.makepyfile(
        """
        import requests
        from requestforge._clock import get_default_clock
        from requestforge_testing import ApiServer, FakeClock, Reply

        def test_server(forge_api_server: ApiServer) -> None:
            forge_api_server.add("/ok", Reply(json={"ok": True}))
            assert requests.get(forge_api_server.url_for("/ok"), timeout=5).json() == {"ok": True}
            assert [r.path for r in forge_api_server.requests] == ["/ok"]

        def test_clock(forge_clock: FakeClock) -> None:
            assert get_default_clock() is forge_clock
            forge_clock.sleep(30)
            assert forge_clock.sleeps == [30]
        """
    )
    result = run_inner()
    result.assert_outcomes(passed=2)


def test_every_test_gets_a_reset_server(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """Scripts and records from one test are gone in the next, though the server is shared."""
    pytester.makepyfile(
        """
        import requests
        from requestforge_testing import Reply

        URLS = []

        def test_first(forge_api_server):
            URLS.append(forge_api_server.url)
            forge_api_server.add("/x", Reply(body="x"))
            assert requests.get(forge_api_server.url_for("/x"), timeout=5).status_code == 200

        def test_second(forge_api_server):
            assert forge_api_server.url == URLS[0]
            assert forge_api_server.requests == []
            assert forge_api_server.connections_accepted == 0
            assert requests.get(forge_api_server.url_for("/x"), timeout=5).status_code == 404
        """
    )
    result = run_inner()
    result.assert_outcomes(passed=2)


def test_forge_clock_is_restored_after_the_test(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """The default clock after a forge_clock test is the one from before it, inside and out."""
    before = get_default_clock()
    pytester.makepyfile(
        """
        from requestforge._clock import get_default_clock
        from requestforge_testing import FakeClock

        ORIGINAL = get_default_clock()

        def test_uses_fake(forge_clock):
            assert get_default_clock() is forge_clock

        def test_fails_with_fake(forge_clock):
            raise AssertionError("failing must still restore the clock")

        def test_after():
            assert get_default_clock() is ORIGINAL
            assert not isinstance(get_default_clock(), FakeClock)
        """
    )
    result = run_inner()
    result.assert_outcomes(passed=2, failed=1)
    assert get_default_clock() is before


def test_loading_the_plugin_registers_no_autouse_fixture(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """A test that asks for nothing gets no forge_* fixture and sees the real default clock."""
    pytester.makepyfile(
        """
        from requestforge._clock import SystemClock, get_default_clock

        def test_plain(request):
            assert [f for f in request.fixturenames if f.startswith("forge")] == []
            assert isinstance(get_default_clock(), SystemClock)
        """
    )
    result = run_inner()
    result.assert_outcomes(passed=1)


def test_fixtures_are_listed_by_pytest(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """pytest --fixtures lists every forge fixture, so the plugin module registered them all."""
    pytester.makepyfile("def test_nothing(): pass")
    result = run_inner("--fixtures")
    assert result.ret == 0
    names = {name.removesuffix("_fixture") for name in requestforge_testing.plugin.__all__}
    assert {"forge_oauth_server", "forge_stress", "forge_token_provider_factory"} <= names
    for name in sorted(names):
        result.stdout.fnmatch_lines([f"{name} *"])


def test_forge_responses_mocks_requests_and_insists_calls_happen(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    """forge_responses answers registered calls and fails a test that leaves one unfired."""
    pytester.makepyfile(
        """
        import requests

        def test_mocked(forge_responses):
            forge_responses.get("https://api.invalid/users", json=[1])
            assert requests.get("https://api.invalid/users", timeout=5).json() == [1]

        def test_unfired(forge_responses):
            forge_responses.get("https://api.invalid/never")
        """
    )
    result = run_inner()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*Not all requests have been executed*"])


def test_importing_the_plugin_imports_no_mocking_library(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing requestforge_testing patches nothing: responses, vcr, time_machine stay
    unloaded until a fixture or method that needs them runs."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    code = (
        "import sys, requestforge_testing; "
        "loaded = {'responses', 'vcr', 'time_machine', 'freezegun'} & set(sys.modules); "
        "assert not loaded, loaded; "
        "assert requestforge_testing.ApiServer and requestforge_testing.FakeClock"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()


def test_the_package_imports_without_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pytest is missing the classes still import and the fixtures are simply absent."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    code = (
        "import sys; sys.modules['pytest'] = None; "  # makes find_spec/import see no pytest
        "import requestforge_testing as rt; "
        "assert rt.ApiServer and rt.Reply and rt.RecordedRequest and rt.FakeClock; "
        "assert not hasattr(rt, 'forge_clock'), 'fixtures need pytest'; "
        "assert 'requestforge_testing.plugin' not in sys.modules"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()


def test_installed_entry_point_loads_the_plugin(pytester: pytest.Pytester) -> None:
    """Without -p, the pytest11 entry point alone makes the fixtures available."""
    names = [ep.name for ep in entry_points(group="pytest11")]
    assert "requestforge_testing" in names, "install the project first: pip install -e ."
    pytester.makepyfile(
        """
        def test_autoloaded(forge_clock, forge_api_server):
            assert forge_api_server.url.startswith("http://127.0.0.1:")
        """
    )
    # Blocking hypothesis's plugin only saves the seconds its re-import costs every inner run.
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_readme_plugin_example_passes(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    """The README's example test file runs as printed and every test in it passes."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    examples = [block for block in blocks if "def test_" in block]
    assert len(examples) == 1
    pytester.makepyfile(test_readme=examples[0])
    result = run_inner()
    result.assert_outcomes(passed=examples[0].count("def test_"))


# -- without the testing extra: pytest installed on its own, the rest of the extra missing ---

HINT = "requestforge_testing needs the testing extra ({}): pip install 'requestforge[testing]'"
#: Blocked in sys.modules, they cannot be found: the extra is "not installed".
BLOCKED = ("responses", "vcr")
HINT_BLOCKED = HINT.format("responses, vcrpy not installed")
USER_TESTS = """
    import pytest

    def test_the_users_own(request):
        assert request.config.pluginmanager.has_plugin("requestforge_testing")

    def test_uses_a_fixture(forge_api_server):
        raise AssertionError("must not run")

    def test_asks_for_one_later(request):
        request.getfixturevalue("forge_clock")
        raise AssertionError("must not run")

    @pytest.mark.forge_stress(threads=2)
    def test_uses_a_marker():
        raise AssertionError("must not run")
    """


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the testing extra look uninstalled for in-process runs (find_spec sees None)."""
    for module in BLOCKED:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.usefixtures("without_extra")
def test_autoloaded_without_the_extra_only_its_own_tests_fail(pytester: pytest.Pytester) -> None:
    """Autoloaded by its entry point without the extra, the plugin leaves the user's own
    tests and --strict-markers alone; a test using one of its fixtures (even through
    getfixturevalue) or markers fails with the one line saying what to install."""
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=2)
    assert result.stdout.lines.count(HINT_BLOCKED) == 3  # the whole report of each
    assert result.stderr.str() == ""


@pytest.mark.usefixtures("without_extra")
def test_autoloaded_without_the_extra_a_run_without_its_tests_passes(
    pytester: pytest.Pytester,
) -> None:
    """A run of tests that never touch the plugin passes untouched, with warnings as errors."""
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest(
        "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "-W", "error"
    )
    result.assert_outcomes(passed=1)
    assert "testing extra" not in result.stdout.str() + result.stderr.str()


@pytest.mark.usefixtures("without_extra")
@pytest.mark.parametrize("autoload", [False, True], ids=["autoload off", "autoload on"])
@pytest.mark.parametrize("how", ["-p", "PYTEST_PLUGINS", "pytest_plugins"])
def test_asked_for_by_name_without_the_extra_pytest_stops_with_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, autoload: bool
) -> None:
    """Loaded by name (-p, PYTEST_PLUGINS or a conftest's pytest_plugins) without the extra,
    pytest stops at start-up with a usage error of exactly one line naming the extra, whether
    or not the entry point had loaded it already."""
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    if not autoload:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    if how == "-p":
        args += ["-p", "requestforge_testing"]
    elif how == "PYTEST_PLUGINS":
        monkeypatch.setenv("PYTEST_PLUGINS", "requestforge_testing")
    else:
        pytester.makeconftest("pytest_plugins = ['requestforge_testing']")
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [f"ERROR: {HINT_BLOCKED}"]


def test_the_package_imports_without_the_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pytest but none of responses, vcrpy and time-machine the classes and the plugin
    module import; freeze_wall_clock says what to install."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    code = (
        "import sys; sys.modules.update(responses=None, vcr=None, time_machine=None); "
        "import requestforge_testing as rt; "
        "assert rt.ApiServer and rt.FakeClock and rt.ForgeCassette and rt.forge_clock; "
        "clock = rt.FakeClock(); clock.advance(1); "
        "freeze = clock.freeze_wall_clock(); "
        "exec('try:\\n    freeze.__enter__()\\nexcept ImportError as e:\\n    print(e)')"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()
    assert result.outlines == [
        "FakeClock.freeze_wall_clock() needs time-machine: "
        + HINT.format("time-machine not installed")
    ]
