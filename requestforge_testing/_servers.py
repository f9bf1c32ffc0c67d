"""A real HTTP server on 127.0.0.1 that tests and benchmarks script reply by reply.

Real sockets matter: keep-alive reuse, one session per thread, read timeouts and dropped
connections only show up on a real TCP connection, which a mocked transport cannot prove.
The server needs nothing from pytest, so demos and benchmarks use it too.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from requestforge_testing._replies import UNSET, RecordedRequest, Reply, RequestHeaders

__all__ = ["UNSET", "ApiServer", "RecordedRequest", "Reply"]

_HOST: Final = "127.0.0.1"
_MAX_LINE: Final = 65536


ReplyHandler = Callable[[RecordedRequest], Reply]


class _Sequence:
    """Replies served in order; the last one repeats forever."""

    __slots__ = ("replies", "served")

    def __init__(self, replies: tuple[Reply, ...]) -> None:
        self.replies = replies
        self.served = 0

    def next_reply(self) -> Reply:
        index = min(self.served, len(self.replies) - 1)
        self.served += 1
        return self.replies[index]


class ApiServer:
    """A loopback HTTP/1.1 API with keep-alive, scripted per path, recording every request.

    Thread-safe: scripts can change while requests are in flight. ``reset()`` also closes
    open client connections so one test's keep-alive connections never carry into the next.
    With ``ssl_context`` (a server-side context) it serves HTTPS; each connection's
    handshake runs on its own thread, so a slow or failing client holds up no other.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        # One short lock guards scripts and records; the Condition lets tests wait for arrivals.
        self._cond = threading.Condition()
        self._scripts: dict[tuple[str | None, str], _Sequence | ReplyHandler] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[Exception] = []
        # Connections are tracked apart from requests: touched once per connection, not request.
        self._conn_lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._accepted = 0
        self._numbers = itertools.count(1)
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ApiServer:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        with self._lifecycle:
            if self._httpd is not None:
                raise RuntimeError("ApiServer is already running")
            httpd = _HTTPServer(self)
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},  # stop() waits at most this long
                name=f"forge-api-server-{httpd.server_port}",
                daemon=True,
            )
            thread.start()
            self._httpd, self._serve_thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and wait for server threads to end."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._serve_thread
            if httpd is None or thread is None:
                return
            self._httpd = self._serve_thread = None
            httpd.shutdown()
            httpd.server_close()
            thread.join()
            deadline = time.monotonic() + 5.0
            for worker in self._close_connections():
                worker.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._httpd is not None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321`` (``https://`` with an SSL context)."""
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("ApiServer is not running; call start() or use it as a context")
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{_HOST}:{httpd.server_port}"

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` (which starts with "/") on this server."""
        _check_path(path, allow_query=True)
        return self.url + path

    # -- scripting -----------------------------------------------------------------------

    def add(self, path: str, *replies: Reply, method: str | None = None) -> None:
        """Serve ``replies`` in order to ``path`` (any method unless ``method``), then repeat
        the last one forever; replaces an earlier script for the same path and method."""
        _check_path(path)
        if not replies:
            raise ValueError("add() needs at least one Reply")
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {reply!r}")
        with self._cond:
            self._scripts[_key(method, path)] = _Sequence(replies)

    def add_handler(self, path: str, fn: ReplyHandler, *, method: str | None = None) -> None:
        """Answer ``path`` with ``fn(request)``; fn may run on several server threads at once.

        If fn raises (or returns something other than a Reply), the client gets a 500 and
        the exception is kept in ``handler_errors`` so the test can see what went wrong.
        """
        _check_path(path)
        if not callable(fn):
            raise TypeError(f"expected a callable, got {fn!r}")
        with self._cond:
            self._scripts[_key(method, path)] = fn

    def reset(self) -> None:
        """Forget scripts, recorded requests, handler errors and the connection count, and
        close open connections, so that nothing carries over to whatever runs next."""
        with self._cond:
            self._scripts.clear()
            self._requests.clear()
            self._errors.clear()
        with self._conn_lock:
            self._accepted = 0
        self._close_connections()

    # -- inspection ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request since the last reset, in arrival order (a copy)."""
        with self._cond:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path (without query string) is ``path``."""
        with self._cond:
            return [r for r in self._requests if r.path == path]

    def wait_for_requests(
        self, n: int, timeout: float = 5.0, *, path: str | None = None
    ) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (to ``path``, if given) have arrived and
        return them all; tests wait on this instead of sleeping."""

        def matching() -> list[RecordedRequest]:
            if path is None:
                return self._requests
            return [r for r in self._requests if r.path == path]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= n, timeout=timeout):
                seen = [f"{r.method} {r.path}" for r in self._requests]
                where = "" if path is None else f" to {path}"
                raise TimeoutError(
                    f"expected at least {n} request(s){where} within {timeout}s, "
                    f"got {len(matching())}; all requests so far: {seen}"
                )
            return list(matching())

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since the last reset: keep-alive reuse keeps it low."""
        with self._conn_lock:
            return self._accepted

    @property
    def handler_errors(self) -> list[Exception]:
        """Exceptions raised by ``add_handler`` functions since the last reset (a copy)."""
        with self._cond:
            return list(self._errors)

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"ApiServer({where})"

    # -- called from server threads ------------------------------------------------------

    def _dispatch(self, request: RecordedRequest) -> Reply:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()
            script = self._scripts.get((request.method, request.path))
            if script is None:
                script = self._scripts.get((None, request.path))
            if isinstance(script, _Sequence):
                return script.next_reply()
        if script is None:
            return Reply(status=404, json={"error": "not scripted", "path": request.path})
        try:
            reply = script(request)
            if not isinstance(reply, Reply):
                raise TypeError(f"handler for {request.path} returned {reply!r}, not a Reply")
        except Exception as exc:  # noqa: BLE001 - reported to the client and kept for the test
            with self._cond:
                self._errors.append(exc)
            return Reply(
                status=500,
                json={"error": "handler raised", "path": request.path, "detail": repr(exc)},
            )
        return reply

    def _connection_opened(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._conn_lock:
            self._accepted += 1
            self._open[sock] = thread

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._conn_lock:
            self._open.pop(sock, None)

    def _close_connections(self) -> list[threading.Thread]:
        # Shutting a socket down wakes its thread from a blocking read with EOF. Done under
        # the lock that _connection_closed takes before closing, so no fd is ever reused here.
        # The plain socket's shutdown also for TLS: SSLSocket.shutdown() would drop its SSL
        # object under the thread that is reading from it.
        with self._conn_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):  # the client already went away
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            return list(self._open.values())


def _key(method: str | None, path: str) -> tuple[str | None, str]:
    return (method.upper() if method is not None else None, path)


def _check_path(path: str, *, allow_query: bool = False) -> None:
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    if not allow_query and "?" in path:
        raise ValueError(f"scripts match the path without its query string, got {path!r}")


_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    """The Date header line, formatted once per second: formatdate costs ~10us a call."""
    global _date_cache  # noqa: PLW0603 - a racy but harmless cache: tuples swap atomically
    second = int(time.time())
    cached_second, line = _date_cache
    if cached_second != second:
        line = f"Date: {formatdate(second, usegmt=True)}\r\n".encode("ascii")
        _date_cache = (second, line)
    return line


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many client threads connect at once; 5 would drop SYNs

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        super().__init__((_HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can take seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = _HOST, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; with TLS, wrap without handshaking: that waits for the client, so it
        runs on the connection's own thread (_serve_connection), not the accept loop."""
        sock, address = super().get_request()
        context = self.api._ssl_context
        if context is None:
            return sock, address
        try:
            wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except BaseException:
            sock.close()  # not handed to socketserver yet, so nobody else would close it
            raise
        return wrapped, address

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        number = next(self.api._numbers)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address, number),
            name=f"forge-api-{self.server_port}-conn-{number}",
            daemon=True,
        )
        if isinstance(request, socket.socket):
            self.api._connection_opened(request, thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any, number: int) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.do_handshake()  # a refused client certificate raises here (an OSError)
            _Handler(request, client_address, self, number)
        except Exception:  # noqa: BLE001 - same contract as ThreadingMixIn.process_request_thread
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            self.api._connection_closed(request)
        super().shutdown_request(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client hanging up (or reset() closing it) is routine, not an error
        super().handle_error(request, client_address)


def _address(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


def _cert_subject(sock: socket.socket) -> Mapping[str, str] | None:
    """The subject of the client's certificate over TLS, or None without one."""
    cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    if not cert:  # None: no certificate; {}: not validated (the context asked for none)
        return None
    subject = cast("tuple[tuple[tuple[str, str], ...], ...]", cert.get("subject", ()))
    return MappingProxyType({name: value for rdn in subject for name, value in rdn})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in one write anyway
    server: _HTTPServer

    def __init__(
        self, request: socket.socket, client_address: Any, server: _HTTPServer, number: int = 0
    ) -> None:
        self.connection_number = number
        self.thread_name = threading.current_thread().name
        self.client_cert_subject = _cert_subject(request)
        super().__init__(request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: tests and benchmarks do not want an access log on stderr."""

    def _serve(self) -> None:
        target, _, query = self.path.partition("?")
        if not target.startswith("/"):  # absolute-form target, as sent to a proxy
            split = urlsplit(self.path)
            target, query = split.path or "/", split.query
        body = self._read_body()
        if body is None:
            return
        reply = self.server.api._dispatch(
            RecordedRequest(
                method=self.command,
                path=target,
                query=parse_qs(query, keep_blank_values=True) if query else {},
                headers=RequestHeaders(self.headers.items()),
                body=body,
                thread_name=self.thread_name,
                connection=self.connection_number,
                client=_address(self.client_address),
                client_cert_subject=self.client_cert_subject,
            )
        )
        if reply.delay:
            time.sleep(reply.delay)  # the remote is slow in real time, whatever the test clock
        if reply.drop:
            self.close_connection = True
            return
        extra = _date_header()
        if reply._closes:
            self.close_connection = True
        elif self.close_connection:
            extra += b"Connection: close\r\n"
        if reply.stream is not None and self.command != "HEAD":
            self.wfile.write(b"".join((reply._head, extra, b"\r\n")))
            self._send_chunks(reply.stream())
            return
        payload = b"" if self.command == "HEAD" else reply._payload
        self.wfile.write(b"".join((reply._head, extra, b"\r\n", payload)))

    def _send_chunks(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        """Any other method (``TRACE``, ``PROPFIND``, ...) is served and recorded the same way:
        ``BaseHTTPRequestHandler`` looks up ``do_<METHOD>``."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None and "chunked" in encoding.lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
            if size < 0:
                raise ValueError(length)
        except ValueError:
            self.send_error(400, "invalid Content-Length")
            return None
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_LINE)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.send_error(400, "invalid chunked body")
                return None
            if size == 0:
                while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are not recorded
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE)
