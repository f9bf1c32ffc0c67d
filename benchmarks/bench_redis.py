"""RedisTokenStorage: ``get_token()`` on a cached token against a bare redis-py ``GET``.

Both read the same key from the same local redis-server over one connection, interleaved in
rounds; the ratio of medians is reported. The hot path should be one round trip plus a
little Python, so the target is <= 1.5x.

Run: ``.venv/bin/python benchmarks/bench_redis.py [--calls N] [--rounds R]``
(needs ``redis-server`` on the PATH; it starts its own on a free port).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from requestforge import RedisTokenStorage, TokenManager
from requestforge_testing import FakeTokenProvider, RedisServer


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn`` over ``calls`` calls in a tight loop."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not RedisServer.available():
        raise SystemExit("redis-server not found: apt-get install redis-server")
    with RedisServer() as server:
        client = server.client()
        manager = TokenManager(FakeTokenProvider(), RedisTokenStorage(client))
        manager.get_token()
        keys = [key for key in client.scan_iter("requestforge:*:token")]
        if len(keys) != 1:
            raise SystemExit(f"expected one stored token, found {keys!r}")
        key = keys[0]

        def bare_get() -> object:
            return client.get(key)

        ours, floor = [], []
        for _ in range(args.rounds):
            floor.append(per_call_us(bare_get, args.calls))
            ours.append(per_call_us(manager.get_token, args.calls))
        client.close()
    ratio = statistics.median(ours) / statistics.median(floor)
    print(
        f"get_token via RedisTokenStorage {statistics.median(ours):.1f} us/call, bare redis-py GET "
        f"{statistics.median(floor):.1f} us/call, ratio {ratio:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
