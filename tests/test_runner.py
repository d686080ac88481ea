"""The papermill runner's helpers, and the rule that source notebooks are committed stripped."""

from __future__ import annotations

import json

import pytest

from fashion_utils import config, runner


@pytest.mark.parametrize("text, expected", [
    ("IMAGE_SIZE=64", ("IMAGE_SIZE", 64)),
    ("TARGET=articleType", ("TARGET", "articleType")),
    ("QUICK=true", ("QUICK", True)),
    ("CAP_PER_CLASS=None", ("CAP_PER_CLASS", None)),
    ("UNITS=(50, 20)", ("UNITS", (50, 20))),
    ("NAME='a=b'", ("NAME", "a=b")),
])
def test_parse_parameter(text, expected):
    assert runner.parse_parameter(text) == expected


@pytest.mark.parametrize("text, match", [("IMAGE_SIZE", "KEY=VALUE"), ("1x=2", "identifier")])
def test_parse_parameter_rejects_bad_input(text, match):
    with pytest.raises(ValueError, match=match):
        runner.parse_parameter(text)


def _notebook(path, outputs):
    cell = {"cell_type": "code", "metadata": {}, "source": "1 + 1",
            "execution_count": 3 if outputs else None,
            "outputs": [{"output_type": "execute_result", "data": {"text/plain": "2"},
                         "metadata": {}, "execution_count": 3}] if outputs else []}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_notebook_paths_are_numbered_and_filtered(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "10_c.ipynb"]:
        _notebook(tmp_path / name, outputs=False)
    assert [p.name for p in runner.notebook_paths(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in runner.notebook_paths(tmp_path, only=["02", "10_c"])] == ["02_b.ipynb", "10_c.ipynb"]
    with pytest.raises(ValueError, match="07"):
        runner.notebook_paths(tmp_path, only=["07"])


def test_strip_outputs_removes_outputs_once(tmp_path):
    path = _notebook(tmp_path / "01_x.ipynb", outputs=True)
    assert runner.has_outputs(path)
    assert runner.strip_outputs(path) is True
    assert not runner.has_outputs(path)
    assert runner.strip_outputs(path) is False


def test_source_notebooks_are_committed_without_outputs():
    paths = runner.notebook_paths(config.NOTEBOOKS_DIR)
    assert paths, "no notebooks found"
    dirty = [p.name for p in paths if runner.has_outputs(p)]
    assert not dirty, f"strip them with `python -m fashion_utils.runner --strip`: {dirty}"


def test_every_notebook_opens_the_house_way():
    """H1 title and purpose, then a cell tagged `parameters` with the shared parameters."""
    for path in runner.notebook_paths(config.NOTEBOOKS_DIR):
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"])
        assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), path.name
        assert "Reads" in first and "Writes" in first, f"{path.name}: say what it reads and writes"
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
        source = "".join(tagged[0]["source"])
        for name in ("DATA_DIR", "QUICK", "SEED"):
            assert f"{name} =" in source, f"{path.name}: parameter {name} missing"
