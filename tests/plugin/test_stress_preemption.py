"""Forced interleavings: workers park before every write in the user's code, and only there."""

from __future__ import annotations

import dis
import queue
import sys
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from requestforge import InMemoryTokenStorage, TokenData
from requestforge_testing import FakeTokenProvider, ForgeStressWarning, forge_stress
from requestforge_testing._stress import schedule
from requestforge_testing._stress.bytecode import Receiver, sites
from requestforge_testing._stress.trace import MONITORING

THREADS = 8
SEEDS = (0, 1, 2, None)
TOOL_NAME = "requestforge_testing forge_stress"

INNER_ARGS: tuple[str, ...] = ("-p", "requestforge_testing", "-p", "no:cacheprovider")
INNER_ARGS += ("--strict-markers", "-W", "error")

#: One park: its kind, and the module, code object and offset of the frame that parked.
Park = tuple[str, str, CodeType, int]


@pytest.fixture
def parks(monkeypatch: pytest.MonkeyPatch) -> list[Park]:
    """Every park of a worker during the test, with the user-side frame it happened in."""
    records: list[Park] = []
    record = records.append  # a plain call, not a method call: no write of its own
    park = schedule.Worker.park

    def recording(worker: schedule.Worker, kind: str) -> None:
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and str(frame.f_globals.get("__name__")).startswith(
            "requestforge_testing._stress"
        ):
            frame = frame.f_back
        assert frame is not None
        record((kind, str(frame.f_globals.get("__name__")), frame.f_code, frame.f_lasti))
        park(worker, kind)

    monkeypatch.setattr(schedule.Worker, "park", recording)
    return records


def monitoring_tools() -> dict[int, str]:
    """The sys.monitoring tool ids in use and their names (none before Python 3.12)."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return {}
    return {t: monitoring.get_tool(t) for t in range(6) if monitoring.get_tool(t) is not None}


# -- lost updates and narrow windows in the user's code, on default settings -------------------


class Counter:
    """A shared counter with an unlocked read-modify-write, and its locked twin."""

    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def bump(self) -> None:
        self.value += 1

    def bump_locked(self) -> None:
        with self.lock:
            self.value += 1


STATS: dict[str, int] = {"calls": 0}
TOTAL = 0


def bump_item() -> None:
    STATS["calls"] += 1


def bump_global() -> None:
    global TOTAL  # noqa: PLW0603 - the shared state under test
    TOTAL += 1


def lost_update(kind: str) -> tuple[Callable[[], None], Callable[[], int]]:
    """A function that bumps shared state of ``kind`` without a lock, and its reader."""
    global TOTAL  # noqa: PLW0603 - reset between runs
    if kind == "attribute":
        counter = Counter()
        return counter.bump, lambda: counter.value
    if kind == "item":
        STATS["calls"] = 0
        return bump_item, lambda: STATS["calls"]
    if kind == "global":
        TOTAL = 0
        return bump_global, lambda: TOTAL
    cell = 0

    def bump_closure() -> None:
        nonlocal cell
        cell += 1

    return bump_closure, lambda: cell


@pytest.mark.parametrize("kind", ["attribute", "item", "global", "closure"])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_lost_update_in_user_code_is_caught_on_defaults(kind: str, seed: int | None) -> None:
    """``x += 1`` on an attribute, a dict item, a global or a closure cell loses updates on
    every seed, because every worker reads before any of them writes."""
    bump, read = lost_update(kind)
    report = forge_stress(bump, threads=THREADS, seed=seed)
    report.assert_no_errors()
    assert read() < THREADS
    with pytest.raises(AssertionError, match=rf"is {read()}, expected {THREADS} .* lost"):
        report.assert_count(read(), name=kind)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_locked_counter_loses_nothing(seed: int | None) -> None:
    """The same increment under a lock counts every call: preemption raises no false alarm."""
    counter = Counter()
    report = forge_stress(counter.bump_locked, threads=THREADS, rounds=2, seed=seed)
    report.assert_no_errors()
    report.assert_count(counter.value)
    assert counter.value == 2 * THREADS


class EarlyReleaseCache:
    """Checks, locks, re-checks and fetches, but stores the token after the lock is released."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.lock = threading.Lock()
        self.token: TokenData | None = None

    def get_token(self) -> TokenData:
        token = self.token
        if token is not None:
            return token
        with self.lock:
            token = self.token
            if token is None:
                token = self.provider.fetch_token()
        self.token = token  # the window: the next thread in the lock still finds None
        return token


