"""pytest fixtures for requestforge: a loopback API server, a fake clock, a requests mock.

Nothing here is autouse and importing this module patches nothing: a fixture only acts in
the tests that ask for it.
"""

from __future__ import annotations

import functools
import inspect
import os
import secrets
from collections.abc import Generator, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import pytest

from requestforge_testing._cassette_pytest import CALL_FAILED, close_for_test, open_for_test
from requestforge_testing._cassettes import ForgeCassette
from requestforge_testing._clock import FakeClock
from requestforge_testing._env import ci_is_set, missing_testing_extra, testing_extra_hint
from requestforge_testing._known import KnownSecrets
from requestforge_testing._memcached import MemcachedServer
from requestforge_testing._oauth_server import OAuthServer
from requestforge_testing._peers import AuthlibServer, DotServer
from requestforge_testing._providers import FakeTokenProvider, FakeTokenProviderFactory
from requestforge_testing._proxy import ProxyServer
from requestforge_testing._redis import RedisServer
from requestforge_testing._redis_cluster import RedisClusterDeployment
from requestforge_testing._redis_sentinel import RedisSentinel, RedisSentinelDeployment
from requestforge_testing._servers import ApiServer
from requestforge_testing._stress import DEFAULTS as STRESS_DEFAULTS
from requestforge_testing._stress import StressRunner, forge_stress, run_stress_marker
from requestforge_testing._tls import CertificateAuthority

if TYPE_CHECKING:
    import responses

