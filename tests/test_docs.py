"""The documentation tells the truth: its examples run, and the reference lists every name.

The testing guide's examples are whole test files: each is a ``.. code-block:: python``
whose ``:caption:`` is its file name (``test_retries.py``). They run here with ``pytester``
and ``-p requestforge_testing`` exactly as printed, and so do the user guide's examples
captioned that way (every identity-provider pattern page has one). An example captioned
``test_x.py (fails on purpose)`` must fail, and the ``pytest output`` block after it must
match what pytest prints (numbers aside: thread ids and timings differ per run).

The docs build itself (``sphinx-build -W``) runs in ``.ci/run``, not here: it takes seconds.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

# Imported before pytester takes its snapshot of sys.modules: it drops what an in-process
# run imported, and vcrpy's YAML loader does not survive being imported a second time.
import vcr.cassette
import vcr.serializers.yamlserializer  # noqa: F401

import requestforge
import requestforge_testing
from tests.inner_pytest import run_inner

DOCS = Path(__file__).resolve().parent.parent / "docs"
TESTING_GUIDE = DOCS / "testing"
USER_GUIDE = DOCS / "guide"
#: The user guide pages that show an identity provider's pattern: each carries a test file.
PATTERN_PAGES = (
    "client-auth.rst",
    "discovery.rst",
    "dpop.rst",
    "jwt-bearer.rst",
    "token-exchange.rst",
)
REFERENCE = DOCS / "reference"

# Run the inner pytest like CI runs ours: plugin loaded explicitly, warnings and markers strict.

_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: *(?P<language>\S+) *$")
_OPTION = re.compile(r"^ *:(?P<name>[\w-]+):(?: +(?P<value>.*))? *$")
_EXAMPLE_CAPTION = re.compile(r"^(?P<file>test_\w+\.py)(?P<fails> \(fails on purpose\))?$")
_AUTODOC = re.compile(
    r"^\.\. (?:autoclass|autoexception|autofunction|autodata|py:data|py:function)::"
    r" +(?P<name>[\w.]+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    """One ``code-block`` of a reStructuredText page."""

    page: str
    line: int
    language: str
    options: dict[str, str]
    code: str

    @property
    def caption(self) -> str:
        return self.options.get("caption", "")


def code_blocks(page: Path) -> list[Block]:
    """Every ``.. code-block::`` of ``page``, with its options and dedented body."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if match is None:
            continue
        start, indent = i, len(match["indent"])
        options: dict[str, str] = {}
        while i < len(lines) and (option := _OPTION.match(lines[i])):
            options[option["name"]] = (option["value"] or "").strip()
            i += 1
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
            body.append(lines[i])
            i += 1
        depth = min((_indent(line) for line in body if line.strip()), default=0)
        code = "\n".join(line[depth:] for line in body).strip("\n") + "\n"
        blocks.append(Block(page.name, start, match["language"], options, code))
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def all_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.rst"))


def guide_blocks() -> list[Block]:
    return [block for page in sorted(TESTING_GUIDE.glob("*.rst")) for block in code_blocks(page)]


@dataclass(frozen=True)
class Example:
    """A test file from the testing guide, and the output it must print if it fails."""

    page: str
    file: str
    code: str
    fails: bool
    output: tuple[str, ...]


def guide_examples() -> list[Example]:
    """The testing guide's examples, then the user guide's captioned ones."""
    user_guide = [b for page in sorted(USER_GUIDE.glob("*.rst")) for b in code_blocks(page)]
    return _examples(guide_blocks()) + _examples(user_guide)


def _examples(blocks: list[Block]) -> list[Example]:
    examples = []
    for i, block in enumerate(blocks):
        match = _EXAMPLE_CAPTION.match(block.caption)
        if block.language != "python" or match is None:
            continue
        output: tuple[str, ...] = ()
        if match["fails"]:
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            if after is not None and after.caption == "pytest output":
                output = tuple(after.code.splitlines())
        examples.append(
            Example(block.page, match["file"], block.code, bool(match["fails"]), output)
        )
    return examples


EXAMPLES = guide_examples()


def test_every_python_block_of_the_testing_guide_is_a_test_file() -> None:
    """Each Python example of the testing guide is captioned as a test file, so it runs here."""
    loose = [
        f"{b.page}:{b.line} caption={b.caption!r}"
        for b in guide_blocks()
        if b.language == "python" and not _EXAMPLE_CAPTION.match(b.caption)
    ]
    assert loose == []
    assert len(EXAMPLES) >= 8


