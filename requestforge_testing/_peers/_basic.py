"""Three ways to put a client id and secret into HTTP Basic, and what a token endpoint says.

RFC 6749 section 2.3.1 wants both form-urlencoded before RFC 7617 Basic; servers decode
them differently (authlib with ``unquote``, DOT with ``unquote_plus``), and plain
``requests`` (``auth=(id, secret)``) encodes neither, in Latin-1. The interop tests measure
each way against each peer with secrets holding a space, ``+``, ``%``, ``:`` and non-ASCII.
"""

from __future__ import annotations

import base64
from typing import Final
from urllib.parse import quote, quote_plus

import requests

__all__ = ["BASIC_ENCODINGS", "SPECIAL_SECRETS", "basic_outcome"]

#: ``form``: RFC 6749's form-encoding (a space becomes ``+``), the library's way today;
#: ``requests``: ``requests``' own ``auth=(id, secret)``, nothing encoded, Latin-1 bytes;
#: ``quote``: percent-encoding of everything but unreserved characters, UTF-8.
BASIC_ENCODINGS: Final = ("form", "requests", "quote")

#: A secret per troublesome character, by a short name.
SPECIAL_SECRETS: Final = {
    "space": "s3cret with space",
    "plus": "s3cret+plus",
    "percent": "s3cret%cent",
    "percent-hex": "s3cret%41",
    "colon": "s3cret:colon",
    "latin-1": "s3cr\u00e9t",
    "non-latin-1": "s3cret\u20ac\u2713",
}


def _header(client_id: str, client_secret: str, encoding: str) -> str:
    encode = quote_plus if encoding == "form" else (lambda text: quote(text, safe=""))
    pair = f"{encode(client_id)}:{encode(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def basic_outcome(token_url: str, client_id: str, client_secret: str, encoding: str) -> str:
    """``"200"``, ``"401 invalid_client"`` (status and OAuth error), ``"500"``, or
    ``"UnicodeEncodeError"`` when ``requests`` cannot encode the secret at all: the answer
    to a ``client_credentials`` request authenticated with Basic encoded as ``encoding``."""
    form = {"grant_type": "client_credentials"}
    try:
        if encoding == "requests":
            response = requests.post(
                token_url, data=form, auth=(client_id, client_secret), timeout=30
            )
        else:
            headers = {"Authorization": _header(client_id, client_secret, encoding)}
            response = requests.post(token_url, data=form, headers=headers, timeout=30)
    except UnicodeEncodeError:
        return "UnicodeEncodeError"
    if response.ok:
        return str(response.status_code)
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    error = response.json().get("error") if is_json else None
    return f"{response.status_code} {error}" if error else str(response.status_code)
