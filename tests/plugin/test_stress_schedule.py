"""forge_stress's scheduler: seeded schedules that replay, the fake provider's hold, waits."""

from __future__ import annotations

import os
import queue
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from requestforge import TokenData, TokenManager
from requestforge_testing import FakeTokenProvider, StressReport, StressTimeoutError, forge_stress
from requestforge_testing._stress import registry, runner, schedule

THREADS = 6
SEEDS = (0, 7, 123_456)
TOOL_NAME = "requestforge_testing forge_stress"


def worker_index() -> int:
    """The calling worker's index in its round (its thread is named ``...-t<index>``)."""
    return int(threading.current_thread().name.rsplit("-t", 1)[1])


def write_order(seed: int | None, *, rounds: int = 1, **kwargs: Any) -> list[list[int]]:
    """Per round, the order in which THREADS workers appended their index to a shared list."""
    orders: list[list[int]] = []

    def fn() -> None:
        orders[-1].append(worker_index())

    forge_stress(
        fn,
        threads=THREADS,
        rounds=rounds,
        seed=seed,
        before_round=lambda _: orders.append([]),
        **kwargs,
    )
    return orders


def interleaving(seed: int) -> tuple[list[tuple[int, int]], int]:
    """Run three unlocked read-modify-writes per worker; return who read what, and the total."""
    state = {"n": 0}
    log: list[tuple[int, int]] = []

    def fn() -> None:
        me = worker_index()
        for _ in range(3):
            seen = state["n"]
            state["n"] = seen + 1
            log.append((me, seen))

    forge_stress(fn, threads=THREADS, seed=seed)
    return log, state["n"]


# -- seeds and replay --------------------------------------------------------------------------


@pytest.fixture
def exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's timing fallbacks off (a worker still for STILL seconds counts as
    waiting; after PATIENCE seconds anyone goes on): on a loaded machine a thread the OS
    starves can trip them and vary a schedule. Without them only the seed decides."""
    monkeypatch.setattr(schedule, "STILL", 60.0)
    monkeypatch.setattr(schedule, "PATIENCE", 60.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.usefixtures("exact")
def test_the_same_seed_gives_the_same_order_of_writes(seed: int) -> None:
    """Two runs under one seed let the workers write in the same order, round by round."""
    first = write_order(seed, rounds=3)
    second = write_order(seed, rounds=3)
    assert first == second
    assert [sorted(order) for order in first] == [list(range(THREADS))] * 3


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.usefixtures("exact")
def test_the_same_seed_replays_a_read_modify_write_interleaving(seed: int) -> None:
    """Who read which value in an unlocked read-modify-write loop is the same under one seed,
    and the forced interleaving loses updates (fewer than 3 x THREADS increments survive)."""
    log, total = interleaving(seed)
    assert [interleaving(seed) for _ in range(4)] == [(log, total)] * 4
    assert sorted(me for me, _ in log) == sorted(list(range(THREADS)) * 3)
    assert total < 3 * THREADS


@pytest.mark.usefixtures("exact")
def test_different_seeds_give_different_orders() -> None:
    """A few seeds do not all give the same order: the seed drives the scheduler's choices."""
    orders = {tuple(write_order(seed)[0]) for seed in range(5)}
    assert len(orders) > 1
    logs = {tuple(interleaving(seed)[0]) for seed in range(5)}
    assert len(logs) > 1


@pytest.mark.usefixtures("exact")
def test_rounds_of_one_run_get_their_own_choices() -> None:
    """Each round draws from its own seeded generator, so the rounds of one run differ."""
    orders = write_order(3, rounds=5)
    assert len({tuple(order) for order in orders}) > 1


@pytest.mark.usefixtures("exact")
def test_a_seed_replays_in_a_new_process_whatever_the_hash_seed() -> None:
    """The schedule of a seed is the same in a fresh interpreter with another hash seed (what
    ``--forge-stress-seed`` in a later CI run relies on) as in this one."""
    script = (
        "import threading\n"
        "from requestforge_testing import forge_stress\n"
        "from requestforge_testing._stress import schedule\n"
        "schedule.STILL = schedule.PATIENCE = 60.0\n"
        "order = []\n"
        "def fn():\n"
        "    order.append(int(threading.current_thread().name.rsplit('-t', 1)[1]))\n"
        f"forge_stress(fn, threads={THREADS}, seed=4242)\n"
        "print(order)\n"
    )
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    child = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        timeout=30,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == str(write_order(4242)[0])


