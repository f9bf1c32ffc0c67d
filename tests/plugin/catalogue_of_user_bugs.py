"""A catalogue of concurrency bugs users write, each next to its correct twin.

Every test is what a user would write: the documented fixtures with their default
settings (no ``latency=``, no ``threads=``, no seed), ``forge_stress`` or the bare marker,
and one assertion helper. ``test_stress_catalogue.py`` runs this file with ``pytester``:
each ``[bug]`` must fail and each ``[fixed]`` must pass, on every run.
``benchmarks/bench_stress_catalogue.py`` runs it a hundred times and counts.

This file is not collected by the suite itself (its name does not start with ``test_``).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from requestforge import (
    HttpClient,
    HttpClientConfigBuilder,
    HttpResponse,
    InMemoryTokenStorage,
    RequestContext,
    ResponseHookInterface,
    TokenData,
    TokenManager,
)
from requestforge._clock import get_default_clock
from requestforge_testing import (
    ApiServer,
    FakeClock,
    FakeTokenProvider,
    FakeTokenProviderFactory,
    RecordedRequest,
    Reply,
    StressRunner,
)

BUG_OR_FIXED = pytest.mark.parametrize("variant", ["bug", "fixed"])


# -- 1-4, 16, 17: token caches --------------------------------------------------------------


class Cache:
    """The correct cache: double-checked locking, the second check under the lock."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.token: TokenData | None = None
        self.lock = threading.Lock()

    def get(self) -> TokenData:
        if self.token is None:
            with self.lock:
                if self.token is None:
                    self.token = self.provider.fetch_token()
        return self.token


class NoLock(Cache):
    """1. Check-then-act without a lock: every thread that finds it empty fetches."""

    def get(self) -> TokenData:
        if self.token is None:
            self.token = self.provider.fetch_token()
        return self.token


class NoRecheck(Cache):
    """2. A lock, but no second check inside it: the waiters fetch again, one by one."""

    def get(self) -> TokenData:
        if self.token is None:
            with self.lock:
                self.token = self.provider.fetch_token()
        return self.token


class RecheckOutsideLock(Cache):
    """3. The second check is made after the lock is released, not under it."""

    def get(self) -> TokenData:
        if self.token is None:
            with self.lock:
                pass
            if self.token is None:
                self.token = self.provider.fetch_token()
        return self.token


class LockPerCall(Cache):
    """4. A new Lock() per call: it excludes nobody."""

    def get(self) -> TokenData:
        if self.token is None:
            with threading.Lock():  # noqa: PLW2101 - the bug this case is about
                if self.token is None:
                    self.token = self.provider.fetch_token()
        return self.token


class StaleRead(Cache):
    """16. The waiters return what they read before waiting (None), not the new token."""

    def get(self) -> TokenData:
        token = self.token
        if token is None:
            with self.lock:
                if self.token is None:
                    self.token = self.provider.fetch_token()
        return token  # type: ignore[return-value]


class LazyManager:
    """17. A lazily created TokenManager: check-then-act on the manager makes two."""

    def __init__(self, provider: FakeTokenProvider, *, locked: bool) -> None:
        self.provider = provider
        self.manager: TokenManager | None = None
        self.lock = threading.Lock() if locked else None

    def get(self) -> TokenData:
        if self.lock is None:
            if self.manager is None:
                self.manager = TokenManager(self.provider, InMemoryTokenStorage())
            return self.manager.get_token()
        with self.lock:
            if self.manager is None:
                self.manager = TokenManager(self.provider, InMemoryTokenStorage())
            manager = self.manager
        return manager.get_token()


CACHES: dict[str, type[Cache]] = {
    "no_lock": NoLock,
    "no_recheck": NoRecheck,
    "recheck_outside_lock": RecheckOutsideLock,
    "lock_per_call": LockPerCall,
    "stale_read": StaleRead,
}


@pytest.mark.parametrize("kind", list(CACHES))
@BUG_OR_FIXED
def test_a_token_cache_fetches_once(
    kind: str, variant: str, forge_token_provider: FakeTokenProvider, forge_stress: StressRunner
) -> None:
    """Every thread gets the one token, fetched once."""
    cache = CACHES[kind](forge_token_provider) if variant == "bug" else Cache(forge_token_provider)
    report = forge_stress(cache.get)
    report.assert_no_errors()
    report.assert_single_fetch(forge_token_provider)
    assert all(isinstance(token, TokenData) for token in report.results)


@BUG_OR_FIXED
def test_a_lazily_made_manager_fetches_once(
    variant: str, forge_token_provider: FakeTokenProvider, forge_stress: StressRunner
) -> None:
    """One TokenManager is made, so one token is fetched."""
    lazy = LazyManager(forge_token_provider, locked=variant == "fixed")
    forge_stress(lazy.get).assert_single_fetch(forge_token_provider)


# -- 5, 6: the same bugs through the marker ---------------------------------------------------


@pytest.fixture
def marker_cache(request: pytest.FixtureRequest, forge_token_provider: FakeTokenProvider) -> Cache:
    kind, variant = request.param
    return CACHES[kind](forge_token_provider) if variant == "bug" else Cache(forge_token_provider)


