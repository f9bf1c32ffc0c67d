"""requestforge: a thread-safe HTTP client for OAuth-protected APIs.

The public API is exactly what ``__all__`` lists; every implementation module is private.
"""

from requestforge._auth import (
    ApiKeyAuthHook,
    AuthHookInterface,
    BasicAuthHook,
    BearerTokenAuthHook,
    CompositeAuthHook,
    TokenAuthHook,
)
from requestforge._builder import HttpClientConfigBuilder
from requestforge._client import HttpClient
from requestforge._clock import Clock, SystemClock, get_default_clock, set_default_clock
from requestforge._config import HttpClientConfig
from requestforge._exceptions import (
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    HookError,
    HttpStatusError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidURLError,
    MaxRetryException,
    PipelineStepError,
    ReadError,
    ReadTimeoutError,
    RequestError,
    RequestForgeError,
    RequestTimeoutError,
    ResponseDecodeError,
    StreamConsumedError,
    TokenEndpointError,
    TokenError,
    TokenResponseError,
    TokenStorageError,
    TooManyRedirectsError,
    TransportError,
)
from requestforge._hooks import (
    AuthorizationHook,
    CorrelationIdHook,
    ErrorHookInterface,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    RateLimitInfo,
    RateLimitResponseHook,
    RequestHookInterface,
    ResponseHookInterface,
)
from requestforge._models import ExtensionMethod, HttpMethod, HttpRequest, RequestContext
from requestforge._pool import JobResult, Pool, ThreadException, ThreadResponse, map
from requestforge._response import HttpResponse
from requestforge._retry import (
    DEFAULT_ALLOWED_METHODS,
    RETRY_AFTER_STATUSES,
    RETRYABLE_STATUSES,
    BaseRetryStrategy,
    CircuitBreakerRetryStrategy,
    CircuitState,
    ExponentialBackoffRetryStrategy,
    NoRetryStrategy,
    RetryStrategyInterface,
    SimpleRetryStrategy,
    parse_retry_after,
)
from requestforge._scrub import RedactedCause, RedactingFilter
from requestforge._secrets import Secrets, declare_secrets
from requestforge._verbs import RequestOptions
from requestforge.tokens._client_auth import (
    ClientAuthMethod,
    ClientSecretBasic,
    ClientSecretJwt,
    ClientSecretPost,
    NoClientAuth,
    PrivateKeyJwt,
    TlsClientAuth,
)
from requestforge.tokens._data import TokenData
from requestforge.tokens._discovery import AuthorizationServer, ServerMetadata, discover
from requestforge.tokens._dpop import DPoPKey
from requestforge.tokens._exchange_step import TokenExchangeFetcher
from requestforge.tokens._fetchers import BodyTokenFetcher, HeaderTokenFetcher
from requestforge.tokens._grants import (
    CustomGrantTokenProvider,
    JwtBearerTokenProvider,
    TokenExchangeTokenProvider,
)
from requestforge.tokens._manager import TokenManager
from requestforge.tokens._oauth2 import ClientCredentialsTokenProvider, PasswordGrantTokenProvider
from requestforge.tokens._pipeline import (
    FetchContext,
    PipelineTokenProvider,
    TokenFetcherInterface,
    TokenFetchPipeline,
)
from requestforge.tokens._providers import TokenProviderInterface
from requestforge.tokens._revocation import Introspection
from requestforge.tokens.storage._django import DjangoCacheTokenStorage
from requestforge.tokens.storage._interface import TokenStorageInterface
from requestforge.tokens.storage._memory import InMemoryTokenStorage
from requestforge.tokens.storage._mixins import PerKeyLockMixin, SerializingMixin
from requestforge.tokens.storage._redis import RedisTokenStorage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ALLOWED_METHODS",
    "RETRYABLE_STATUSES",
    "RETRY_AFTER_STATUSES",
    "ApiKeyAuthHook",
    "AuthHookInterface",
    "AuthorizationHook",
    "AuthorizationServer",
    "BaseRetryStrategy",
    "BasicAuthHook",
    "BearerTokenAuthHook",
    "BodyTokenFetcher",
    "CircuitBreakerRetryStrategy",
    "CircuitOpenError",
    "CircuitState",
    "ClientAuthMethod",
    "ClientClosedError",
    "ClientCredentialsTokenProvider",
    "ClientSecretBasic",
    "ClientSecretJwt",
    "ClientSecretPost",
    "Clock",
    "CompositeAuthHook",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "CorrelationIdHook",
    "CustomGrantTokenProvider",
    "DPoPKey",
    "DjangoCacheTokenStorage",
    "ErrorHookInterface",
    "ExponentialBackoffRetryStrategy",
    "ExtensionMethod",
    "FetchContext",
    "HeaderTokenFetcher",
    "HookError",
    "HttpClient",
    "HttpClientConfig",
    "HttpClientConfigBuilder",
    "HttpMethod",
    "HttpRequest",
    "HttpResponse",
    "HttpStatusError",
    "InMemoryTokenStorage",
    "InsufficientScopeError",
    "Introspection",
    "InvalidRequestError",
    "InvalidURLError",
    "JobResult",
    "JwtBearerTokenProvider",
    "LoggingErrorHook",
    "LoggingRequestHook",
    "LoggingResponseHook",
    "MaxRetryException",
    "NoClientAuth",
    "NoRetryStrategy",
    "PasswordGrantTokenProvider",
    "PerKeyLockMixin",
    "PipelineStepError",
    "PipelineTokenProvider",
    "Pool",
    "PrivateKeyJwt",
    "RateLimitInfo",
    "RateLimitResponseHook",
    "ReadError",
    "ReadTimeoutError",
    "RedactedCause",
    "RedactingFilter",
    "RedisTokenStorage",
    "RequestContext",
    "RequestError",
    "RequestForgeError",
    "RequestHookInterface",
    "RequestOptions",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "ResponseHookInterface",
    "RetryStrategyInterface",
    "Secrets",
    "SerializingMixin",
    "ServerMetadata",
    "SimpleRetryStrategy",
    "StreamConsumedError",
    "SystemClock",
    "ThreadException",
    "ThreadResponse",
    "TlsClientAuth",
    "TokenAuthHook",
    "TokenData",
    "TokenEndpointError",
    "TokenError",
    "TokenExchangeFetcher",
    "TokenExchangeTokenProvider",
    "TokenFetchPipeline",
    "TokenFetcherInterface",
    "TokenManager",
    "TokenProviderInterface",
    "TokenResponseError",
    "TokenStorageError",
    "TokenStorageInterface",
    "TooManyRedirectsError",
    "TransportError",
    "__version__",
    "declare_secrets",
    "discover",
    "get_default_clock",
    "map",
    "parse_retry_after",
    "set_default_clock",
]
