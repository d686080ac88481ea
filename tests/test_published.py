"""The executed notebooks the study publishes: clean for a reader, and the current notebooks'.

``tools.published.notebook_problems`` is the one checker; here it is tested on small synthetic
notebooks, then held against every executed notebook under ``reports/fashion-mnist/executed/``
(the quick smoke run, ``tests/test_notebooks.py``, holds it against the current code). A
published notebook whose cells differ from its source in ``notebooks/`` is stale: a notebook
change is published with the run that shows it (``make``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_utils import config
from fashion_utils.tools import published

EXECUTED = sorted((config.PROJ_ROOT / "reports" / config.DEFAULT_CATALOG_NAME / "executed")
                  .glob("*.ipynb"))


def _nb(*outputs: dict, metadata: dict | None = None) -> dict:
    cell = {"cell_type": "code", "metadata": {}, "source": "x", "outputs": list(outputs)}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# t"}, cell],
            "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}


def _stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": [text]}


def _plain(text: str) -> dict:
    return {"output_type": "execute_result", "execution_count": 1, "metadata": {},
            "data": {"text/plain": [text]}}


def test_a_clean_notebook_has_no_problem(tmp_path):
    nb = _nb(_stream("catalog: data/raw/fashion-mnist\nmodels: ~/models/x.keras\n"),
             _plain("   id  image_path\n0  1  data/raw/fashion-mnist/images/1.png"),
             {"output_type": "display_data", "metadata": {},
              "data": {"image/png": "iVBORw0KGgo/tmp/work/+=", "text/plain": ["<Figure>"]}})
    path = tmp_path / "clean.ipynb"
    path.write_text(json.dumps(nb))
    assert published.notebook_problems(nb) == []
    assert published.notebook_problems(path) == []  # a file reads the same


@pytest.mark.parametrize("output, problem", [
    (_stream("I0000 port.cc:153] oneDNN\n", name="stderr"), "output on stderr"),
    (_stream("UserWarning: Skipping variable loading\n"), "a warning"),
    (_plain("WARNING: All log messages before absl"), "a warning"),
    (_stream("extract  40%|████      | 4/10\r"), "a progress bar"),
    (_stream("hashing: 0/70000 [00:00<?, ?it/s]"), "a progress bar"),
    (_stream("step 1\rstep 2"), "a progress bar"),
    (_stream("catalog: /work/main/data/raw/fashion-mnist\n"), "an absolute path"),
    (_plain("PosixPath('/tmp/qa/reports/metrics/01_eda.json')"), "an absolute path"),
    (_plain("kept model: /home/me/models/kept.keras"), "an absolute path"),
    (_plain("Empty DataFrame\nColumns: [id, reason]\nIndex: []"), "an empty table"),
    ({"output_type": "display_data", "metadata": {},
      "data": {published.WIDGET_VIEW: {"model_id": "abc"}, "text/plain": ["VBox()"]}},
     "a displayed widget"),
    ({"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
     "an error output"),
])
def test_each_kind_of_problem_is_found_and_named(output, problem):
    found = published.notebook_problems(_nb(output))
    assert found and all(p.startswith("cell 1: ") for p in found), found
    assert any(problem in p for p in found), found


def test_widget_state_in_the_metadata_is_a_problem():
    state = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    found = published.notebook_problems(_nb(metadata={"widgets": state}))
    assert found == ["notebook metadata: widget state (metadata.widgets)"]


def test_relative_and_home_paths_are_not_absolute_paths():
    nb = _nb(_stream("~/work/x.csv data/tmp/x.csv ./home/y reports/fashion-mnist/x.png\n"))
    assert published.notebook_problems(nb) == []


def test_the_checker_refuses_what_is_not_a_notebook():
    with pytest.raises(ValueError, match="Received: notebook="):
        published.notebook_problems({"cell": []})


def test_source_cells_leave_out_the_injected_parameters():
    nb = _nb(_stream("ok\n"))
    injected = {"cell_type": "code", "metadata": {"tags": [published.INJECTED_TAG]},
                "source": ["QUICK = True\n"], "outputs": []}
    nb["cells"].insert(1, injected)
    assert published.source_cells(nb) == [("markdown", "# t"), ("code", "x")]


def _source_of(executed: Path) -> Path:
    """``04_tuning-articleType.ipynb`` -> ``notebooks/04_tuning.ipynb``."""
    return config.NOTEBOOKS_DIR / (executed.stem.split("-")[0] + ".ipynb")


def test_the_study_publishes_executed_notebooks():
    assert EXECUTED, "no executed notebook under reports/fashion-mnist/executed/ (run make)"
    assert all(_source_of(p).is_file() for p in EXECUTED), [p.name for p in EXECUTED]


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_a_published_notebook_is_clean_for_a_reader(path):
    assert published.notebook_problems(path) == []


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_a_published_notebook_is_its_source_notebook_executed(path):
    """Stale when the notebook changed after the run: publish the change with a run (make)."""
    executed, source = published.source_cells(path), published.source_cells(_source_of(path))
    changed = [i for i, (a, b) in enumerate(zip(executed, source)) if a != b]
    assert len(executed) == len(source) and not changed, (
        f"{path.name} is stale: {len(executed)} cells against {len(source)}, cells differing "
        f"from {_source_of(path).name}: {changed[:10]}")


@pytest.mark.parametrize("path", sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.stem)
def test_no_notebook_imports_tensorflow_before_the_package(path):
    """The package quiets TensorFlow's C++ start-up lines (``config``) only for an import that
    comes after its own: a notebook imports ``fashion_utils`` before Keras or TensorFlow."""
    import re

    code = "\n".join(src for kind, src in published.source_cells(path) if kind == "code")
    first_tf = re.search(r"^\s*(import|from) (keras|tensorflow)\b", code, re.M)
    first_package = re.search(r"^\s*(import|from) fashion_utils\b", code, re.M)
    assert first_tf is None or (first_package and first_package.start() < first_tf.start()), (
        f"{path.name} imports Keras/TensorFlow before fashion_utils")


def _figure_prefixes(step: dict) -> tuple[str, ...]:
    """How the figures of one step of the published study are named (``notebook.Run.save_fig``)."""
    notebook, target = step["notebook"], step["target"]
    if notebook == "01_eda":
        return ("01_",)
    if notebook == "06_multi_output":
        return ("06_multi_output_",)
    if notebook == "05_recommendation":  # named for its label level
        return ("05_recommendation-",)
    return (f"{notebook}-{target}_",)


def test_every_published_figure_comes_from_a_step_of_the_published_run():
    """A figure file named for no step of the published run is a leftover of an earlier run
    (or of an earlier naming rule): it would sit beside the current figures unexplained."""
    import json

    reports = config.PROJ_ROOT / "reports" / config.DEFAULT_CATALOG_NAME
    study = json.loads((reports / "metrics" / "study.json").read_text(encoding="utf-8"))
    prefixes = tuple(p for step in study["steps"] for p in _figure_prefixes(step))
    run_figures = sorted(p.name for p in (reports / "figures").glob("[0-9][0-9]_*.png"))
    assert run_figures, "the published run wrote no figure"
    assert [name for name in run_figures if not name.startswith(prefixes)] == []
    for step in study["steps"]:  # and every step that draws left its figures
        assert any(name.startswith(_figure_prefixes(step)) for name in run_figures), step