@pytest.mark.parametrize(
    "marker_cache",
    [(kind, variant) for kind in ("no_lock", "no_recheck") for variant in ("bug", "fixed")],
    indirect=True,
    ids=[f"{kind}-{variant}" for kind in ("no_lock", "no_recheck") for variant in ("bug", "fixed")],
)
@pytest.mark.forge_stress
def test_every_thread_gets_the_first_token(marker_cache: Cache) -> None:
    """Run by the marker in many threads: each must get token number one."""
    assert marker_cache.get().access_token == "fake-access-1"


# -- 7, 15: a lock released before the token is stored ----------------------------------------


class StoredAfterRelease(Cache):
    """7. The token is fetched under the lock but stored after releasing it."""

    def get(self) -> TokenData:
        if self.token is None:
            with self.lock:
                token = self.token
                if token is None:
                    token = self.provider.fetch_token()
            self.token = token
        return self.token


class StorageSetAfterRelease:
    """15. The same, through a token storage's set() called after the lock is released."""

    def __init__(self, provider: FakeTokenProvider, *, fixed: bool) -> None:
        self.provider = provider
        self.storage = InMemoryTokenStorage()
        self.lock = threading.Lock()
        self.fixed = fixed

    def get(self) -> TokenData:
        token = self.storage.get("key")
        if token is not None:
            return token
        with self.lock:
            token = self.storage.get("key")
            if token is None:
                token = self.provider.fetch_token()
                if self.fixed:
                    self.storage.set("key", token)
        if not self.fixed:
            self.storage.set("key", token)
        return token


@BUG_OR_FIXED
def test_the_token_is_stored_before_the_lock_is_released(
    variant: str, forge_token_provider: FakeTokenProvider, forge_stress: StressRunner
) -> None:
    """The next thread in finds the token stored."""
    cache = (
        StoredAfterRelease(forge_token_provider)
        if variant == "bug"
        else Cache(forge_token_provider)
    )
    forge_stress(cache.get).assert_single_fetch(forge_token_provider)


@BUG_OR_FIXED
def test_the_storage_is_written_before_the_lock_is_released(
    variant: str, forge_token_provider: FakeTokenProvider, forge_stress: StressRunner
) -> None:
    """The same through InMemoryTokenStorage.set()."""
    cache = StorageSetAfterRelease(forge_token_provider, fixed=variant == "fixed")
    forge_stress(cache.get).assert_single_fetch(forge_token_provider)


# -- 8, 18: lost updates in a shared hook or a client wrapper --------------------------------


class CountingHook(ResponseHookInterface):
    """8. ``stats[path] += 1`` in a response hook shared by every thread."""

    def __init__(self, *, locked: bool) -> None:
        self.stats: dict[str, int] = {}
        self.lock = threading.Lock() if locked else None

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        if self.lock is None:
            self.stats["/ping"] = self.stats.get("/ping", 0) + 1
        else:
            with self.lock:
                self.stats["/ping"] = self.stats.get("/ping", 0) + 1
        return response