def test_the_report_and_its_rounds_carry_the_seed() -> None:
    """report.seed is the seed given; every round of a single schedule carries it too."""
    report = forge_stress(lambda: None, threads=2, rounds=3, seed=41)
    assert report.seed == 41
    assert [(r.seed, r.schedule) for r in report.rounds] == [(41, None)] * 3
    assert {o.schedule for o in report.outcomes} == {None}


def test_schedules_run_under_consecutive_seeds() -> None:
    """schedules=K runs all rounds K times, under seeds base..base+K-1, each checked on its own
    report; the returned report holds every round and the base seed."""
    checked: list[tuple[int | None, list[int | None], list[int]]] = []

    def check(report: StressReport[str]) -> None:
        checked.append(
            (report.seed, [r.schedule for r in report.rounds], [r.index for r in report.rounds])
        )

    report = forge_stress(
        lambda: threading.current_thread().name,
        threads=2,
        rounds=2,
        seed=100,
        schedules=3,
        check=check,
    )
    assert checked == [(100, [0, 0], [0, 1]), (101, [1, 1], [0, 1]), (102, [2, 2], [0, 1])]
    assert report.seed == 100
    assert [(r.seed, r.schedule, r.index) for r in report.rounds] == [
        (100 + s, s, i) for s in range(3) for i in range(2)
    ]
    for outcome in report.outcomes:
        assert f"-s{outcome.schedule}-r{outcome.round}-t{outcome.index}" in str(outcome.result)


@pytest.mark.usefixtures("exact")
def test_a_schedule_replays_alone_under_its_own_seed() -> None:
    """Schedule k of a run from seed s orders the writes as a single run with seed s + k
    does, so the seed a failure prints is enough to replay it."""
    orders: list[list[int]] = []

    def fn() -> None:
        orders[-1].append(worker_index())

    forge_stress(
        fn, threads=THREADS, seed=50, schedules=4, before_round=lambda _: orders.append([])
    )
    assert orders == [write_order(50 + k)[0] for k in range(4)]


def test_schedules_stop_after_the_first_schedule_in_which_a_call_raised() -> None:
    """With a call failing in schedule 2 of 6, three schedules run, check sees only the two
    clean ones, and the failure names schedule 2 and its seed."""
    started: list[int] = []
    checked: list[int | None] = []

    def fn() -> None:
        if "-s2-" in threading.current_thread().name:
            raise ValueError("broken in schedule 2")

    report = forge_stress(
        fn,
        threads=3,
        rounds=2,
        seed=10,
        schedules=6,
        before_round=started.append,
        check=lambda r: checked.append(r.seed),
    )
    assert started == [0, 1] * 3
    assert checked == [10, 11]
    assert {(o.schedule, o.round) for o in report.errors} == {(2, 0), (2, 1)}
    with pytest.raises(AssertionError) as info:
        report.assert_no_errors()
    message = str(info.value)
    assert "schedule 2 round 0 thread 0" in message
    assert "seed 12: replay with forge_stress(..., seed=12)" in message


def test_schedules_stop_at_the_first_schedule_whose_check_raised() -> None:
    """An error raised by check(report) ends the run there and reaches the caller."""
    started: list[int] = []

    def check(report: StressReport[None]) -> None:
        if report.seed == 21:
            raise AssertionError(f"check failed under seed {report.seed}")

    with pytest.raises(AssertionError, match="check failed under seed 21"):
        forge_stress(
            lambda: None,
            threads=2,
            rounds=2,
            seed=20,
            schedules=5,
            before_round=started.append,
            check=check,
        )
    assert started == [0, 1] * 2


