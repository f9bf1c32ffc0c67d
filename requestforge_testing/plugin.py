"""pytest fixtures for requestforge: a loopback API server, a fake clock, a requests mock.

Nothing here is autouse and importing this module patches nothing: a fixture only acts in
the tests that ask for it.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Generator, Iterator
from importlib.util import find_spec
from typing import TYPE_CHECKING, Final

import pytest

from requestforge_testing._cassette_pytest import CALL_FAILED, close_for_test, open_for_test
from requestforge_testing._cassettes import ForgeCassette
from requestforge_testing._clock import FakeClock
from requestforge_testing._oauth_server import OAuthServer
from requestforge_testing._providers import FakeTokenProvider, FakeTokenProviderFactory
from requestforge_testing._redis import RedisServer
from requestforge_testing._servers import ApiServer
from requestforge_testing._stress import StressRunner, forge_stress, run_stress_marker

if TYPE_CHECKING:
    import responses

#: The markers this plugin registers (so ``--strict-markers`` accepts them).
MARKERS: Final = (
    "forge_cassette(path=None, *, record_mode=None): replay (or record) the test's HTTP "
    "traffic from a vcrpy cassette with secrets scrubbed (default path "
    "<test dir>/cassettes/<module>/<test>.yaml); the marker alone activates the "
    "forge_cassette fixture.",
    "forge_stress(threads=8, rounds=1, switch_interval=1e-06, timeout=30.0): run the test "
    "body itself from that many threads released together, for that many rounds; the "
    "threads share the test's fixtures, and an error in any thread fails the test.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options and ini settings of the plugin."""
    group = parser.getgroup("requestforge", "requestforge_testing")
    group.addoption(
        "--forge-record-mode",
        action="store",
        default=None,
        choices=("none", "once", "new_episodes", "all"),
        help="vcrpy record mode for forge cassettes; overrides a marker's record_mode "
        "(default: the marker's, else none when CI is set, else once).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; nothing else happens at load time."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``@pytest.mark.forge_cassette`` alone activates the ``forge_cassette`` fixture."""
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and item.get_closest_marker("forge_cassette") is not None
            and "forge_cassette" not in item.fixturenames
        ):
            item.fixturenames.append("forge_cassette")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note whether a cassette test's body failed: its cassette then saves nothing."""
    report = yield
    if report.when == "call" and "forge_cassette" in getattr(item, "fixturenames", ()):
        item.stash[CALL_FAILED] = report.failed
    return report


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object | None:
    """Run a test marked ``forge_stress`` from many threads at once; leave the rest to pytest.

    The threads call the test function with the same fixture values; every thread's error
    is reported by ``StressReport.assert_no_errors``. A skip or xfail in every thread skips
    or xfails the test.
    """
    marker = pyfuncitem.get_closest_marker("forge_stress")
    if marker is None:
        return None
    __tracebackhide__ = True
    function = pyfuncitem.obj
    if inspect.iscoroutinefunction(function):
        pytest.fail(
            f"@pytest.mark.forge_stress cannot run the async test {pyfuncitem.nodeid}: "
            "call forge_stress() from a sync test instead",
            pytrace=False,
        )
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    run_stress_marker(
        functools.partial(function, **arguments),
        marker.args,
        marker.kwargs,
        passthrough=(pytest.skip.Exception, pytest.xfail.Exception),
    )
    return True


__all__ = [
    "forge_api_server",
    "forge_api_server_session",
    "forge_cassette",
    "forge_clock",
    "forge_oauth_server",
    "forge_oauth_server_session",
    "forge_redis",
    "forge_redis_cluster",
    "forge_redis_cluster_server",
    "forge_redis_server",
    "forge_responses",
    "forge_stress_fixture",
    "forge_token_provider",
    "forge_token_provider_factory",
]


@pytest.fixture(scope="session")
def forge_api_server_session() -> Iterator[ApiServer]:
    """One loopback server for the whole session: starting a server per test costs time."""
    with ApiServer() as server:
        yield server


@pytest.fixture
def forge_api_server(forge_api_server_session: ApiServer) -> ApiServer:
    """The session's server, reset first so no script, record or connection leaks in."""
    forge_api_server_session.reset()
    return forge_api_server_session


@pytest.fixture(scope="session")
def forge_oauth_server_session() -> Iterator[OAuthServer]:
    """One loopback OAuth server for the whole session, like forge_api_server_session."""
    with OAuthServer() as server:
        yield server


@pytest.fixture
def forge_oauth_server(forge_oauth_server_session: OAuthServer) -> OAuthServer:
    """The session's OAuth server, reset first: no token, record or script leaks in."""
    forge_oauth_server_session.reset()
    return forge_oauth_server_session


def _start_redis(*, cluster: bool) -> RedisServer:
    """A new RedisServer, or a skip saying what to install; under CI (``CI`` set to a true
    value) a failure instead, because a silently skipped Redis suite proves nothing."""
    missing = None
    if not RedisServer.available():
        missing = "redis-server not found: apt-get install redis-server"
    elif find_spec("redis") is None:
        missing = "the redis package is missing: pip install requestforge[redis]"
    if missing is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return RedisServer(cluster=cluster)


@pytest.fixture(scope="session")
def forge_redis_server() -> Iterator[RedisServer]:
    """One throwaway ``redis-server`` for the session; skipped (failed under CI) without one."""
    with _start_redis(cluster=False) as server:
        yield server


@pytest.fixture
def forge_redis(forge_redis_server: RedisServer) -> RedisServer:
    """The session's Redis server, flushed first so no key leaks in from another test."""
    forge_redis_server.flushall()
    return forge_redis_server


@pytest.fixture(scope="session")
def forge_redis_cluster_server() -> Iterator[RedisServer]:
    """One single-node Redis Cluster (every slot assigned) for the session; see forge_redis."""
    with _start_redis(cluster=True) as server:
        yield server


@pytest.fixture
def forge_redis_cluster(forge_redis_cluster_server: RedisServer) -> RedisServer:
    """The session's single-node cluster, flushed first; ``cluster_client()`` connects to it."""
    forge_redis_cluster_server.flushall()
    return forge_redis_cluster_server


@pytest.fixture
def forge_clock() -> Iterator[FakeClock]:
    """A FakeClock installed as the library's default clock for this test only."""
    with FakeClock().installed() as clock:
        yield clock


@pytest.fixture
def forge_cassette(request: pytest.FixtureRequest) -> Iterator[ForgeCassette]:
    """The test's :class:`ForgeCassette`: records its HTTP traffic once, secrets scrubbed,
    then replays it; ``@pytest.mark.forge_cassette(path, record_mode=...)`` configures it.

    With ``forge_clock`` in the same test, the clock is put at the recording's time. A test
    that fails saves no recording; a refused request the code caught fails the teardown.
    """
    cassette = open_for_test(request)
    yield cassette
    close_for_test(request, cassette)


@pytest.fixture
def forge_responses() -> Iterator[responses.RequestsMock]:
    """A started ``responses`` mock that fails the test if a registered call never happens."""
    import responses  # noqa: PLC0415 - only tests that ask for it pay for (or need) responses

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def forge_token_provider() -> Iterator[FakeTokenProvider]:
    """A fresh FakeTokenProvider on the default clock (so it follows ``forge_clock``).

    Resumed at teardown, so a test that fails while it is paused leaves no thread blocked.
    """
    provider = FakeTokenProvider()
    yield provider
    provider.resume()


@pytest.fixture(scope="session")
def forge_token_provider_factory() -> FakeTokenProviderFactory:
    """Makes a new FakeTokenProvider per call, with FakeTokenProvider's keywords.

    For hypothesis, whose examples all share one function-scoped fixture value: call it once
    per example. Session-scoped because it holds no state, which also keeps hypothesis's
    ``function_scoped_fixture`` health check quiet.
    """
    return FakeTokenProvider


# Registered as "forge_stress" under another attribute name: the package re-exports this
# module's fixtures, and there ``forge_stress`` must stay the plain function.
@pytest.fixture(name="forge_stress")
def forge_stress_fixture() -> StressRunner:
    """The ``forge_stress`` function: run a callable from many threads released at once."""
    return forge_stress
