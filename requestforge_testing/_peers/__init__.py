"""Real authorization servers we did not write, on loopback: authlib (Flask) and DOT (Django).

Peers for interoperability tests: the flows the library supports must pass against them,
not only against our own :class:`~requestforge_testing.OAuthServer`. Their packages come
with the ``dev`` extra, not ``testing``, and are imported only when a server starts.
"""

from requestforge_testing._peers._authlib import AuthlibServer, missing_peer_packages
from requestforge_testing._peers._dot import DotServer

__all__ = ["AuthlibServer", "DotServer", "missing_peer_packages"]