@pytest.fixture
def no_suite_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --forge-stress-seed in effect (restored afterwards)."""
    monkeypatch.setattr(runner.DEFAULTS, "seed", None)
    monkeypatch.setattr(runner.DEFAULTS, "offset", 0)


@pytest.mark.usefixtures("exact", "no_suite_seed")
def test_without_a_seed_each_run_draws_a_fresh_one_that_replays_it() -> None:
    """seed=None picks a new seed in [0, 2**32) per run, reported so that it replays the run."""
    orders: list[list[int]] = []

    def fn() -> None:
        orders[-1].append(worker_index())

    reports = [
        forge_stress(fn, threads=THREADS, before_round=lambda _: orders.append([]))
        for _ in range(3)
    ]
    seeds = [report.seed for report in reports]
    assert all(isinstance(seed, int) and 0 <= seed < 2**32 for seed in seeds)
    assert len(set(seeds)) > 1
    assert [write_order(seed)[0] for seed in seeds] == orders


@pytest.mark.usefixtures("exact")
def test_the_suite_seed_and_offset_apply_when_no_seed_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DEFAULTS.seed + DEFAULTS.offset (what --forge-stress-seed sets) is the seed of a run
    given none, with the same schedule as that seed given explicitly; seed= still wins."""
    monkeypatch.setattr(runner.DEFAULTS, "seed", 500)
    monkeypatch.setattr(runner.DEFAULTS, "offset", 2)
    orders: list[list[int]] = []

    def fn() -> None:
        orders[-1].append(worker_index())

    report = forge_stress(fn, threads=THREADS, before_round=lambda _: orders.append([]))
    assert report.seed == 502
    assert forge_stress(lambda: None, threads=1, seed=9).seed == 9
    monkeypatch.setattr(runner.DEFAULTS, "seed", None)
    monkeypatch.setattr(runner.DEFAULTS, "offset", 0)
    assert orders == write_order(502)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed must be an int >= 0 or None, got -1"),
        ({"seed": True}, r"seed must be an int >= 0 or None, got True"),
        ({"seed": "7"}, r"seed must be an int >= 0 or None, got '7'"),
        ({"seed": 1.0}, r"seed must be an int >= 0 or None, got 1.0"),
        ({"schedules": 0}, r"schedules must be an int >= 1, got 0"),
        ({"schedules": True}, r"schedules must be an int >= 1, got True"),
        ({"preempt": 1}, r"preempt must be a bool, got 1"),
        ({"preempt": None}, r"preempt must be a bool, got None"),
        ({"preempt_packages": "requestforge"}, r"preempt_packages must be a list of package"),
        ({"preempt_packages": ["requestforge", ""]}, r"preempt_packages must be a list of"),
        ({"preempt_packages": ["  "]}, r"preempt_packages must be a list of package names"),
        ({"preempt_packages": [3]}, r"preempt_packages must be a list of package names, got \[3\]"),
    ],
)
def test_bad_seed_schedule_or_preemption_arguments_raise_value_error(
    kwargs: dict[str, Any], match: str
) -> None:
    """Invalid seed, schedules, preempt or preempt_packages are refused before any call."""
    calls: list[None] = []
    with pytest.raises(ValueError, match=match):
        forge_stress(lambda: calls.append(None), threads=2, **kwargs)
    assert calls == []


@pytest.mark.usefixtures("exact")
def test_scheduler_choices_follow_the_seeded_generator() -> None:
    """With every worker parked at its one write, the order is the seeded generator's choices
    among the parked workers, in index order (the replay contract in its simplest form)."""
    rng = random.Random("77/0")  # noqa: S311 - the same derivation as the runner's
    parked = list(range(THREADS))
    expected = []
    while parked:
        chosen = rng.choice(parked)
        parked.remove(chosen)
        expected.append(chosen)
    assert write_order(77) == [expected]


# -- the fake provider's hold --------------------------------------------------------------------


class UnlockedCache:
    """Check, fetch, store, without a lock: every thread that finds it empty fetches."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.token: TokenData | None = None

    def get_token(self) -> TokenData:
        token = self.token
        if token is None:
            token = self.provider.fetch_token()
            self.token = token
        return token

    def invalidate(self) -> None:
        self.token = None


class LockedCache(UnlockedCache):
    """The same cache with the whole check-fetch-store under one lock: one fetch."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        super().__init__(provider)
        self.lock = threading.Lock()

    def get_token(self) -> TokenData:
        with self.lock:
            if self.token is None:
                self.token = self.provider.fetch_token()
            return self.token


