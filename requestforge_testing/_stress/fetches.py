"""``assert_single_fetch``: which round fetched how often, who fetched, and from where.

Fetches come from whichever witness the test has: a ``FakeTokenProvider`` (it records
every call with its thread and call site), an ``OAuthServer`` (its token requests, pinned
on the worker whose connection sent them), a provider watched as ``counter=``, or, last, a
plain counter read between rounds, which can only say how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from requestforge_testing._stress.observe import Fetch
from requestforge_testing._stress.text import capped, listed
from requestforge_testing._stress.tokens import describe_token, origin_of, tokens_in

if TYPE_CHECKING:
    from requestforge_testing._stress.report import StressOutcome, StressReport, StressRound

__all__ = ["single_fetch_failure"]


_NO_SITE = "from fn itself (no frame of your code)"


def single_fetch_failure(
    report: StressReport[Any], witness: object, rounds: Iterable[int] | None
) -> str | None:
    """The failure message of ``report.assert_single_fetch(witness, rounds=rounds)``, or None."""
    from requestforge.tokens._providers import TokenProviderInterface  # noqa: PLC0415
    from requestforge_testing._oauth_server import OAuthServer  # noqa: PLC0415 - import cycle
    from requestforge_testing._providers import FakeTokenProvider  # noqa: PLC0415

    want = _fetching_rounds(report, rounds)
    observations = report.observations
    note = ""
    if isinstance(witness, FakeTokenProvider):
        fetches = [
            Fetch(c.kind, c.number, c.thread_id, c.thread_name, c.site, c.error is not None)
            for c in sorted(witness.calls, key=lambda c: c.number)
        ]
        found, outside = _by_thread(report, fetches, want, witness)
    elif isinstance(witness, OAuthServer):
        found, outside = _by_thread(report, _server_fetches(report, witness), want, witness)
    elif (
        observations is not None
        and witness is observations.watched
        and isinstance(witness, TokenProviderInterface)
    ):
        found, outside = _by_thread(report, list(observations.calls), want, witness)
    elif witness is not None and witness is report.counter:
        found, outside = _by_snapshot(report, want), []
        note = (
            "  (counted from snapshots of the counter taken between rounds, which cannot tell "
            "which threads fetched. If the fetches go through a token provider, pass it as "
            "forge_stress(counter=provider) to have every call watched; if they reach "
            "forge_oauth_server, give assert_single_fetch the server)"
        )
    else:
        raise ValueError(
            "assert_single_fetch needs a FakeTokenProvider, an OAuthServer, or the counter "
            f"given as forge_stress(counter=...); got {witness!r}"
        )
    if not found:
        return None
    lines = capped([line for _, line in found], report.MAX_LISTED)
    expected = (
        "every round"
        if len(want) == len(report.rounds)
        else f"round{'s' if len(want) != 1 else ''} {sorted(want)} and none in the others"
    )
    header = (
        f"assert_single_fetch: expected exactly one token fetch in {expected} "
        f"({report._size}), but:"
    )
    if outside:
        names = [f"{f.kind} #{f.number} by {f.thread_name}" for f in outside]
        lines.append(
            f"  (not counted: {len(outside)} call{'s' if len(outside) != 1 else ''} from "
            f"threads outside the rounds: {listed(names, report.MAX_LISTED)})"
        )
    failing = found[0][0]
    return "\n".join([header, *lines, *([note] if note else []), report._replay(failing)])


def _fetching_rounds(report: StressReport[Any], rounds: Iterable[int] | None) -> frozenset[int]:
    """Round indexes (within a schedule) that should fetch once; all of them by default."""
    indexes = sorted({r.index for r in report.rounds})
    if rounds is None:
        return frozenset(indexes)
    chosen = frozenset(rounds)
    bad = sorted(
        (r for r in chosen if isinstance(r, bool) or not isinstance(r, int) or r not in indexes),
        key=repr,
    )
    if bad:
        last = indexes[-1] if indexes else 0
        raise ValueError(f"rounds must be round indexes 0..{last}, got {bad!r}")
    return chosen


def _server_fetches(report: StressReport[Any], server: Any) -> list[Fetch]:
    """The server's token requests, each pinned on the worker connection that sent it."""
    fetches = []
    for number, recorded in enumerate(server.token_requests, start=1):
        client = getattr(recorded.request, "client", None)
        connection = (
            None if report.observations is None else report.observations.connection_from(client)
        )
        kind = recorded.grant_type or "token request"
        if connection is None:
            fetches.append(Fetch(kind, number, 0, "a connection of no worker", None))
        else:
            fetches.append(
                Fetch(
                    kind,
                    number,
                    connection.thread_id,
                    connection.thread_name,
                    connection.site,
                    recorded.status >= 400,
                )
            )
    return fetches


