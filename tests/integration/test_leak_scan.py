"""The leak scan: a realistic run with DEBUG on for every logger, then every place a secret
could surface (log records, exception text and tracebacks, reprs, ``to_curl()``, cassette
files) is searched for every secret the run used: 0 hits.

The secrets are distinctive canaries (``CANARY-...``) plus the tokens the loopback servers
issued, each also in its URL-encoded and Basic (base64) spellings. A failure lists every hit
with where it was found and the text around it, the secret shown as ``<<its name>>``.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from requestforge import (
    ApiKeyAuthHook,
    BearerTokenAuthHook,
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    CompositeAuthHook,
    HeaderTokenFetcher,
    HttpClient,
    HttpClientConfigBuilder,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    NoRetryStrategy,
    PasswordGrantTokenProvider,
    TokenFetchPipeline,
    TokenManager,
)
from requestforge_testing import ApiServer, ForgeCassette, OAuthServer, RecordedRequest, Reply

CLIENT_ID = "leak-scan-client"
USERNAME = "leak-scan-user"
#: Every secret the run hands to the library, by the name a hit is reported under.
CANARIES = {
    "client_secret": "CANARY-client-secret-5e1d07",
    "wrong_client_secret": "CANARY-wrong-client-secret-0a9f",
    "password": "CANARY-user-password-8c2b41",
    "apim_header_key": "CANARY-apim-header-key-3f7a22",
    "subscription_query_key": "CANARY-subscription-query-9d4e",
    "partner_header_key": "CANARY-partner-key-6b0c13",
    "stale_bearer": "CANARY-stale-bearer-7e21aa",
    "device_token": "CANARY-device-token-41f0",
    "app_token": "CANARY-app-token-c3d9",
    "user_token": "CANARY-user-token-2b77",
    "user_refresh": "CANARY-user-refresh-90ee",
    "default_bearer": "CANARY-default-bearer-55aa",
    "default_client_secret_header": "CANARY-x-client-secret-d00d",
    "base_url_password": "CANARY-base-url-password-11c3",
    "base_url_api_key": "CANARY-base-url-api-key-7f70",
    "crlf_header_token": "CANARY-crlf-header-token-e4e4",
    "refused_access_token": "CANARY-refused-access-token-3131",
    "refused_password": "CANARY-refused-password-2828",
    "timeout_query_key": "CANARY-timeout-query-key-6060",
    "poisoned_access_token": "CANARY-poisoned-access-token-4747",
    "overflow_access_token": "CANARY-overflow-access-token-5959",
    "redirect_code": "CANARY-redirect-code-7171",
    "non_latin1_bearer": "CANARY-non-latin1-bearer-\u2026-8181",
}
#: Characters of context shown around a hit.
CONTEXT = 60


@dataclass
class Evidence:
    """Every text the run produced that a user could see, labelled by where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def obj(self, where: str, value: object) -> None:
        """The object's repr and str, and a request's ``to_curl()``/``to_dict()``."""
        self.add(f"repr({where})", repr(value))
        self.add(f"str({where})", str(value))
        for method in ("to_curl", "to_dict"):
            render = getattr(value, method, None)
            if callable(render):
                self.add(f"{where}.{method}()", render())
        request = getattr(value, "request", None)
        if request is not None and request is not value and hasattr(request, "to_curl"):
            self.obj(f"{where}.request", request)

    def expect_error(self, where: str, call: Callable[[], object]) -> None:
        """Run ``call``, which must fail, and keep its text, traceback and context."""
        try:
            result = call()
        except Exception as exc:
            self.errors.append((where, exc))
            self.add(f"str({where} error)", str(exc))
            self.add(f"repr({where} error)", repr(exc))
            self.add(f"traceback({where})", "".join(traceback.format_exception(exc)))
            logging.getLogger("leak_scan.app").exception("%s failed", where)
            for attribute in ("request", "response"):
                context = getattr(exc, attribute, None)
                if context is not None:
                    self.obj(f"{where} error.{attribute}", context)
        else:
            self.succeeded.append(where)
            self.obj(f"{where} (expected to fail)", result)


