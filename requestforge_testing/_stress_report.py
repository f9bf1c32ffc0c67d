"""The report of a ``forge_stress`` run, and the assertions it makes about it.

Failure messages say what happened, thread by thread: which workers fetched in which round,
which session object was shared by which workers. A bare ``False`` proves nothing to the
reader of a failed CI run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar, Union, cast

from requestforge_testing._providers import FakeTokenProvider, ProviderCall

__all__ = [
    "FetchCounter",
    "HasFetchCount",
    "SessionSource",
    "StressOutcome",
    "StressReport",
    "StressRound",
]

T = TypeVar("T")


class HasFetchCount(Protocol):
    """Anything with a ``fetch_count`` (a ``FakeTokenProvider``, a counting test double)."""

    @property
    def fetch_count(self) -> int: ...


class SessionSource(Protocol):
    """Anything with a per-thread ``session`` attribute, such as an ``HttpClient``."""

    @property
    def session(self) -> object: ...


#: What ``forge_stress(counter=...)`` reads between rounds.
FetchCounter = Union[Callable[[], int], HasFetchCount]  # noqa: UP007 - a runtime alias on 3.10


@dataclass(frozen=True)
class StressOutcome(Generic[T]):
    """One thread's call in one round: what it returned or raised, and how long it took.

    ``sessions`` holds the objects ``sessions.session`` returned in this thread just before
    and just after ``fn()`` when ``forge_stress`` was given ``sessions=`` (else empty).
    """

    round: int
    index: int
    thread_id: int
    thread_name: str
    result: T | None
    error: BaseException | None
    elapsed: float
    sessions: tuple[object, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the call returned instead of raising."""
        return self.error is None

    @property
    def who(self) -> str:
        """``round R thread I (name)``: how failure messages name this thread."""
        return f"round {self.round} thread {self.index} ({self.thread_name})"


