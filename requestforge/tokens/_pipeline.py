"""``TokenFetchPipeline``: a token obtained in steps, each made with the earlier steps' tokens.

::

    device_token (no deps)        cached 30 days
        -> app_token (device)     cached 1 hour, fetched with the device token
            -> user_token (app)   cached 15 minutes: the pipeline's result

``execute()`` walks the steps in dependency order. A step whose cached token is still valid
is not fetched; a missing or expired one is fetched by one caller at a time (the storage's
refresh lock, then a re-read of the cache), so any number of threads fetch each step once.
``invalidate(name)`` drops a step and everything derived from it, and a generation counter
keeps an execution that was already running from caching tokens derived from dropped ones.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import (
    ConfigurationError,
    PipelineStepError,
    TokenError,
)
from requestforge._validate import instance, number, shown, text, valid_clock
from requestforge.tokens._data import TokenData
from requestforge.tokens._dpop import DPoPKey, key_of
from requestforge.tokens._providers import TokenProviderInterface
from requestforge.tokens.storage._interface import TokenStorageInterface
from requestforge.tokens.storage._memory import InMemoryTokenStorage

__all__ = [
    "FetchContext",
    "PipelineTokenProvider",
    "TokenFetchPipeline",
    "TokenFetcherInterface",
]

logger = logging.getLogger("requestforge.tokens")


@dataclass
class FetchContext:
    """What the steps of one ``execute()`` have produced so far; never shared between threads.

    ``tokens`` maps step names to their tokens, in the order the steps ran. ``metadata`` is
    free for steps to pass other data along within the same execution.
    """

    tokens: dict[str, TokenData] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        instance("tokens", self.tokens, dict)
        instance("metadata", self.metadata, dict)
        for name, token in self.tokens.items():
            text("a step name in tokens", name)
            instance(f"the token of step {name!r}", token, TokenData)

    def add_token(self, name: str, token: TokenData) -> None:
        """Record the token step ``name`` produced."""
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData for step {name!r}, got {type(token).__name__}")
        self.tokens[name] = token

    def get_token(self, name: str) -> TokenData:
        """The token of the earlier step ``name``; a step may only use steps it depends on."""
        try:
            return self.tokens[name]
        except KeyError:
            available = ", ".join(repr(n) for n in self.tokens) or "none"
            raise TokenError(
                f"no token from step {name!r} in this fetch context (available: {available}); "
                f"a step must list the steps whose tokens it uses in depends_on"
            ) from None

    def __repr__(self) -> str:
        return f"FetchContext(tokens={list(self.tokens)!r}, metadata={sorted(self.metadata)!r})"


class TokenFetcherInterface(ABC):
    """One step of a :class:`TokenFetchPipeline`: fetches one token, given the earlier ones.

    Subclasses implement :meth:`fetch` and call ``super().__init__(name, depends_on=...,
    ttl=...)``, or override the three properties. ``ttl`` caps how long the pipeline caches
    the step's token; None keeps the token's own expiry.
    """

    def __init__(
        self, name: str, *, depends_on: Iterable[str] = (), ttl: float | None = None
    ) -> None:
        self._name = text("step name", name)
        self._depends_on = _valid_depends_on(self._name, depends_on)
        self._ttl = _valid_ttl(self._name, ttl)

    @abstractmethod
    def fetch(self, context: FetchContext) -> TokenData:
        """Obtain a new token; ``context`` holds the tokens of the steps that ran before."""

    @property
    def name(self) -> str:
        """The step's name, unique within its pipeline."""
        return self._name

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Names of the steps whose tokens this step uses."""
        return self._depends_on

    @property
    def ttl(self) -> float | None:
        """Seconds to cache this step's token at most; None means until the token expires."""
        return self._ttl

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, depends_on={self.depends_on!r}, "
            f"ttl={self.ttl!r})"
        )


@dataclass(frozen=True)
class _Step:
    """A fetcher's name, dependencies and TTL as validated once, when the pipeline was built."""

    name: str
    fetcher: TokenFetcherInterface
    depends_on: tuple[str, ...]
    ttl: float | None
    key: str
    ancestors: frozenset[str]


