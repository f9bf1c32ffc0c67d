"""``RedisTokenStorage``: tokens shared by every process that talks to one Redis, refreshed once.

Layout, per cache key ``k`` (the ``{k}`` hash tag puts both keys in one cluster slot, so one
Lua script may touch both)::

    <namespace>:{k}:token   encode_token() JSON, PX = time left until expires_at
    <namespace>:{k}:lock    a random owner token, PX = lock_lease, while one process refreshes

* ``get`` is one GET. The last ``raw bytes -> TokenData`` per key is kept, so an unchanged
  value comes back as the *same* object and the manager's hot path stays one round trip.
* ``refresh_lock`` takes an in-process lock first (threads of one process do not all poll
  Redis), then ``SET lock owner NX PX lease``, polling with a short real-time backoff. It is
  released by compare-and-delete, so a holder whose lease ran out never deletes a lock
  another process has taken since. A crashed holder blocks the others ``lock_lease`` at most.
* **Fencing**: a ``set`` by the thread that holds the refresh lock is a Lua script that writes
  only while the lock still holds that thread's owner token. A holder that outlived its lease
  therefore cannot overwrite the token of the process that took the lock after it; it logs a
  warning instead, and its callers still get the token it fetched.
* A token that has already expired (on the storage's clock) is not stored: ``set`` deletes
  the key instead, because an expired token is a miss for every reader anyway.

Verified against a real single-node Redis Cluster (``redis.cluster.RedisCluster``, Redis 7.0):
the token round trip, the lock (SET NX PX and the compare-and-delete script) and the fenced
write script, both of which touch the token and the lock key of one hash slot.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import ConfigurationError, TokenResponseError, TokenStorageError
from requestforge._redact import redact_url
from requestforge._validate import number, shown, valid_clock
from requestforge.tokens._data import TokenData, decode_token, encode_token
from requestforge.tokens.storage._interface import (
    TokenStorageInterface,
    _KeyedLocks,
    _lock_timeout,
    _poll_for_lock,
)

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster
    from redis.commands.core import Script

__all__ = ["RedisTokenStorage"]

logger = logging.getLogger("requestforge.tokens")

OnUnavailable = Literal["raise", "local"]

# KEYS: token, lock. ARGV: owner, value, ttl in ms (0: no expiry, -1: delete the token).
# Returns 1 when written, 0 when nobody holds the lock any more, 2 when someone else does.
_FENCED_WRITE: Final = """
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[1] then
    if holder then return 2 end
    return 0
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
elseif ttl == 0 then
    redis.call('SET', KEYS[1], ARGV[2])
else
    redis.call('DEL', KEYS[1])
