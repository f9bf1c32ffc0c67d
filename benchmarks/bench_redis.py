"""Shared token storages: what a cached ``get_token()`` and a whole API request cost.

Everything runs in one process against servers this script starts: a ``redis-server`` and,
if ``memcached`` and ``pymemcache`` are installed, a ``memcached``. Django is configured
in-process (``settings.configure(CACHES=...)``) with its built-in ``RedisCache`` and
``PyMemcacheCache`` over them.

1. A cached ``get_token()`` (a fresh token, outside the refresh window), in microseconds per
   call: the in-memory storage (the floor), ``RedisTokenStorage`` and
   ``DjangoCacheTokenStorage`` with the near cache on and off, and a bare redis-py ``GET``
   and Django ``cache.get`` of the same value for reference. All variants run interleaved
   in rounds; medians are reported with their ratio to the floor of the same run.
   Target: Redis and Django with the near cache on <= 2x in-memory.
2. Redis commands per 1,000 cached ``get_token()`` calls in steady state, from ``INFO
   commandstats`` (calls summed over every command before and after, the ``INFO`` itself
   left out). Target with the near cache on: <= 1.
3. A whole API request (``HttpClient`` with token auth, against the loopback OAuth server's
   protected API, which checks the token) with Redis-backed tokens against in-memory
   tokens, interleaved rounds, the median of the per-round ratios. Target: <= 1.02.

Run: ``.venv/bin/python benchmarks/bench_redis.py [--calls N] [--rounds R] [--requests Q]
[--request-rounds S]``
(needs ``redis-server`` on the PATH; ``apt-get install redis-server memcached``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from requestforge import (
    ClientCredentialsTokenProvider,
    DjangoCacheTokenStorage,
    HttpClient,
    HttpClientConfigBuilder,
    RedisTokenStorage,
    TokenManager,
)
from requestforge_testing import FakeTokenProvider, OAuthServer, RedisServer

try:  # added alongside this benchmark; without it the memcached rows are skipped
    from requestforge_testing import MemcachedServer
except ImportError:  # pragma: no cover - an older plugin
    MemcachedServer = None  # type: ignore[assignment,misc]

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
MEMCACHED_CACHE = "django.core.cache.backends.memcached.PyMemcacheCache"
#: The near-cache-on rows must stay within this multiple of the in-memory floor.
HOT_PATH_TARGET = 2.0
#: Redis commands per 1,000 cached calls with the near cache on.
COMMANDS_TARGET = 1.0
#: A whole request with Redis-backed tokens against one with in-memory tokens.
REQUEST_TARGET = 1.02


@dataclass(frozen=True)
class Variant:
    """One row of the hot-path table: what is timed, and the target it is held to."""

    label: str
    call: Callable[[], object]
    target: float | None = None


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn`` over ``calls`` calls in a tight loop."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def timer(fn: Callable[[], object], calls: int) -> Callable[[], float]:
    """One round's measurement of ``fn``: microseconds per call over ``calls`` calls."""
    return lambda: per_call_us(fn, calls)


def interleaved(fns: Sequence[Callable[[], float]], rounds: int) -> list[list[float]]:
    """Run every measurement once per round, in a rotating order so drift (CPU frequency,
    other load) spreads evenly; return each one's samples, one per round."""
    samples: list[list[float]] = [[] for _ in fns]
    for round_number in range(rounds):
        shift = round_number % len(fns)
        for index in [*range(shift, len(fns)), *range(shift)]:
            samples[index].append(fns[index]())
    return samples


def redis_commands(client: Any) -> int:
    """Commands the Redis server has executed so far, ``INFO`` itself left out (each call
    of this function is one ``INFO``, counted by the next one)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")


# -- set-up ----------------------------------------------------------------------------------


def start_memcached(stack: ExitStack) -> Any:
    """A memcached server for Django's PyMemcacheCache, or None (with the reason printed)."""
    if MemcachedServer is None:
        print("memcached rows skipped: requestforge_testing has no MemcachedServer")
        return None
    if not MemcachedServer.available():
        print("memcached rows skipped: memcached not found (apt-get install memcached)")
        return None
    if find_spec("pymemcache") is None:
        print("memcached rows skipped: pymemcache is not installed")
        return None
    return stack.enter_context(MemcachedServer())


