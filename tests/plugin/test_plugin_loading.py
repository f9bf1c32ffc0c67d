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

# Run the inner pytest like CI runs ours: plugin loaded explicitly, warnings and markers strict.
INNER_ARGS: tuple[str, ...] = ("-p", "requestforge_testing", "-p", "no:cacheprovider")
INNER_ARGS += ("--strict-markers", "-W", "error")
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
    """Importing requestforge_testing patches nothing: responses, vcr, freezegun stay unloaded."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    code = (
        "import sys, requestforge_testing; "
        "loaded = {'responses', 'vcr', 'freezegun'} & set(sys.modules); "
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