@pytest.mark.parametrize("preempt", [True, False])
def test_a_cache_without_a_lock_fetches_in_every_thread_on_defaults(preempt: bool) -> None:
    """Inside a round a default FakeTokenProvider's fetch stays open until the others have
    decided, so an unlocked cache fetches once per thread, with or without preemption."""
    for seed in SEEDS:
        provider = FakeTokenProvider()
        report = forge_stress(UnlockedCache(provider).get_token, seed=seed, preempt=preempt)
        report.assert_no_errors()
        assert provider.fetch_count == report.threads == runner.DEFAULT_THREADS
        with pytest.raises(AssertionError, match=f"round 0: {report.threads} fetches, expected 1"):
            report.assert_single_fetch(provider)


@pytest.mark.usefixtures("exact")
@pytest.mark.parametrize("preempt", [True, False])
def test_a_locked_cache_and_the_token_manager_fetch_once_per_round(preempt: bool) -> None:
    """The held fetch is released because everyone else is seen blocked on the cache's lock or
    the manager's flight (with the timing fallbacks off, nothing else could release it): correct
    code fetches once a round."""
    for make in (LockedCache, TokenManager):
        provider = FakeTokenProvider()
        cache = make(provider)
        report = forge_stress(
            cache.get_token,
            rounds=3,
            preempt=preempt,
            before_round=lambda _: cache.invalidate(),  # noqa: B023 - used within the loop
            timeout=10,
        )
        report.assert_no_errors()
        report.assert_single_fetch(provider)
        assert provider.fetch_count == 3
        for round_ in report.rounds:
            assert len({token.access_token for token in round_.results}) == 1


class Leader:
    """Makes the first worker of each round the one that fetches; the others only report."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.reset()

    def reset(self, _round: int = 0) -> None:
        self.first = threading.Lock()
        self.finished: list[int] = []

    def __call__(self) -> int | None:
        if self.first.acquire(blocking=False):
            self.provider.fetch_token()
            return len(self.finished)
        self.finished.append(worker_index())
        return None


@pytest.mark.usefixtures("exact")
def test_a_held_fetch_returns_only_after_every_other_worker_has_finished(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """The one worker that fetches sees, when its fetch returns, all the others finished."""
    leader = Leader(forge_token_provider)
    report = forge_stress(
        leader, threads=THREADS, rounds=5, preempt=False, before_round=leader.reset
    )
    report.assert_no_errors()
    for round_ in report.rounds:
        assert [r for r in round_.results if r is not None] == [THREADS - 1]
    assert forge_token_provider.fetch_count == 5


def wait_event(release: threading.Event) -> None:
    release.wait()


def wait_condition(release: threading.Event) -> None:
    condition = vars(release)["_cond"]
    with condition:
        condition.wait_for(release.is_set)


def wait_queue_of(box: queue.Queue[None]) -> Callable[[threading.Event], None]:
    def wait(release: threading.Event) -> None:
        box.get()
        box.put(None)  # the next waiter's turn

    return wait


@pytest.mark.usefixtures("exact")
@pytest.mark.parametrize("how", ["event", "condition", "queue"])
def test_a_held_fetch_is_released_once_the_others_wait_for_it(
    forge_token_provider: FakeTokenProvider, how: str
) -> None:
    """Workers waiting on an Event, a Condition or a queue that the fetching worker fills are
    seen to wait (with the timing fallbacks off, nothing else could release the fetch)."""
    box: queue.Queue[None] = queue.Queue()
    waits: dict[str, Callable[[threading.Event], None]] = {
        "event": wait_event,
        "condition": wait_condition,
        "queue": wait_queue_of(box),
    }
    wait = waits[how]
    release = threading.Event()
    first = threading.Lock()

    def fn() -> str:
        if first.acquire(blocking=False):
            token = forge_token_provider.fetch_token()
            release.set()
            box.put(None)
            return token.access_token
        wait(release)
        return "waited"

    report = forge_stress(fn, threads=THREADS, preempt=False, timeout=10)
    report.assert_no_errors()
    assert sorted(report.results) == ["fake-access-1", *["waited"] * (THREADS - 1)]


def test_hold_parks_only_a_registered_worker(forge_token_provider: FakeTokenProvider) -> None:
    """registry.hold (called by every fake fetch) parks the calling thread only while it is
    registered as a worker; outside forge_stress it returns at once."""
    parked: list[str] = []

    class Recorder:
        def park(self, kind: str) -> None:
            parked.append(kind)

    assert registry.current_worker() is None
    forge_token_provider.fetch_token()
    registry.hold("write")
    recorder = Recorder()
    ident = registry.register(recorder)
    try:
        assert registry.current_worker() is recorder
        forge_token_provider.fetch_token()
        registry.hold("custom")
    finally:
        registry.unregister(ident)
    forge_token_provider.fetch_token()
    assert parked == ["fetch", "custom"]
    assert registry.current_worker() is None
    assert forge_token_provider.fetch_count == 3


def test_outside_forge_stress_fetches_in_plain_threads_are_not_held(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """Plain threads are no workers: each fetch returns while the other threads still wait,
    and only a round's workers are registered, only during the round."""
    fetched = threading.Barrier(3, timeout=10)
    seen: list[object] = []

    def plain() -> None:
        seen.append(registry.current_worker())
        forge_token_provider.fetch_token()
        fetched.wait()  # every fetch returned before any thread finished

    threads = [threading.Thread(target=plain) for _ in range(2)]
    for thread in threads:
        thread.start()
    fetched.wait()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [None, None]
    assert forge_token_provider.fetch_count == 2

    report = forge_stress(lambda: registry.current_worker() is not None, threads=4)
    assert report.results == [True] * 4
    assert not {o.thread_id for o in report.outcomes} & set(registry._workers)