def test_each_identity_provider_pattern_page_has_an_example_test() -> None:
    """Every identity-provider pattern page of the user guide carries a test file that runs."""
    assert sorted({e.page for e in EXAMPLES if e.page in PATTERN_PAGES}) == sorted(PATTERN_PAGES)


def test_example_file_names_are_unique() -> None:
    """Two examples never share a file name, so none silently replaces another."""
    names = [example.file for example in EXAMPLES]
    assert sorted(names) == sorted(set(names))


def test_failing_examples_show_their_output() -> None:
    """An example that fails on purpose is followed by the pytest output it produces."""
    assert [e.file for e in EXAMPLES if e.fails and not e.output] == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.file for example in EXAMPLES])
def test_guide_example_runs(
    example: Example, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example test file runs as printed: it passes, or fails with the output shown."""
    # In-process runs share sys.modules: a prefix keeps the example's module name from
    # colliding with one of this suite's test modules (tests/plugin/test_stress.py).
    stem = f"docs_example_{example.file.removesuffix('.py')}"
    path = pytester.makepyfile(**{stem: example.code})
    tests = len(re.findall(r"^def test_", example.code, flags=re.MULTILINE))
    if "forge_cassette" in example.code:
        # As its page describes: outside CI the first run records, then CI replays it.
        monkeypatch.delenv("CI", raising=False)
        recording = run_inner(pytester, monkeypatch, str(path))
        assert recording.parseoutcomes() == {"passed": tests}, recording.stdout.str()
        cassettes = sorted((pytester.path / "cassettes" / stem).glob("*.yaml"))
        assert len(cassettes) == tests
        assert all("forge-secret" not in c.read_text() for c in cassettes)
        monkeypatch.setenv("CI", "true")
    result = run_inner(pytester, monkeypatch, str(path))
    outcomes = result.parseoutcomes()
    if example.fails:
        assert outcomes == {"failed": tests}, result.stdout.str()
        result.stdout.fnmatch_lines([_pattern(line) for line in example.output if line.strip()])
    else:
        assert outcomes == {"passed": tests}, result.stdout.str()


def _pattern(line: str) -> str:
    """An output line as an fnmatch pattern: any number (or object id) stands for any other,
    and ``...`` for anything, as the docs elide what differs from run to run."""
    escaped = re.sub(r"([\[\]?*])", r"[\1]", line.rstrip()).replace("...", "*")
    escaped = re.sub(r"0x[0-9a-f]+", "*", escaped)  # object ids
    return re.sub(r"\d+(\.\d+)?", "*", escaped)


def test_every_python_block_in_the_docs_compiles() -> None:
    """Every Python block of every page is valid Python, and imports only names that exist."""
    problems = []
    for page in all_pages():
        for block in code_blocks(page):
            if block.language != "python":
                continue
            where = f"{page.relative_to(DOCS)}:{block.line}"
            try:
                tree = ast.parse(block.code)
            except SyntaxError as exc:
                problems.append(f"{where}: {exc}")
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module in _PACKAGES:
                    public = _PACKAGES[node.module].__all__
                    problems += [
                        f"{where}: {node.module} has no public {alias.name}"
                        for alias in node.names
                        if alias.name not in public
                    ]
    assert problems == []


_PACKAGES = {"requestforge": requestforge, "requestforge_testing": requestforge_testing}


def _documented(package: str) -> set[str]:
    names = set()
    for page in REFERENCE.glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        current = "requestforge"
        for line in text.splitlines():
            if line.startswith((".. currentmodule::", ".. module::")):
                current = line.split("::", 1)[1].strip()
            elif match := _AUTODOC.match(line):
                name = match["name"]
                full = name if name.startswith("requestforge") else f"{current}.{name}"
                module, _, attribute = full.rpartition(".")
                if module == package:
                    names.add(attribute)
    return names


@pytest.mark.parametrize("package", sorted(_PACKAGES))
def test_reference_documents_every_public_name(package: str) -> None:
    """Each name of the package's __all__ has an entry in the API reference, and no other."""
    public = set(_PACKAGES[package].__all__)
    documented = _documented(package)
    assert sorted(public - documented) == [], "missing from docs/reference"
    assert sorted(documented - public) == [], "documented but not public"
