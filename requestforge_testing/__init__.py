"""Test helpers for requestforge, and the pytest plugin that pytest loads from here.

The plugin's dependencies (pytest, responses, vcrpy, time-machine, trustme) come with the
``requestforge[testing]`` extra; a plain ``pip install requestforge`` has none of them. The
classes work without them: each imports what it needs only when used. The fixtures are
re-exported only when pytest is importable, because pytest registers fixtures from this
module (the ``pytest11`` entry point) and ``import requestforge_testing`` must still work
where pytest is absent; without the rest of the extra the plugin loads but refuses to run
its fixtures (see ``plugin.py``).

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
from requestforge_testing._clock import FakeClock, ForgeClockWarning
from requestforge_testing._fetchers import FakeTokenFetcher
from requestforge_testing._known import KnownSecrets
from requestforge_testing._memcached import MemcachedServer
from requestforge_testing._oauth_server import OAuthServer, RecordedTokenRequest
from requestforge_testing._peers import AuthlibServer, DotServer
from requestforge_testing._providers import (
    FakeTokenProvider,
    FakeTokenProviderFactory,
    ProviderCall,
)
from requestforge_testing._proxy import ProxyServer
from requestforge_testing._redis import RedisServer
from requestforge_testing._redis_cluster import RedisClusterDeployment
from requestforge_testing._redis_sentinel import RedisSentinel, RedisSentinelDeployment
from requestforge_testing._servers import UNSET, ApiServer, RecordedRequest, Reply
from requestforge_testing._stress import (
    ForgeStressWarning,
    StressCounter,
    StressOutcome,
    StressReport,
    StressRound,
    StressRunner,
    StressTimeoutError,
    forge_stress,
)
from requestforge_testing._tls import CertificateAuthority

__all__ = [
    "UNSET",
    "ApiServer",
    "AuthlibServer",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteThreadError",
    "CertificateAuthority",
    "DotServer",
    "FakeClock",
    "FakeTokenFetcher",
    "FakeTokenProvider",
    "FakeTokenProviderFactory",
    "ForgeCassette",
    "ForgeClockWarning",
    "ForgeStressWarning",
    "KnownSecrets",
    "MemcachedServer",
    "MissingCassetteError",
    "OAuthServer",
    "ProviderCall",
    "ProxyServer",
    "RecordedRequest",
    "RecordedTokenRequest",
    "RedisClusterDeployment",
    "RedisSentinel",
    "RedisSentinelDeployment",
    "RedisServer",
    "Reply",
    "StressCounter",
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
        forge_authlib_server,
        forge_authlib_server_session,
        forge_cassette,
        forge_clean_environment,
        forge_clock,
        forge_dot_server,
        forge_dot_server_session,
        forge_memcached,
        forge_memcached_server,
        forge_oauth_server,
        forge_oauth_server_session,
        forge_proxy,
        forge_proxy_server,
        forge_redis,
        forge_redis_acl,
        forge_redis_acl_server,
        forge_redis_cluster,
        forge_redis_cluster_deployment,
        forge_redis_cluster_server,
        forge_redis_sentinel,
        forge_redis_sentinel_deployment,
        forge_redis_server,
        forge_redis_sharded_cluster,
        forge_redis_tls,
        forge_redis_tls_server,
        forge_responses,
        forge_secrets,
        forge_tls,
        forge_tls_api_server,
        forge_tls_api_server_session,
        forge_token_provider,
        forge_token_provider_factory,
        pytest_addoption,
        pytest_collection_modifyitems,
        pytest_configure,
        pytest_fixture_setup,
        pytest_generate_tests,
        pytest_pyfunc_call,
        pytest_runtest_makereport,
        pytest_runtest_protocol,
        pytest_runtest_setup,
        pytest_unconfigure,
    )
    from requestforge_testing.plugin import (  # noqa: F401 - pytest registers it as "forge_stress"
        forge_stress_fixture as _forge_stress_fixture,
    )

# Errors and warnings show their class's module in every traceback and warning summary:
# the package users import them from, not the private module that defines them.
for _name in __all__:
    _exported = globals()[_name]
    if isinstance(_exported, type) and issubclass(_exported, BaseException):
        _exported.__module__ = __name__
del _name, _exported