def configure_django(redis_url: str, memcached: Any) -> None:
    """Django settings in-process, as a deployment's settings module would give them."""
    import django  # type: ignore[import-untyped]  # noqa: PLC0415 - optional dependency
    from django.conf import settings  # type: ignore[import-untyped]  # noqa: PLC0415

    caches: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "redis": {"BACKEND": REDIS_CACHE, "LOCATION": redis_url},
    }
    if memcached is not None:
        caches["memcached"] = {"BACKEND": MEMCACHED_CACHE, "LOCATION": memcached.location}
    settings.configure(CACHES=caches)
    django.setup()


def warm(manager: TokenManager) -> TokenManager:
    """Fetch the manager's token, so every timed call is a cached one."""
    manager.get_token()
    manager.get_token()
    return manager


def manager_over(storage: Any, name: str) -> TokenManager:
    """A warmed manager with its own cache key (``name``) over ``storage``."""
    return warm(TokenManager(FakeTokenProvider(service_name=name), storage))


def hot_path_variants(redis: RedisServer, client: Any, memcached: Any) -> list[Variant]:
    """Every row of the hot-path table, each manager warmed (its token fetched and stored)."""
    from django.core.cache import caches  # type: ignore[import-untyped]  # noqa: PLC0415

    memory = warm(TokenManager(FakeTokenProvider(service_name="memory")))
    redis_on = manager_over(RedisTokenStorage(client), "redis-on")
    redis_off = manager_over(RedisTokenStorage(client, near_cache=False), "redis-off")
    redis_key = f"{RedisTokenStorage.DEFAULT_NAMESPACE}:{{{redis_on.cache_key}}}:token"
    if client.get(redis_key) is None:
        raise SystemExit(f"no token stored under {redis_key!r}: the key naming changed")
    django_on = manager_over(DjangoCacheTokenStorage("redis"), "django-on")
    django_off = manager_over(DjangoCacheTokenStorage("redis", near_cache=False), "django-off")
    django_key = f"{DjangoCacheTokenStorage.DEFAULT_KEY_PREFIX}:token:{django_on.cache_key}"
    if caches["redis"].get(django_key) is None:
        raise SystemExit(f"no token stored under {django_key!r}: the key naming changed")

    variants = [
        Variant("in-memory storage (the floor)", memory.get_token),
        Variant("RedisTokenStorage, near cache on", redis_on.get_token, HOT_PATH_TARGET),
        Variant("RedisTokenStorage, near cache off", redis_off.get_token),
        Variant("bare redis-py GET", lambda: client.get(redis_key)),
        Variant("Django RedisCache, near cache on", django_on.get_token, HOT_PATH_TARGET),
        Variant("Django RedisCache, near cache off", django_off.get_token),
        Variant("bare Django RedisCache cache.get", lambda: caches["redis"].get(django_key)),
    ]
    if memcached is not None:
        mc_on = manager_over(DjangoCacheTokenStorage("memcached"), "memcached-on")
        mc_off = manager_over(DjangoCacheTokenStorage("memcached", near_cache=False), "mc-off")
        variants += [
            Variant("Django PyMemcacheCache, near cache on", mc_on.get_token, HOT_PATH_TARGET),
            Variant("Django PyMemcacheCache, near cache off", mc_off.get_token),
        ]
    return variants


# -- the three figures -----------------------------------------------------------------------


def hot_path(variants: list[Variant], calls: int, rounds: int) -> None:
    """Figure 1: microseconds per cached call, each against the in-memory floor."""
    samples = interleaved([timer(v.call, calls) for v in variants], rounds)
    medians = [statistics.median(values) for values in samples]
    floor = medians[0]
    print(f"\n1. cached get_token(), us/call (median of {rounds} rounds x {calls:,} calls):")
    for variant, median in zip(variants, medians, strict=True):
        ratio = median / floor
        verdict = ""
        if variant.target is not None:
            ok = "met" if ratio <= variant.target else "MISSED"
            verdict = f"  (target <= {variant.target:g}x in-memory: {ok})"
        print(f"   {variant.label:<40} {median:7.2f} us  {ratio:6.2f}x{verdict}")


