"""Tokens in the workers' results: finding them, naming them, and telling who issued them.

Only a fake provider's tokens are shown by value (``fake-access-3``): they are made up.
Any other token is named by its type and expiry, never by its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from requestforge_testing._providers import FakeTokenProvider, ProviderCall

__all__ = ["describe_token", "origin_of", "tokens_in"]


def tokens_in(result: object) -> list[object]:
    """The tokens in a result: itself, or the items of a tuple or list (one level)."""
    items = list(result) if isinstance(result, tuple | list) else [result]
    found: list[object] = []
    for item in items:
        if isinstance(item, str):
            origin = origin_of(item)
            if origin is not None and origin[1].token is not None:
                found.append(origin[1].token)
        elif hasattr(item, "access_token") and hasattr(item, "expires_at"):
            found.append(item)
    return found


def origin_of(token: object) -> tuple[FakeTokenProvider, ProviderCall] | None:
    """The fake provider (and its call) that issued ``token`` (a token, or its access
    token string), or None when no live FakeTokenProvider did."""
    from requestforge_testing._providers import live_providers  # noqa: PLC0415 - import cycle

    text = token if isinstance(token, str) else getattr(token, "access_token", None)
    fallback = None
    for provider in live_providers():
        for call in provider.calls:
            if call.token is None:
                continue
            # Every provider issues fake-access-1: the very string object it issued (kept by
            # a copy such as a TokenManager's) tells which one, an equal one does not.
            if call.token is token or (text is not None and call.token.access_token is text):
                return provider, call
            if (
                fallback is None
                and call.token.access_token == text
                and (isinstance(token, str) or call.token == token)
            ):
                fallback = (provider, call)
    return fallback


def describe_token(token: object) -> str:
    """``fake-access-3`` for a fake provider's token; else its type and expiry only."""
    origin = origin_of(token)
    if origin is not None and origin[1].token is not None:
        return origin[1].token.access_token
    expires_at = getattr(token, "expires_at", None)
    when = expires_at.isoformat() if isinstance(expires_at, datetime) else "never"
    return f"a {type(token).__name__} (value hidden) expiring {when}"