def _by_thread(
    report: StressReport[Any], fetches: Sequence[Fetch], want: frozenset[int], witness: object
) -> tuple[list[tuple[StressRound[Any], str]], list[Fetch]]:
    # Names carry a per-run number, ids are unique while a round's workers live: together
    # they tell this run's workers apart from any other thread, past or present.
    workers = {(o.thread_id, o.thread_name): (o, r) for r in report.rounds for o in r.outcomes}
    per_round: dict[int, list[tuple[Fetch, StressOutcome[Any]]]] = {}
    outside: list[Fetch] = []
    for fetch in fetches:
        found = workers.get((fetch.thread_id, fetch.thread_name))
        if found is None:
            outside.append(fetch)
        else:
            per_round.setdefault(id(found[1]), []).append((fetch, found[0]))
    lines: list[tuple[StressRound[Any], str]] = []
    for round_ in report.rounds:
        made = per_round.get(id(round_), [])
        expected = 1 if round_.index in want else 0
        if len(made) == expected:
            continue
        if not made:
            got = _got(round_, witness, fetches)
            text = f"  {round_.label}: no fetch, expected {expected}: {got}"
            lines.append((round_, text))
            continue
        names = [
            f"{f.kind} #{f.number}{' (failed)' if f.failed else ''} by thread {w.index} "
            f"({w.thread_name}) {'at ' + f.site if f.site else _NO_SITE}"
            for f, w in made
        ]
        text = (
            f"  {round_.label}: {len(made)} fetch{'es' if len(made) != 1 else ''}, "
            f"expected {expected}: {listed(names, report.MAX_LISTED)}"
        )
        lines.append((round_, text))
    return lines, outside


def _got(round_: StressRound[Any], witness: object, fetches: Sequence[Fetch]) -> str:
    """What the workers of a round without a fetch got instead, and from whom."""
    tokens: list[object] = []
    for result in round_.results:
        for token in tokens_in(result):
            if not any(token is t for t in tokens):
                tokens.append(token)
    if not round_.results:
        return "every call raised, so no worker got a token: see assert_no_errors()"
    if not tokens:
        kinds = sorted({type(r).__name__ for r in round_.results})
        return (
            f"the workers returned {', '.join(kinds)}, no token; return the token from fn to "
            "see which one they used"
        )
    parts = []
    for token in tokens[:3]:
        origin = origin_of(token)
        name = describe_token(token)
        if origin is None:
            issuer = _issued_by(witness, token, fetches)
            parts.append(
                f"{name}, which this witness did not issue in the run"
                if issuer is None
                else f"{name}, issued earlier by this {issuer}: a token from before the round "
                "was reused — expire or invalidate it in before_round"
            )
        elif origin[0] is witness:
            parts.append(
                f"{name}, issued earlier by this provider (call #{origin[1].number} by "
                f"{origin[1].thread_name}): a token from before the round was reused — "
                "expire or invalidate it in before_round"
            )
        else:
            provider = origin[0]
            same = getattr(witness, "service_name", None) == provider.service_name
            parts.append(
                f"{name} from another provider, {provider!r} (call #{origin[1].number}): two "
                "services share one token"
                + (
                    f" — both are named {provider.service_name!r}, and a TokenManager's cache "
                    "key is built from the name: give each provider its own service_name"
                    if same
                    else " — the code caches both under one key (a TokenManager: the same "
                    "storage and cache_key)"
                )
            )
    return "the workers got " + "; ".join(parts)


def _issued_by(witness: object, token: object, fetches: Sequence[Fetch]) -> str | None:
    """``provider (call #n by thread)`` or ``server`` when ``witness`` issued ``token``
    (a token no fake provider issued), else None."""
    from requestforge_testing._oauth_server import OAuthServer  # noqa: PLC0415 - import cycle

    if isinstance(witness, OAuthServer):
        issued = getattr(token, "access_token", None) in witness.issued_tokens
        return "server" if issued else None
    # equality, not identity: a TokenManager stores a copy stamped with issued_at
    call = next((f for f in fetches if f.token is not None and f.token == token), None)
    return None if call is None else f"provider (call #{call.number} by {call.thread_name})"


def _by_snapshot(
    report: StressReport[Any], want: frozenset[int]
) -> list[tuple[StressRound[Any], str]]:
    lines: list[tuple[StressRound[Any], str]] = []
    for round_ in report.rounds:
        if round_.counts is None:
            continue
        before, after = round_.counts
        fetched, expected = after - before, 1 if round_.index in want else 0
        if fetched != expected:
            text = (
                f"  {round_.label}: the counter went from {before} to {after}: "
                f"{fetched} fetch{'es' if fetched != 1 else ''}, expected {expected}"
            )
            lines.append((round_, text))
    return lines
