"""``TokenExchangeFetcher``: a pipeline step that exchanges an earlier step's token (RFC 8693).

The natural second step of a service-mesh pipeline: the first step's token is the subject
(and optionally another's the actor) of a token exchange at an OAuth token endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from requestforge._client import HttpClient
from requestforge._clock import Clock
from requestforge._config import HttpClientConfig
from requestforge._exceptions import (
    ResponseDecodeError,
    TokenResponseError,
)
from requestforge._redact import redact_url
from requestforge._response import HttpResponse
from requestforge._validate import (
    text,
)
from requestforge.tokens._client_auth import ClientAuthMethod
from requestforge.tokens._data import TokenData
from requestforge.tokens._dpop import DPoPKey
from requestforge.tokens._fetchers import HeadersArg, _HttpTokenFetcher
from requestforge.tokens._grants import ExchangeFields, TokenExchangeTokenProvider
from requestforge.tokens._oauth2 import _valid_scope
from requestforge.tokens._pipeline import FetchContext

__all__ = ["TokenExchangeFetcher"]


class TokenExchangeFetcher(_HttpTokenFetcher):
    """A step that exchanges an earlier step's token for its own (RFC 8693): the token of
    step ``subject_from`` (and of ``actor_from``, if given) is posted as ``subject_token``
    (``actor_token``) to the token endpoint ``url``, and the answer is an RFC 6749 token
    response.

    The client authenticates with ``client_id`` and ``client_auth`` (none if not given);
    ``resource`` may be several URIs; ``audience``, ``requested_token_type`` and ``scope``
    are sent when given. ``depends_on`` always includes ``subject_from`` and ``actor_from``.
    """

    #: RFC 8693's grant type.
    GRANT_TYPE: Final = TokenExchangeTokenProvider.grant_type

    def __init__(
        self,
        name: str,
        url: str,
        *,
        subject_from: str,
        subject_token_type: str = TokenExchangeTokenProvider.ACCESS_TOKEN_TYPE,
        actor_from: str | None = None,
        actor_token_type: str | None = None,
        resource: str | Iterable[str] | None = None,
        audience: str | None = None,
        requested_token_type: str | None = None,
        scope: str | Iterable[str] | None = None,
        client_id: str | None = None,
        client_auth: ClientAuthMethod | None = None,
        depends_on: Iterable[str] = (),
        ttl: float | None = None,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        headers: HeadersArg = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        text(f"subject_from of step {name!r}", subject_from)
        if actor_from is not None:
            text(f"actor_from of step {name!r}", actor_from)
        self._subject_from = subject_from
        self._actor_from = actor_from
        self._exchange = ExchangeFields(
            subject_token_type=subject_token_type,
            actor_token_type=actor_token_type,
            has_actor=actor_from is not None,
            resource=resource,
            requested_token_type=requested_token_type,
        )
        self._fixed: dict[str, str] = {"grant_type": self.GRANT_TYPE}
        if audience is not None:
            self._fixed["audience"] = text("audience", audience)
        exchange_scope = _valid_scope(scope)
        if exchange_scope is not None:
            self._fixed["scope"] = exchange_scope
        needed = [subject_from, *([actor_from] if actor_from is not None else [])]
        super().__init__(
            name,
            url,
            method="POST",
            depends_on=dict.fromkeys([*depends_on, *needed]),
            ttl=ttl,
            client=client,
            config=config,
            headers=headers,
            data=self._form,
            auth_from=None,
            clock=clock,
            client_id=client_id,
            client_auth=client_auth,
            dpop=dpop,
        )
        self._auth_from = None  # the subject token goes in the form, never in a header

    def _form(self, context: FetchContext) -> dict[str, str | list[str]]:
        subject = context.get_token(self._subject_from).access_token
        actor = None
        if self._actor_from is not None:
            actor = context.get_token(self._actor_from).access_token
        return {**self._fixed, **self._exchange.form(subject, actor)}

    def _extract(self, response: HttpResponse, clock: Clock) -> TokenData:
        try:
            body = response.json()
        except ResponseDecodeError as exc:
            raise TokenResponseError(
                f"response from {redact_url(self._url)} is not JSON", response=response
            ) from exc
        try:
            return TokenData.from_response(body, clock=clock)
        except TokenResponseError as exc:
            raise TokenResponseError(
                f"response from {redact_url(self._url)}: {exc}", response=response
            ) from exc
