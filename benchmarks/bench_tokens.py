"""TokenManager: the cached hot path, and a thundering herd on an expired token.

1. ``get_token()`` on a cached, fresh token vs the floor any thread-safe cache pays: a
   function that takes a lock and reads a dict. Both run in the same process, interleaved
   in rounds; the ratio of medians is reported. Target: < 3x.
2. A herd: N threads released together by a barrier onto an expired token, the provider
   taking L seconds to answer. Reported: fetches (target: 1) and the time from release
   until the last thread has its token, as a multiple of L (target: <= 1.5).

Run: ``.venv/bin/python benchmarks/bench_tokens.py [--calls N] [--rounds R] [--threads T]``
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from requestforge import TokenManager
from requestforge_testing import FakeTokenProvider


def per_call_ns(fn: Callable[[], object], calls: int) -> float:
    """Nanoseconds per call of ``fn``, over ``calls`` calls in a tight loop."""
    started = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - started) / calls


def hot_path(calls: int, rounds: int) -> None:
    manager = TokenManager(FakeTokenProvider())
    token = manager.get_token()
    table = {manager.cache_key: token}
    lock = threading.Lock()
    key = manager.cache_key

    def locked_dict() -> object:
        with lock:
            return table.get(key)

    ours, floor = [], []
    for _ in range(rounds):
        floor.append(per_call_ns(locked_dict, calls))
        ours.append(per_call_ns(manager.get_token, calls))
    ratio = statistics.median(ours) / statistics.median(floor)
    print(
        f"hot path: get_token {statistics.median(ours):.0f} ns/call, locked dict "
        f"{statistics.median(floor):.0f} ns/call, ratio {ratio:.2f} (target < 3)"
    )


def herd(threads: int, latency: float, rounds: int) -> None:
    provider = FakeTokenProvider(latency=latency)
    manager = TokenManager(provider)
    spreads = []
    for _ in range(rounds):
        manager.invalidate()
        before = provider.fetch_count
        barrier = threading.Barrier(threads + 1)
        finished = [0.0] * threads

        def worker(index: int, barrier: threading.Barrier, finished: list[float]) -> None:
            barrier.wait()
            manager.get_token()
            finished[index] = time.perf_counter()

        workers = [
            threading.Thread(target=worker, args=(i, barrier, finished)) for i in range(threads)
        ]
        for worker_thread in workers:
            worker_thread.start()
        barrier.wait()
        released = time.perf_counter()
        for worker_thread in workers:
            worker_thread.join()
        fetches = provider.fetch_count - before
        if fetches != 1:
            raise SystemExit(f"herd of {threads}: {fetches} fetches, expected 1")
        spreads.append((max(finished) - released) / latency)
    print(
        f"herd: {threads} threads, provider latency {latency * 1000:.0f} ms, 1 fetch per round "
        f"in all {rounds} rounds; last thread released after {statistics.median(spreads):.2f}x "
        f"the latency (median; worst {max(spreads):.2f}x; target <= 1.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1, help="provider latency, seconds")
    args = parser.parse_args()
    hot_path(args.calls, args.rounds)
    herd(args.threads, args.latency, args.rounds)


if __name__ == "__main__":
    main()
