"""``ProxyServer``: a throwaway ``tinyproxy`` forward proxy on 127.0.0.1 for tests.

A real proxy, not one of ours: whether ``proxies=`` reaches the proxy in absolute form (for
``http://``) or as a ``CONNECT`` tunnel (for ``https://``) is decided by requests and
urllib3, and only a proxy written by someone else checks that we did not just agree with
ourselves. It lives in a temporary directory (config and log) removed by ``stop()``. Needs
the ``tinyproxy`` binary (``apt-get install tinyproxy``), which is not run until a server is
started.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Final

from requestforge_testing._child import HOST, ChildServer

__all__ = ["ProxyServer"]

#: A logged request: ``CONNECT  Dec 02 10:06:42.950 [3085]: Request (file descriptor 5): GET
#: http://127.0.0.1:8080/x HTTP/1.1`` (tinyproxy 1.11 logs it before forwarding anything).
_REQUEST_LINE: Final = re.compile(r"\]: Request \(file descriptor \d+\): (?P<line>.+)$")


class ProxyServer(ChildServer):
    """A ``tinyproxy`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    It accepts clients from 127.0.0.1 only, forwards directly (no upstream) and tunnels
    ``CONNECT`` to any port. ``request_lines`` is what it logged since the last ``reset()``:
    the proof, from the proxy's side, that a request went through it. It also adds a
    ``Via`` header naming ``VIA_NAME`` to the plain-HTTP requests it forwards.
    """

    #: Seconds a connection may stay idle before tinyproxy closes it (its ``Timeout``).
    IDLE_TIMEOUT: Final = 60
    #: Connections served at once (``MaxClients``): many test threads may tunnel together.
    MAX_CLIENTS: Final = 100
    #: The name in the ``Via`` header tinyproxy adds (``ViaProxyName``).
    VIA_NAME: Final = "forge-proxy"

    _BINARY = "tinyproxy"
    _INSTALL = "apt-get install tinyproxy"
    _DIR_PREFIX = "requestforge-proxy-"
    _LOG_NAME = "tinyproxy.log"

    def __init__(self, *, binary: str | None = None) -> None:
        self._log_start = 0
        super().__init__(binary=binary)

    @property
    def directory(self) -> Path:
        """The temporary directory of its config and log; ``stop()`` removes it."""
        return self._dir

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the value for ``proxies={"http": ..., "https": ...}``."""
        return f"http://{HOST}:{self._port}"

    @property
    def proxies(self) -> dict[str, str]:
        """``{"http": url, "https": url}``, a new dict each time, for ``proxies=``."""
        return {"http": self.url, "https": self.url}

    @property
    def request_lines(self) -> list[str]:
        """The request lines the proxy logged since the last reset, oldest first:
        ``GET http://127.0.0.1:<port>/path HTTP/1.1`` for plain HTTP, ``CONNECT
        127.0.0.1:<port> HTTP/1.0`` for a tunnel (Python's ``http.client`` sends 1.0). A
        request is logged before the proxy forwards it, so once the client has its
        response, its line is here."""
        try:
            with self._log.open("rb") as log:
                log.seek(self._log_start)
                text = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
        return [
            match["line"]
            for line in complete.splitlines()
            if (match := _REQUEST_LINE.search(line)) is not None
        ]

    def reset(self) -> None:
        """Forget what was logged so far: ``request_lines`` starts empty again."""
        try:
            self._log_start = self._log.stat().st_size
        except FileNotFoundError:
            self._log_start = 0

    def __repr__(self) -> str:
        return f"ProxyServer({self.url!r}, {self._state})"

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        super()._start()
        self.reset()  # start-up notices are not requests, but keep the log for errors

    def _command(self) -> list[str]:
        """Write the config for this attempt's port, and stay in the foreground (``-d``)."""
        config = self._dir / "tinyproxy.conf"
        config.write_text(self._config())
        return [self._binary, "-d", "-c", str(config)]

    def _config(self) -> str:
        """tinyproxy 1.11's configuration: no ``User`` (it stays the user that started it),
        no ``PidFile``, and no ``ConnectPort`` line, which allows ``CONNECT`` to any port."""
        lines = [
            f"Port {self._port}",
            f"Listen {HOST}",
            f"Allow {HOST}",
            f"Timeout {self.IDLE_TIMEOUT}",
            f"MaxClients {self.MAX_CLIENTS}",
            f'LogFile "{self._log}"',
            "LogLevel Connect",  # connections and request lines, without Info's noise
            f'ViaProxyName "{self.VIA_NAME}"',
        ]
        return "".join(line + "\n" for line in lines)

    def _answers(self) -> bool:
        """The proxy accepts a connection."""
        with socket.create_connection((HOST, self._port), timeout=1.0):
            return True
