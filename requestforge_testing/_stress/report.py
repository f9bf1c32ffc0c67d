"""The report of a ``forge_stress`` run, and the assertions it makes about it.

Failure messages say what happened, thread by thread: which workers fetched in which round
and from where, which session object was shared by which workers or clients, which caller
got a token about to expire. Every one ends with the seed of its schedule and how to run
that schedule again. A bare ``False`` proves nothing to the reader of a failed CI run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar, Union, cast

from requestforge_testing._stress.counting import lost_updates_message
from requestforge_testing._stress.text import capped, describe_error, listed
from requestforge_testing._stress.tokens import describe_token, tokens_in

if TYPE_CHECKING:
    from requestforge_testing._oauth_server import OAuthServer
    from requestforge_testing._providers import FakeTokenProvider
    from requestforge_testing._stress.observe import Observations

__all__ = [
    "FetchCounter",
    "HasFetchCount",
    "SessionSource",
    "StressOutcome",
    "StressReport",
    "StressRound",
    "replay_hint",
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

    ``sessions_by_source`` holds, per client given as ``forge_stress(sessions=...)``, the
    objects its ``session`` returned in this thread just before and just after ``fn()``.
    ``returned_at`` is the library's clock (``forge_clock`` in a test) when ``fn()`` ended.
    """

    round: int
    index: int
    thread_id: int
    thread_name: str
    result: T | None
    error: BaseException | None
    elapsed: float
    sessions_by_source: tuple[tuple[object, ...], ...] = ()
    returned_at: datetime | None = None
    schedule: int | None = None

    @property
    def ok(self) -> bool:
        """True when the call returned instead of raising."""
        return self.error is None

    @property
    def sessions(self) -> tuple[object, ...]:
        """Every session object this thread read, client after client."""
        return tuple(s for seen in self.sessions_by_source for s in seen)

    @property
    def who(self) -> str:
        """``round R thread I (name)``: how failure messages name this thread."""
        prefix = "" if self.schedule is None else f"schedule {self.schedule} "
        return f"{prefix}round {self.round} thread {self.index} ({self.thread_name})"