class StoreInLockCache(EarlyReleaseCache):
    """The correct twin: the store happens before the lock is released."""

    def get_token(self) -> TokenData:
        token = self.token
        if token is not None:
            return token
        with self.lock:
            if self.token is None:
                self.token = self.provider.fetch_token()
            return self.token


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lock_released_before_the_store_is_caught_on_defaults(seed: int | None) -> None:
    """The next thread into the lock re-checks before the first one stores: two or more
    fetches on every seed, while the twin that stores inside the lock fetches once."""
    provider = FakeTokenProvider()
    report = forge_stress(EarlyReleaseCache(provider).get_token, seed=seed)
    report.assert_no_errors()
    assert provider.fetch_count >= 2
    with pytest.raises(AssertionError, match=r"round 0: \d+ fetches, expected 1"):
        report.assert_single_fetch(provider)

    twin = FakeTokenProvider()
    forge_stress(StoreInLockCache(twin).get_token, seed=seed).assert_single_fetch(twin)
    assert twin.fetch_count == 1


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with only this plugin loaded (autoloaded plugins could mask what it does)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_the_bare_marker_catches_a_lost_update_in_a_user_module(inner: pytest.Pytester) -> None:
    """A user's hook module doing ``stats[key] += 1`` loses updates under a bare
    ``@pytest.mark.forge_stress``; its locked twin counts all eight calls."""
    inner.makepyfile(
        hooks="""
        import threading

        STATS = {"calls": 0}
        SAFE = {"calls": 0}
        LOCK = threading.Lock()

        def on_response():
            STATS["calls"] += 1

        def on_response_locked():
            with LOCK:
                SAFE["calls"] += 1
        """,
        test_user="""
        import pytest
        import hooks

        @pytest.mark.forge_stress
        def test_hook():
            hooks.on_response()

        @pytest.mark.forge_stress
        def test_locked_hook():
            hooks.on_response_locked()

        def test_the_hook_counted_every_call():
            assert hooks.STATS["calls"] == 8

        def test_the_locked_hook_counted_every_call():
            assert hooks.SAFE["calls"] == 8
        """,
    )
    inner.syspathinsert()
    result = inner.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_the_hook_counted_every_call*"])


# -- where workers park, and where they do not ----------------------------------------------------


class Box:
    value = 0


SHARED: list[int] = []


def two_writes(box: Box) -> None:
    SHARED.append(1)
    box.value = 2


def test_every_worker_parks_once_before_each_of_its_writes(parks: list[Park]) -> None:
    """With preemption on, each worker parks once per write it executes, in the user's function
    and at the very instructions bytecode.sites() reports as writes."""
    box = Box()
    forge_stress(lambda: two_writes(box), threads=THREADS).assert_no_errors()
    code = two_writes.__code__
    writes = {offset for offset, site in sites(code).items() if site.writes}
    assert len(writes) == 2
    assert [kind for kind, *_ in parks] == ["write"] * 2 * THREADS
    assert {(module, parked_code) for _, module, parked_code, _ in parks} == {(__name__, code)}
    assert Tally(offset for *_, offset in parks) == dict.fromkeys(writes, THREADS)


def test_preempt_false_never_parks_at_a_write(parks: list[Park]) -> None:
    """preempt=False turns the interleavings off: no write parks, only the fake provider's hold."""
    box = Box()
    provider = FakeTokenProvider()

    def fn() -> None:
        two_writes(box)
        provider.fetch_token()

    forge_stress(fn, threads=THREADS, preempt=False).assert_no_errors()
    assert [kind for kind, *_ in parks] == ["fetch"] * THREADS
    parks.clear()
    forge_stress(fn, threads=THREADS).assert_no_errors()
    assert sorted(kind for kind, *_ in parks) == ["fetch"] * THREADS + ["write"] * 2 * THREADS