end
return 1
"""

# KEYS: lock. ARGV: owner. Deletes the lock only while it is still this owner's.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class _Held:
    """This thread's hold on one key's refresh lock; ``owner`` is None in degraded mode."""

    __slots__ = ("depth", "owner")

    def __init__(self, owner: str | None) -> None:
        self.owner = owner
        self.depth = 1


class RedisTokenStorage(TokenStorageInterface):
    """Tokens in Redis (or a Redis Cluster), with a refresh lock every process sees.

    ``client`` is a ``redis.Redis``, a ``redis.cluster.RedisCluster`` or a URL for
    ``redis.Redis.from_url``. Needs the ``redis`` extra: ``pip install requestforge[redis]``.

    When Redis cannot be reached every operation raises
    :class:`~requestforge.TokenStorageError` (``on_unavailable="raise"``, the default). With
    ``on_unavailable="local"`` the storage degrades instead: ``get`` returns the last token
    this storage saw or stored for the key, ``set``/``delete`` only update that local copy,
    and ``refresh_lock`` is the in-process lock, so each process fetches its own token while
    Redis is down. Degraded operations log a warning, at most once per
    ``UNAVAILABLE_WARNING_INTERVAL``. Authentication and permission errors always raise: they
    are configuration mistakes, and waiting will not fix them.
    """

    #: Prefix of every key, so the library's keys are easy to find and cannot collide.
    DEFAULT_NAMESPACE: Final = "requestforge"
    #: How long a refresh lock lives if its holder never releases it (a crashed process): the
    #: longest the other processes wait. A token fetch normally takes well under a second.
    DEFAULT_LOCK_LEASE: Final = 30.0
    #: The first pause between attempts to take a lock that is held: a refresh takes a token
    #: endpoint round trip, so a few milliseconds costs nothing...
    LOCK_POLL_INITIAL: Final = 0.002
    #: ...and the pause doubles up to this, so a slow refresh does not hammer Redis.
    LOCK_POLL_MAX: Final = 0.05
    #: While degraded, a warning per operation would flood the log: one per this many seconds.
    UNAVAILABLE_WARNING_INTERVAL: Final = 30.0
    #: For a storage built from a URL: how long one command waits for Redis's answer.
    #: redis-py 5.x waits forever by default, so a stalled Redis held ``get_token()`` for the
    #: whole stall, past the manager's ``wait_timeout``; 5 s (redis-py 6's default) keeps a
    #: storage outage well inside ``TokenManager.DEFAULT_WAIT_TIMEOUT`` (60 s). A command
    #: that times out is not retried, so this is also the longest a stall holds one command.
    URL_SOCKET_TIMEOUT: Final[float] = 5.0
    #: ...and how long opening a connection to Redis may take, for the same reason.
    URL_CONNECT_TIMEOUT: Final[float] = 5.0

    def __init__(
        self,
        client: Redis | RedisCluster | str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        lock_lease: float = DEFAULT_LOCK_LEASE,
        on_unavailable: OnUnavailable = "raise",
        clock: Clock | None = None,
    ) -> None:
        redis = _import_redis()
        from redis.cluster import RedisCluster  # noqa: PLC0415 - optional dependency

        if not isinstance(namespace, str) or not namespace or any(c in namespace for c in "{}"):
            raise ConfigurationError(
                f"namespace must be a non-empty string without braces, got {shown(namespace)}"
            )
        number("lock_lease", lock_lease, minimum=0.001)
        if on_unavailable not in ("raise", "local"):
            raise ConfigurationError(
                f"on_unavailable must be 'raise' or 'local', got {shown(on_unavailable)}"
            )
        valid_clock("clock", clock)
        self._owns_client = isinstance(client, str)
        connection: Redis | RedisCluster
        if isinstance(client, str):
            self._where = redact_url(client)
            try:
                connection = redis.Redis.from_url(client, **self._url_options(redis))
            except ValueError as exc:
                raise ConfigurationError(f"not a Redis URL: {self._where}") from exc
        elif isinstance(client, redis.Redis | RedisCluster):
            connection = client
            self._where = _describe(client)
        else:
            raise ConfigurationError(
                "client must be a redis.Redis, a redis.cluster.RedisCluster or a URL, "
                f"got {type(client).__name__}"
            )
        self._client = connection
        self._namespace = namespace
        self._lease = float(lock_lease)
        self._lease_ms = math.ceil(self._lease * 1000)
        self._on_unavailable: OnUnavailable = on_unavailable
        self._clock = clock
        errors = redis.exceptions
        self._errors: tuple[type[Exception], ...] = (
            errors.RedisError,
            errors.RedisClusterException,
        )
        # Configuration mistakes, not outages: never degraded over.
        self._fatal: tuple[type[Exception], ...] = (
            errors.AuthenticationError,
            errors.AuthorizationError,
            errors.NoPermissionError,
        )
        self._wrong_type: type[Exception] = errors.ResponseError
        self._fenced_write: Script = connection.register_script(_FENCED_WRITE)
        self._release: Script = connection.register_script(_RELEASE)
        self._names: dict[str, tuple[str, str]] = {}
        self._last: dict[str, tuple[bytes | str, TokenData | None]] = {}
        self._local_locks = _KeyedLocks()
        self._held = threading.local()
        self._warn_lock = threading.Lock()
        self._warned_at = -math.inf
        self._suppressed = 0

    # -- TokenStorageInterface ------------------------------------------------------------

    def get(self, key: str) -> TokenData | None:
        """The token under ``key``; a value this library cannot read is a miss, not an error."""
        names = self._names.get(key) or self._key_names(key)
        try:
            raw = self._client.get(names[0])
        except self._errors as exc:
            if isinstance(exc, self._wrong_type) and str(exc).startswith("WRONGTYPE"):
                logger.warning("Redis key %s is not a token; treating it as a miss", names[0])
                return None
            self._unavailable("get", key, exc)
            last = self._last.get(key)
            return None if last is None else last[1]
        if raw is None:
            self._last.pop(key, None)
            return None
        last = self._last.get(key)
        if last is not None and last[0] == raw:
            return last[1]
        try:
            token: TokenData | None = decode_token(raw)
        except TokenResponseError as exc:  # corrupt, foreign or too deep: a miss, overwritten
            # by the next fetch; the message describes the problem without quoting the value.
            # Logged once per distinct value: it is cached below as "not a token".
            logger.warning(
                "Redis key %s does not hold a token this library can read (%s); treating it "
                "as a miss",
                names[0],
                exc,
            )
            token = None
        self._last[key] = (raw, token)
        return token

    def set(self, key: str, token: TokenData) -> None:
        """Store ``token`` with a TTL that ends at its expiry; fenced while holding the lock."""
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData, got {type(token).__name__}")
        token_key, lock_key = self._names.get(key) or self._key_names(key)
        raw = encode_token(token)
        ttl = self._ttl_ms(token)  # None: never expires; <= 0: already expired
        held = self._holds(key)
        try:
            if held is not None and held.owner is not None:
                ttl_arg = 0 if ttl is None else ttl if ttl > 0 else -1
                outcome = self._fenced_write(
                    keys=[token_key, lock_key], args=[held.owner, raw, ttl_arg]
                )
                if outcome != 1:
                    self._log_fenced(key, taken=outcome == 2)
                    return
            elif ttl is None:
                self._client.set(token_key, raw)
            elif ttl > 0:
                self._client.set(token_key, raw, px=ttl)
            else:
                self._client.delete(token_key)
        except self._errors as exc:
            self._unavailable("set", key, exc)
        if ttl is not None and ttl <= 0:
            self._last.pop(key, None)
        else:
            self._last[key] = (raw, token)

    def delete(self, key: str) -> None:
        """Remove ``key``'s token (not its refresh lock)."""
        token_key = (self._names.get(key) or self._key_names(key))[0]
        self._last.pop(key, None)
        try:
            self._client.delete(token_key)
        except self._errors as exc:
            self._unavailable("delete", key, exc)

    def exists(self, key: str) -> bool:
        """True if Redis holds a value under ``key`` (whether or not it decodes)."""
        token_key = (self._names.get(key) or self._key_names(key))[0]
        try:
            return bool(self._client.exists(token_key))
        except self._errors as exc:
            self._unavailable("exists", key, exc)
            last = self._last.get(key)
            return last is not None and last[1] is not None

    @contextmanager
    def refresh_lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the right to refresh ``key`` across every process using this Redis.

        Re-entrant per thread. Raises :class:`~requestforge.TokenStorageError` if the lock is
        not free within ``timeout`` seconds (real time, whatever the library clock says).
        """
        timeout = _lock_timeout(timeout)
        held = self._holds(key)
        if held is not None:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        lock_key = (self._names.get(key) or self._key_names(key))[1]
        deadline = time.monotonic() + timeout
        local = self._local_locks.get(key)
        if not local.acquire(timeout=timeout):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} within {timeout:g}s"
            )
        try:
            owner = self._acquire(key, lock_key, deadline, timeout)
            holds: dict[str, _Held] | None = getattr(self._held, "keys", None)
            if holds is None:
                holds = self._held.keys = {}
            holds[key] = _Held(owner)
            try:
                yield
            finally:
                del holds[key]
                if owner is not None:
                    self._release_lock(key, lock_key, owner)
        finally:
            local.release()

    # -- lifecycle and display -------------------------------------------------------------

    @property
    def namespace(self) -> str:
        """The prefix of every Redis key this storage uses."""
        return self._namespace

    @property
    def client(self) -> Redis | RedisCluster:
        """The Redis client: the one given, or the one made from the URL."""
        return self._client

    def close(self) -> None:
        """Close the Redis client if this storage created it from a URL (yours stays open)."""
        if self._owns_client:
            self._client.close()
            # redis-py 5.0.0's close() keeps the pool of a client made from a URL connected.
            pool = getattr(self._client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()

    def __repr__(self) -> str:
        return (
            f"RedisTokenStorage(namespace={self._namespace!r}, redis={self._where!r}, "
            f"on_unavailable={self._on_unavailable!r})"
        )

    # -- internals -------------------------------------------------------------------------

    def _url_options(self, redis: Any) -> dict[str, Any]:
        """The timeouts of a client built from a URL, the same on every redis-py allowed
        (a ``socket_timeout=`` or ``socket_connect_timeout=`` in the URL's query wins). A
        dropped connection is opened again once; a timed-out command is not sent again."""
        from redis.backoff import NoBackoff  # noqa: PLC0415 - optional dependency
        from redis.retry import Retry  # noqa: PLC0415 - optional dependency

        return {
            "socket_timeout": self.URL_SOCKET_TIMEOUT,
            "socket_connect_timeout": self.URL_CONNECT_TIMEOUT,
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        }

    def _key_names(self, key: str) -> tuple[str, str]:
        if not isinstance(key, str) or not key or any(c in key for c in "{}"):
            # A brace would change the hash tag that keeps a token and its lock in one slot.
            raise ConfigurationError(f"key must be a non-empty string without braces: {key!r}")
        names = (f"{self._namespace}:{{{key}}}:token", f"{self._namespace}:{{{key}}}:lock")
        self._names[key] = names
        return names

    def _ttl_ms(self, token: TokenData) -> int | None:
        if token.expires_at is None:
            return None
        now = (self._clock or get_default_clock()).now()
        return math.ceil((token.expires_at - now).total_seconds() * 1000)

    def _holds(self, key: str) -> _Held | None:
        holds: dict[str, _Held] | None = getattr(self._held, "keys", None)
        return None if holds is None else holds.get(key)

    def _acquire(self, key: str, lock_key: str, deadline: float, timeout: float) -> str | None:
        """Take the Redis lock and return its owner token; None when degraded to local."""
        owner = secrets.token_hex(16)
        degraded = False

        def take() -> bool:
            nonlocal degraded
            try:
                return bool(self._client.set(lock_key, owner, nx=True, px=self._lease_ms))
            except self._errors as exc:
                self._unavailable("refresh_lock", key, exc)
                degraded = True
                return True

        if not _poll_for_lock(take, deadline, self.LOCK_POLL_INITIAL, self.LOCK_POLL_MAX):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} within {timeout:g}s: "
                f"another process holds it at {self._where}"
            )
        return None if degraded else owner

    def _release_lock(self, key: str, lock_key: str, owner: str) -> None:
        """Compare-and-delete; never raises, since the lease ends the lock anyway."""
        try:
            released = self._release(keys=[lock_key], args=[owner])
        except self._errors as exc:
            logger.warning(
                "could not release the refresh lock for %r at %s (%s); it expires within %gs",
                key,
                self._where,
                type(exc).__name__,
                self._lease,
            )
            return
        if not released:
            logger.warning(
                "the refresh lock for %r outlived its lease of %gs before it was released; "
                "raise lock_lease if token fetches take this long",
                key,
                self._lease,
            )

    def _log_fenced(self, key: str, *, taken: bool) -> None:
        logger.warning(
            "the refresh lock for %r ran out after its lease of %gs and %s; the token fetched "
            "under it was not stored, so it cannot overwrite a newer one",
            key,
            self._lease,
            "another process holds it now" if taken else "nobody holds it now",
        )

    def _unavailable(self, operation: str, key: str, exc: Exception) -> None:
        """Raise ``TokenStorageError`` for a Redis failure, or log it when degrading to local."""
        if self._on_unavailable == "raise" or isinstance(exc, self._fatal):
            raise TokenStorageError(
                f"Redis {operation} for {key!r} failed at {self._where}: {type(exc).__name__}"
            ) from exc
        now = (self._clock or get_default_clock()).monotonic()
        with self._warn_lock:
            if now - self._warned_at < self.UNAVAILABLE_WARNING_INTERVAL:
                self._suppressed += 1
                return
            self._warned_at, suppressed, self._suppressed = now, self._suppressed, 0
        logger.warning(
            "Redis at %s is unavailable (%s during %s); using this process's own tokens and "
            "lock until it is back (%d similar warnings suppressed)",
            self._where,
            type(exc).__name__,
            operation,
            suppressed,
        )


def _import_redis() -> Any:
    try:
        import redis  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError as exc:
        raise ConfigurationError(
            "RedisTokenStorage needs the redis package: pip install requestforge[redis]"
        ) from exc
    return redis


def _describe(client: Redis | RedisCluster) -> str:
    """A URL naming the server for reprs and errors: host, port and db, never credentials."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/" + str(
            kwargs.get("db", 0)
        )
    node = client.get_default_node() if hasattr(client, "get_default_node") else None
    if node is None:
        return "redis-cluster"
    return f"redis-cluster://{node.host}:{node.port}"
