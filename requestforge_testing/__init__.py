"""Test helpers for requestforge, and the pytest plugin that pytest loads from here.

The classes work without pytest. The fixtures are re-exported only when pytest is
importable, because pytest registers fixtures from this module (the ``pytest11`` entry
point) and ``import requestforge_testing`` must still work where pytest is absent.

PYTEST_DONT_REWRITE: there are no asserts here to rewrite, and the marker keeps pytest from
warning "already imported" when pytester loads this plugin again inside a test run.
"""

from __future__ import annotations

from importlib.util import find_spec

from requestforge_testing._cassette_errors import (
    CassetteError,
    CassetteMismatchError,
    CassetteThreadError,
    MissingCassetteError,
)
from requestforge_testing._cassettes import ForgeCassette
from requestforge_testing._clock import FakeClock
from requestforge_testing._fetchers import FakeTokenFetcher
from requestforge_testing._oauth_server import OAuthServer, RecordedTokenRequest
from requestforge_testing._providers import (
    FakeTokenProvider,
    FakeTokenProviderFactory,
    ProviderCall,
)
from requestforge_testing._redis import RedisServer
from requestforge_testing._servers import UNSET, ApiServer, RecordedRequest, Reply
from requestforge_testing._stress import (
    StressOutcome,
    StressReport,
    StressRound,
    StressRunner,
    StressTimeoutError,
    forge_stress,
)

__all__ = [
    "UNSET",
    "ApiServer",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteThreadError",
    "FakeClock",
    "FakeTokenFetcher",
    "FakeTokenProvider",
    "FakeTokenProviderFactory",
    "ForgeCassette",
    "MissingCassetteError",
    "OAuthServer",
    "ProviderCall",
    "RecordedRequest",
    "RecordedTokenRequest",
    "RedisServer",
    "Reply",
    "StressOutcome",
    "StressReport",
    "StressRound",
    "StressRunner",
    "StressTimeoutError",
    "forge_stress",
]

if find_spec("pytest") is not None:
    # pytest collects fixtures from the plugin module's namespace: these names are the plugin.
    from requestforge_testing.plugin import (  # noqa: F401
        forge_api_server,
        forge_api_server_session,
        forge_cassette,
        forge_clock,
        forge_oauth_server,
        forge_oauth_server_session,
        forge_redis,
        forge_redis_cluster,
        forge_redis_cluster_server,
        forge_redis_server,
        forge_responses,
        forge_token_provider,
        forge_token_provider_factory,
        pytest_addoption,
        pytest_collection_modifyitems,
        pytest_configure,
        pytest_pyfunc_call,
        pytest_runtest_makereport,
    )
    from requestforge_testing.plugin import (  # noqa: F401 - pytest registers it as "forge_stress"
        forge_stress_fixture as _forge_stress_fixture,
    )
