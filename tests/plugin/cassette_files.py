"""Reading cassette files back, for the tests of ForgeCassette and of its pytest fixture."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from vcr.serializers import yamlserializer


def load(path: Path) -> dict[str, object]:
    """The cassette file as YAML data."""
    data = yamlserializer.deserialize(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interactions(path: Path) -> list[dict[str, dict[str, object]]]:
    """The recorded interactions of a cassette file."""
    found = load(path)["interactions"]
    assert isinstance(found, list)
    return found


def sent_headers(path: Path) -> list[dict[str, list[str]]]:
    """The request headers of each recorded interaction of a cassette file."""
    return [cast("dict[str, list[str]]", i["request"]["headers"]) for i in interactions(path)]