class _Outcomes(Generic[T]):
    """``results`` and ``errors`` of a round or of a whole report, from its ``outcomes``."""

    if TYPE_CHECKING:  # a field of StressRound, a property of StressReport

        @property
        def outcomes(self) -> Sequence[StressOutcome[T]]: ...

    @property
    def results(self) -> list[T]:
        """Return values of the successful calls, by round then thread index."""
        return [cast(T, o.result) for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[StressOutcome[T]]:
        """The calls that raised, by round then thread index."""
        return [o for o in self.outcomes if o.error is not None]


@dataclass(frozen=True)
class StressRound(_Outcomes[T]):
    """One round: every thread's outcome in thread index order, and how long it took.

    ``counts`` is the ``counter=`` value just before and just after the round (after
    ``before_round`` ran), or None when ``forge_stress`` was given no counter. ``seed``
    drove this round's schedule; ``schedule`` numbers it when there were several.
    """

    index: int
    outcomes: tuple[StressOutcome[T], ...]
    counts: tuple[int, int] | None = None
    elapsed: float = 0.0
    seed: int | None = None
    schedule: int | None = None

    @property
    def label(self) -> str:
        """``round R``, or ``schedule S round R`` when the run explored several schedules."""
        prefix = "" if self.schedule is None else f"schedule {self.schedule} "
        return f"{prefix}round {self.index}"


@dataclass(frozen=True)
class StressReport(_Outcomes[T]):
    """Everything ``forge_stress`` saw: ``rounds`` in order and ``threads`` per round.

    ``counter`` and ``session_sources`` are the ``counter=`` and ``sessions=`` arguments,
    kept so the assertion helpers can check that they are asked about the same objects.
    """

    #: The assertion helpers list this many items (failed threads, fetches, rounds, sharing
    #: threads) and summarise the rest, so 64 threads x 20 rounds of one bug stay readable.
    MAX_LISTED: ClassVar[int] = 20
    #: The older name of MAX_LISTED, kept for code that reads it.
    MAX_LISTED_ERRORS: ClassVar[int] = MAX_LISTED

    rounds: tuple[StressRound[T], ...]
    threads: int
    counter: FetchCounter | object | None = None
    session_sources: tuple[SessionSource, ...] = ()
    seed: int | None = None
    observations: Observations | None = None

    @property
    def session_source(self) -> SessionSource | None:
        """The first (usually the only) ``sessions=`` client, or None."""
        return self.session_sources[0] if self.session_sources else None

    @property
    def outcomes(self) -> tuple[StressOutcome[T], ...]:
        """Every call of every round, by round then thread index."""
        return tuple(o for r in self.rounds for o in r.outcomes)

    def assert_no_errors(self) -> None:
        """Raise ``AssertionError`` naming every failed thread and its error, chained from the
        first error so its traceback is shown too."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        errors = self.errors
        if not errors:
            return
        lines = [f"{len(errors)} of {len(self.outcomes)} forge_stress calls failed ({self._size}):"]
        listed, rest = errors[: self.MAX_LISTED], errors[self.MAX_LISTED :]
        lines += [f"  {o.who}: {describe_error(o.error)}" for o in listed]
        if rest:
            kinds = Counter(type(o.error).__qualname__ for o in rest)
            summary = ", ".join(f"{name} x{count}" for name, count in kinds.most_common())
            lines.append(f"  ... and {len(rest)} more ({summary})")
        lines.append(self._replay(self._round_of(errors[0])))
        raise AssertionError("\n".join(lines)) from errors[0].error

    def assert_single_fetch(
        self,
        provider_or_counter: FakeTokenProvider | OAuthServer | FetchCounter | object,
        *,
        rounds: Iterable[int] | None = None,
    ) -> None:
        """Assert exactly one token fetch in each round (or in each of ``rounds``, the rounds
        whose token was missing or stale) and none in the other rounds.

        Pass the ``FakeTokenProvider`` or the ``OAuthServer`` the code fetches from (each
        fetch is then named with its thread and the line of your code that caused it), or
        the ``counter=`` given to ``forge_stress``. A provider given as ``counter=`` is
        watched call by call; any other counter is read only between rounds, and cannot
        tell which threads fetched. Calls from threads outside the rounds (the test
        itself, a background refresher) are not counted; the message lists them.
        """
        __tracebackhide__ = True
        from requestforge_testing._stress.fetches import single_fetch_failure  # noqa: PLC0415

        message = single_fetch_failure(self, provider_or_counter, rounds)
        if message is not None:
            raise AssertionError(message)

    def assert_per_thread_sessions(
        self, clients: SessionSource | Sequence[SessionSource] | None = None
    ) -> None:
        """Assert each worker saw one session of each client throughout its call, and no
        session was seen by two threads (in any round) or through two clients.

        ``clients`` are the ``sessions=`` given to ``forge_stress`` (all of them when
        omitted): each worker read every client's ``session`` itself, just before and just
        after ``fn()``, while every other worker of its round was still alive. The report
        keeps the session objects, so their ids are never reused within it.
        """
        __tracebackhide__ = True
        sources = self._sources(clients)
        owners: dict[int, list[tuple[StressOutcome[T], int]]] = {}
        kinds: dict[int, str] = {}
        several: list[str] = []
        for outcome in self.outcomes:
            for position, seen in enumerate(outcome.sessions_by_source):
                if position not in sources:
                    continue
                distinct = list(dict.fromkeys(id(s) for s in seen))
                for session in seen:
                    kinds[id(session)] = type(session).__qualname__
                if len(distinct) > 1:
                    of = self._of_client(position)
                    several.append(
                        f"  {outcome.who} saw {len(distinct)} sessions{of}: "
                        + ", ".join(f"{s:#x}" for s in distinct)
                    )
                for ident in distinct:
                    owners.setdefault(ident, []).append((outcome, position))
        lines: list[str] = []
        for ident, users in owners.items():
            threads = list(dict.fromkeys(o.who for o, _ in users))
            clients_seen = list(dict.fromkeys(p for _, p in users))
            if len(clients_seen) > 1:
                lines.append(
                    f"  session {ident:#x} ({kinds[ident]}) was shared by "
                    f"{len(clients_seen)} clients, "
                    + " and ".join(self._client_name(p) for p in clients_seen)
                    + f", in {listed(threads, self.MAX_LISTED)}"
                )
            elif len(threads) > 1:
                of = self._of_client(clients_seen[0])
                lines.append(
                    f"  session {ident:#x} ({kinds[ident]}){of} was shared by {len(threads)} "
                    "threads: " + listed(threads, self.MAX_LISTED)
                )
        lines += several
        if lines:
            types = [type(self.session_sources[p]).__name__ for p in sorted(sources)]
            subject = (
                f"{types[0]}.session is"
                if len(types) == 1
                else f"the sessions of {len(types)} clients ({', '.join(types)}) are"
            )
            raise AssertionError(
                "\n".join(
                    [
                        f"assert_per_thread_sessions: {subject} not one session per thread"
                        f"{' and client' if len(sources) > 1 else ''} ({self._size}; read in "
                        "each worker before and after its call):",
                        *capped(lines, self.MAX_LISTED),
                        self._replay(self.rounds[0] if self.rounds else None),
                    ]
                )
            )

    def assert_fresh_tokens(self, leeway: float = 30.0) -> None:
        """Assert no call returned a token that expires within ``leeway`` seconds of the
        moment it was returned, judged on the library's clock (``forge_clock`` in a test).

        ``fn`` must return the tokens (a ``TokenData``, an object with ``expires_at``, a
        fake provider's access token string, or a tuple or list of them). A token manager
        without leeway hands out a token seconds before it expires; the API then rejects it
        in flight.
        """
        __tracebackhide__ = True
        if (
            isinstance(leeway, bool)
            or not isinstance(leeway, int | float)
            or not math.isfinite(leeway)
            or leeway < 0
        ):
            raise ValueError(f"leeway must be a number of seconds >= 0, got {leeway!r}")
        checked, stale = 0, []
        for outcome in self.outcomes:
            if outcome.error is not None or outcome.returned_at is None:
                continue
            for token in tokens_in(outcome.result):
                checked += 1
                expires_at = getattr(token, "expires_at", None)
                if not isinstance(expires_at, datetime):
                    continue
                remaining = (expires_at - outcome.returned_at).total_seconds()
                if remaining < leeway:
                    when = (
                        f"expires {remaining:g}s after it was returned"
                        if remaining >= 0
                        else f"had expired {-remaining:g}s before it was returned"
                    )
                    stale.append(f"  {outcome.who} got {describe_token(token)}, which {when}")
        if not checked and self.outcomes and not any(o.ok for o in self.outcomes):
            raise ValueError(
                "assert_fresh_tokens found no token among the results: every call raised: "
                "see assert_no_errors()"
            )
        if not checked:
            raise ValueError(
                "assert_fresh_tokens found no token among the results: fn must return the "
                "tokens it got (e.g. forge_stress(manager.get_token, ...))"
            )
        if stale:
            raise AssertionError(
                "\n".join(
                    [
                        f"assert_fresh_tokens: {len(stale)} of {checked} tokens returned expire "
                        f"within the {leeway:g}s leeway ({self._size}; on the library's clock):",
                        *capped(stale, self.MAX_LISTED),
                        "  a token must be renewed some time before it expires, or the API "
                        "rejects it in flight: give the token cache a leeway",
                        self._replay(self.rounds[0] if self.rounds else None),
                    ]
                )
            )

    def assert_count(self, observed: int, *, per_call: int = 1, name: str = "the count") -> None:
        """Assert ``observed`` (a counter kept by the code under test: a response hook's
        tally, a metric) equals ``per_call`` times the number of calls that returned.

        Fewer means updates were lost: a read-modify-write such as ``stats[key] += 1`` on
        shared state without a lock.
        """
        __tracebackhide__ = True
        if isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 0:
            raise ValueError(f"per_call must be an int >= 0, got {per_call!r}")
        calls = sum(1 for o in self.outcomes if o.error is None)
        message = lost_updates_message(
            name, observed, per_call * calls, f"{per_call} per call, {calls} calls: {self._size}"
        )
        if message is not None:
            raise AssertionError(
                f"{message}\n{self._replay(self.rounds[0] if self.rounds else None)}"
            )

    # -- helpers of the assertions --------------------------------------------------------

    @property
    def _size(self) -> str:
        rounds = len(self.rounds)
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{threads} x {rounds} round{'s' if rounds != 1 else ''}"

    def _round_of(self, outcome: StressOutcome[T]) -> StressRound[T] | None:
        return next((r for r in self.rounds if outcome in r.outcomes), None)

    def _of_client(self, position: int) -> str:
        """`` of client K (...)`` when the run watched several clients, else nothing."""
        if len(self.session_sources) == 1:
            return ""
        return f" of {self._client_name(position)}"

    def _replay(self, round_: StressRound[T] | None) -> str:
        return replay_hint(self.seed if round_ is None or round_.seed is None else round_.seed)

    def _sources(self, clients: SessionSource | Sequence[SessionSource] | None) -> set[int]:
        if clients is None:
            chosen: list[object] = list(self.session_sources)
        elif isinstance(clients, list | tuple):
            chosen = list(clients)
        else:
            chosen = [clients]
        positions = set()
        for client in chosen:
            position = next((i for i, s in enumerate(self.session_sources) if s is client), None)
            if position is None:
                raise ValueError(
                    "assert_per_thread_sessions needs the objects given as "
                    "forge_stress(sessions=...) (each worker reads their .session there); "
                    f"got {client!r}"
                )
            positions.add(position)
        if not positions:
            raise ValueError(
                "assert_per_thread_sessions needs forge_stress(sessions=client) or "
                "sessions=[a, b]: no client was given"
            )
        return positions

    def _client_name(self, position: int) -> str:
        source = self.session_sources[position]
        if len(self.session_sources) == 1:
            return type(source).__name__
        return f"client {position} ({type(source).__name__} at {id(source):#x})"


def replay_hint(seed: int | None) -> str:
    """The last line of every failure: how to run the same schedule again."""
    if seed is None:
        return "  (no seed: this run had no forced schedule)"
    return (
        f"  seed {seed}: replay with forge_stress(..., seed={seed}), "
        f"@pytest.mark.forge_stress(seed={seed}) or pytest --forge-stress-seed={seed}"
    )