class TokenFetchPipeline:
    """Runs token fetch steps in dependency order, caching each step's token in ``storage``.

    Each step's token is stored under ``f"{key_prefix}:{name}"``: give every pipeline that
    shares a storage its own ``key_prefix``. Steps are ordered topologically, keeping the
    given order where dependencies allow; the last step in that order is the final step,
    whose token :meth:`execute` returns. All time is read from ``clock``, or from the
    process-wide default clock at call time.

    Thread-safe: share one pipeline between threads. The guarantee that an ``execute()``
    running during an :meth:`invalidate` never caches tokens derived from invalidated ones
    holds within this process (it rests on an in-process generation counter); an
    invalidation made by another process sharing the storage only deletes the keys, so a
    fetch in flight here at that moment may still store its result.
    """

    #: How long a caller waits for another caller's fetch of the same step (the storage's
    #: refresh lock) before giving up with ``PipelineStepError``: long enough for a slow
    #: token endpoint, short enough that a stuck one does not hang every thread forever.
    DEFAULT_LOCK_TIMEOUT: Final = 60.0
    #: Storage keys are ``f"{key_prefix}:{step name}"``.
    DEFAULT_KEY_PREFIX: Final = "requestforge:pipeline"

    def __init__(
        self,
        steps: Sequence[TokenFetcherInterface],
        storage: TokenStorageInterface | None = None,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        clock: Clock | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if storage is not None:
            instance("storage", storage, TokenStorageInterface)
        self._key_prefix = text("key_prefix", key_prefix)
        self._clock = valid_clock("clock", clock)
        self._lock_timeout = number("lock_timeout", lock_timeout, strict=True)
        self._steps = self._build_steps(steps)
        self._by_name = {step.name: step for step in self._steps}
        self._storage = storage if storage is not None else InMemoryTokenStorage()
        # Bumped by invalidate() for every step it drops, under _lock together with the
        # deletes; a fetch stores its token (under _lock too) only if neither its own step's
        # generation nor any ancestor's changed since their tokens were read.
        self._lock = threading.Lock()
        self._generations = dict.fromkeys(self._by_name, 0)

    # -- construction ----------------------------------------------------------------------

    def _build_steps(self, steps: Sequence[TokenFetcherInterface]) -> tuple[_Step, ...]:
        if isinstance(steps, TokenFetcherInterface) or not isinstance(steps, Iterable):
            raise ConfigurationError("steps must be a sequence of TokenFetcherInterface")
        given: dict[str, tuple[TokenFetcherInterface, tuple[str, ...], float | None]] = {}
        for fetcher in steps:
            if not isinstance(fetcher, TokenFetcherInterface):
                raise ConfigurationError(
                    f"each step must be a TokenFetcherInterface, got {type(fetcher).__name__}"
                )
            try:
                name = text("step name", fetcher.name)
                deps = _valid_depends_on(name, fetcher.depends_on)
                ttl = _valid_ttl(name, fetcher.ttl)
            except AttributeError as exc:
                raise ConfigurationError(
                    f"{type(fetcher).__name__} has no name, depends_on or ttl: call "
                    f"TokenFetcherInterface.__init__ or override those properties"
                ) from exc
            if name in given:
                raise ConfigurationError(f"two steps are named {name!r}; names must be unique")
            given[name] = (fetcher, deps, ttl)
        if not given:
            raise ConfigurationError("a pipeline needs at least one step")
        for name, (_, deps, _) in given.items():
            for dep in deps:
                if dep not in given:
                    raise ConfigurationError(f"step {name!r} depends on unknown step {dep!r}")
        order = _topological_order({name: deps for name, (_, deps, _) in given.items()})
        ancestors: dict[str, frozenset[str]] = {}
        for name in order:
            deps = given[name][1]
            ancestors[name] = frozenset(deps).union(*(ancestors[d] for d in deps))
        return tuple(
            _Step(
                name=name,
                fetcher=given[name][0],
                depends_on=given[name][1],
                ttl=given[name][2],
                key=f"{self._key_prefix}:{name}",
                ancestors=ancestors[name],
            )
            for name in order
        )

    # -- introspection -----------------------------------------------------------------------

    @property
    def steps(self) -> tuple[TokenFetcherInterface, ...]:
        """The steps in the order they run: dependencies first."""
        return tuple(step.fetcher for step in self._steps)

    @property
    def final_step(self) -> TokenFetcherInterface:
        """The last step to run, whose token :meth:`execute` returns."""
        return self._steps[-1].fetcher

    @property
    def storage(self) -> TokenStorageInterface:
        """Where step tokens are cached."""
        return self._storage

    def cache_key(self, step_name: str) -> str:
        """The storage key of step ``step_name``'s token."""
        return self._step(step_name).key

    def __repr__(self) -> str:
        names = [step.name for step in self._steps]
        return f"TokenFetchPipeline(steps={names!r}, key_prefix={self._key_prefix!r})"

    # -- execution ---------------------------------------------------------------------------

    def execute(self, force_refresh: bool = False) -> TokenData:
        """Run the steps in order and return the final step's token.

        A step's cached token is used while it has not expired, unless ``force_refresh``;
        otherwise the step is fetched with a fresh :class:`FetchContext` holding the earlier
        tokens, and cached until its own expiry or its TTL, whichever comes first. A step
        refetched because it expired leaves later steps cached until their own expiry; use
        :meth:`invalidate` to drop a step together with everything derived from it. A failing
        step raises :class:`~requestforge.PipelineStepError` naming it; the steps before it
        stay cached.
        """
        clock = self._clock or get_default_clock()
        context = FetchContext()
        generations: dict[str, int] = {}
        for step in self._steps:
            try:
                token = self._obtain(step, context, generations, clock, force=force_refresh)
            except PipelineStepError:
                raise
            except Exception as exc:
                raise PipelineStepError(
                    f"pipeline step {step.name!r} failed: {type(exc).__name__}: {exc}",
                    step=step.name,
                ) from exc
            context.add_token(step.name, token)
        return context.tokens[self._steps[-1].name]

    def _obtain(
        self,
        step: _Step,
        context: FetchContext,
        generations: dict[str, int],
        clock: Clock,
        *,
        force: bool,
    ) -> TokenData:
        """The step's cached token, or a new one fetched by one caller at a time."""
        generations[step.name] = self._generation(step.name)  # before reading the cache
        seen = self._storage.get(step.key)
        if seen is not None and not force and not seen.expired(clock=clock):
            return seen
        with self._storage.refresh_lock(step.key, timeout=self._lock_timeout):
            generations[step.name] = self._generation(step.name)
            current = self._storage.get(step.key)
            # Whoever held the lock before us has usually just stored a fresh token; a
            # forced refresh accepts it too, as long as it is not the one it meant to replace.
            if (
                current is not None
                and not current.expired(clock=clock)
                and not (force and current == seen)
            ):
                return current
            token = step.fetcher.fetch(context)
            if not isinstance(token, TokenData):
                raise TokenError(
                    f"{type(step.fetcher).__name__}.fetch returned {type(token).__name__}, "
                    f"not TokenData"
                )
            token = _capped(token, step.ttl, clock.now())
            self._store(step, token, generations)
            return token

    def _store(self, step: _Step, token: TokenData, generations: dict[str, int]) -> None:
        """Cache ``token`` unless its step or one it was derived from was invalidated since."""
        with self._lock:
            current = self._generations
            stale = [
                name for name in (step.name, *step.ancestors) if current[name] != generations[name]
            ]
            if not stale:
                self._storage.set(step.key, token)
                return
        logger.debug(
            "not caching pipeline step %r: %s invalidated while it was being fetched",
            step.name,
            ", ".join(repr(name) for name in stale),
        )

    def _generation(self, name: str) -> int:
        with self._lock:
            return self._generations[name]

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, step_name: str) -> list[str]:
        """Drop ``step_name``'s cached token and those of every step derived from it.

        Returns the names dropped, in pipeline order. An ``execute()`` already running will
        not cache tokens derived from the dropped ones (in this process; see the class doc).
        """
        root = self._step(step_name)
        names = [s.name for s in self._steps if s is root or root.name in s.ancestors]
        self._drop(names)
        return names

    def invalidate_all(self) -> list[str]:
        """Drop every step's cached token; returns all step names, in pipeline order."""
        names = [step.name for step in self._steps]
        self._drop(names)
        return names

    def _drop(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._generations[name] += 1
                self._storage.delete(self._by_name[name].key)

    def _step(self, name: str) -> _Step:
        step = self._by_name.get(name) if isinstance(name, str) else None
        if step is None:
            raise ConfigurationError(
                f"no step named {name!r} in this pipeline (steps: {list(self._by_name)!r})"
            )
        return step


class PipelineTokenProvider(TokenProviderInterface):
    """Lets a :class:`~requestforge.TokenManager` get its tokens from a pipeline.

    Each fetch invalidates only the final step and runs the pipeline, so the manager gets a
    genuinely new final token while the earlier steps come from the cache per their TTL.
    """

    def __init__(self, pipeline: TokenFetchPipeline, service_name: str) -> None:
        self._pipeline = instance("pipeline", pipeline, TokenFetchPipeline)
        self._service_name = text("service_name", service_name)

    @property
    def pipeline(self) -> TokenFetchPipeline:
        """The pipeline tokens come from."""
        return self._pipeline

    @property
    def service_name(self) -> str:
        """Names this provider's token; the manager's default cache key is built from it."""
        return self._service_name

    @property
    def dpop(self) -> DPoPKey | None:
        """The final step's DPoP key, if it has one: the key its tokens are bound to, which
        :class:`~requestforge.TokenAuthHook` signs API request proofs with."""
        return key_of(self._pipeline.final_step)

    def fetch_token(self) -> TokenData:
        """A new final-step token, made with the earlier steps' cached tokens."""
        self._pipeline.invalidate(self._pipeline.final_step.name)
        return self._pipeline.execute()

    def refresh_token(self, current: TokenData) -> TokenData:
        """The same as :meth:`fetch_token`: pipeline steps have no refresh grant."""
        return self.fetch_token()

    def __repr__(self) -> str:
        return f"PipelineTokenProvider({self._pipeline!r}, service_name={self._service_name!r})"


def _capped(token: TokenData, ttl: float | None, now: datetime) -> TokenData:
    """``token`` expiring at its own expiry or ``now + ttl``, whichever is sooner."""
    expires_at = token.expires_at
    if ttl is not None:
        try:
            limit: datetime | None = now + timedelta(seconds=ttl)
        except OverflowError:  # a TTL that ends past year 9999 caps nothing
            limit = None
        if limit is not None:
            expires_at = limit if expires_at is None else min(expires_at, limit)
    issued_at = now if token.issued_at is None else token.issued_at
    if expires_at == token.expires_at and issued_at is token.issued_at:
        return token
    return replace(token, expires_at=expires_at, issued_at=issued_at)


def _topological_order(deps: dict[str, tuple[str, ...]]) -> list[str]:
    """Dependencies first; among steps that are ready, the one given first goes first."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(deps)
    while remaining:
        ready = next((n for n in remaining if all(d in placed for d in deps[n])), None)
        if ready is None:
            raise ConfigurationError(
                f"steps depend on each other in a cycle ('a' -> 'b': a depends on b): "
                f"{_cycle(deps)}"
            )
        remaining.remove(ready)
        placed.add(ready)
        order.append(ready)
    return order


def _cycle(deps: dict[str, tuple[str, ...]]) -> str:
    """One dependency cycle, as ``'a' -> 'b' -> 'a'`` (a self-dependency is ``'a' -> 'a'``)."""
    state: dict[str, bool] = {}  # False: on the current path; True: finished, in no cycle
    for start, start_deps in deps.items():
        if start in state:
            continue
        path = [start]
        stack = [iter(start_deps)]
        state[start] = False
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                state[path.pop()] = True
                stack.pop()
            elif dep not in state:
                state[dep] = False
                path.append(dep)
                stack.append(iter(deps[dep]))
            elif state[dep] is False:
                loop = [*path[path.index(dep) :], dep]
                return " -> ".join(repr(n) for n in loop)
    return "(none found)"  # pragma: no cover - only called when a cycle exists


def _valid_depends_on(name: str, depends_on: object) -> tuple[str, ...]:
    if isinstance(depends_on, str) or not isinstance(depends_on, Iterable):
        raise ConfigurationError(
            f"depends_on of step {name!r} must be a sequence of step names, got {shown(depends_on)}"
        )
    deps = tuple(depends_on)
    for dep in deps:
        text(f"a dependency of step {name!r}", dep)
    if len(set(deps)) != len(deps):
        raise ConfigurationError(f"step {name!r} lists a dependency twice: {shown(deps)}")
    return deps


def _valid_ttl(name: str, ttl: object) -> float | None:
    return None if ttl is None else number(f"ttl of step {name!r}", ttl, strict=True)
