"""``ChildServer``: a server binary run as a child process in a temporary directory.

What :class:`RedisServer` and :class:`ProxyServer` share: the binary looked up on ``PATH``
(with what to install when it is missing), start attempts on a free 127.0.0.1 port, a
readiness poll with a deadline, ``stop()`` (terminate, wait, kill) and the directory it
removes. Each subclass says only how its binary is started and when it answers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final, TypeVar

__all__ = ["HOST", "ChildServer", "free_port"]

HOST: Final = "127.0.0.1"

_Server = TypeVar("_Server", bound="ChildServer")


class ChildServer:
    """A server binary run as a child process on a free 127.0.0.1 port, stopped by ``stop()``.

    A subclass names its binary in the class attributes below and defines ``_command()``
    (the command line for ``self._port``) and ``_answers()`` (one readiness probe). It sets
    its own attributes before calling ``super().__init__()``, which starts the server.
    """

    #: How long start-up may take before it is an error: the servers start in milliseconds,
    #: but a loaded CI machine may be slow.
    START_TIMEOUT: Final = 15.0
    #: How long ``stop()`` waits after SIGTERM before it kills the server.
    STOP_TIMEOUT: Final = 5.0
    #: Ports can be taken between choosing one and the server binding it: retry this often.
    START_ATTEMPTS: Final = 3
    #: Pause between readiness checks (real time).
    POLL_INTERVAL: Final = 0.01

    # The binary run by default, and the name the errors give it.
    _BINARY: ClassVar[str]
    # What to install when the binary is missing: ``apt-get install <package>``.
    _INSTALL: ClassVar[str]
    # The prefix of the temporary directory's name.
    _DIR_PREFIX: ClassVar[str]
    # The log file in that directory, quoted when start-up fails.
    _LOG_NAME: ClassVar[str]

    def __init__(self, *, binary: str | None = None) -> None:
        found = shutil.which(binary or self._BINARY)
        if found is None:
            raise FileNotFoundError(self._not_found(binary))
        self._binary = found
        self._pause = threading.Event()  # never set: waiting on it is a plain delay
        self._dir = Path(tempfile.mkdtemp(prefix=self._DIR_PREFIX))
        self._log = self._dir / self._LOG_NAME
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    @classmethod
    def available(cls, binary: str | None = None) -> bool:
        """True if the server's binary (or ``binary``) is on ``PATH``."""
        return shutil.which(binary or cls._BINARY) is not None

    @classmethod
    def _not_found(cls, binary: str | None = None) -> str:
        """The one-line error (and the fixtures' skip reason) for a missing binary."""
        return f"{binary or cls._BINARY} not found: {cls._INSTALL}"

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    def stop(self) -> None:
        """Terminate the server and remove its directory; stopping twice is harmless."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _state(self) -> str:
        """``running`` or ``stopped``, for the subclasses' reprs."""
        return "running" if self._process is not None else "stopped"

    # -- start-up --------------------------------------------------------------------------

    def _command(self) -> list[str]:
        """The command line that serves on ``self._port`` (chosen for this attempt)."""
        raise NotImplementedError

    def _answers(self) -> bool:
        """One readiness probe: True if the server answers as it should; an OSError while it
        is not listening yet."""
        raise NotImplementedError

    def _choose_port(self) -> int:
        """A free port for the next start attempt."""
        return free_port()

    def _start(self) -> None:
        """Start the binary, on a new port after each attempt whose process exits."""
        for attempt in range(1, self.START_ATTEMPTS + 1):
            self._port = self._choose_port()
            self._process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                self._command(),
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
                raise RuntimeError(f"{self._BINARY} did not start: {self._log_tail()}")

    def _wait_until_ready(self) -> bool:
        """Probe until the server answers (True) or its process exits (False)."""
        process = self._process
        assert process is not None  # noqa: S101 - set by the caller

        def ready() -> bool | None:
            if process.poll() is not None:
                return False  # exited: the port was taken, or the config was refused
            try:
                return self._answers()
            except OSError:
                return None  # not listening yet

        return self._poll(ready)

    def _poll(self, check: Callable[[], bool | None]) -> bool:
        """Call ``check()`` until it returns True or False; None means "not yet"."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            outcome = check()
            if outcome is not None:
                return outcome
            self._pause.wait(self.POLL_INTERVAL)
        raise RuntimeError(
            f"{self._BINARY} was not ready within {self.START_TIMEOUT:g}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self._log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"


def free_port() -> int:
    """A port no socket on 127.0.0.1 holds right now (it can be taken before it is bound)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