#: The markers this plugin registers (so ``--strict-markers`` accepts them).
MARKERS: Final = (
    "forge_cassette(path=None, *, record_mode=None, scrub_headers=(), scrub_fields=(), "
    "match_on=None): replay (or record) the test's HTTP traffic from a vcrpy cassette with "
    "secrets scrubbed (default path <test dir>/cassettes/<module>/<test>.yaml); "
    "scrub_headers/scrub_fields name more secrets, match_on the parts compared (method, "
    "host, path, query, grant_type, body, auth_scheme, basic_user, jwt; all by default); the "
    "marker alone activates the forge_cassette fixture.",
    "forge_stress(threads=8, rounds=1, switch_interval=1e-06, timeout=30.0, seed=None, "
    "schedules=1, preempt=True, preempt_packages=()): run the test body itself from that "
    "many threads released together, for that many rounds; the threads share the test's "
    "fixtures, and an error in any thread fails the test. seed replays a schedule (every "
    "failure prints its seed), schedules=K tries K of them, preempt forces the threads to "
    "interleave inside your code.",
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
    group.addoption(
        "--forge-stress-seed",
        action="store",
        default=None,
        metavar="N",
        help="seed of every forge_stress run that sets none, to replay a failure's schedule "
        "(default: ini forge_stress_seed, else a new random seed per run).",
    )
    group.addoption(
        "--forge-stress-repeat",
        action="store",
        default=None,
        metavar="N",
        help="run every test that uses the forge_stress fixture or marker N times, each "
        "under new schedules (default: ini forge_stress_repeat, else 1).",
    )
    parser.addini("forge_stress_seed", "default of --forge-stress-seed", default="")
    parser.addini("forge_stress_repeat", "default of --forge-stress-repeat", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and read the stress options; nothing else happens at load
    time (see _check_testing_extra)."""
    _check_testing_extra(config)
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    seed = _stress_option(config, "seed", minimum=0)
    config.stash[_REPEAT] = _stress_option(config, "repeat", minimum=1) or 1
    config.stash[_PREVIOUS_DEFAULTS] = (STRESS_DEFAULTS.seed, STRESS_DEFAULTS.offset)
    STRESS_DEFAULTS.seed, STRESS_DEFAULTS.offset = seed, 0


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put back the stress defaults, for a pytest run inside this one (pytester)."""
    previous = config.stash.get(_PREVIOUS_DEFAULTS, None)
    if previous is not None:
        STRESS_DEFAULTS.seed, STRESS_DEFAULTS.offset = previous


# -- suite-wide stress settings -----------------------------------------------------------

#: --forge-stress-repeat, else its ini setting, else 1.
_REPEAT = pytest.StashKey[int]()
#: The parameter that numbers a test's repetitions (not an argument of the test).
_REPETITION: Final = "forge_stress_repetition"
#: The stress defaults (seed, offset) before this run set its own.
_PREVIOUS_DEFAULTS = pytest.StashKey[tuple[int | None, int]]()


def _stress_option(config: pytest.Config, name: str, *, minimum: int) -> int | None:
    """``--forge-stress-<name>``, else the ini ``forge_stress_<name>``, as an int or None."""
    flag = f"--forge-stress-{name}"
    raw = config.getoption(flag)
    source = flag
    if raw is None:
        raw, source = config.getini(f"forge_stress_{name}"), f"ini forge_stress_{name}"
    if raw is None or not str(raw).strip():
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise pytest.UsageError(f"{source} must be an integer >= {minimum}, got {raw!r}")
    return value


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Under ``--forge-stress-repeat=N``, every stress test runs N times (``[stress-2-of-N]``)."""
    repeat = metafunc.config.stash.get(_REPEAT, 1)
    uses_stress = "forge_stress" in metafunc.fixturenames or any(
        True for _ in metafunc.definition.iter_markers("forge_stress")
    )
    if repeat > 1 and uses_stress:
        metafunc.fixturenames.append(_REPETITION)
        metafunc.parametrize(
            _REPETITION,
            range(repeat),
            ids=[f"stress-{number + 1}-of-{repeat}" for number in range(repeat)],
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """A repetition's forge_stress runs draw seeds that no other repetition uses."""
    callspec = getattr(item, "callspec", None)
    STRESS_DEFAULTS.offset = callspec.params.get(_REPETITION, 0) if callspec else 0
    try:
        return (yield)
    finally:
        STRESS_DEFAULTS.offset = 0


# -- without the testing extra ----------------------------------------------------------
# The pytest11 entry point loads this plugin in every pytest run wherever requestforge is
# installed, also for a user who installed only the client and runs pytest for tests of
# their own: those runs must not break. Asked for by name (-p, PYTEST_PLUGINS, a conftest's
# pytest_plugins) the plugin refuses to start; autoloaded, it fails only the tests that use
# one of its fixtures or markers. Either way with the same one line.

#: The testing extra's missing distributions, found once per run by pytest_configure.
_MISSING_EXTRA = pytest.StashKey[tuple[str, ...]]()
_MARKER_NAMES: Final = tuple(marker.partition("(")[0] for marker in MARKERS)


def _check_testing_extra(config: pytest.Config) -> None:
    missing = missing_testing_extra()
    config.stash[_MISSING_EXTRA] = missing
    if missing and not _autoloaded(config):
        raise pytest.UsageError(testing_extra_hint(missing))


def _autoloaded(config: pytest.Config) -> bool:
    """Whether pytest loaded this plugin only because it is installed, not by name."""
    if getattr(config.option, "disable_plugin_autoload", False) or os.environ.get(
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
    ):
        return False
    named = [*(getattr(config.option, "plugins", None) or ())]
    named += os.environ.get("PYTEST_PLUGINS", "").split(",")
    for plugin in config.pluginmanager.get_plugins():  # conftests' pytest_plugins
        requested = getattr(plugin, "pytest_plugins", ()) if inspect.ismodule(plugin) else ()
        named += requested.split(",") if isinstance(requested, str) else requested
    return not any(name.strip().partition(".")[0] == "requestforge_testing" for name in named)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without the testing extra, a test marked with one of this plugin's markers fails."""
    missing = item.config.stash.get(_MISSING_EXTRA, ())
    if missing and any(item.get_closest_marker(name) for name in _MARKER_NAMES):
        pytest.fail(testing_extra_hint(missing), pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> object | None:
    """Without the testing extra, a test that uses one of this plugin's fixtures fails."""
    missing = request.config.stash.get(_MISSING_EXTRA, ())
    if missing and getattr(fixturedef.func, "__module__", None) == __name__:
        pytest.fail(testing_extra_hint(missing), pytrace=False)
    return None


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
    "forge_authlib_server",
    "forge_authlib_server_session",
    "forge_cassette",
    "forge_clean_environment",
    "forge_clock",
    "forge_dot_server",
    "forge_dot_server_session",
    "forge_memcached",
    "forge_memcached_server",
    "forge_oauth_server",
    "forge_oauth_server_session",
    "forge_proxy",
    "forge_proxy_server",
    "forge_redis",
    "forge_redis_acl",
    "forge_redis_acl_server",
    "forge_redis_cluster",
    "forge_redis_cluster_deployment",
    "forge_redis_cluster_server",
    "forge_redis_sentinel",
    "forge_redis_sentinel_deployment",
    "forge_redis_server",
    "forge_redis_sharded_cluster",
    "forge_redis_tls",
    "forge_redis_tls_server",
    "forge_responses",
    "forge_stress_fixture",
    "forge_tls",
    "forge_tls_api_server",
    "forge_tls_api_server_session",
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


@pytest.fixture(scope="session")
def forge_tls() -> Iterator[CertificateAuthority]:
    """A throwaway CA with server and client certificates as PEM files, for the session:
    ``verify=forge_tls.ca_bundle``, ``cert=forge_tls.client_cert``."""
    with CertificateAuthority() as authority:
        yield authority


@pytest.fixture(scope="session")
def forge_tls_api_server_session(forge_tls: CertificateAuthority) -> Iterator[ApiServer]:
    """One HTTPS loopback server for the session, which requires a client certificate
    signed by ``forge_tls``: a client without one fails the handshake."""
    with ApiServer(ssl_context=forge_tls.server_context()) as server:
        yield server


@pytest.fixture
def forge_tls_api_server(forge_tls_api_server_session: ApiServer) -> ApiServer:
    """The session's HTTPS server, reset first like forge_api_server."""
    forge_tls_api_server_session.reset()
    return forge_tls_api_server_session


def _skip_or_fail(missing: str) -> NoReturn:
    """A skip saying what to install; under CI (``ci_is_set()``, the cassettes' rule too) a
    failure instead: a silently skipped suite proves nothing."""
    if ci_is_set():
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing)


def _need_peer(missing: tuple[str, ...]) -> None:
    """A skip (a failure under CI) naming the peer server's missing packages, if any."""
    if missing:
        _skip_or_fail(f"{', '.join(missing)} not installed: pip install 'requestforge[dev]'")


@pytest.fixture(scope="session")
def forge_authlib_server_session() -> Iterator[AuthlibServer]:
    """authlib's Flask authorization server on loopback for the session (see
    :class:`AuthlibServer`); skipped (failed under CI) without authlib and Flask."""
    _need_peer(AuthlibServer.missing())
    with AuthlibServer() as server:
        yield server


@pytest.fixture
def forge_authlib_server(forge_authlib_server_session: AuthlibServer) -> AuthlibServer:
    """The session's authlib server, reset first: no token, JWT id or count leaks in."""
    forge_authlib_server_session.reset()
    return forge_authlib_server_session


@pytest.fixture(scope="session")
def forge_dot_server_session() -> Iterator[DotServer]:
    """django-oauth-toolkit in a child process for the session (migrations take seconds);
    skipped (failed under CI) without django-oauth-toolkit."""
    _need_peer(DotServer.missing())
    with DotServer() as server:
        yield server


@pytest.fixture
def forge_dot_server(forge_dot_server_session: DotServer) -> DotServer:
    """The session's DOT server, reset first: no token, added client or count leaks in."""
    forge_dot_server_session.reset()
    return forge_dot_server_session


@pytest.fixture(scope="session")
def forge_proxy_server() -> Iterator[ProxyServer]:
    """One ``tinyproxy`` forward proxy for the session; skipped (failed under CI) without one."""
    if not ProxyServer.available():
        _skip_or_fail(ProxyServer._not_found())
    with ProxyServer() as server:
        yield server


@pytest.fixture
def forge_proxy(forge_proxy_server: ProxyServer) -> ProxyServer:
    """The session's proxy, reset first so ``request_lines`` holds only this test's requests."""
    forge_proxy_server.reset()
    return forge_proxy_server


def _need_redis(*, sentinel: bool = False) -> None:
    """A skip (a failure under CI) saying what to install, unless Redis can be started."""
    if not RedisServer.available():
        _skip_or_fail(RedisServer._not_found())
    elif sentinel and not RedisSentinel.available():
        _skip_or_fail(RedisSentinel._not_found())
    elif find_spec("redis") is None:
        _skip_or_fail("the redis package is missing: pip install requestforge[redis]")


def _start_redis(*, cluster: bool) -> RedisServer:
    """A new RedisServer, or a skip (a failure under CI) saying what to install."""
    _need_redis()
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


@pytest.fixture(scope="session")
def forge_redis_tls_server(forge_tls: CertificateAuthority) -> Iterator[RedisServer]:
    """One ``redis-server`` for the session that speaks TLS only, with ``forge_tls``'s
    server certificate: ``url`` is ``rediss://...?ssl_ca_certs=<forge_tls.ca_bundle>``."""
    _need_redis()
    with RedisServer(tls=forge_tls) as server:
        yield server


@pytest.fixture
def forge_redis_tls(forge_redis_tls_server: RedisServer) -> RedisServer:
    """The session's TLS Redis, flushed first like forge_redis."""
    forge_redis_tls_server.flushall()
    return forge_redis_tls_server


@pytest.fixture(scope="session")
def forge_redis_acl_server() -> Iterator[RedisServer]:
    """One ``redis-server`` for the session with one ACL user (``username``, a random
    ``password``) and the default user disabled; ``url`` carries the credentials."""
    _need_redis()
    with RedisServer(username="forge-user", password=secrets.token_urlsafe(24)) as server:
        yield server


@pytest.fixture
def forge_redis_acl(forge_redis_acl_server: RedisServer) -> RedisServer:
    """The session's ACL Redis, flushed first like forge_redis."""
    forge_redis_acl_server.flushall()
    return forge_redis_acl_server


@pytest.fixture(scope="session")
def forge_redis_sentinel_deployment() -> Iterator[RedisSentinelDeployment]:
    """One Sentinel deployment for the session (a master, a replica, three sentinels);
    skipped (failed under CI) without ``redis-sentinel``. Tests may fail it over."""
    _need_redis(sentinel=True)
    with RedisSentinelDeployment() as deployment:
        yield deployment


@pytest.fixture
def forge_redis_sentinel(
    forge_redis_sentinel_deployment: RedisSentinelDeployment,
) -> RedisSentinelDeployment:
    """The session's Sentinel deployment, flushed first (on whichever server is master)."""
    forge_redis_sentinel_deployment.flushall()
    return forge_redis_sentinel_deployment


@pytest.fixture(scope="session")
def forge_redis_cluster_deployment() -> Iterator[RedisClusterDeployment]:
    """One Redis Cluster of three masters for the session. Tests may migrate slots."""
    _need_redis()
    with RedisClusterDeployment() as deployment:
        yield deployment


@pytest.fixture
def forge_redis_sharded_cluster(
    forge_redis_cluster_deployment: RedisClusterDeployment,
) -> RedisClusterDeployment:
    """The session's three-master cluster, every node flushed first."""
    forge_redis_cluster_deployment.flushall()
    return forge_redis_cluster_deployment


@pytest.fixture(scope="session")
def forge_memcached_server() -> Iterator[MemcachedServer]:
    """One throwaway ``memcached`` for the session; skipped (failed under CI) without one."""
    if not MemcachedServer.available():
        _skip_or_fail(MemcachedServer._not_found())
    with MemcachedServer() as server:
        yield server


@pytest.fixture
def forge_memcached(forge_memcached_server: MemcachedServer) -> MemcachedServer:
    """The session's memcached, flushed first so no item leaks in from another test."""
    forge_memcached_server.flushall()
    return forge_memcached_server


#: What requests reads from the environment besides NETRC, deleted in either case by
#: forge_clean_environment: REQUEST_METHOD, set, makes urllib ignore HTTP_PROXY (the CGI
#: "httpoxy" guard).
_ENVIRONMENT_VARIABLES: Final = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "REQUEST_METHOD",
)


@pytest.fixture
def forge_clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy or CA-bundle variables and ``NETRC`` naming a file that does not exist, for
    this test only: requests reads them on every request, so a developer's shell or a CI
    runner's proxy would otherwise change what the test sends."""
    for name in _ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))


@pytest.fixture
def forge_clock() -> Iterator[FakeClock]:
    """A FakeClock installed as the library's default clock for this test only."""
    with FakeClock().installed() as clock:
        yield clock


@pytest.fixture
def forge_secrets() -> Iterator[KnownSecrets]:
    """Nothing declared secret for this test but what it declares (through
    :class:`KnownSecrets` or any component it builds); the process's knowledge is put back
    afterwards. For tests of redaction that must not depend on earlier tests."""
    with KnownSecrets.isolated() as secrets:
        yield secrets


@pytest.fixture
def forge_cassette(request: pytest.FixtureRequest) -> Iterator[ForgeCassette]:
    """The test's :class:`ForgeCassette`: records its HTTP traffic once, secrets scrubbed,
    then replays it; ``@pytest.mark.forge_cassette(path, record_mode=..., scrub_headers=...,
    scrub_fields=..., match_on=...)`` configures it, on top of a ``forge_cassette_config``
    fixture of the user's that returns those rules as a dict for all tests in its scope.

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