@BUG_OR_FIXED
def test_a_response_hook_counts_every_response(
    variant: str, forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """The hook's count equals the number of calls."""
    forge_api_server.add("/ping", Reply(json={"ok": True}))
    hook = CountingHook(locked=variant == "fixed")
    config = (
        HttpClientConfigBuilder()
        .with_base_url(forge_api_server.url)
        .with_response_hook(hook)
        .build()
    )
    with HttpClient(config) as client:
        report = forge_stress(lambda: client.get("/ping").status_code)
    report.assert_no_errors()
    report.assert_count(hook.stats["/ping"], name="stats['/ping']")


class MeteredClient:
    """18. A wrapper counting its own calls with ``self.calls += 1``."""

    def __init__(self, *, locked: bool) -> None:
        self.calls = 0
        self.lock = threading.Lock() if locked else None

    def call(self) -> None:
        if self.lock is None:
            self.calls += 1
        else:
            with self.lock:
                self.calls += 1


@BUG_OR_FIXED
def test_a_call_counter_counts_every_call(variant: str, forge_stress: StressRunner) -> None:
    """``self.calls`` equals the number of calls."""
    client = MeteredClient(locked=variant == "fixed")
    report = forge_stress(client.call)
    report.assert_count(client.calls, name="client.calls")


# -- 9, 12, 13: sessions ----------------------------------------------------------------------


class ClassLocalClient:
    """9. ``threading.local()`` as a class attribute: every instance shares the sessions."""

    _shared_local = threading.local()

    def __init__(self, *, fixed: bool) -> None:
        self._local = threading.local() if fixed else self._shared_local

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


@BUG_OR_FIXED
def test_two_clients_never_share_a_session(variant: str, forge_stress: StressRunner) -> None:
    """No session is shared by two threads or by two clients."""
    billing, payments = (
        ClassLocalClient(fixed=variant == "fixed"),
        ClassLocalClient(fixed=variant == "fixed"),
    )
    report = forge_stress(lambda: (billing.session, payments.session), sessions=[billing, payments])
    report.assert_per_thread_sessions()


class SessionClient:
    """12 and 13: a session per call, or one for everybody; fixed: one per thread."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._shared = requests.Session()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if self.kind == "per_call":
            return requests.Session()
        if self.kind == "shared":
            return self._shared
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def get(self, url: str) -> int:
        return self.session.get(url, timeout=10).status_code


@pytest.mark.parametrize("kind", ["per_call", "shared"])
@BUG_OR_FIXED
def test_each_thread_keeps_one_session(
    kind: str, variant: str, forge_api_server: ApiServer, forge_stress: StressRunner
) -> None:
    """Each thread uses one session of its own throughout."""
    forge_api_server.add("/ping", Reply(json={"ok": True}))
    client = SessionClient(kind if variant == "bug" else "per_thread")
    url = forge_api_server.url_for("/ping")
    report = forge_stress(lambda: client.get(url), sessions=client)
    report.assert_no_errors()
    report.assert_per_thread_sessions(client)


# -- 10: no expiry leeway ---------------------------------------------------------------------


class ExpiringCache:
    """10. Serves the token until its very last second (bug) or renews it 60 s early."""

    def __init__(self, provider: FakeTokenProvider, leeway: float) -> None:
        self.provider = provider
        self.leeway = timedelta(seconds=leeway)
        self.token: TokenData | None = None
        self.lock = threading.Lock()

    def _fresh(self) -> bool:
        token = self.token
        return (
            token is not None
            and token.expires_at is not None
            and token.expires_at - self.leeway > get_default_clock().now()
        )

    def get(self) -> TokenData:
        if not self._fresh():
            with self.lock:
                if not self._fresh():
                    self.token = self.provider.fetch_token()
        assert self.token is not None
        return self.token


@BUG_OR_FIXED
def test_no_token_is_handed_out_about_to_expire(
    variant: str,
    forge_token_provider: FakeTokenProvider,
    forge_clock: FakeClock,
    forge_stress: StressRunner,
) -> None:
    """Ten seconds before expiry the cache renews instead of handing out the old token."""
    cache = ExpiringCache(forge_token_provider, leeway=0 if variant == "bug" else 60)
    cache.get()
    forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME - 10)
    forge_stress(cache.get).assert_fresh_tokens(leeway=30)


# -- 11: every failing thread refreshes on a 401 ----------------------------------------------


class RefreshingCache(Cache):
    """11. On a 401 it refreshes (bug: always; fixed: only if the rejected token is current)."""

    def __init__(self, provider: FakeTokenProvider, *, fixed: bool) -> None:
        super().__init__(provider)
        self.fixed = fixed

    def rejected(self, token: TokenData) -> None:
        with self.lock:
            if not self.fixed or self.token is token:
                self.token = self.provider.fetch_token()


@BUG_OR_FIXED
def test_a_burst_of_401s_refreshes_once(
    variant: str,
    forge_api_server: ApiServer,
    forge_token_provider: FakeTokenProvider,
    forge_stress: StressRunner,
) -> None:
    """The API revokes the first token; all threads get a 401; one refresh follows."""
    cache = RefreshingCache(forge_token_provider, fixed=variant == "fixed")
    revoked = cache.get().access_token

    def api(request: RecordedRequest) -> Reply:
        ok = request.headers.get("Authorization") != f"Bearer {revoked}"
        return Reply(json={"ok": True}) if ok else Reply(status=401)

    forge_api_server.add_handler("/me", api)
    url = forge_api_server.url_for("/me")
    session = threading.local()

    def call() -> int:
        if not hasattr(session, "s"):
            session.s = requests.Session()
        token = cache.get()
        status = int(
            session.s.get(
                url, headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10
            ).status_code
        )
        if status == 401:
            cache.rejected(token)
        return status

    report = forge_stress(call)
    report.assert_no_errors()
    report.assert_single_fetch(forge_token_provider)


# -- 14: two services, one cache key ----------------------------------------------------------


class KeyedCache:
    """14. Tokens cached under a constant key (bug) or under the provider's name (fixed)."""

    def __init__(self, storage: InMemoryTokenStorage, *, fixed: bool) -> None:
        self.storage = storage
        self.lock = threading.Lock()
        self.fixed = fixed

    def get(self, provider: FakeTokenProvider) -> TokenData:
        key = provider.service_name if self.fixed else "token"
        with self.lock:
            token = self.storage.get(key)
            if token is None:
                token = provider.fetch_token()
                self.storage.set(key, token)
        return token


@BUG_OR_FIXED
def test_each_service_gets_its_own_token(
    variant: str,
    forge_token_provider_factory: FakeTokenProviderFactory,
    forge_stress: StressRunner,
) -> None:
    """The payments token comes from the payments provider, fetched once."""
    billing = forge_token_provider_factory(service_name="billing")
    payments = forge_token_provider_factory(service_name="payments")
    cache = KeyedCache(InMemoryTokenStorage(), fixed=variant == "fixed")
    cache.get(billing)
    report = forge_stress(lambda: cache.get(payments))
    report.assert_single_fetch(payments)