@dataclass(frozen=True)
class StressRound(Generic[T]):
    """One round: every thread's outcome in thread index order, and how long it took.

    ``counts`` is the ``counter=`` value just before and just after the round (after
    ``before_round`` ran), or None when ``forge_stress`` was given no counter.
    """

    index: int
    outcomes: tuple[StressOutcome[T], ...]
    counts: tuple[int, int] | None = None
    elapsed: float = 0.0

    @property
    def results(self) -> list[T]:
        """Return values of this round's successful calls, in thread index order."""
        return [cast(T, o.result) for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[StressOutcome[T]]:
        """This round's outcomes that raised."""
        return [o for o in self.outcomes if o.error is not None]


@dataclass(frozen=True)
class StressReport(Generic[T]):
    """Everything ``forge_stress`` saw: ``rounds`` in order and ``threads`` per round.

    ``counter`` and ``session_source`` are the ``counter=`` and ``sessions=`` arguments, kept
    so the assertion helpers can check that they are asked about the same objects.
    """

    #: The assertion helpers list this many items (failed threads, fetches, rounds, sharing
    #: threads) and summarise the rest, so 64 threads x 20 rounds of one bug stay readable.
    MAX_LISTED: ClassVar[int] = 20
    #: The older name of MAX_LISTED, kept for code that reads it.
    MAX_LISTED_ERRORS: ClassVar[int] = MAX_LISTED

    rounds: tuple[StressRound[T], ...]
    threads: int
    counter: FetchCounter | None = None
    session_source: SessionSource | None = None

    @property
    def outcomes(self) -> tuple[StressOutcome[T], ...]:
        """Every call of every round, by round then thread index."""
        return tuple(o for r in self.rounds for o in r.outcomes)

    @property
    def results(self) -> list[T]:
        """Return values of every successful call, by round then thread index."""
        return [cast(T, o.result) for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[StressOutcome[T]]:
        """The outcomes that raised, by round then thread index."""
        return [o for o in self.outcomes if o.error is not None]

    def assert_no_errors(self) -> None:
        """Raise ``AssertionError`` naming every failed thread and its error, chained from the
        first error so its traceback is shown too."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        errors = self.errors
        if not errors:
            return
        lines = [f"{len(errors)} of {len(self.outcomes)} forge_stress calls failed ({self._size}):"]
        listed, rest = errors[: self.MAX_LISTED], errors[self.MAX_LISTED :]
        lines += [f"  {o.who}: {_describe(o.error)}" for o in listed]
        if rest:
            kinds = Counter(type(o.error).__qualname__ for o in rest)
            summary = ", ".join(f"{name} x{count}" for name, count in kinds.most_common())
            lines.append(f"  ... and {len(rest)} more ({summary})")
        raise AssertionError("\n".join(lines)) from errors[0].error

    def assert_single_fetch(
        self,
        provider_or_counter: FakeTokenProvider | FetchCounter,
        *,
        rounds: Iterable[int] | None = None,
    ) -> None:
        """Assert exactly one token fetch in each round (or in each of ``rounds``, the rounds
        whose token was missing or stale) and none in the other rounds.

        A ``FakeTokenProvider`` records which thread made each call, so its calls (fetches
        and refreshes, failed ones too: each reached the token endpoint) are attributed to
        rounds by the thread id and name of each round's workers; calls from other threads
        (the test itself, a background refresher) are not counted, and the failure message
        lists them. Anything else must be the ``counter=`` given to ``forge_stress``, which
        read it just before and just after every round: those snapshots are all it knows,
        so a plain counter cannot tell which threads fetched, or a worker's fetch from one
        made meanwhile by another thread.
        """
        __tracebackhide__ = True
        want = self._fetching_rounds(rounds)
        if isinstance(provider_or_counter, FakeTokenProvider):
            lines, note = self._fetches_by_thread(provider_or_counter, want)
        elif self.counter is not None and provider_or_counter is self.counter:
            lines, note = (
                self._fetches_by_snapshot(want),
                (
                    "  (counted from snapshots of the counter taken between rounds: pass a "
                    "FakeTokenProvider to see which threads fetched)"
                ),
            )
        else:
            raise ValueError(
                f"assert_single_fetch needs a FakeTokenProvider, or the counter given as "
                f"forge_stress(counter=...) (it reads it between rounds); got "
                f"{provider_or_counter!r}"
            )
        if not lines:
            return
        expected = (
            "every round"
            if len(want) == len(self.rounds)
            else f"round{'s' if len(want) != 1 else ''} {sorted(want)} and none in the others"
        )
        header = (
            f"assert_single_fetch: expected exactly one token fetch in {expected} "
            f"({self._size}), but:"
        )
        raise AssertionError("\n".join([header, *lines, *([note] if note else [])]))

    def assert_per_thread_sessions(self, client: SessionSource) -> None:
        """Assert each worker saw one session throughout its call and no two workers (in any
        round) saw the same one.

        ``client`` must be the ``sessions=`` given to ``forge_stress``: each worker read
        ``client.session`` itself, just before and just after ``fn()``, while every other
        worker of its round was still alive. The report keeps the session objects, so their
        ids are never reused within it. With one thread and one round nothing can be shared.
        """
        __tracebackhide__ = True
        if self.session_source is None or client is not self.session_source:
            raise ValueError(
                "assert_per_thread_sessions needs the object given as forge_stress(sessions=...) "
                f"(each worker reads its .session there); got {client!r}"
            )
        owners: dict[int, list[StressOutcome[T]]] = {}
        kinds: dict[int, str] = {}
        several: list[tuple[StressOutcome[T], list[int]]] = []
        for outcome in self.outcomes:
            seen = list(dict.fromkeys(id(s) for s in outcome.sessions))
            for session in outcome.sessions:
                kinds[id(session)] = type(session).__qualname__
            if len(seen) > 1:
                several.append((outcome, seen))
            for ident in seen:
                owners.setdefault(ident, []).append(outcome)
        lines = [
            f"  session {ident:#x} ({kinds[ident]}) was shared by {len(users)} threads: "
            + _listed([u.who for u in users], self.MAX_LISTED)
            for ident, users in owners.items()
            if len(users) > 1
        ]
        lines += [
            f"  {o.who} saw {len(seen)} sessions: {', '.join(f'{s:#x}' for s in seen)}"
            for o, seen in several
        ]
        if lines:
            raise AssertionError(
                "\n".join(
                    [
                        f"assert_per_thread_sessions: {type(client).__name__}.session is not one "
                        f"session per thread ({self._size}; read in each worker before and "
                        "after its call):",
                        *_capped(lines, self.MAX_LISTED),
                    ]
                )
            )

    # -- helpers of the assertions --------------------------------------------------------

    @property
    def _size(self) -> str:
        rounds = len(self.rounds)
        return f"{self.threads} threads x {rounds} round{'s' if rounds != 1 else ''}"

    def _fetching_rounds(self, rounds: Iterable[int] | None) -> frozenset[int]:
        everything = range(len(self.rounds))
        if rounds is None:
            return frozenset(everything)
        chosen = frozenset(rounds)
        bad = sorted(
            (
                r
                for r in chosen
                if isinstance(r, bool) or not isinstance(r, int) or r not in everything
            ),
            key=repr,
        )
        if bad:
            raise ValueError(f"rounds must be round indexes 0..{len(self.rounds) - 1}, got {bad!r}")
        return chosen

    def _fetches_by_thread(
        self, provider: FakeTokenProvider, want: frozenset[int]
    ) -> tuple[list[str], str]:
        # Names carry a per-run number, ids are unique while a round's workers live: together
        # they tell this run's workers apart from any other thread, past or present.
        workers = {(o.thread_id, o.thread_name): o for o in self.outcomes}
        per_round: dict[int, list[tuple[ProviderCall, StressOutcome[T]]]] = {}
        outside: list[ProviderCall] = []
        for call in sorted(provider.calls, key=lambda c: c.number):
            worker = workers.get((call.thread_id, call.thread_name))
            if worker is None:
                outside.append(call)
            else:
                per_round.setdefault(worker.round, []).append((call, worker))
        lines: list[str] = []
        for round_ in self.rounds:
            calls = per_round.get(round_.index, [])
            expected = 1 if round_.index in want else 0
            if len(calls) == expected:
                continue
            if not calls:
                lines.append(f"  round {round_.index}: no fetch, expected {expected}")
                continue
            made = [f"{c.kind} #{c.number} by thread {w.index} ({w.thread_name})" for c, w in calls]
            lines.append(
                f"  round {round_.index}: {len(calls)} fetch{'es' if len(calls) != 1 else ''}, "
                f"expected {expected}: {_listed(made, self.MAX_LISTED)}"
            )
        lines = _capped(lines, self.MAX_LISTED)
        note = ""
        if lines and outside:
            made = [f"{c.kind} #{c.number} by {c.thread_name}" for c in outside]
            note = (
                f"  (not counted: {len(outside)} call{'s' if len(outside) != 1 else ''} from "
                f"threads outside the rounds: {_listed(made, self.MAX_LISTED)})"
            )
        return lines, note

    def _fetches_by_snapshot(self, want: frozenset[int]) -> list[str]:
        lines: list[str] = []
        for round_ in self.rounds:
            before, after = cast("tuple[int, int]", round_.counts)
            fetched, expected = after - before, 1 if round_.index in want else 0
            if fetched != expected:
                lines.append(
                    f"  round {round_.index}: the counter went from {before} to {after}: "
                    f"{fetched} fetch{'es' if fetched != 1 else ''}, expected {expected}"
                )
        return _capped(lines, self.MAX_LISTED)


def _describe(error: BaseException | None) -> str:
    """``Type: first line of the message``: one line per thread in a failure report."""
    name = type(error).__qualname__
    lines = str(error).strip().splitlines()
    if not lines:
        return name
    return f"{name}: {lines[0]}" + (" [...]" if len(lines) > 1 else "")


def _listed(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _capped(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more"]
