"""Every document the repository points at exists: Markdown links (with their #anchors), and the
``docs/...md#section`` and ``bench/README.md``-style paths and upper-case ``*.md`` names in
docstrings, comments and TOML files (a lower-case bare name, such as a report's output file, is
not a reference). Nothing points outside the repository.

Every test file a document names as the backing of a claim exists too: a path
``tests/<package>/test_<name>.py``, and a bare ``test_<name>.py`` after it on the same line (a
table cell listing several) in that path's folder.

A reference to a file outside the repository (a design note on somebody's disk, a sibling
folder) is a dangling link for everyone who clones it, so it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("schemas", "tomlconfig", "devpki", "vtn", "ven", "privacy", "cbp", "tests", "bench",
           "examples", "docs", "certs/README.md", "README.md", "SECURITY.md", "pyproject.toml",
           "Makefile", ".ci/run")  # fmt: skip
SKIP_PARTS = {"__pycache__", ".venv", "dev", "corpus"}

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DOC_REF = re.compile(r"(?<![\w/.-])((?:[\w-]+/)+[\w-]+\.md|[A-Z][A-Z0-9_-]*\.md)(?!\w)(#[\w-]+)?")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
_TEST_FILE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*)(test_\w+\.py)(?!\w)")


def _files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else [
            p for ext in ("*.md", "*.py", "*.toml") for p in path.rglob(ext)]  # fmt: skip
        found += [p for p in candidates if not SKIP_PARTS & set(p.relative_to(ROOT).parts)]
    return sorted(found)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(markdown.read_text(encoding="utf-8"))}


def _problem(source: Path, target: str, anchor: str | None) -> str | None:
    """Why ``target`` (relative to ``source``'s folder or the repository root) does not resolve."""
    bases = (source.parent, ROOT)
    resolved = next((b / target for b in bases if (b / target).exists()), None)
    if resolved is None:
        return f"{target}: no such file"
    if not resolved.resolve().is_relative_to(ROOT):
        return f"{target}: outside the repository"
    if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
        return f"{target}#{anchor}: no such section"
    return None


def _references(path: Path) -> list[tuple[str, str | None]]:
    text = path.read_text(encoding="utf-8")
    refs: list[tuple[str, str | None]] = []
    if path.suffix == ".md":
        for link in _LINK.findall(text):
            if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            refs.append((target or str(path.relative_to(ROOT)), anchor or None))
        text = _LINK.sub("]", text)  # a link's target is checked above, with its own base
    text = re.sub(r"https?://\S+", "", text)
    refs += [(m.group(1), (m.group(2) or "")[1:] or None) for m in _DOC_REF.finditer(text)]
    return refs


def _missing_tests(text: str) -> list[str]:
    """The test files ``text`` names that do not exist; a bare name is looked for in the
    folder of the path named last before it on its line (anywhere under tests/ when none)."""
    missing = []
    for line in text.splitlines():
        folder = None
        for match in _TEST_FILE.finditer(line):
            named, name = match.group(1) or folder, match.group(2)
            folder = named
            found = ((ROOT / named / name).exists() if named is not None
                     else any((ROOT / "tests").rglob(name)))  # fmt: skip
            if not found:
                missing.append(f"{named or ''}{name}")
    return missing


def test_the_scan_sees_the_places_references_live() -> None:
    names = {str(p.relative_to(ROOT)) for p in _files()}
    assert {"README.md", "docs/architecture.md", "cbp/market/validation.py",
            "examples/tso.toml"} <= names  # fmt: skip


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_reference_resolves(path: Path) -> None:
    problems = [p for target, anchor in _references(path)
                if (p := _problem(path, target, anchor)) is not None]  # fmt: skip
    assert problems == []


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_file_named_exists(path: Path) -> None:
    assert _missing_tests(path.read_text(encoding="utf-8")) == []


def test_a_test_file_named_but_missing_is_caught() -> None:
    gone, nowhere = "test_" + "gone.py", "test_" + "nowhere.py"  # halves: this file's scan passes
    row = (f"| claim | `tests/privacy/test_vault.py`, `{gone}`, `tests/cbp/test_privacy_"
           "command_access.py`, `test_vault.py` |")
    assert _missing_tests(row) == [f"tests/privacy/{gone}", "tests/cbp/test_" + "vault.py"]
    assert _missing_tests(f"see test_links.py and {nowhere}") == [nowhere]


def test_a_dangling_reference_is_caught(tmp_path: Path) -> None:
    page = ROOT / "docs" / "architecture.md"
    assert _problem(page, "architecture.md", "market-rules") is None
    assert _problem(page, "architecture.md", "no-such-section") is not None
    elsewhere = "PLAN" + ".md"  # spelt in two halves so that this file's own scan passes
    assert _problem(page, elsewhere, None) is not None
    assert _problem(page, "../../" + ROOT.parent.name, None) == (
        f"../../{ROOT.parent.name}: outside the repository")  # fmt: skip
    note = tmp_path / "note.py"
    note.write_text(f'"""See docs/architecture.md#privacy-design and {elsewhere} 4; writes '
                    'data-flow.md; hashlib.md5."""\n')  # fmt: skip
    assert _references(note) == [("docs/architecture.md", "privacy-design"), (elsewhere, None)]


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_names_the_notes_folder_beside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../" + "shared" not in text and "/work/" + "shared" not in text


def test_slugs_follow_github() -> None:
    assert slug("A message's life") == "a-messages-life"
    assert slug("The CBP profile on OpenADR") == "the-cbp-profile-on-openadr"
    assert slug("`crowdflex conformance schemas`") == "crowdflex-conformance-schemas"
