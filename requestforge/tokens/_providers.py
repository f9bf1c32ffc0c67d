"""``TokenProviderInterface``: how a :class:`~requestforge.TokenManager` obtains tokens.

A provider only talks to the token endpoint; caching, locking and expiry are the manager's
job. The smallest provider defines ``fetch_token()`` and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from requestforge.tokens._data import TokenData

__all__ = ["TokenProviderInterface"]


class TokenProviderInterface(ABC):
    """Fetches new tokens and, where the grant allows, refreshes them."""

    @abstractmethod
    def fetch_token(self) -> TokenData:
        """Obtain a brand-new token from the token endpoint."""

    def refresh_token(self, current: TokenData) -> TokenData:
        """Renew ``current`` (the manager calls this when it has a refresh token).

        The default fetches a new token, which is right for grants without refresh tokens
        (client credentials).
        """
        return self.fetch_token()

    @property
    def service_name(self) -> str:
        """Names the token's identity: the manager's default cache key is built from it.

        Two providers that return different tokens must have different names. The default,
        the class's qualified name, is only right while you have one instance per class.
        """
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"
