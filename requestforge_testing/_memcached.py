"""``MemcachedServer``: a throwaway ``memcached`` on 127.0.0.1 for tests, demos and benchmarks.

A real server, not a fake: whether ``add`` is atomic, how a timeout of 0 or of more than 30
days is read, and which keys are refused are decided by memcached itself. It listens on TCP
only (``-U 0``: no UDP), keeps everything in memory and lives in a temporary directory
removed by ``stop()``. Needs the ``memcached`` binary (``apt-get install memcached``), which
is not run until a server is started. Its helpers speak memcached's text protocol over a
plain socket, so this module needs no client library (Django's ``PyMemcacheCache`` needs
``pymemcache``).
"""

from __future__ import annotations

import os
import socket
from typing import Final

from requestforge_testing._child import HOST, ChildServer

__all__ = ["MemcachedServer"]

#: memcached refuses to start as root unless told which user to become.
_ROOT_USER: Final = "nobody"
#: A reply line ends with this.
_EOL: Final = b"\r\n"


class MemcachedServer(ChildServer):
    """A ``memcached`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    ``location`` is the ``LOCATION`` of a Django memcached cache. ``flushall()`` empties it
    and ``ttl(key)`` reads a key's remaining lifetime as memcached keeps it, both over
    memcached's text protocol. Started as root, memcached runs as ``nobody`` (it refuses to
    run as root).
    """

    _BINARY = "memcached"
    _INSTALL = "apt-get install memcached"
    _DIR_PREFIX = "requestforge-memcached-"
    _LOG_NAME = "memcached.log"  # memcached writes no log file: failures show "(no log)"

    #: Memory for items, in megabytes (``-m``): plenty for tokens and locks.
    MEMORY_MB: Final = 64

    @property
    def location(self) -> str:
        """``127.0.0.1:<port>``, for a Django memcached cache's ``LOCATION``."""
        return f"{HOST}:{self._port}"

    def flushall(self) -> None:
        """Delete every item (memcached's ``flush_all``)."""
        reply = self._exchange(b"flush_all")
        if reply != b"OK":
            raise RuntimeError(f"memcached refused flush_all: {reply!r}")

    def ttl(self, key: str) -> int | None:
        """The seconds ``key`` has left (rounded as memcached keeps them), -1 for an item
        that never expires, None for a missing one: memcached's meta get ``mg <key> t``."""
        if not key or any(not 0x21 <= ord(char) <= 0x7E for char in key):
            raise ValueError(f"not a memcached key: {key!r}")
        reply = self._exchange(b"mg " + key.encode("ascii") + b" t")
        if reply == b"EN":
            return None
        words = reply.split()
        if words[:1] == [b"HD"]:
            for word in words[1:]:
                if word.startswith(b"t"):
                    return int(word[1:])
        raise RuntimeError(f"unexpected memcached reply: {reply!r}")

    def __repr__(self) -> str:
        return f"MemcachedServer({self.location!r}, {self._state})"

    # -- protocol --------------------------------------------------------------------------

    def _exchange(self, command: bytes) -> bytes:
        """Send one command line and return the one-line reply without its line end."""
        if self._process is None:
            raise RuntimeError("the memcached server is stopped")
        with socket.create_connection((HOST, self._port), timeout=5.0) as sock:
            sock.sendall(command + _EOL)
            return _read_line(sock)

    # -- start-up --------------------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [self._binary, "-l", HOST, "-p", str(self._port), "-U", "0"]
        command += ["-m", str(self.MEMORY_MB)]
        if os.name == "posix" and os.geteuid() == 0:
            command += ["-u", _ROOT_USER]
        return command

    def _answers(self) -> bool:
        """``version`` answered with ``VERSION <x.y.z>``."""
        with socket.create_connection((HOST, self._port), timeout=1.0) as sock:
            sock.sendall(b"version" + _EOL)
            return _read_line(sock).startswith(b"VERSION ")


def _read_line(sock: socket.socket) -> bytes:
    """Read up to the first ``\\r\\n`` (the reply of a one-line command)."""
    received = b""
    while _EOL not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("memcached closed the connection mid-reply")
        received += chunk
    return received.split(_EOL, 1)[0]
