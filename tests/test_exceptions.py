"""The exception hierarchy: one root, built-in bases where natural, keyword-only context."""

from __future__ import annotations

import inspect

import pytest

import requestforge
from requestforge import (
    ConfigurationError,
    ConnectTimeoutError,
    HookError,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    InvalidURLError,
    MaxRetryException,
    RequestForgeError,
)


def exception_classes() -> list[type[BaseException]]:
    return [
        obj
        for name in requestforge.__all__
        if inspect.isclass(obj := getattr(requestforge, name)) and issubclass(obj, BaseException)
    ]


def test_every_exception_has_the_single_root() -> None:
    """All public exceptions derive from RequestForgeError."""
    assert all(issubclass(cls, RequestForgeError) for cls in exception_classes())


def test_every_exception_is_drawn_in_the_tree() -> None:
    """The module docstring's tree names every exception class."""
    from requestforge import _exceptions

    doc = _exceptions.__doc__ or ""
    assert [c.__name__ for c in exception_classes() if c.__name__ not in doc] == []


def test_context_is_keyword_only() -> None:
    """request= and response= cannot be passed positionally."""
    with pytest.raises(TypeError):
        RequestForgeError("boom", None)  # type: ignore[call-arg]


def test_request_is_taken_from_the_response() -> None:
    """Given only a response, the error's request is the response's request."""
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    response = HttpResponse(503, {}, b"", request.url, request=request)
    error = MaxRetryException("gave up", attempts=3, response=response)
    assert error.request is request
    assert error.response is response
    assert error.attempts == 3


def test_builtin_bases() -> None:
    """ConfigurationError is a ValueError; a connect timeout is a timeout and a connection error."""
    assert issubclass(ConfigurationError, ValueError)
    error = ConnectTimeoutError("slow connect")
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ConnectionError)
    assert str(error) == "slow connect"


def test_argument_errors_are_value_and_type_errors() -> None:
    """ConfigurationError and InvalidRequestError are both ValueError and TypeError, so an
    ``except`` written for the built-in exception Python raised before still catches them."""
    for kind in (ConfigurationError, InvalidRequestError, InvalidURLError):
        assert issubclass(kind, ValueError)
        assert issubclass(kind, TypeError)


def test_hook_error_carries_the_hook_and_method() -> None:
    """HookError keeps the hook object and the name of the method that failed."""
    hook = object()
    error = HookError("boom", hook=hook, method="before_request")
    assert (error.hook, error.method, str(error)) == (hook, "before_request", "boom")
    assert isinstance(error, RequestForgeError)
