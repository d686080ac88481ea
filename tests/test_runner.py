"""The papermill runner's helpers, and the rule that source notebooks are committed stripped."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
    names = [p.name for p in runner.notebook_paths(tmp_path)]
    assert names == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    kept = [p.name for p in runner.notebook_paths(tmp_path, only=["02", "10_c"])]
    assert kept == ["02_b.ipynb", "10_c.ipynb"]
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


NOTEBOOK_PATHS = runner.notebook_paths(config.NOTEBOOKS_DIR)
MAX_LINE, MAX_CELL_LINES = 100, 10


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def _is_parameters(cell) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_every_notebook_opens_the_house_way(path):
    """H1 title, `>` purpose, reads/writes, a cell tagged `parameters`, then one setup cell."""
    cells = _cells(path)
    first = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), path.name
    assert first.splitlines()[1].startswith("> "), f"{path.name}: a `>` one-line purpose"
    assert "Reads" in first and "Writes" in first, f"{path.name}: say what it reads and writes"
    tagged = [i for i, c in enumerate(cells) if _is_parameters(c)]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    assert all(c["cell_type"] == "markdown" for c in cells[:tagged[0]]), path.name
    source = _source(cells[tagged[0]])
    for name in ("DATA_DIR", "QUICK", "SEED"):
        assert f"{name} =" in source, f"{path.name}: parameter {name} missing"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_every_setup_cell_calls_the_one_setup_function(path):
    """The first code cell after the parameters imports and calls `notebook.setup` (and no
    other cell does); nothing else times, seeds globally or styles the plots on its own."""
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if _is_parameters(c))
    setup = next(c for c in cells[start + 1:] if c["cell_type"] == "code")
    setup_source = _source(setup)
    assert "from fashion_utils import" in setup_source and "notebook" in setup_source, path.name
    assert re.search(rf'^run = notebook\.setup\("{path.stem}", globals\(\)\)', setup_source,
                     re.MULTILINE), f"{path.name}: the setup cell calls notebook.setup"
    code = [_source(c) for c in cells if c["cell_type"] == "code"]
    assert sum("notebook.setup(" in s for s in code) == 1, path.name
    everything = "\n".join(code)
    for banned in ("START", "started", "config.get_paths(", "plots.set_style(", "RUN_NAME",
                   "if QUICK:\n    IMAGE_SIZE", "perf_counter() - START"):
        assert banned not in everything, f"{path.name}: {banned!r} belongs to notebook.setup"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_code_lines_and_cells_are_short(path):
    """No code line over 100 characters; code cells of 1-10 lines (the parameters cell, which
    papermill needs in one piece, may be longer)."""
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code":
            continue
        lines = _source(cell).splitlines()
        long = [line for line in lines if len(line) > MAX_LINE]
        assert not long, f"{path.name} cell {index}: lines over {MAX_LINE} characters: {long}"
        if not _is_parameters(cell):
            assert 1 <= len(lines) <= MAX_CELL_LINES, (
                f"{path.name} cell {index}: {len(lines)} lines; split it or move the logic "
                f"into fashion_utils")


@pytest.mark.parametrize("target, expected", [
    (None, "04_tuning.ipynb"), (config.DEFAULT_TARGET, "04_tuning.ipynb"),
    ("articleType", "04_tuning-articleType.ipynb"), ("label", "04_tuning-label.ipynb"),
])
def test_executed_copies_of_two_targets_do_not_overwrite_each_other(target, expected):
    assert runner.executed_name(Path("notebooks/04_tuning.ipynb"), target=target) == expected
