"""pytest fixtures for requestforge: a loopback API server, a fake clock, a requests mock.

Nothing here is autouse and importing this module patches nothing: a fixture only acts in
the tests that ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from requestforge_testing._clock import FakeClock
from requestforge_testing._servers import ApiServer

if TYPE_CHECKING:
    import responses

__all__ = ["forge_api_server", "forge_api_server_session", "forge_clock", "forge_responses"]


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
