"""The README and the pages under docs/: the README stays short and findings-first, and every
relative link between them resolves (files, folders and ``#heading`` anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fashion_utils import config

ROOT = config.PROJ_ROOT
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 230
FINDINGS = ("<!-- BEGIN generated:findings -->", "<!-- END generated:findings -->")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces -> '-'."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _relative_links(page: Path) -> list[str]:
    return [link for link in LINK.findall(page.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", link)]


def test_the_readme_is_short_and_starts_with_the_findings():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections[:2] == ["Two commands", "What the study found"], sections
    assert all(text.count(marker) == 1 for marker in FINDINGS)
    assert text.index(FINDINGS[0]) < text.index(FINDINGS[1])
    assert "generated:fashion-mnist" not in text and "generated:real_kaggle_sample" not in text
    # the first picture is the explorer on the default data, not the browser test's catalog
    first_image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", text).group(1)
    assert first_image == "reports/fashion-mnist/figures/05_recommendation-articleType_explorer_view.png"
    assert "explorer_jupyterlab.png" not in text and "explorer_upload_voila.png" not in text


def test_the_readme_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in text, page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    """A link to a page, a folder or a file must exist (with its ``#anchor``, if any): the
    published run's figures and metrics are committed, so a link into reports/ resolves too."""
    for link in _relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link}"
        if anchor:
            assert anchor in _anchors(target), f"{page.name}: {link}"


def test_each_marker_block_is_on_one_page_once():
    """The bench tables and the bad-input table moved to docs/: each pair of markers is on
    exactly one page, once."""
    counts: dict[str, int] = {}
    for page in PAGES:
        for marker in re.findall(r"<!-- ((?:bench:\w+|bad-input):(?:start|end)) -->",
                                 page.read_text(encoding="utf-8")):
            counts[marker] = counts.get(marker, 0) + 1
    assert counts and all(n == 1 for n in counts.values()), counts
    assert {m.rsplit(":", 1)[0] for m in counts} == {"bench:explorer", "bench:training",
                                                     "bench:extraction", "bench:scale",
                                                     "bad-input"}
