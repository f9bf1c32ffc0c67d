"""``RedisClusterDeployment``: a Redis Cluster of several masters, with slot migration.

A real multi-master Redis Cluster on 127.0.0.1: each node a ``cluster-enabled``
:class:`RedisServer` in its own temporary directory, the 16384 hash slots split evenly
between them (``CLUSTER ADDSLOTSRANGE``, distinct config epochs, ``CLUSTER MEET``), as
``redis-cli --cluster create`` does but without its one-second waits. So keys of different
hash slots live on different nodes and ``redis.cluster.RedisCluster`` follows ``MOVED``.
:meth:`RedisClusterDeployment.migrating` moves one key's slot to another master the way
``redis-cli --cluster reshard`` does (``CLUSTER SETSLOT ... IMPORTING/MIGRATING``,
``MIGRATE``, ``CLUSTER SETSLOT ... NODE``), so clients meet ``ASK`` inside the block and
``MOVED`` after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from requestforge_testing._child import HOST, ChildServer
from requestforge_testing._redis import RedisServer

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

__all__ = ["RedisClusterDeployment"]

_T = TypeVar("_T")

#: Hash slots in a Redis Cluster.
_SLOTS: Final = 16384


class _ClusterNode(RedisServer):
    """A ``cluster-enabled`` server that owns no slot yet: the deployment assigns them."""

    def __init__(self, *, binary: str | None = None) -> None:
        super().__init__(binary=binary, cluster=True)

    def _start(self) -> None:
        ChildServer._start(self)
        if self._fixed_port is not None:  # restarted: it knows its slots from nodes.conf
            with self.client() as client:
                self._poll(lambda: client.cluster("INFO").get("cluster_state") == "ok" or None)

    @property
    def node_id(self) -> str:
        """This node's cluster id (``CLUSTER MYID``)."""
        with self.client() as client:
            return _text(client.execute_command("CLUSTER", "MYID"))