class _Capture(logging.Handler):
    """Formats every record as a real handler would, exception text included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def debug_everywhere() -> Iterator[_Capture]:
    """Root and every existing logger at DEBUG with a capturing handler on the root;
    loggers created meanwhile (vcrpy's) inherit DEBUG. Restored afterwards."""
    root = logging.getLogger()
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in [root, *loggers]]
    capture = _Capture()
    root.addHandler(capture)
    for logger, _, _ in saved:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def logging_builder() -> HttpClientConfigBuilder:
    """A builder with every logging hook, no retries and a short timeout."""
    return (
        HttpClientConfigBuilder()
        .with_timeout(5)
        .with_retry_strategy(NoRetryStrategy())
        .with_request_hook(LoggingRequestHook())
        .with_response_hook(LoggingResponseHook(level=logging.DEBUG))
        .with_error_hook(LoggingErrorHook())
    )


def key_hooks() -> CompositeAuthHook:
    """The three custom-named API keys of the issue: two headers and a query parameter."""
    return CompositeAuthHook(
        ApiKeyAuthHook(CANARIES["apim_header_key"], header_name="Ocp-Apim-Subscription-Key"),
        ApiKeyAuthHook(CANARIES["subscription_query_key"], query_param="subscription-key"),
        ApiKeyAuthHook(CANARIES["partner_header_key"], header_name="X-Partner-Key"),
    )


# -- the run, part by part --------------------------------------------------------------------


def oauth_flows(server: OAuthServer, seen: Evidence) -> list[str]:
    """Client credentials, password and refresh grants, a revoked token renewed on 401, a
    rejected client, an API 401 and a token endpoint echoing the refresh token it refused.
    Returns the refresh tokens issued (the server lists only access tokens)."""
    cc = ClientCredentialsTokenProvider(
        server.token_url, CLIENT_ID, CANARIES["client_secret"], client_auth="body", max_retries=0
    )
    manager = TokenManager(cc)
    config = logging_builder().with_base_url(server.api_url).with_token_auth(manager).build()
    with HttpClient(config) as api:
        seen.obj("client-credentials API response", api.get("/whoami"))
        server.revoke(manager.get_token().access_token)
        seen.obj("API response after a 401 and a refresh", api.get("/whoami"))
        seen.obj("token manager", manager)
        seen.obj("TokenAuthHook client", api)
        seen.obj("TokenAuthHook config", config)
    seen.obj("client credentials provider", cc)
    cc.close()

    pw = PasswordGrantTokenProvider(
        server.token_url,
        CLIENT_ID,
        CANARIES["client_secret"],
        USERNAME,
        CANARIES["password"],
        max_retries=0,
    )
    first = pw.fetch_token()
    second = pw.refresh_token(first)
    seen.obj("password grant token", first)
    seen.obj("refresh grant token", second)
    seen.obj("password provider", pw)
    refresh = [t for t in (first.refresh_token, second.refresh_token) if t is not None]
    server.reply_next(
        Reply(
            400,
            json={
                "error": "invalid_grant",
                "error_description": f"refresh token {second.refresh_token} is unknown",
            },
        )
    )
    seen.expect_error("refresh with an echoed refresh token", lambda: pw.refresh_token(second))
    pw.close()
    bad_token_responses(server, seen)

    wrong = ClientCredentialsTokenProvider(
        server.token_url, CLIENT_ID, CANARIES["wrong_client_secret"], max_retries=0
    )
    seen.expect_error("token request with a wrong client secret", wrong.fetch_token)
    seen.obj("rejected provider", wrong)
    wrong.close()

    bearer = (
        logging_builder().with_base_url(server.api_url).with_bearer_token(CANARIES["stale_bearer"])
    )
    with HttpClient(bearer.build()) as stale:
        seen.expect_error(
            "API call with a stale bearer", lambda: stale.get("/whoami").raise_for_status()
        )
    for record in server.token_requests:
        seen.obj("recorded token request", record)
    seen.obj("oauth server", server)
    return refresh


def bad_token_responses(server: OAuthServer, seen: Evidence) -> None:
    """Token responses the provider must refuse without quoting them: a CR/LF in
    ``token_type``, an ``expires_in`` of 1e20, and a redirect to another origin."""
    provider = ClientCredentialsTokenProvider(
        server.token_url, CLIENT_ID, CANARIES["client_secret"], max_retries=0
    )
    token = {"access_token": CANARIES["poisoned_access_token"], "expires_in": 3600}
    server.reply_next(Reply(json={**token, "token_type": "Bearer\r\nX-Injected: 1"}))
    seen.expect_error("token response with CR/LF in token_type", provider.fetch_token)
    token = {"access_token": CANARIES["overflow_access_token"], "token_type": "Bearer"}
    server.reply_next(Reply(json={**token, "expires_in": 1e20}))
    seen.expect_error("token response with expires_in 1e20", provider.fetch_token)
    elsewhere = f"http://127.0.0.1:{closed_port()}/steal?code={CANARIES['redirect_code']}"
    server.reply_next(Reply(307, headers={"Location": elsewhere}))
    seen.expect_error("token endpoint redirecting elsewhere", provider.fetch_token)
    provider.close()


