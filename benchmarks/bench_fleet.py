"""A fleet of worker processes sharing tokens through Redis: fetches, round times, 401s.

P processes (default 4) x T threads (default 16), as separate gunicorn or Celery workers:
each process has its own ``TokenManager`` over its own ``RedisTokenStorage`` and a
``ClientCredentialsTokenProvider`` pointed at the loopback OAuth server in this (the
parent) process, and they share nothing but one ``redis-server``. Time is a ``FakeClock``
in every process, set by the parent before each phase, so expiry crossings are exact and
nobody sleeps (as in ``tests/integration/test_redis_processes.py``); the token endpoint
answers after ``--latency`` seconds of real time, a wide window for a stampede.

1. Expiries: one round for the first fetch, then E rounds (default 10) each past the
   token's expiry, all P x T threads released together by a cross-process barrier.
   Printed: token fetches (target: exactly E) and the time per round, from the first
   thread's release to the last thread's token.
2. Redis commands per 1,000 ``get_token()`` calls (``INFO commandstats``), over the expiry
   rounds and in steady state (every thread asking again on a fresh token).
3. Revocation: each process calls the OAuth server's protected API (which checks tokens)
   through an ``HttpClient`` with token auth; the parent revokes every token; then the
   processes call again. Printed: the 401s each process got (counted from the server's
   records: requests carrying a revoked token) and the token fetches (target: 1), first
   with all T threads of every process released together (every thread already in flight
   holds the revoked token), then with one request per process going first and the T
   threads after it (target: <= 1 per process: a process learns of the new token on its
   own first 401).

Run: ``.venv/bin/python benchmarks/bench_fleet.py [--processes P] [--threads T]
[--expiries E] [--latency S]`` (needs ``redis-server`` on the PATH).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import Any

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    RedisTokenStorage,
    TokenManager,
)
from requestforge_testing import FakeClock, OAuthServer, RedisServer

#: Seconds a token is valid; each expiry round starts this much later than the one before.
LIFETIME = 600.0
#: How long a thread waits at the cross-process barrier before the run is declared broken.
BARRIER_TIMEOUT = 60.0

# spawn, not fork: a forked child would inherit the parent's server threads and locks.
_mp = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Phase:
    """What the parent asks every worker to do, at ``when`` on the workers' clocks."""

    kind: str  # "tokens", "steady", "api" (all threads) or "api-one" (one request)
    when: str  # ISO time for the worker's FakeClock
    calls: int = 1  # per thread
    tag: str = ""  # path segment naming the phase in the API server's records


@dataclass(frozen=True)
class PhaseResult:
    """What one worker reports: each thread's answers, and when its threads ran."""

    answers: list[str]
    started: float  # perf_counter (system-wide monotonic) at the first thread's release
    finished: float  # ...when its last thread was done


# -- the worker process ----------------------------------------------------------------------


