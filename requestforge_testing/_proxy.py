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
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["ProxyServer"]

_HOST: Final = "127.0.0.1"
#: A logged request: ``CONNECT  Dec 02 10:06:42.950 [3085]: Request (file descriptor 5): GET
#: http://127.0.0.1:8080/x HTTP/1.1`` (tinyproxy 1.11 logs it before forwarding anything).
_REQUEST_LINE: Final = re.compile(r"\]: Request \(file descriptor \d+\): (?P<line>.+)$")


class ProxyServer:
    """A ``tinyproxy`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    It accepts clients from 127.0.0.1 only, forwards directly (no upstream) and tunnels
    ``CONNECT`` to any port. ``request_lines`` is what it logged since the last ``reset()``:
    the proof, from the proxy's side, that a request went through it. It also adds a
    ``Via`` header naming ``VIA_NAME`` to the plain-HTTP requests it forwards.
    """

    #: How long start-up may take before it is an error: tinyproxy starts in milliseconds,
    #: but a loaded CI machine may be slow.
    START_TIMEOUT: Final = 15.0
    #: How long ``stop()`` waits after SIGTERM before it kills the proxy.
    STOP_TIMEOUT: Final = 5.0
    #: Ports can be taken between choosing one and the proxy binding it: retry this often.
    START_ATTEMPTS: Final = 3
    #: Pause between readiness checks (real time).
    POLL_INTERVAL: Final = 0.01
    #: Seconds a connection may stay idle before tinyproxy closes it (its ``Timeout``).
    IDLE_TIMEOUT: Final = 60
    #: Connections served at once (``MaxClients``): many test threads may tunnel together.
    MAX_CLIENTS: Final = 100
    #: The name in the ``Via`` header tinyproxy adds (``ViaProxyName``).
    VIA_NAME: Final = "forge-proxy"

    def __init__(self, *, binary: str | None = None) -> None:
        found = shutil.which(binary or "tinyproxy")
        if found is None:
            raise FileNotFoundError(f"{binary or 'tinyproxy'} not found: apt-get install tinyproxy")
        self._binary = found
        self._pause = threading.Event()  # never set: waiting on it is a plain delay
        self._dir = Path(tempfile.mkdtemp(prefix="requestforge-proxy-"))
        self._log = self._dir / "tinyproxy.log"
        self._log_start = 0
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def available(binary: str | None = None) -> bool:
        """True if the ``tinyproxy`` binary (or ``binary``) is on ``PATH``."""
        return shutil.which(binary or "tinyproxy") is not None

    @property
    def directory(self) -> Path:
        """The temporary directory of its config and log; ``stop()`` removes it."""
        return self._dir

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return _HOST

    @property
    def port(self) -> int:
        """The TCP port the proxy listens on."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the value for ``proxies={"http": ..., "https": ...}``."""
        return f"http://{_HOST}:{self._port}"

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

    def stop(self) -> None:
        """Terminate the proxy and remove its directory; stopping twice is harmless."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ProxyServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._process is not None else "stopped"
        return f"ProxyServer({self.url!r}, {state})"

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        config = self._dir / "tinyproxy.conf"
        for attempt in range(1, self.START_ATTEMPTS + 1):
            self._port = _free_port()
            config.write_text(self._config())
            self._process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                [self._binary, "-d", "-c", str(config)],  # -d: stay in the foreground
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_ready():
                break
            self._process.kill()
            self._process.wait()
            self._process = None
            if attempt == self.START_ATTEMPTS:
                raise RuntimeError(f"tinyproxy did not start: {self._log_tail()}")
        self.reset()  # start-up notices are not requests, but keep the log for errors

    def _config(self) -> str:
        """tinyproxy 1.11's configuration: no ``User`` (it stays the user that started it),
        no ``PidFile``, and no ``ConnectPort`` line, which allows ``CONNECT`` to any port."""
        lines = [
            f"Port {self._port}",
            f"Listen {_HOST}",
            f"Allow {_HOST}",
            f"Timeout {self.IDLE_TIMEOUT}",
            f"MaxClients {self.MAX_CLIENTS}",
            f'LogFile "{self._log}"',
            "LogLevel Connect",  # connections and request lines, without Info's noise
            f'ViaProxyName "{self.VIA_NAME}"',
        ]
        return "".join(line + "\n" for line in lines)

    def _wait_until_ready(self) -> bool:
        """Connect until the proxy accepts (True) or its process exits (False)."""
        process = self._process
        assert process is not None  # noqa: S101 - set by the caller
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False  # exited: the port was taken, or the config was refused
            try:
                with socket.create_connection((_HOST, self._port), timeout=1.0):
                    return True
            except OSError:
                self._pause.wait(self.POLL_INTERVAL)  # not listening yet
        raise RuntimeError(
            f"tinyproxy was not ready within {self.START_TIMEOUT:g}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self._log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port
