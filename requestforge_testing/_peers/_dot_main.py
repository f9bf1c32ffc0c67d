"""The DOT child process: ``python -m requestforge_testing._peers._dot_main --port N --dir D``.

Django is configured here, in a process of its own: ``settings.configure()`` works once per
process, and the test process may already have configured Django for other tests. The
child migrates an sqlite database in ``--dir``, registers the clients and the user named in
``FORGE_DOT_CONFIG`` (JSON in the environment, so no secret is on the command line), and
serves on 127.0.0.1 from threads. A WSGI wrapper counts token requests per grant, holds
them for the scripted latency, lets one request into Django at a time (sqlite has one
writer) and answers the control calls under ``/forge/`` of the parent's
:class:`DotServer`, which carry its random key.
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import os
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Final
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["main"]

CONFIG_VARIABLE: Final = "FORGE_DOT_CONFIG"
CONTROL_HEADER: Final = "HTTP_X_FORGE_CONTROL"
_TOKEN_PATH: Final = "/o/token/"  # noqa: S105 - a path

StartResponse = Callable[..., Any]
Wsgi = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr."""


def _configure(directory: Path, config: dict[str, Any]) -> None:
    import django  # type: ignore[import-untyped]  # noqa: PLC0415
    from django.conf import settings  # type: ignore[import-untyped]  # noqa: PLC0415

    options: dict[str, Any] = {"timeout": 30}
    if django.VERSION >= (5, 1):
        options["transaction_mode"] = "IMMEDIATE"
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "oauth2_provider"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "dot.sqlite3"),
                "OPTIONS": options,
            }
        },
        ROOT_URLCONF="requestforge_testing._peers._dot_urls",
        MIDDLEWARE=[],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        # Client secrets are hashed with the first hasher: the default (PBKDF2, a million
        # rounds) would make every client authentication take a noticeable time.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        OAUTH2_PROVIDER={
            "ACCESS_TOKEN_EXPIRE_SECONDS": int(config["lifetime"]),
            "ROTATE_REFRESH_TOKEN": bool(config["rotate"]),
            "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
            "SCOPES": {
                "read": "Reading scope",
                "write": "Writing scope",
                "introspection": "Introspect tokens",
            },
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def _models() -> Any:
    """DOT's models module, importable only once Django is set up."""
    from oauth2_provider import models  # type: ignore[import-untyped]  # noqa: PLC0415

    return models


def _add_client(client_id: str, client_secret: str, grant: str) -> None:
    Application = _models().Application
    Application.objects.filter(client_id=client_id).delete()
    Application.objects.create(
        name=client_id,
        client_id=client_id,
        client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
    )


class _Forge:
    """The wrapper's state: counts, latency and the seeded client ids (kept on reset)."""

    def __init__(self, django_app: Wsgi, key: str, seeded: set[str]) -> None:
        self.django_app = django_app
        self.key = key
        self.seeded = seeded
        self.lock = threading.Lock()  # one request inside Django at a time
        self.state = threading.Lock()  # the counters
        self.hold = threading.Event()  # never set: waiting on it is the scripted latency
        self.latency = 0.0
        self.requests: Counter[str] = Counter()
        self.issued: Counter[str] = Counter()
        self.api_statuses: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/forge/"):
            return self._control(environ, start_response, path.removeprefix("/forge/"))
        grant_type = None
        if path == _TOKEN_PATH:
            body = _read_body(environ)
            grant_type = parse_qs(body.decode("utf-8", "replace")).get("grant_type", [""])[0]
            with self.state:
                self.requests[grant_type] += 1
                latency = self.latency
            if latency:
                self.hold.wait(latency)
        status: list[int] = []

        def recording_start(code: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status.append(int(code.split(maxsplit=1)[0]))
            return start_response(code, headers, *rest)

        with self.lock:
            response = self.django_app(environ, recording_start)
            try:
                chunks = list(response)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        with self.state:
            if grant_type is not None and status and status[0] == 200:
                self.issued[grant_type] += 1
            if path == "/api" or path.startswith("/api/"):
                self.api_statuses.extend(status)
        return chunks

    # -- the parent's control calls ------------------------------------------------------

    def _control(
        self, environ: dict[str, Any], start_response: StartResponse, action: str
    ) -> Iterable[bytes]:
        if not hmac.compare_digest(environ.get(CONTROL_HEADER, ""), self.key):
            return _json(start_response, 403, {"error": "the control key is missing or wrong"})
        payload = json.loads(_read_body(environ) or b"{}")
        with self.lock:
            answer = self._act(action, payload)
        if answer is None:
            return _json(start_response, 404, {"error": f"no control action {action!r}"})
        return _json(start_response, 200, answer)

    def _act(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        actions: dict[str, Callable[[], dict[str, Any]]] = {
            "ping": lambda: {"ok": True},
            "counts": self._counts,
            "reset": self._reset,
            "expire": _expire,
            "latency": lambda: self._set_latency(float(payload["seconds"])),
            "client": lambda: self._client(payload),
        }
        act = actions.get(action)
        return None if act is None else act()

    def _counts(self) -> dict[str, Any]:
        with self.state:
            return {
                "requests": dict(self.requests),
                "issued": dict(self.issued),
                "api_statuses": list(self.api_statuses),
            }

    def _reset(self) -> dict[str, Any]:
        models = _models()
        models.RefreshToken.objects.all().delete()
        models.AccessToken.objects.all().delete()
        models.Grant.objects.all().delete()
        models.Application.objects.exclude(client_id__in=self.seeded).delete()
        with self.state:
            self.requests.clear()
            self.issued.clear()
            self.api_statuses.clear()
            self.latency = 0.0
        return {"ok": True}

    def _client(self, payload: dict[str, Any]) -> dict[str, Any]:
        _add_client(payload["client_id"], payload["client_secret"], payload["grant"])
        return {"ok": True}

    def _set_latency(self, seconds: float) -> dict[str, Any]:
        with self.state:
            self.latency = seconds
        return {"ok": True}


def _expire() -> dict[str, Any]:
    from datetime import timedelta  # noqa: PLC0415

    from django.utils import timezone  # type: ignore[import-untyped]  # noqa: PLC0415

    past = timezone.now() - timedelta(seconds=1)
    return {"expired": _models().AccessToken.objects.update(expires=past)}


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back as ``wsgi.input`` so Django reads it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 403: "Forbidden", 404: "Not Found"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def main(argv: list[str] | None = None) -> int:
    """Configure Django, migrate, seed, then serve until terminated."""
    parser = argparse.ArgumentParser(prog="requestforge_testing._peers._dot_main")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    config: dict[str, Any] = json.loads(os.environ[CONFIG_VARIABLE])
    _configure(args.dir, config)

    from django.contrib.auth import get_user_model  # type: ignore[import-untyped]  # noqa: PLC0415
    from django.core.management import call_command  # type: ignore[import-untyped]  # noqa: PLC0415
    from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]  # noqa: PLC0415

    call_command("migrate", verbosity=0, interactive=False)
    get_user_model().objects.create_user(config["username"], password=config["password"])
    seeded = set()
    for client in config["clients"]:
        _add_client(client["client_id"], client["client_secret"], client["grant"])
        seeded.add(client["client_id"])
    app = _Forge(get_wsgi_application(), config["key"], seeded)
    server = make_server(
        "127.0.0.1", args.port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