# -- timeouts ----------------------------------------------------------------------------------


def tools_held_by_forge_stress() -> list[int]:
    """The sys.monitoring tool ids forge_stress holds right now (none before Python 3.12)."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return []
    return [tool for tool in range(6) if monitoring.get_tool(tool) == TOOL_NAME]


def test_a_worker_held_forever_by_an_event_times_out_after_the_parked_ones_went_on(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A worker stuck in Event.wait does not keep the fetches parked behind it: they finish,
    then the round fails with StressTimeoutError naming only the stuck thread."""
    gate = threading.Event()
    error: StressTimeoutError | None = None

    def fn() -> str | None:
        if worker_index() == 0:
            gate.wait()
            return None
        return forge_token_provider.fetch_token().access_token

    try:
        with pytest.raises(StressTimeoutError) as info:
            forge_stress(fn, threads=3, timeout=1.0)  # the fetches take milliseconds
        error = info.value
    finally:
        gate.set()
        for thread in () if error is None else error.stuck:
            thread.join(timeout=10)
    assert error is not None
    assert error.round == 0
    assert [t.name.rsplit("-", 1)[1] for t in error.stuck] == ["t0"]
    assert "1 of 3 threads still inside fn()" in str(error)
    assert not error.stuck[0].is_alive()
    assert sorted(c.token.access_token for c in forge_token_provider.calls if c.token) == [
        "fake-access-1",
        "fake-access-2",
    ]
    assert {c.thread_name.rsplit("-", 1)[1] for c in forge_token_provider.calls} == {"t1", "t2"}
    assert tools_held_by_forge_stress() == []
    assert not {t.ident for t in error.stuck} & set(registry._workers)


def test_the_workers_held_forever_are_exactly_the_ones_named_stuck() -> None:
    """When every worker that calls fn waits on an Event that never comes, the timeout names
    exactly the workers that entered fn (however many the machine started in time)."""
    gate = threading.Event()
    entered: list[str] = []
    error: StressTimeoutError | None = None

    def fn() -> None:
        entered.append(threading.current_thread().name)
        gate.wait()

    try:
        with pytest.raises(StressTimeoutError) as info:
            forge_stress(fn, threads=3, timeout=0.3)
        error = info.value
    finally:
        gate.set()
        for thread in () if error is None else error.stuck:
            thread.join(timeout=10)
    assert error is not None
    assert sorted(t.name for t in error.stuck) == sorted(entered)
    assert f"{len(entered)} of 3 threads still inside fn()" in str(error)
    assert not [t for t in error.stuck if t.is_alive()]
