"""pytest fixtures for requestforge: a loopback API server, a fake clock, a requests mock.

Nothing here is autouse and importing this module patches nothing: a fixture only acts in
the tests that ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import pytest

from requestforge_testing._clock import FakeClock
from requestforge_testing._oauth_server import OAuthServer
from requestforge_testing._providers import FakeTokenProvider, FakeTokenProviderFactory
from requestforge_testing._servers import ApiServer
from requestforge_testing._stress import StressRunner, forge_stress

if TYPE_CHECKING:
    import responses

#: The markers this plugin registers (so ``--strict-markers`` accepts them).
MARKERS: Final = (
    "forge_cassette(path=None, *, record_mode=None): replay (or record) the test's HTTP "
    "traffic from a vcrpy cassette with secrets scrubbed; see the forge_cassette fixture.",
    "forge_stress(threads=8, rounds=1, switch_interval=1e-06): run the test body itself "
    "from that many threads released together, for that many rounds.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options and ini settings of the plugin."""
    group = parser.getgroup("requestforge", "requestforge_testing")
    group.addoption(
        "--forge-record-mode",
        action="store",
        default=None,
        choices=("none", "once", "new_episodes", "all"),
        help="vcrpy record mode for forge cassettes (default: none under CI, else once).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; nothing else happens at load time."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


__all__ = [
    "forge_api_server",
    "forge_api_server_session",
    "forge_clock",
    "forge_oauth_server",
    "forge_oauth_server_session",
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


@pytest.fixture
def forge_clock() -> Iterator[FakeClock]:
    """A FakeClock installed as the library's default clock for this test only."""
    with FakeClock().installed() as clock:
        yield clock


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
