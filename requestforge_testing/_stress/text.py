"""How failure messages list things: capped lists, one line per error."""

from __future__ import annotations

__all__ = ["capped", "describe_error", "listed"]


def listed(items: list[str], limit: int) -> str:
    """``a, b, c, ... and 7 more``: the first ``limit`` items, then a count."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def capped(lines: list[str], limit: int) -> list[str]:
    """The first ``limit`` lines, then one line counting the rest."""
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more"]


def describe_error(error: BaseException | None) -> str:
    """``Type: first line of the message``: one line per thread in a failure report."""
    name = type(error).__qualname__
    lines = str(error).strip().splitlines()
    if not lines:
        return name
    return f"{name}: {lines[0]}" + (" [...]" if len(lines) > 1 else "")
