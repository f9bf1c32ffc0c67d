"""The errors a cassette raises, and the messages that say what to do about them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from requestforge_testing._cassette_match import ASPECTS, Difference, RequestView

__all__ = [
    "Candidate",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteThreadError",
    "MissingCassetteError",
    "mismatch_message",
    "shown",
    "summary",
]


class CassetteError(AssertionError):
    """A cassette refused what the test did. An ``AssertionError``, so pytest reports a
    failure, and no transport error that retry logic in the code under test would swallow."""


class MissingCassetteError(CassetteError):
    """Record mode ``none`` and no cassette file: there is nothing to replay."""


class CassetteMismatchError(CassetteError):
    """A request the cassette has no recording for, with how it differs from the closest."""

    def __init__(
        self, message: str, *, request: str = "", differences: tuple[Difference, ...] = ()
    ) -> None:
        super().__init__(message)
        #: The refused request, scrubbed: ``METHOD URL (grant_type=...)``.
        self.request = request
        #: How it differs from the closest recorded request (empty if it was replayed
        #: already, or the cassette is empty).
        self.differences = differences


class CassetteThreadError(CassetteError):
    """A request through the cassette from a thread other than the one that opened it."""

    def __init__(self, message: str, *, owner: str = "", offender: str = "") -> None:
        super().__init__(message)
        #: Name of the thread that opened the cassette.
        self.owner = owner
        #: Name of the thread whose request was refused.
        self.offender = offender


@dataclass(frozen=True)
class Candidate:
    """A recorded request considered as the closest to a refused one."""

    index: int
    played: bool
    view: RequestView
    differences: list[Difference]

    def rank(self) -> tuple[bool, int, bool, int]:
        """An exact match already played back first, then the fewest differences, then a
        request not played yet, then the earliest."""
        return (
            not (self.played and not self.differences),
            len(self.differences),
            self.played,
            self.index,
        )


def mismatch_message(
    path: Path,
    record_mode: str,
    live: RequestView,
    candidates: list[Candidate],
    closest: Candidate | None,
    *,
    aspects: Sequence[str] = ASPECTS,
) -> str:
    """What a refused request was, and how it differs from the closest recorded one."""
    lines = [
        f"this request is not in the cassette {shown(path)}:",
        f"    {live.describe()}",
        f"  record mode {record_mode!r}; {len(candidates)} recorded interaction(s), "
        f"{sum(1 for c in candidates if c.played)} played",
    ]
    if tuple(aspects) != ASPECTS:
        lines.append(f"  compared (match_on): {', '.join(aspects)}")
    if closest is None:
        lines.append("  the cassette has no recorded interactions")
    elif not closest.differences:
        lines.append(
            f"  it matches recorded request #{closest.index + 1}, which was already played "
            "back: the code now sends it more often than when the cassette was recorded"
        )
    else:
        state = "already played" if closest.played else "not played yet"
        lines.append(f"  closest recorded request, #{closest.index + 1} ({state}):")
        lines.append(f"    {closest.view.describe()}")
        lines.append("  differences:")
        lines += [f"    {difference}" for difference in closest.differences]
    lines.append(
        "If the change is intended, record the cassette again (--forge-record-mode=all, or "
        "record_mode='all') and commit it."
    )
    return "\n".join(lines)


def summary(path: Path, violations: list[CassetteError]) -> CassetteError:
    """One error for every refusal the code under test caught, raised when it closes."""
    kinds = {type(v) for v in violations}
    kind = kinds.pop() if len(kinds) == 1 else CassetteError
    message = (
        f"{len(violations)} request(s) refused by the cassette {shown(path)} were caught "
        "by the code under test, which went on; the first:\n" + str(violations[0])
    )
    first = violations[0]
    if isinstance(first, CassetteThreadError) and kind is CassetteThreadError:
        names = sorted({v.offender for v in violations if isinstance(v, CassetteThreadError)})
        message += f"\n(refused threads: {', '.join(repr(n) for n in names)})"
        return CassetteThreadError(message, owner=first.owner, offender=first.offender)
    if isinstance(first, CassetteMismatchError) and kind is CassetteMismatchError:
        return CassetteMismatchError(message, request=first.request, differences=first.differences)
    return kind(message)


def shown(path: Path) -> str:
    """``path`` relative to the working directory where it is under it: shorter messages."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
