"""The committed contract cassettes, checked the same way for every contract module: one file
per contract test (CI replays, never records, so a missing file fails and a stale one lies),
no secret of the module's in any file, and each readable by stock vcrpy on the normalised
loopback host."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import vcr
from vcr.serializers import yamlserializer

from tests.contract import test_auth_contracts, test_dpop_contracts, test_jwt_contracts

MODULES = [test_auth_contracts, test_jwt_contracts, test_dpop_contracts]
FILES = [(module, name) for module in MODULES for name in module.CONTRACTS]
IDS = [f"{module.__name__.rsplit('.', 1)[1]}-{name}" for module, name in FILES]


def _recorded_tests(module: ModuleType) -> list[str]:
    """The module's tests that run under a cassette (marked ``forge_cassette``)."""
    return sorted(
        name
        for name, test in vars(module).items()
        if name.startswith("test_")
        and any(mark.name == "forge_cassette" for mark in getattr(test, "pytestmark", []))
    )


def _path(module: ModuleType, name: str) -> Path:
    cassettes: Path = module.CASSETTES
    return cassettes / f"{name}.yaml"


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".")[-1])
def test_every_contract_has_exactly_one_committed_cassette(module: ModuleType) -> None:
    """Each contract test of the module has its file, listed in CONTRACTS, and no other
    file lies in its folder."""
    files = sorted(path.stem for path in module.CASSETTES.glob("*"))
    assert files == sorted(module.CONTRACTS) == _recorded_tests(module)


@pytest.mark.parametrize(("module", "name"), FILES, ids=IDS)
def test_cassette_holds_no_secret(module: ModuleType, name: str) -> None:
    """None of the module's secrets (credentials, issued tokens, signed JWTs, keys, the
    loopback address) is in the file, and something was scrubbed there."""
    text = _path(module, name).read_text(encoding="utf-8")
    assert [secret for secret in module.SECRETS if secret in text] == []
    assert "forge-scrubbed-1" in text


@pytest.mark.parametrize(("module", "name"), FILES, ids=IDS)
def test_stock_vcrpy_reads_the_cassette(module: ModuleType, name: str) -> None:
    """vcrpy's own loader (through VCR().use_cassette) reads every interaction of the file,
    all on the normalised loopback host."""
    path = _path(module, name)
    raw = yamlserializer.deserialize(path.read_text(encoding="utf-8"))
    with vcr.VCR(record_mode="none").use_cassette(str(path)) as cassette:
        assert len(cassette) == len(raw["interactions"]) > 0
        hosts = {request.host for request in cassette.requests}
    assert hosts == {"loopback-1.invalid"}