class RedisClusterDeployment:
    """A Redis Cluster of ``masters`` masters on 127.0.0.1, every hash slot assigned.

    Ready when it returns: every node knows every other and reports ``cluster_state:ok``
    with the same slot map. :meth:`cluster_client` gives a ``redis.cluster.RedisCluster``;
    :meth:`node_for` says which master serves a key now. ``stop()`` (or the ``with`` block)
    ends every node.
    """

    #: How long forming the cluster or migrating a slot may take before it is an error.
    TIMEOUT: Final = 30.0
    #: Pause between checks while waiting (real time).
    POLL_INTERVAL: Final = 0.02

    def __init__(self, *, masters: int = 3, binary: str | None = None) -> None:
        if masters < 2:
            raise ValueError(f"a cluster deployment needs at least 2 masters, got {masters!r}")
        self._pause = threading.Event()  # never set: waiting on it is a plain delay
        self._nodes: list[_ClusterNode] = []
        self._ids: dict[int, str] = {}
        try:
            for _ in range(masters):
                self._nodes.append(_ClusterNode(binary=binary))
            self._form()
        except BaseException:
            self.stop()
            raise

    # -- what a test uses ------------------------------------------------------------------

    @property
    def nodes(self) -> list[RedisServer]:
        """The masters, in start order."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the first node, for ``RedisCluster.from_url``."""
        return self._nodes[0].url

    def cluster_client(self, **kwargs: Any) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` that knows every node (close it when done)."""
        from redis.cluster import ClusterNode, RedisCluster  # noqa: PLC0415 - optional

        startup = [
            ClusterNode(HOST, node.port)  # type: ignore[no-untyped-call]
            for node in self._nodes
        ]
        return RedisCluster(startup_nodes=startup, **kwargs)

    def masters(self) -> list[RedisServer]:
        """The nodes that own at least one slot now, as the first node sees it."""
        owners = {port for _, _, port in self._slot_ranges(self._nodes[0])}
        return [node for node in self._nodes if node.port in owners]

    def node_for(self, key: str | bytes) -> RedisServer:
        """The master that serves ``key``'s hash slot now (as the first node sees it)."""
        slot = _key_slot(key)
        for start, end, port in self._slot_ranges(self._nodes[0]):
            if start <= slot <= end:
                return next(node for node in self._nodes if node.port == port)
        raise RuntimeError(f"no node serves slot {slot}")

    def flushall(self) -> None:
        """Delete every key on every node."""
        for node in self._nodes:
            node.flushall()

    def migrate_slot(self, key: str | bytes, to: RedisServer | None = None) -> RedisServer:
        """Move ``key``'s hash slot, with its keys, to ``to`` (by default the next master);
        return the new owner. Clients with the old slot map get ``MOVED`` afterwards."""
        with self.migrating(key, to) as target:
            return target

    @contextmanager
    def migrating(self, key: str | bytes, to: RedisServer | None = None) -> Iterator[RedisServer]:
        """Move ``key``'s slot to ``to`` (by default the next master) around the block.

        On entry the slot is marked ``MIGRATING`` on its owner and ``IMPORTING`` on the
        target and its keys are moved (``MIGRATE``); inside the block the owner answers
        ``ASK`` for each of them and for new keys of the slot, so clients are redirected
        key by key. When the block ends the keys written there since are moved too and
        every node is told the target owns the slot (``CLUSTER SETSLOT ... NODE``), so old
        slot maps get ``MOVED``. Yields the target.
        """
        slot = _key_slot(key)
        source = self.node_for(key)
        target = to if to is not None else self._next_master(source)
        if target is source:
            raise ValueError(f"{target!r} already serves slot {slot}")
        source_id, target_id = self._ids[source.port], self._ids[target.port]
        with target.client() as client:
            client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        with source.client() as client:
            client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        self._move_keys(slot, source, target)
        try:
            yield target
        finally:
            self._move_keys(slot, source, target)
            for node in [target, source, *self._nodes]:  # the target first, as redis-cli does
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            self._poll(lambda: self._agree_on(slot, target), f"every node to see slot {slot} move")

    def stop(self) -> None:
        """Stop every node; stopping twice is harmless."""
        for node in self._nodes:
            node.stop()

    def __enter__(self) -> RedisClusterDeployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        ports = ", ".join(str(node.port) for node in self._nodes)
        return f"RedisClusterDeployment({HOST}: {ports})"

    # -- internals -------------------------------------------------------------------------

    def _form(self) -> None:
        count = len(self._nodes)
        for index, node in enumerate(self._nodes):
            start, end = index * _SLOTS // count, (index + 1) * _SLOTS // count - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", start, end)
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            self._ids[node.port] = node.node_id
        with self._nodes[0].client() as client:
            for node in self._nodes[1:]:
                client.execute_command("CLUSTER", "MEET", HOST, node.port)
        self._poll(self._formed, "the cluster to form")

    def _formed(self) -> bool | None:
        """True once every node reports state ok, knows every node and has all slots."""
        for node in self._nodes:
            with node.client() as client:
                info = client.cluster("INFO")
            if (
                info.get("cluster_state") != "ok"
                or int(info.get("cluster_known_nodes", 0)) != len(self._nodes)
                or int(info.get("cluster_slots_ok", 0)) != _SLOTS
            ):
                return None
        return True

    def _slot_ranges(self, node: RedisServer) -> list[tuple[int, int, int]]:
        """``(first slot, last slot, master port)`` per range, as ``node`` sees them."""
        with node.client() as client:
            answer = client.execute_command("CLUSTER", "SLOTS")
        if isinstance(answer, dict):  # redis-py's parsed form: {(start, end): {...}}
            return [
                (int(start), int(end), int(info["primary"][1]))
                for (start, end), info in answer.items()
            ]
        return [(int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in answer]

    def _next_master(self, source: RedisServer) -> RedisServer:
        index = self._nodes.index(source)  # type: ignore[arg-type]
        return self._nodes[(index + 1) % len(self._nodes)]

    def _move_keys(self, slot: int, source: RedisServer, target: RedisServer) -> None:
        """MIGRATE every key of ``slot`` from ``source`` to ``target`` (TTLs kept)."""
        with source.client() as client:
            while keys := client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                client.execute_command(
                    "MIGRATE", HOST, target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
                )

    def _agree_on(self, slot: int, owner: RedisServer) -> bool | None:
        for node in self._nodes:
            ranges = self._slot_ranges(node)
            if not any(start <= slot <= end and port == owner.port for start, end, port in ranges):
                return None
        return self._formed()

    def _poll(self, check: Callable[[], _T | None], what: str) -> _T:
        """``check()``'s first answer other than None, within ``TIMEOUT``."""
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            outcome = check()
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                raise RuntimeError(f"timed out after {self.TIMEOUT:g}s waiting for {what}")
            self._pause.wait(self.POLL_INTERVAL)


def _key_slot(key: str | bytes) -> int:
    from redis.crc import key_slot  # noqa: PLC0415 - optional dependency

    slot: int = key_slot(key.encode() if isinstance(key, str) else key)
    return slot


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
