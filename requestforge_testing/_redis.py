"""``RedisServer``: a throwaway ``redis-server`` on 127.0.0.1 for tests, demos and benchmarks.

A real server, not a fake: leases (``PX``), Lua scripts and cluster hash slots behave as in
production only there. It keeps nothing on disk (``--save "" --appendonly no``) and lives in
a temporary directory removed by ``stop()``. Needs the ``redis-server`` binary
(``apt-get install redis-server``) and the ``redis`` package; neither is imported or run
until a server is started.

Options for what production Redis deployments look like: TLS only (``tls=`` a
:class:`CertificateAuthority`, ``rediss://`` URLs) and an ACL user with a password
(``username=``/``password=``, the default user disabled). Sentinel and multi-master
Cluster deployments are built from these servers in ``_redis_sentinel.py`` and
``_redis_cluster.py``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from requestforge_testing._child import HOST, ChildServer, free_port

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

    from requestforge_testing._tls import CertificateAuthority

__all__ = ["RedisServer"]

#: All 16384 hash slots: a single-node cluster serves every key itself.
_LAST_SLOT: Final = 16383


class RedisServer(ChildServer):
    """A ``redis-server`` child process on a free 127.0.0.1 port, stopped by ``stop()``.

    ``cluster=True`` starts a single-node Redis Cluster with every slot assigned to it, so
    ``redis.cluster.RedisCluster`` (see :meth:`cluster_client`) works against it.

    ``tls=`` a :class:`CertificateAuthority` serves TLS only (no plain port) with its
    server certificate; ``client_certificates=True`` also requires a client certificate
    signed by it. ``password=`` alone sets ``requirepass``; with ``username=`` it creates
    that ACL user (all keys, channels and commands) and disables the default user. The
    clients of :meth:`client` and :meth:`cluster_client` pass the CA, certificate and
    credentials; :attr:`url` carries them too (the CA as ``ssl_ca_certs=``), and the repr
    never shows the password. ``extra_args`` go at the end of the command line
    (``["--replicaof", host, port]`` for a replica).
    """

    _BINARY = "redis-server"
    _INSTALL = "apt-get install redis-server"
    _DIR_PREFIX = "requestforge-redis-"
    _LOG_NAME = "redis.log"

    def __init__(
        self,
        *,
        binary: str | None = None,
        cluster: bool = False,
        tls: CertificateAuthority | None = None,
        client_certificates: bool = False,
        username: str | None = None,
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if client_certificates and tls is None:
            raise ValueError("client_certificates=True needs tls=")
        if username is not None and not password:
            raise ValueError("username= needs a non-empty password=")
        for name, value in (("username", username), ("password", password)):
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise ValueError(f"{name} must be non-empty and without whitespace")
        self._cluster = cluster
        self._tls = tls
        self._client_certificates = client_certificates
        self._username = username
        self._password = password
        self._extra_args = tuple(extra_args)
        self._fixed_port: int | None = None
        super().__init__(binary=binary)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for ``redis.Redis.from_url`` or a storage.

        With TLS ``rediss://...?ssl_ca_certs=<ca>`` (and the client certificate when one is
        required); with credentials ``redis://[user]:password@...``.
        """
        scheme = "rediss" if self._tls is not None else "redis"
        query = ""
        if self._tls is not None:
            query = f"?ssl_ca_certs={quote(self._tls.ca_bundle)}"
            if self._client_certificates:
                query += f"&ssl_certfile={quote(self._tls.client_cert_file)}"
                query += f"&ssl_keyfile={quote(self._tls.client_key_file)}"
        return f"{scheme}://{self._userinfo()}{HOST}:{self._port}/0{query}"

    @property
    def tls(self) -> bool:
        """True if the server speaks TLS only."""
        return self._tls is not None

    @property
    def username(self) -> str | None:
        """The ACL user, or None (the default user, with ``password`` if set)."""
        return self._username

    @property
    def password(self) -> str | None:
        """The password of ``username`` (or ``requirepass``), or None."""
        return self._password

    def client_options(self) -> dict[str, Any]:
        """The keywords ``redis.Redis`` needs for this server's TLS and credentials."""
        options: dict[str, Any] = {}
        if self._tls is not None:
            options["ssl"] = True
            options["ssl_ca_certs"] = self._tls.ca_bundle
            if self._client_certificates:
                options["ssl_certfile"] = self._tls.client_cert_file
                options["ssl_keyfile"] = self._tls.client_key_file
        if self._username is not None:
            options["username"] = self._username
        if self._password is not None:
            options["password"] = self._password
        return options

    @property
    def cluster(self) -> bool:
        """True for a single-node cluster."""
        return self._cluster

    def client(self, **kwargs: object) -> Redis:
        """A new ``redis.Redis`` connected to this server (close it when done)."""
        from redis import Redis  # noqa: PLC0415 - optional dependency

        options = {**self.client_options(), **kwargs}
        return Redis(host=HOST, port=self._port, **options)

    def cluster_client(self, **kwargs: object) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` for a ``cluster=True`` server (close it)."""
        if not self._cluster:
            raise RuntimeError("cluster_client() needs RedisServer(cluster=True)")
        from redis.cluster import RedisCluster  # noqa: PLC0415 - optional dependency

        options = {**self.client_options(), **kwargs}
        return RedisCluster(host=HOST, port=self._port, **options)

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Freeze the server (SIGSTOP) inside the block, as a Redis stuck in a long command or
        a paused VM: connections open and commands go unanswered. It resumes (SIGCONT) when
        the block ends, however it ends."""
        process = self._process
        if process is None:
            raise RuntimeError("stalled() needs a running server")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(process.pid, signal.SIGCONT)

    def flushall(self) -> None:
        """Delete every key; loaded Lua scripts stay (they are not data)."""
        with self.client() as client:
            client.flushall()

    def restart(self) -> None:
        """Stop the server and start it again on the same port (see :meth:`down`)."""
        with self.down():
            pass

    @contextmanager
    def down(self) -> Iterator[None]:
        """Stop the server inside the block and start it again on the same port when the
        block ends (however it ends), as a crashed or redeployed Redis comes back: its keys
        and loaded scripts are gone (nothing is kept on disk) and clients find their
        connections dropped. Inside the block connections are refused. A cluster node keeps
        its slots."""
        process, self._process = self._process, None
        if process is None:
            raise RuntimeError("down() and restart() need a running server")
        process.terminate()
        try:
            process.wait(self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        try:
            yield
        finally:
            self._fixed_port = self._port
            try:
                self._start()
            finally:
                self._fixed_port = None

    def __repr__(self) -> str:
        kind = ", cluster" if self._cluster else ""
        kind += ", tls" if self._tls is not None else ""
        kind += f", user {self._username!r}" if self._username is not None else ""
        kind += ", password" if self._password is not None else ""
        scheme = "rediss" if self._tls is not None else "redis"
        return f"RedisServer('{scheme}://{HOST}:{self._port}/0'{kind}, {self._state})"

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        super()._start()
        if self._cluster:
            with self.client() as client:
                if self._fixed_port is None:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, _LAST_SLOT)
                self._poll(lambda: client.cluster("INFO").get("cluster_state") == "ok" or None)

    def _choose_port(self) -> int:
        if self._fixed_port is not None:
            return self._fixed_port
        return _free_cluster_port() if self._cluster else free_port()

    def _userinfo(self) -> str:
        if self._password is None:
            return ""
        return f"{quote(self._username or '', safe='')}:{quote(self._password, safe='')}@"

    def _command(self) -> list[str]:
        command = [self._binary]
        if self._username is not None:
            # In a file, not on the command line, where ``ps`` would show the password.
            acl = self._dir / "users.conf"
            acl.write_text(
                f"user default off\nuser {self._username} on >{self._password} ~* &* +@all\n"
            )
            acl.chmod(0o600)
            command.append(str(acl))
        elif self._password is not None:
            conf = self._dir / "password.conf"
            conf.write_text(f"requirepass {self._password}\n")
            conf.chmod(0o600)
            command.append(str(conf))
        if self._tls is not None:
            command += ["--port", "0", "--tls-port", str(self._port)]
            command += ["--tls-cert-file", self._tls.server_cert_file]
            command += ["--tls-key-file", self._tls.server_key_file]
            command += ["--tls-ca-cert-file", self._tls.ca_bundle]
            command += ["--tls-auth-clients", "yes" if self._client_certificates else "no"]
            if self._cluster:
                command += ["--tls-cluster", "yes"]
        else:
            command += ["--port", str(self._port)]
        command += ["--bind", HOST]
        command += ["--dir", str(self._dir), "--save", "", "--appendonly", "no"]
        command += ["--logfile", str(self._log), "--daemonize", "no"]
        if self._cluster:
            command += ["--cluster-enabled", "yes", "--cluster-announce-ip", HOST]
            command += ["--cluster-config-file", str(self._dir / "nodes.conf")]
        command += self._extra_args
        return command

    def _answers(self) -> bool:
        """PING answered with PONG (or with NOAUTH: up, but it wants credentials first)."""
        with socket.create_connection((HOST, self._port), timeout=1.0) as sock:
            if self._tls is None:
                return _pings(sock)
            context = ssl.create_default_context(cafile=self._tls.ca_bundle)
            if self._client_certificates:
                context.load_cert_chain(*self._tls.client_cert)
            with context.wrap_socket(sock, server_hostname=HOST) as secure:
                return _pings(secure)


def _pings(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too: Redis refuses
    a cluster port above 55535, which the kernel's ephemeral range often hands out."""
    rng = random.Random()  # noqa: S311 - picking a port, not a secret
    for _ in range(100):
        port = rng.randint(20000, 55535)
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind((HOST, port))
                bus.bind((HOST, port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis cluster node")
