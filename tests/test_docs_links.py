"""Every relative link and #anchor in README.md, CONTRIBUTING.md and docs/*.md resolves.

A link resolves when its file exists (relative to the page) and its anchor, if
any, is the GitHub slug of a heading in the target. Links inside code (fenced
blocks, inline spans) are not links; http(s) and mailto links are not checked
(no network in tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) or ![alt](target); the target may carry a "title".
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto: ...


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters of any script, digits and _
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's slug in ``path``; a repeated slug gets -1, -2 ... as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match.group(1)))
    return found


def broken_links(path: Path) -> list[str]:
    """One line per link in ``path`` that does not resolve: where, what, why."""
    problems = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest}")
        elif anchor and dest.is_file() and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    assert page.exists(), f"{page} is missing"
    assert broken_links(page) == []


def test_the_docs_are_all_linked_from_the_index() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for _, target in links(ROOT / "docs" / "index.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"pages missing from docs/index.md: {sorted(pages - linked)}"
    assert index.startswith("# ")


def test_the_readme_is_a_landing_page_with_the_ci_test_command() -> None:
    """At most 120 lines; .ci/run reads the test command from the block right after the marker."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; move the details to docs/"
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1 : marker + 4] == ["```sh", "make test", "```"]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Limits and safety", "limits-and-safety"),
        ("The memory core (`memtui/memory/`)", "the-memory-core-memtuimemory"),
        (
            "Cluster mode: 1 vs 2 workers, and the estimate for 8 and 64",
            "cluster-mode-1-vs-2-workers-and-the-estimate-for-8-and-64",
        ),
        ("Files beside the cache", "files-beside-the-cache"),
        ("See [the index](index.md) first", "see-the-index-first"),
        ("snake_case and **bold**", "snake_case-and-bold"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_bad_file_a_bad_anchor_and_a_repeated_heading_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "target.md").write_text("# Title\n\n## Part\n\n## Part\n\n```\n## Not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](target.md#part) [second](target.md#part-1) [self](#here)\n"
        "## Here\n"
        "[gone](missing.md) [bad anchor](target.md#nope) [in a fence](target.md#not-a-heading)\n"
        "`[code](missing-too.md)` [web](https://example.com/x.md)\n"
    )
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "no such file" in problems[0] and "missing.md" in problems[0]
    assert "#nope" in problems[1]
    assert "#not-a-heading" in problems[2]
