"""A test's own view of what the library knows to be secret.

requestforge remembers every declared secret for the life of the process, so that a
value is hidden wherever it turns up later. In a test suite that makes redaction depend on
the tests that ran before (a provider built with ``client_secret="secret"`` in one test
hides the word in every later one). :class:`KnownSecrets` starts a test from nothing
declared and puts the process's knowledge back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from requestforge import Secrets, declare_secrets
from requestforge._secrets import isolated_knowledge, known_secrets

__all__ = ["KnownSecrets"]


class KnownSecrets:
    """What is declared while :meth:`isolated` is active: declare more, read it back."""

    @classmethod
    @contextmanager
    def isolated(cls) -> Iterator[KnownSecrets]:
        """Nothing declared inside; the process's knowledge restored on the way out."""
        with isolated_knowledge():
            yield cls()

    def declare(
        self, *, headers: Iterable[str] = (), fields: Iterable[str] = (), values: Iterable[str] = ()
    ) -> Secrets:
        """Declare header names, field names and values as a component would."""
        secrets = Secrets.of(headers=headers, fields=fields, values=values)
        declare_secrets(secrets)
        return secrets

    @property
    def known(self) -> Secrets:
        """Everything declared so far in this scope."""
        return known_secrets()