def api_key_flows(server: ApiServer, seen: Evidence) -> None:
    """Custom-named keys in headers and the query: a success, a 401, a read timeout, a
    refused connection with secrets in its query, and bad inputs."""
    server.add("/orders", Reply(json={"orders": []}))
    server.add("/denied", Reply(401, json={"error": "invalid subscription key"}))
    release = threading.Event()

    def held(request: RecordedRequest) -> Reply:
        release.wait(5)  # until the client has timed out
        return Reply(json={"late": True})

    server.add_handler("/slow", held)
    config = logging_builder().with_base_url(server.url).with_auth_hook(key_hooks()).build()
    with HttpClient(config) as api:
        seen.obj("API-key response", api.get("/orders", params={"page": "1"}))
        seen.expect_error(
            "API-key call answered 401", lambda: api.get("/denied").raise_for_status()
        )
        try:
            seen.expect_error(
                "API-key call timing out",
                lambda: api.get(
                    "/slow", params={"key": CANARIES["timeout_query_key"]}, timeout=0.2
                ),
            )
        finally:
            release.set()
        seen.expect_error(
            "header value with CR/LF",
            lambda: api.get(
                "/orders",
                headers={"Authorization": f"Bearer {CANARIES['crlf_header_token']}\r\nX: 1"},
            ),
        )
        seen.obj("API-key client", api)
        seen.obj("API-key config", config)
        seen.obj("API-key hooks", key_hooks())
    refused_url = (
        f"http://127.0.0.1:{closed_port()}/api?access_token={CANARIES['refused_access_token']}"
        f"&password={CANARIES['refused_password']}"
    )
    with HttpClient(logging_builder().build()) as plain:
        seen.expect_error("connection refused", lambda: plain.get(refused_url))


def config_flows(seen: Evidence) -> None:
    """Secret default headers and base URLs in reprs and configuration errors."""
    builder = (
        HttpClientConfigBuilder()
        .with_bearer_token(CANARIES["default_bearer"])
        .with_header("X-Client-Secret", CANARIES["default_client_secret_header"])
        .with_base_url(f"https://scan:{CANARIES['base_url_password']}@api.example.invalid/v1")
    )
    seen.obj("builder with secret defaults", builder)
    config = builder.build()
    seen.obj("config with secret defaults", config)
    with HttpClient(config) as client:
        seen.obj("client with secret defaults", client)
    seen.expect_error(
        "base URL with an api_key query",
        lambda: (
            HttpClientConfigBuilder()
            .with_base_url(f"https://api.example.invalid/?api_key={CANARIES['base_url_api_key']}")
            .build()
        ),
    )
    seen.obj("bearer hook", BearerTokenAuthHook(CANARIES["default_bearer"]))
    seen.expect_error(
        "bearer token outside latin-1",
        lambda: HttpClientConfigBuilder().with_bearer_token(CANARIES["non_latin1_bearer"]).build(),
    )


def pipeline_flow(server: ApiServer, seen: Evidence) -> None:
    """device -> app -> user, each step's request carrying the previous token; then a
    step whose endpoint answers 401 quoting the token it was sent."""
    server.add("/device", Reply(204, headers={"X-Auth-Token": CANARIES["device_token"]}))
    server.add("/app", Reply(json={"data": {"auth": {"token": CANARIES["app_token"]}}}))
    server.add(
        "/user",
        Reply(
            json={
                "access_token": CANARIES["user_token"],
                "expires_in": 900,
                "refresh_token": CANARIES["user_refresh"],
            }
        ),
    )
    server.add(
        "/user-broken",
        Reply(401, json={"error": "invalid_token", "seen": CANARIES["app_token"]}),
    )
    with HttpClient(logging_builder().with_base_url(server.url).build()) as client:

        def steps(user_path: str) -> list[Any]:
            return [
                HeaderTokenFetcher("device", "/device", client=client),
                BodyTokenFetcher(
                    "app",
                    "/app",
                    depends_on=("device",),
                    token_path="data.auth.token",
                    client=client,
                ),
                BodyTokenFetcher(
                    "user",
                    user_path,
                    depends_on=("device", "app"),
                    refresh_token_path="refresh_token",
                    client=client,
                    headers=lambda ctx: {"X-Device": ctx.get_token("device").access_token},
                    json={"username": USERNAME},
                ),
            ]

        pipeline = TokenFetchPipeline(steps("/user"))
        seen.obj("pipeline token", pipeline.execute())
        seen.obj("pipeline", pipeline)
        broken = TokenFetchPipeline(steps("/user-broken"))
        seen.expect_error("pipeline step answered 401", broken.execute)
        seen.obj("broken pipeline", broken)


