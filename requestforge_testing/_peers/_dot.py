"""``DotServer``: django-oauth-toolkit in a minimal Django project, in a child process.

The token, revocation and introspection endpoints are DOT's own views (``/o/token/``,
``/o/revoke_token/``, ``/o/introspect/``) and the protected API is DOT's default
``ProtectedResourceView``, which answers a bare 403 for an expired or revoked token.
Django is configured in the child (``_dot_main.py``): the test process may have configured
Django settings already, and that works once per process. Needs django-oauth-toolkit (the
``dev`` extra); nothing of it is imported here.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from requestforge_testing._child import HOST, free_port
from requestforge_testing._peers._authlib import missing_peer_packages

__all__ = ["DotServer"]

_PACKAGE_ROOT: Final = Path(__file__).resolve().parents[2]


class DotServer:
    """django-oauth-toolkit on a free 127.0.0.1 port, started by ``start()``.

    Two confidential applications are registered: :attr:`client_id` / :attr:`client_secret`
    for the ``client_credentials`` grant and :attr:`password_client_id` /
    :attr:`password_client_secret` for ``password`` (and ``refresh_token``), with one user
    (:attr:`username`, :attr:`password`). ``lifetime`` is DOT's
    ``ACCESS_TOKEN_EXPIRE_SECONDS``; ``rotate_refresh_tokens`` its ``ROTATE_REFRESH_TOKEN``
    (with no grace period: a used refresh token is refused). DOT reads the real clock, so
    :meth:`expire_tokens` makes tokens expire now instead of a test waiting.

    Start-up runs Django's migrations on a fresh sqlite database: a few seconds, so share
    one server per test session and ``reset()`` between tests.
    """

    CLIENT_ID: Final = "dot-client"
    CLIENT_SECRET: Final = "dot-secret"  # noqa: S105 - a throwaway test credential
    PASSWORD_CLIENT_ID: Final = "dot-password-client"  # noqa: S105 - a client id
    PASSWORD_CLIENT_SECRET: Final = "dot-password-secret"  # noqa: S105 - likewise
    USERNAME: Final = "dot-user"
    PASSWORD: Final = "dot-password"  # noqa: S105 - likewise
    #: DOT's own default ``ACCESS_TOKEN_EXPIRE_SECONDS``.
    DEFAULT_LIFETIME: Final = 36000
    #: Migrations and start-up on a loaded CI machine; an error after this long.
    START_TIMEOUT: Final = 60.0
    #: How long ``stop()`` waits after SIGTERM before it kills the child.
    STOP_TIMEOUT: Final = 5.0
    #: A port can be taken between choosing it and the child binding it: retry this often.
    START_ATTEMPTS: Final = 3
    #: A control call that takes longer than this is an error.
    CONTROL_TIMEOUT: Final = 30.0

    def __init__(
        self, *, lifetime: int = DEFAULT_LIFETIME, rotate_refresh_tokens: bool = True
    ) -> None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ValueError(f"lifetime must be an integer >= 1, got {lifetime!r}")
        if not isinstance(rotate_refresh_tokens, bool):
            raise TypeError(f"rotate_refresh_tokens must be a bool, got {rotate_refresh_tokens!r}")
        self._lifetime = lifetime
        self._rotate = rotate_refresh_tokens
        self._key = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._port = 0

    @staticmethod
    def missing() -> tuple[str, ...]:
        """The distributions this server needs that are not installed (empty: none)."""
        return missing_peer_packages("dot")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> DotServer:
        """Start the child, migrate and seed its database, and wait until it serves."""
        if self._process is not None:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="forge-dot-"))
        try:
            for attempt in range(1, self.START_ATTEMPTS + 1):
                if self._start_once() or attempt == self.START_ATTEMPTS:
                    break
        except BaseException:
            self.stop()
            raise
        if self._process is None:
            log = self._log_tail()
            self.stop()
            raise RuntimeError(f"django-oauth-toolkit did not start: {log}")
        return self

    def _start_once(self) -> bool:
        assert self._dir is not None  # noqa: S101 - set by start()
        self._port = free_port()
        config = {
            "key": self._key,
            "lifetime": self._lifetime,
            "rotate": self._rotate,
            "username": self.USERNAME,
            "password": self.PASSWORD,
            "clients": [
                {
                    "client_id": self.CLIENT_ID,
                    "client_secret": self.CLIENT_SECRET,
                    "grant": "client-credentials",
                },
                {
                    "client_id": self.PASSWORD_CLIENT_ID,
                    "client_secret": self.PASSWORD_CLIENT_SECRET,
                    "grant": "password",
                },
            ],
        }
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["FORGE_DOT_CONFIG"] = json.dumps(config)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        with (self._dir / "dot.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                [
                    sys.executable,
                    "-m",
                    "requestforge_testing._peers._dot_main",
                    "--port",
                    str(self._port),
                    "--dir",
                    str(self._dir),
                ],
                cwd=self._dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        if _wait_for_ready(process, self.START_TIMEOUT):
            self._process = process
            return True
        _end(process, self.STOP_TIMEOUT)
        return False

    def stop(self) -> None:
        """Terminate the child and remove its directory; stopping twice is harmless."""
        process, self._process = self._process, None
        if process is not None:
            _end(process, self.STOP_TIMEOUT)
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> DotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Delete every token and added client, zero the counts and the latency."""
        self._control("reset")

    def __repr__(self) -> str:
        return f"DotServer({self.url if self.running else 'stopped'})"

    def _log_tail(self) -> str:
        try:
            assert self._dir is not None  # noqa: S101 - only while started
            lines = (self._dir / "dot.log").read_text(errors="replace").splitlines()
        except (OSError, AssertionError):
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    # -- where and who -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the child is serving."""
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self._port}"

    @property
    def token_url(self) -> str:
        """DOT's token endpoint."""
        return self.url + "/o/token/"

    @property
    def revocation_url(self) -> str:
        """DOT's RFC 7009 revocation endpoint."""
        return self.url + "/o/revoke_token/"

    @property
    def introspection_url(self) -> str:
        """DOT's RFC 7662 introspection endpoint (client credentials in Basic, or a token
        with the ``introspection`` scope)."""
        return self.url + "/o/introspect/"

    @property
    def api_url(self) -> str:
        """The protected API (DOT's ``ProtectedResourceView``), also every path under it."""
        return self.url + "/api"

    @property
    def client_id(self) -> str:
        """The ``client_credentials`` application."""
        return self.CLIENT_ID

    @property
    def client_secret(self) -> str:
        """Its secret."""
        return self.CLIENT_SECRET

    @property
    def password_client_id(self) -> str:
        """The ``password`` grant application (it may also refresh)."""
        return self.PASSWORD_CLIENT_ID

    @property
    def password_client_secret(self) -> str:
        """Its secret."""
        return self.PASSWORD_CLIENT_SECRET

    @property
    def username(self) -> str:
        """The registered user."""
        return self.USERNAME

    @property
    def password(self) -> str:
        """That user's password."""
        return self.PASSWORD

    @property
    def lifetime(self) -> int:
        """``ACCESS_TOKEN_EXPIRE_SECONDS``: the ``expires_in`` of every token."""
        return self._lifetime

    # -- control -------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, *, grant: str = "client-credentials"
    ) -> None:
        """Register (or replace) a confidential application; ``grant`` is DOT's
        ``authorization_grant_type`` (``client-credentials`` or ``password``)."""
        self._control("client", client_id=client_id, client_secret=client_secret, grant=grant)

    def set_latency(self, seconds: float) -> None:
        """Hold every token request this long (real time) before DOT sees it."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"latency must be a number >= 0, got {seconds!r}")
        self._control("latency", seconds=float(seconds))

    def expire_tokens(self) -> int:
        """Make every access token expired now; the number of tokens it changed."""
        expired: int = self._control("expire")["expired"]
        return expired

    # -- inspection ----------------------------------------------------------------------

    @property
    def token_request_counts(self) -> dict[str, int]:
        """Requests to the token endpoint per ``grant_type``, answered or refused."""
        counts: dict[str, int] = self._control("counts")["requests"]
        return counts

    @property
    def grant_counts(self) -> dict[str, int]:
        """Token requests answered 200, per ``grant_type``."""
        counts: dict[str, int] = self._control("counts")["issued"]
        return counts

    @property
    def api_statuses(self) -> list[int]:
        """The status of every protected API response since the last reset, in order."""
        statuses: list[int] = self._control("counts")["api_statuses"]
        return statuses

    def _control(self, action: str, **payload: Any) -> dict[str, Any]:
        if not self.running:
            raise RuntimeError("the DOT server is not running: call start() first")
        return _call(self._port, self._key, action, payload, self.CONTROL_TIMEOUT)


def _call(
    port: int, key: str, action: str, payload: dict[str, Any], timeout: float
) -> dict[str, Any]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = json.dumps(payload)
        headers = {"X-Forge-Control": key, "Content-Type": "application/json"}
        connection.request("POST", f"/forge/{action}", body=body, headers=headers)
        response = connection.getresponse()
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"DOT control call {action!r} answered {response.status}: {answer}")
    return answer


def _wait_for_ready(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once the child prints READY; False if it exits first; an error after ``timeout``."""
    assert process.stdout is not None  # noqa: S101 - a pipe by construction
    lines: list[bytes] = []
    done = threading.Event()

    def read(stream: IO[bytes]) -> None:
        lines.append(stream.readline())
        done.set()

    reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
    reader.start()
    started = time.monotonic()
    if not done.wait(timeout):
        _end(process, 5.0)
        raise RuntimeError(
            f"django-oauth-toolkit was not ready within {time.monotonic() - started:.0f}s"
        )
    return lines[0].strip() == b"READY"


def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