@pytest.mark.parametrize(
    ("call", "package"),
    [
        (InMemoryTokenStorage, "requestforge"),
        (lambda: queue.Queue(maxsize=1), "queue"),
        (lambda: CaseInsensitiveDict({"a": "1"}), "requests"),
    ],
    ids=["requestforge", "stdlib", "site-packages"],
)
def test_library_code_is_interleaved_only_when_named(
    parks: list[Park], call: Callable[[], object], package: str
) -> None:
    """Writes in requestforge, the standard library or site-packages park no worker, unless
    preempt_packages names the package; then they all park there, in that package, whatever
    the runs before did."""
    for _ in range(2):
        parks.clear()
        forge_stress(call, threads=3).assert_no_errors()
        assert parks == []
        forge_stress(call, threads=3, preempt_packages=[package]).assert_no_errors()
        modules = {module for _, module, _, _ in parks}
        assert len(parks) >= 3
        assert all(m == package or m.startswith(package + ".") for m in modules), modules


# -- the backend, and tracers and monitoring tools that were there first -------------------------


def probe() -> tuple[str | None, list[int]]:
    """Who traces the calling worker: the owner type of its trace function, forge_stress's
    sys.monitoring tool ids."""
    owner = getattr(sys.gettrace(), "__self__", None)
    tools = [tool for tool, name in monitoring_tools().items() if name == TOOL_NAME]
    return (None if owner is None else type(owner).__name__), tools


def test_the_backend_is_monitoring_from_312_and_settrace_before() -> None:
    """Workers are interleaved through one sys.monitoring tool on 3.12+ (no trace function),
    through a per-thread settrace tracer on 3.10/3.11; both are gone after the run."""
    before = sys.gettrace()
    report = forge_stress(probe, threads=3)
    report.assert_no_errors()
    if MONITORING:
        [(owner, tools)] = {(owner, tuple(tools)) for owner, tools in report.results}
        assert owner is None
        assert len(tools) == 1
    else:
        assert report.results == [("_Tracer", [])] * 3
    assert sys.gettrace() is before
    assert TOOL_NAME not in monitoring_tools().values()


def quiet_tracer(frame: FrameType, event: str, arg: Any) -> None:
    """A trace function that traces nothing (a stand-in for a debugger or coverage.py)."""


@pytest.fixture
def own_tracer() -> Iterator[None]:
    """The test's thread traced by quiet_tracer, and the previous tracer put back after."""
    previous = sys.gettrace()
    sys.settrace(quiet_tracer)
    try:
        yield
    finally:
        sys.settrace(previous)


@pytest.mark.usefixtures("own_tracer")
def test_a_trace_function_of_the_calling_thread_is_kept() -> None:
    """A tracer set in the test's thread before the run is still set after it, and the
    workers (other threads) are interleaved all the same."""
    counter = Counter()
    forge_stress(counter.bump, threads=THREADS).assert_no_errors()
    assert counter.value < THREADS
    assert sys.gettrace() is quiet_tracer


@pytest.fixture
def thread_tracer() -> Iterator[None]:
    """quiet_tracer installed in every new thread (threading.settrace), removed afterwards."""
    previous = threading.gettrace()
    threading.settrace(quiet_tracer)
    try:
        yield
    finally:
        threading.settrace(previous)


