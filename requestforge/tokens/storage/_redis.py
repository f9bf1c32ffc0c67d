"""``RedisTokenStorage``: tokens shared by every process that talks to one Redis, refreshed once.

Layout, per cache key ``k`` (the ``{k}`` hash tag puts both keys in one cluster slot, so one
Lua script may touch both)::

    <namespace>:{k}:token   encode_token() JSON, PX = time left until expires_at
    <namespace>:{k}:lock    a random owner token, PX = lock_lease, while one process refreshes

The lease lock, fencing and near cache are :class:`SharedTokenStorage`'s; here they are one
command each: ``get`` is a GET, the lock ``SET NX PX`` and a compare-and-delete script, and
the fenced write a script that writes only while the lock holds the writer's owner token.
With the near cache (the default), a process sends a command only when its token enters
the manager's refresh window or is rejected, not on every ``get_token()``.

Verified against real Redis: single node, TLS and ACL users, Sentinel failover, and a
Cluster with more than one master (MOVED and ASK handled by redis-py).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import ConfigurationError, TokenStorageError
from requestforge._redact import redact_url
from requestforge._validate import number, shown, valid_clock
from requestforge.tokens.storage._shared import SharedTokenStorage, Unavailable

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


class RedisTokenStorage(SharedTokenStorage):
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
        near_cache: bool = True,
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
        super().__init__(lease=float(lock_lease), near_cache=near_cache, clock=clock)
        self._client = connection
        self._namespace = namespace
        self._lease_ms = math.ceil(self._lease * 1000)
        self._on_unavailable: OnUnavailable = on_unavailable
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
        self._release_script: Script = connection.register_script(_RELEASE)
        self._names: dict[str, tuple[str, str]] = {}
        self._warn_lock = threading.Lock()
        self._warned_at = -math.inf
        self._suppressed = 0

    # -- the backend: one command each ---------------------------------------------------

    def _read(self, key: str, operation: str) -> bytes | str | None:
        token_key = self._key_names(key)[0]
        try:
            raw: bytes | str | None = self._client.get(token_key)
        except self._errors as exc:
            if isinstance(exc, self._wrong_type) and str(exc).startswith("WRONGTYPE"):
                logger.warning("Redis key %s is not a token; treating it as a miss", token_key)
                return None
            self._unavailable(operation, key, exc)
        return raw

    def _write(
        self, key: str, raw: bytes | str | None, ttl: float | None, owner: str | None
    ) -> str:
        token_key, lock_key = self._key_names(key)
        ms = _ttl_ms(ttl)
        try:
            if owner is not None:
                ttl_arg = -1 if raw is None else 0 if ms is None else ms
                outcome = self._fenced_write(
                    keys=[token_key, lock_key], args=[owner, raw or "", ttl_arg]
                )
                if outcome == 1:
                    return ""
                return "another process holds it now" if outcome == 2 else "nobody holds it now"
            if raw is None:
                self._client.delete(token_key)
            else:
                self._client.set(token_key, raw, px=ms)
        except self._errors as exc:
            self._unavailable("set" if raw is not None or owner else "delete", key, exc)
        return ""

    def _take(self, key: str, owner: str) -> bool:
        try:
            return bool(
                self._client.set(self._key_names(key)[1], owner, nx=True, px=self._lease_ms)
            )
        except self._errors as exc:
            self._unavailable("refresh_lock", key, exc)

    def _give_back(self, key: str, owner: str) -> bool:
        return bool(self._release_script(keys=[self._key_names(key)[1]], args=[owner]))

    def _lock_busy(self, key: str, timeout: float) -> TokenStorageError:
        return TokenStorageError(
            f"could not take the refresh lock for {key!r} within {timeout:g}s: "
            f"another process holds it at {self._where}"
        )

    def _check_key(self, key: str) -> None:
        self._key_names(key)

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
        names = self._names.get(key)
        if names is not None:
            return names
        if not isinstance(key, str) or not key or any(c in key for c in "{}"):
            # A brace would change the hash tag that keeps a token and its lock in one slot.
            raise ConfigurationError(f"key must be a non-empty string without braces: {key!r}")
        names = (f"{self._namespace}:{{{key}}}:token", f"{self._namespace}:{{{key}}}:lock")
        self._names[key] = names
        return names

    def _unavailable(self, operation: str, key: str, exc: Exception) -> NoReturn:
        """Raise ``TokenStorageError`` for a Redis failure, or log it and raise
        :class:`Unavailable` when degrading to this process's own copy."""
        if self._on_unavailable == "raise" or isinstance(exc, self._fatal):
            raise TokenStorageError(
                f"Redis {operation} for {key!r} failed at {self._where}: {type(exc).__name__}"
            ) from exc
        now = (self._clock or get_default_clock()).monotonic()
        with self._warn_lock:
            if now - self._warned_at < self.UNAVAILABLE_WARNING_INTERVAL:
                self._suppressed += 1
                raise Unavailable from exc
            self._warned_at, suppressed, self._suppressed = now, self._suppressed, 0
        logger.warning(
            "Redis at %s is unavailable (%s during %s); using this process's own tokens and "
            "lock until it is back (%d similar warnings suppressed)",
            self._where,
            type(exc).__name__,
            operation,
            suppressed,
        )
        raise Unavailable from exc


def _ttl_ms(ttl: float | None) -> int | None:
    """Seconds left, as the whole milliseconds a backend keeps (rounded up, at least 1)."""
    return None if ttl is None else max(math.ceil(ttl * 1000), 1)


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
        service = getattr(pool, "service_name", None)
        if service is not None:  # a Sentinel pool: the master's address changes on failover
            return f"redis-sentinel://{service}/{kwargs.get('db', 0)}"
        scheme = "rediss" if "SSL" in getattr(pool, "connection_class", type).__name__ else "redis"
        return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/" + str(
            kwargs.get("db", 0)
        )
    node = client.get_default_node() if hasattr(client, "get_default_node") else None
    if node is None:
        return "redis-cluster"
    return f"redis-cluster://{node.host}:{node.port}"