def commands_per_thousand(redis: RedisServer, client: Any, calls: int) -> None:
    """Figure 2: Redis commands per 1,000 cached calls, near cache on and off."""
    counter = redis.client()
    rows = [
        ("RedisTokenStorage, near cache on", RedisTokenStorage(client), True),
        ("RedisTokenStorage, near cache off", RedisTokenStorage(client, near_cache=False), False),
        ("Django RedisCache, near cache on", DjangoCacheTokenStorage("redis"), True),
        (
            "Django RedisCache, near cache off",
            DjangoCacheTokenStorage("redis", near_cache=False),
            False,
        ),
    ]
    print(
        f"\n2. Redis commands per 1,000 cached get_token() calls (steady state, {calls:,} calls):"
    )
    for index, (label, storage, near) in enumerate(rows):
        manager = manager_over(storage, f"count-{index}")
        for _ in range(100):  # steady state: connections open, scripts loaded
            manager.get_token()
        before = redis_commands(counter)
        for _ in range(calls):
            manager.get_token()
        per_thousand = (redis_commands(counter) - before) * 1000 / calls
        verdict = ""
        if near:
            ok = "met" if per_thousand <= COMMANDS_TARGET else "MISSED"
            verdict = f"  (target <= {COMMANDS_TARGET:g}: {ok})"
        print(f"   {label:<40} {per_thousand:8.1f}{verdict}")
    counter.close()


def whole_request(redis: RedisServer, requests: int, rounds: int) -> None:
    """Figure 3: one API request with token auth, Redis-backed tokens against in-memory."""
    with OAuthServer() as oauth:
        url = f"{oauth.api_url}/orders/1"
        clients: list[HttpClient] = []
        providers: list[ClientCredentialsTokenProvider] = []
        shared_storage = RedisTokenStorage(redis.url)
        for storage in (None, shared_storage):
            provider = ClientCredentialsTokenProvider(
                oauth.token_url, "forge-client", "forge-secret"
            )
            manager = TokenManager(provider, storage)
            config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
            clients.append(HttpClient(config))
            providers.append(provider)

        def timed(client: HttpClient) -> float:
            started = time.perf_counter()
            for _ in range(requests):
                client.get(url).raise_for_status()
            return (time.perf_counter() - started) / requests * 1e6

        for client in clients:  # warm: token fetched, connection open
            for _ in range(20):
                client.get(url).raise_for_status()
        memory, shared = interleaved([lambda: timed(clients[0]), lambda: timed(clients[1])], rounds)
        fetches = oauth.fetch_count
        for client in clients:
            client.close()
        for provider in providers:
            provider.close()
        shared_storage.close()
    # Each round's two blocks ran back to back: their ratio cancels the load of the moment.
    ratio = statistics.median(b / a for a, b in zip(memory, shared, strict=True))
    ok = "met" if ratio <= REQUEST_TARGET else "MISSED"
    print(f"\n3. a whole API request with token auth ({rounds} rounds x {requests} requests):")
    print(
        f"   in-memory tokens                         {statistics.median(memory):7.1f} us/request"
    )
    print(
        f"   RedisTokenStorage tokens                 {statistics.median(shared):7.1f} us/request"
    )
    print(
        f"   median of the per-round ratios {ratio:.3f} (target <= {REQUEST_TARGET}: {ok}); "
        f"token fetches: {fetches}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10000, help="get_token calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=100, help="API requests per round")
    parser.add_argument("--request-rounds", type=int, default=31, help="rounds of --requests")
    args = parser.parse_args()
    if not RedisServer.available():
        raise SystemExit("redis-server not found: apt-get install redis-server")
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        memcached = start_memcached(stack)
        configure_django(redis.url, memcached)
        client = redis.client()
        stack.callback(client.close)
        print(
            f"redis-server on {redis.url}"
            + (f", memcached on {memcached.location}" if memcached else "")
        )
        hot_path(hot_path_variants(redis, client, memcached), args.calls, args.rounds)
        commands_per_thousand(redis, client, args.calls)
        whole_request(redis, args.requests, args.request_rounds)


if __name__ == "__main__":
    main()