@pytest.mark.skipif(MONITORING, reason="settrace is the backend on Python 3.10 and 3.11")
@pytest.mark.usefixtures("thread_tracer")
def test_workers_with_a_tracer_of_their_own_keep_it_and_run_uninterleaved(
    parks: list[Park],
) -> None:
    """On 3.10/3.11 a worker that starts with a trace function keeps it and runs without
    forced interleavings (no write parks), and forge_stress warns that it did."""
    box = Box()

    def fn() -> bool:
        two_writes(box)
        return sys.gettrace() is quiet_tracer

    with pytest.warns(ForgeStressWarning, match="ran 3 of 3 calls without forced interleav"):
        report = forge_stress(fn, threads=3)
    assert report.results == [True] * 3
    assert parks == []
    assert threading.gettrace() is quiet_tracer


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is Python 3.12+")
@pytest.mark.usefixtures("thread_tracer")
def test_workers_with_a_tracer_of_their_own_are_interleaved_by_monitoring(
    parks: list[Park],
) -> None:
    """On 3.12+ a worker that starts with a trace function keeps it and is interleaved all the
    same (sys.monitoring does not need settrace), with no warning."""
    box = Box()

    def fn() -> bool:
        two_writes(box)
        return sys.gettrace() is quiet_tracer

    report = forge_stress(fn, threads=3)
    assert report.results == [True] * 3
    assert [kind for kind, *_ in parks] == ["write"] * 6
    assert threading.gettrace() is quiet_tracer


