"""Markdown tables and marker blocks: the README's generated parts."""

from __future__ import annotations

import pytest

from fashion_utils.tools import markdown


def test_markdown_table_formats_numbers_and_escapes_pipes():
    table = markdown.markdown_table(["a", "b", "c"], [[0.98132, None, "x|y"], [1234, 0.5, 2]],
                                    digits=3)
    assert table.splitlines() == ["| a | b | c |", "|---|---|---|",
                                  "| 0.981 | — | x\\|y |", "| 1,234 | 0.500 | 2 |"]
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        markdown.markdown_table(["a", "b", "c"], [[1, 2]])


def test_replace_block_keeps_the_markers_and_everything_around_them():
    text = "head\n<!-- s -->\nold\n<!-- e -->\ntail\n"
    new = markdown.replace_block(text, "<!-- s -->", "<!-- e -->", "new 1\nnew 2\n")
    assert new == "head\n<!-- s -->\nnew 1\nnew 2\n<!-- e -->\ntail\n"
    assert markdown.replace_block(new, "<!-- s -->", "<!-- e -->", "new 1\nnew 2") == new
    with pytest.raises(ValueError, match="no '<!-- x -->'"):
        markdown.replace_block(text, "<!-- x -->", "<!-- e -->", "z")
