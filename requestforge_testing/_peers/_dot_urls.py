"""The URLs of the DOT child process (its ``ROOT_URLCONF``): DOT's endpoints and one API view.

Imported by Django inside the child started by :class:`DotServer`, after ``settings`` are
configured there; never in the test process.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.urls import include, path, re_path  # type: ignore[import-untyped]
from oauth2_provider.urls import base_urlpatterns  # type: ignore[import-untyped]
from oauth2_provider.views import ProtectedResourceView  # type: ignore[import-untyped]

__all__ = ["urlpatterns"]


class ApiView(ProtectedResourceView):  # type: ignore[misc]
    """DOT's default protected view: a bare 403 for a missing, expired or revoked token."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        owner = getattr(request, "resource_owner", None)
        return JsonResponse(
            {"ok": True, "path": request.path, "username": getattr(owner, "username", None)}
        )

    post = get


urlpatterns = [
    path("o/", include((base_urlpatterns, "oauth2_provider"))),
    re_path(r"^api(?:/.*)?$", ApiView.as_view()),
]