@pytest.fixture
def taken_tools(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The first ``request.param`` of the tool ids 4, 3, 5 taken, each with a live PY_START
    callback recording started code names (yielded), and checked intact and freed after."""
    monitoring = sys.monitoring  # type: ignore[attr-defined]
    started: list[str] = []
    taken: list[int] = []
    try:
        for tool in (4, 3, 5)[: request.param]:
            monitoring.use_tool_id(tool, f"test tool {tool}")
            taken.append(tool)
            monitoring.register_callback(
                tool, monitoring.events.PY_START, lambda code, offset: started.append(code.co_name)
            )
            monitoring.set_events(tool, monitoring.events.PY_START)
        yield started
        for tool in taken:
            assert monitoring.get_tool(tool) == f"test tool {tool}"
            assert monitoring.get_events(tool) == monitoring.events.PY_START
    finally:
        for tool in taken:
            monitoring.set_events(tool, 0)
            monitoring.register_callback(tool, monitoring.events.PY_START, None)
            monitoring.free_tool_id(tool)


def started_after_the_run() -> None:
    """Called only after forge_stress returned, to see a tool's callback still fire."""


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is Python 3.12+")
@pytest.mark.parametrize("taken_tools", [1], indirect=True)
def test_a_monitoring_tool_in_use_before_the_run_is_left_working(taken_tools: list[str]) -> None:
    """With tool id 4 already taken, forge_stress interleaves through another id, frees it,
    and leaves the first tool's name, events and callback as they were."""
    counter = Counter()
    forge_stress(counter.bump, threads=THREADS).assert_no_errors()
    assert counter.value < THREADS
    assert TOOL_NAME not in monitoring_tools().values()
    taken_tools.clear()
    started_after_the_run()
    assert "started_after_the_run" in taken_tools


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is Python 3.12+")
@pytest.mark.parametrize("taken_tools", [3], indirect=True)
def test_without_a_free_monitoring_tool_the_run_goes_on_uninterleaved(
    taken_tools: list[str], parks: list[Park]
) -> None:
    """With tool ids 3, 4 and 5 all taken, forge_stress runs without forced interleavings
    (no write parks) and warns instead of failing, and takes none of them."""
    box = Box()
    with pytest.warns(ForgeStressWarning, match="no sys.monitoring tool id was free"):
        forge_stress(lambda: two_writes(box), threads=3).assert_no_errors()
    assert parks == []
    assert TOOL_NAME not in monitoring_tools().values()


# -- bytecode.sites: the writes and the waits, read from the bytecode ---------------------------

REGISTRY: list[int] = []
LOCK = threading.Lock()
GLOBAL_VALUE = 0


def store_attribute(o: Any) -> None:
    o.x = 1


def store_item(d: dict[str, int]) -> None:
    d["k"] = 1


def store_slice(items: list[int]) -> None:
    items[1:2] = []


def store_global() -> None:
    global GLOBAL_VALUE  # noqa: PLW0603 - the write under test
    GLOBAL_VALUE = 1


def _store_closure() -> Callable[[], None]:
    cell = 0

    def store_closure() -> None:
        nonlocal cell
        cell = 1

    return store_closure


def delete_attribute(o: Any) -> None:
    del o.x


def delete_item(d: dict[str, int]) -> None:
    del d["k"]


def call_append(items: list[int]) -> None:
    items.append(1)


def call_extend_on_attribute(self: Any) -> None:
    self.items.extend([1, 2])


def call_update_with_keywords(d: dict[str, int]) -> None:
    d.update(a=1, b=2)


def call_setitem(d: dict[str, int]) -> None:
    d.__setitem__("k", 1)


def call_set_with_nested_arguments(self: Any, key: str) -> None:
    self.cache.set(key, str(len(key)))


def call_append_on_global() -> None:
    REGISTRY.append(1)


def read_only(items: list[int]) -> int:
    return items.count(1) + len(items)


def local_only() -> int:
    x = 1
    return x


def with_local(lock: threading.Lock) -> None:
    with lock:
        pass


def with_attribute(self: Any) -> None:
    with self._lock:
        pass


def with_global() -> None:
    with LOCK:
        pass


def call_acquire(self: Any) -> None:
    self._lock.acquire()


CALLS = {"CALL", "CALL_METHOD", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_KW"}
WITHS = {"SETUP_WITH", "BEFORE_WITH"}
#: (allowed opnames, method, receiver, writes) of each expected site, in offset order.
Expected = tuple[set[str], str | None, Receiver | None, bool]


def local(name: str, *attributes: str) -> Receiver:
    return Receiver("local", name, attributes)


SITES: list[tuple[Callable[..., object], list[Expected]]] = [
    (store_attribute, [({"STORE_ATTR"}, None, None, True)]),
    (store_item, [({"STORE_SUBSCR"}, None, None, True)]),
    (store_slice, [({"STORE_SUBSCR", "STORE_SLICE"}, None, None, True)]),
    (store_global, [({"STORE_GLOBAL"}, None, None, True)]),
    (_store_closure(), [({"STORE_DEREF"}, None, None, True)]),
    (delete_attribute, [({"DELETE_ATTR"}, None, None, True)]),
    (delete_item, [({"DELETE_SUBSCR"}, None, None, True)]),
    (call_append, [(CALLS, "append", local("items"), True)]),
    (call_extend_on_attribute, [(CALLS, "extend", local("self", "items"), True)]),
    (call_update_with_keywords, [(CALLS, "update", local("d"), True)]),
    (call_setitem, [(CALLS, "__setitem__", local("d"), True)]),
    (call_set_with_nested_arguments, [(CALLS, "set", local("self", "cache"), True)]),
    (call_append_on_global, [(CALLS, "append", Receiver("global", "REGISTRY", ()), True)]),
    (read_only, [(CALLS, "count", local("items"), False)]),
    (local_only, []),
    (with_local, [(WITHS, None, local("lock"), False)]),
    (with_attribute, [(WITHS, None, local("self", "_lock"), False)]),
    (with_global, [(WITHS, None, Receiver("global", "LOCK", ()), False)]),
    (call_acquire, [(CALLS, "acquire", local("self", "_lock"), False)]),
]


@pytest.mark.parametrize(("function", "expected"), SITES, ids=[f.__name__ for f, _ in SITES])
def test_sites_finds_stores_mutating_calls_and_with_receivers(
    function: Callable[..., object], expected: list[Expected]
) -> None:
    """sites() reports each store, mutating method call, lock call and ``with`` receiver of a
    function at its instruction's offset, with the method and receiver it names, and nothing
    else (STORE_FAST, plain calls), on every supported Python."""
    code = function.__code__
    opnames = {i.offset: i.opname for i in dis.get_instructions(code)}
    found = sorted(sites(code).items())
    assert len(found) == len(expected), found
    for (offset, site), (allowed, method, receiver, writes) in zip(found, expected, strict=True):
        assert site.opname == opnames[offset]
        assert site.opname in allowed
        assert (site.method, site.receiver, site.writes) == (method, receiver, writes)