def recorded_cassette(path: Path, api: ApiServer, oauth: OAuthServer, seen: Evidence) -> None:
    """Record the custom-named keys and a client-credentials token into a cassette."""
    cassette = ForgeCassette(path, record_mode="once")
    with cassette:
        config = logging_builder().with_base_url(api.url).with_auth_hook(key_hooks()).build()
        with HttpClient(config) as client:
            client.get("/orders", params={"page": "2"})
        provider = ClientCredentialsTokenProvider(
            oauth.token_url, CLIENT_ID, CANARIES["client_secret"], max_retries=0
        )
        token = provider.fetch_token()
        with HttpClient(logging_builder().build()) as client:
            client.get(
                oauth.api_url + "/whoami",
                headers={"Authorization": token.authorization_header},
            )
        provider.close()
    seen.obj("cassette", cassette)


# -- the scan ----------------------------------------------------------------------------------


def spellings(secrets: dict[str, str]) -> dict[str, str]:
    """Each secret as written in text, URLs and forms, JSON, and HTTP Basic credentials."""
    found: dict[str, str] = {}
    for label, secret in secrets.items():
        for spelled in (
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
        ):
            found.setdefault(spelled, label)
    for user, label in ((CLIENT_ID, "client_secret"), (CLIENT_ID, "wrong_client_secret")):
        basic = base64.b64encode(f"{user}:{secrets[label]}".encode()).decode("ascii")
        found.setdefault(basic, f"{label} (Basic)")
    return found


def hits(texts: list[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    """One line per place a secret shows, with the text around it."""
    found = []
    spelled = spellings(secrets)
    for where, text in texts:
        for secret, label in spelled.items():
            start = text.find(secret)
            if start < 0:
                continue
            count = text.count(secret)
            around = text[max(0, start - CONTEXT) : start + len(secret) + CONTEXT]
            for other, other_label in spelled.items():
                around = around.replace(other, f"<<{other_label}>>")
            around = around.replace("\n", "\\n")
            found.append(f"{where}: {label} x{count}: ...{around}...")
    return found


def test_no_secret_surfaces_anywhere(forge_api_server: ApiServer, tmp_path: Path) -> None:
    """Logs, exception texts and tracebacks, reprs, to_curl() and cassettes of a realistic
    run with DEBUG on everywhere hold none of the secrets it used."""
    seen = Evidence()
    secrets = dict(CANARIES)
    with (
        OAuthServer(
            clients={CLIENT_ID: CANARIES["client_secret"]}, users={USERNAME: CANARIES["password"]}
        ) as oauth,
        debug_everywhere() as logs,
    ):
        refresh = oauth_flows(oauth, seen)
        api_key_flows(forge_api_server, seen)
        config_flows(seen)
        pipeline_flow(forge_api_server, seen)
        recorded_cassette(tmp_path / "cassettes" / "leak.yaml", forge_api_server, oauth, seen)
        issued = oauth.issued_tokens
        for request in [*forge_api_server.requests, *oauth.api_requests]:
            seen.obj("request the server recorded", request)
    secrets.update({f"issued access token {n}": t for n, t in enumerate(issued, 1)})
    secrets.update({f"issued refresh token {n}": t for n, t in enumerate(refresh, 1)})
    texts = [(f"log record #{n}", line) for n, line in enumerate(logs.lines, 1)]
    texts += seen.texts
    cassettes = sorted(tmp_path.rglob("*.yaml"))
    texts += [(f"cassette {p.name}", p.read_text(encoding="utf-8")) for p in cassettes]
    # The scan must have seen what it claims to scan.
    assert cassettes, "the cassette was not written"
    assert len(logs.lines) > 20, "DEBUG logging captured almost nothing"
    assert not seen.succeeded, f"these calls were meant to fail: {seen.succeeded}"
    found = hits(texts, secrets)
    assert not found, f"{len(found)} place(s) show a secret:\n" + "\n".join(found)