def run_threads(
    threads: int, barrier: Any, work: Callable[[int], str]
) -> tuple[list[str], float, float]:
    """``work(n)`` on ``threads`` threads released by ``barrier`` (None: at once); returns
    their answers (an error as ``error: ...``) and the first release and last finish times."""
    answers = [""] * threads
    starts = [0.0] * threads
    ends = [0.0] * threads

    def thread_main(n: int) -> None:
        if barrier is not None:
            barrier.wait(BARRIER_TIMEOUT)
        starts[n] = time.perf_counter()
        try:
            answers[n] = work(n)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
            answers[n] = f"error: {type(exc).__name__}: {exc}"
        ends[n] = time.perf_counter()

    pool = [threading.Thread(target=thread_main, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return answers, min(starts), max(ends)


def worker(
    index: int, conn: Connection, *, redis_url: str, oauth_url: str, barrier: Any, threads: int
) -> None:
    """One worker process: its own clock, manager, storage and client; phases from ``conn``."""
    clock = FakeClock()
    clock.install()
    provider = ClientCredentialsTokenProvider(
        f"{oauth_url}/oauth/token", "forge-client", "forge-secret"
    )
    storage = RedisTokenStorage(redis_url)
    manager = TokenManager(provider, storage)
    config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
    client = HttpClient(config)

    def tokens(n: int, calls: int) -> str:
        token = ""
        for _ in range(calls):
            token = manager.get_token().access_token
        return token

    def request(n: int, tag: str) -> str:
        return str(client.get(f"{oauth_url}/api/{tag}/p{index}/t{n}").status_code)

    while (phase := conn.recv()) is not None:
        clock.set(datetime.fromisoformat(phase.when))
        if phase.kind in ("tokens", "steady"):
            outcome = run_threads(threads, barrier, partial(tokens, calls=phase.calls))
        elif phase.kind == "api":
            outcome = run_threads(threads, barrier, partial(request, tag=phase.tag))
        else:  # "api-one": a single request, ahead of this process's other threads
            outcome = run_threads(1, None, partial(request, tag=phase.tag))
        conn.send(PhaseResult(*outcome))
    client.close()
    storage.close()
    provider.close()


# -- the parent ------------------------------------------------------------------------------


class Fleet:
    """The worker processes, and the parent's side of each phase."""

    def __init__(
        self, processes: int, threads: int, redis: RedisServer, oauth: OAuthServer
    ) -> None:
        self.threads = threads
        # Kept for the fleet's lifetime: the workers unpickle it after start() returns.
        self._barrier = _mp.Barrier(processes * threads)
        options = {
            "redis_url": redis.url,
            "oauth_url": oauth.url,
            "barrier": self._barrier,
            "threads": threads,
        }
        self._pipes = [_mp.Pipe() for _ in range(processes)]
        self._workers = [
            _mp.Process(target=worker, args=(index, child), kwargs=options)
            for index, (_, child) in enumerate(self._pipes)
        ]
        for process in self._workers:
            process.start()

    def run(self, phase: Phase) -> list[PhaseResult]:
        """Send ``phase`` to every worker at once and collect their results, in order."""
        for parent, _ in self._pipes:
            parent.send(phase)
        results: list[PhaseResult] = []
        for (parent, _), process in zip(self._pipes, self._workers, strict=True):
            # A worker that dies (an import error, a broken barrier) never answers.
            if parent not in wait([parent, process.sentinel]) and not parent.poll():
                raise SystemExit(f"worker process {process.pid} exited with {process.exitcode}")
            results.append(parent.recv())
        errors = [a for result in results for a in result.answers if a.startswith("error")]
        if errors:
            raise SystemExit(f"{len(errors)} thread(s) failed, e.g. {errors[0]}")
        return results

    def stop(self) -> None:
        """Tell every worker to finish, and wait for it."""
        for parent, _ in self._pipes:
            parent.send(None)
        for process in self._workers:
            process.join(BARRIER_TIMEOUT)
        failed = [process.exitcode for process in self._workers if process.exitcode != 0]
        if failed:
            raise SystemExit(f"worker processes exited with {failed}")


def redis_commands(client: Any) -> int:
    """Commands the Redis server has executed so far, ``INFO`` itself left out."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")


def round_time(results: list[PhaseResult]) -> float:
    """Seconds from the first thread's release to the last thread's answer, fleet-wide."""
    return max(r.finished for r in results) - min(r.started for r in results)


def expiries(fleet: Fleet, oauth: OAuthServer, clock: FakeClock, counter: Any, count: int) -> None:
    """Figure 1 and the first half of figure 2."""
    before = oauth.fetch_count
    first = fleet.run(Phase("tokens", clock.now().isoformat()))
    first_fetches = oauth.fetch_count - before
    fetches: list[int] = []
    times: list[float] = []
    distinct: list[int] = []
    commands_before = redis_commands(counter)
    for _ in range(count):
        clock.advance(LIFETIME)  # past the expiry of the token every process holds
        before = oauth.fetch_count
        results = fleet.run(Phase("tokens", clock.now().isoformat()))
        fetches.append(oauth.fetch_count - before)
        times.append(round_time(results))
        distinct.append(len({a for r in results for a in r.answers}))
    commands = redis_commands(counter) - commands_before
    fresh = [round_time(fleet.run(Phase("tokens", clock.now().isoformat()))) for _ in range(3)]
    processes = len(first)
    calls = processes * fleet.threads * count
    ok = "met" if sum(fetches) == count else "MISSED"
    print(f"\n1. {processes} processes x {fleet.threads} threads, {count} expiries:")
    print(f"   first fetch: {first_fetches} fetch(es), {round_time(first) * 1000:.1f} ms")
    print(f"   fetches per expiry round: {fetches}")
    print(f"   fetches over {count} expiries: {sum(fetches)} (target: exactly {count}: {ok})")
    print(f"   distinct tokens per round: {distinct}")
    print(
        f"   time per round: median {statistics.median(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms (token endpoint latency {oauth.latency * 1000:.0f} ms); "
        f"a round on a fresh token (no fetch): {statistics.median(fresh) * 1000:.1f} ms"
    )
    print(
        f"\n2. Redis commands per 1,000 get_token() calls: over the expiry rounds "
        f"{commands * 1000 / calls:.1f} ({commands} for {calls} calls)"
    )


def steady_state(fleet: Fleet, clock: FakeClock, counter: Any, processes: int, calls: int) -> None:
    """The second half of figure 2: every thread asking again while the token is fresh."""
    before = redis_commands(counter)
    fleet.run(Phase("steady", clock.now().isoformat(), calls=calls))
    commands = redis_commands(counter) - before
    total = processes * fleet.threads * calls
    print(
        f"   steady state: {commands * 1000 / total:.2f} ({commands} for {total:,} calls; "
        "target <= 1)"
    )


def rejected_per_process(
    oauth: OAuthServer, tag: str, revoked: set[str], processes: int
) -> list[int]:
    """401s each process got in the phases tagged ``tag``: its requests with a revoked token."""
    counts = [0] * processes
    for request in oauth.api_requests:
        parts = request.path.split("/")  # "", "api", tag, "p<index>", "t<n>"
        if len(parts) != 5 or parts[2] != tag:
            continue
        _, _, token = request.headers.get("Authorization", "").partition(" ")
        if token in revoked:
            counts[int(parts[3][1:])] += 1
    return counts


def revocation(fleet: Fleet, oauth: OAuthServer, clock: FakeClock, processes: int) -> None:
    """Figure 3: 401s per process and token fetches after the server revokes every token."""
    when = clock.now().isoformat()
    fleet.run(Phase("api", when, tag="warm"))  # every process holds the current token
    print(f"\n3. after a revocation ({processes} processes x {fleet.threads} threads):")

    oauth.revoke_all()
    revoked, before = set(oauth.issued_tokens), oauth.fetch_count
    results = fleet.run(Phase("api", when, tag="together"))
    statuses = {a for r in results for a in r.answers}
    counts = rejected_per_process(oauth, "together", revoked, processes)
    print(
        f"   all threads released together: 401s per process {counts}, token fetches "
        f"{oauth.fetch_count - before} (target 1); final statuses {sorted(statuses)}"
    )

    oauth.revoke_all()
    revoked, before = set(oauth.issued_tokens), oauth.fetch_count
    fleet.run(Phase("api-one", when, tag="first"))
    results = fleet.run(Phase("api", when, tag="first"))
    statuses = {a for r in results for a in r.answers}
    counts = rejected_per_process(oauth, "first", revoked, processes)
    ok = "met" if all(count <= 1 for count in counts) else "MISSED"
    print(
        f"   one request per process first: 401s per process after a revocation: {counts} "
        f"(target <= 1 each: {ok}), token fetches {oauth.fetch_count - before} (target 1); "
        f"final statuses {sorted(statuses)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16, help="threads per process")
    parser.add_argument("--expiries", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="token endpoint, seconds")
    parser.add_argument("--steady-calls", type=int, default=1000, help="per thread")
    args = parser.parse_args()
    if not RedisServer.available():
        raise SystemExit("redis-server not found: apt-get install redis-server")
    clock = FakeClock()
    with clock.installed(), RedisServer() as redis, OAuthServer(clock=clock) as oauth:
        oauth.lifetime = LIFETIME
        oauth.latency = args.latency
        counter = redis.client()
        fleet = Fleet(args.processes, args.threads, redis, oauth)
        try:
            expiries(fleet, oauth, clock, counter, args.expiries)
            steady_state(fleet, clock, counter, args.processes, args.steady_calls)
            revocation(fleet, oauth, clock, args.processes)
        finally:
            fleet.stop()
            counter.close()


if __name__ == "__main__":
    main()
