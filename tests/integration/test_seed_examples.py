"""The example tests of the "Thread Safety" design document, run as written there.

The two test bodies below are the document's, unchanged but for the type annotations our
strict mypy asks for; the only additions are the imports they assume and ``config``, which
the document leaves to the reader: here it points at the plugin's loopback API server.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from requestforge import (
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    TokenData,
    TokenManager,
    TokenProviderInterface,
)
from requestforge_testing import ApiServer, Reply

config: HttpClientConfig


@pytest.fixture(autouse=True)
def _document_config(forge_api_server: ApiServer) -> None:
    """Bind the module-level ``config`` the document's test uses to the loopback server."""
    global config  # noqa: PLW0603 - the document's test reads a module-level name
    for i in range(100):
        forge_api_server.add(f"/users/{i}", Reply(200, json={"id": i}))
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).build()


# fmt: off
def test_concurrent_requests() -> None:
    """Test concurrent requests are thread-safe."""
    client = HttpClient(config)
    results = []
    errors = []

    def worker(i: int) -> None:
        try:
            response = client.get(f'/users/{i}')
            results.append(response.status_code)
        except Exception as e:  # noqa: BLE001 - as written in the document
            errors.append(e)

    # 100 concurrent requests
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # All should succeed
    assert len(errors) == 0
    assert len(results) == 100


def test_concurrent_token_fetch() -> None:
    """Test only one thread fetches token."""
    fetch_count = 0
    lock = threading.Lock()

    class CountingProvider(TokenProviderInterface):
        def fetch_token(self) -> Any:
            nonlocal fetch_count
            with lock:
                fetch_count += 1
            return TokenData(access_token='token')

    provider = CountingProvider()
    token_manager = TokenManager(provider)

    # 100 threads request token simultaneously
    def worker() -> None:
        token_manager.get_token()

    threads = [threading.Thread(target=worker) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Only one fetch should occur
    assert fetch_count == 1
# fmt: on
