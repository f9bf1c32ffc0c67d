"""``CertificateAuthority``: a throwaway CA and the certificates a TLS test needs, as files.

``verify=``, ``cert=`` and ``verify_ssl=`` take file paths, and only a real handshake
proves they are passed on: so the certificates are real, issued by ``trustme`` (imported
when a CA is made, never by ``requestforge``), and written as PEM files to a temporary
directory that ``close()`` removes.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final

from requestforge_testing._env import testing_extra_hint

__all__ = ["CertificateAuthority"]


class CertificateAuthority:
    """A new CA with a server certificate for 127.0.0.1 and localhost and a client
    certificate, each written as PEM; ``server_context()`` makes an ``ssl.SSLContext`` for
    :class:`ApiServer` that trusts this CA for client certificates.

    The paths are strings, as requests takes them: ``verify=ca.ca_bundle``,
    ``cert=ca.client_cert`` (certificate and key) or ``cert=ca.client_pem_file`` (both in
    one file). Nothing in the system trust store knows the CA, so ``verify=True`` fails.
    """

    #: The names the server certificate is valid for: what loopback tests connect to.
    SERVER_IDENTITIES: Final = ("127.0.0.1", "localhost")
    #: The client certificate's common name, which the server records in its subject.
    CLIENT_COMMON_NAME: Final = "forge-client"
    #: The client certificate's identity (an e-mail SAN): a leaf needs one besides its name.
    CLIENT_IDENTITY: Final = "forge-client@requestforge.invalid"

    def __init__(self, *, client_common_name: str = CLIENT_COMMON_NAME) -> None:
        try:
            import trustme  # noqa: PLC0415 - only TLS tests pay for (or need) it
        except ImportError as exc:
            raise ModuleNotFoundError(testing_extra_hint(("trustme",))) from exc
        self._client_common_name = client_common_name
        self._dir = Path(tempfile.mkdtemp(prefix="requestforge-tls-"))
        try:
            ca = trustme.CA(organization_name="requestforge_testing")
            server = ca.issue_cert(*self.SERVER_IDENTITIES)
            client = ca.issue_cert(self.CLIENT_IDENTITY, common_name=client_common_name)
            ca.cert_pem.write_to_path(self.ca_bundle)
            server.cert_chain_pems[0].write_to_path(self.server_cert_file)
            server.private_key_pem.write_to_path(self.server_key_file)
            client.cert_chain_pems[0].write_to_path(self.client_cert_file)
            client.private_key_pem.write_to_path(self.client_key_file)
            client.private_key_and_cert_chain_pem.write_to_path(self.client_pem_file)
        except BaseException:
            self.close()
            raise

    @property
    def directory(self) -> Path:
        """The temporary directory that holds the files; ``close()`` removes it."""
        return self._dir

    @property
    def ca_bundle(self) -> str:
        """The CA certificate: ``verify=`` or ``verify_ssl=`` trusts the server with it."""
        return str(self._dir / "ca.pem")

    @property
    def server_cert_file(self) -> str:
        """The server's certificate (for 127.0.0.1 and localhost)."""
        return str(self._dir / "server.crt")

    @property
    def server_key_file(self) -> str:
        """The server certificate's private key."""
        return str(self._dir / "server.key")

    @property
    def client_cert_file(self) -> str:
        """The client's certificate."""
        return str(self._dir / "client.crt")

    @property
    def client_key_file(self) -> str:
        """The client certificate's private key."""
        return str(self._dir / "client.key")

    @property
    def client_pem_file(self) -> str:
        """The client's key and certificate in one file, for ``cert=path``."""
        return str(self._dir / "client.pem")

    @property
    def client_cert(self) -> tuple[str, str]:
        """``(client_cert_file, client_key_file)``, for ``cert=(cert, key)``."""
        return self.client_cert_file, self.client_key_file

    @property
    def client_common_name(self) -> str:
        """The client certificate's common name (``commonName`` in a recorded subject)."""
        return self._client_common_name

    def server_context(self, *, require_client_cert: bool = True) -> ssl.SSLContext:
        """A new server-side context presenting the server certificate that verifies client
        certificates against this CA: required (``CERT_REQUIRED``: a client without one
        fails the handshake), or else accepted when sent (``CERT_OPTIONAL``)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert_file, self.server_key_file)
        context.load_verify_locations(cafile=self.ca_bundle)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        return context

    def close(self) -> None:
        """Remove the files; closing twice is harmless."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._dir.is_dir() else "closed"
        return f"CertificateAuthority({str(self._dir)!r}, {state})"
