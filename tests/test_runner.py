"""The papermill runner's helpers, and the rule that source notebooks are committed stripped."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from fashion_utils import config
from fashion_utils.tools import runner


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
    assert not dirty, f"strip them with `python -m fashion_utils.tools.runner --strip`: {dirty}"


NOTEBOOK_PATHS = runner.notebook_paths(config.NOTEBOOKS_DIR)
MAX_LINE = 100
MAX_CELL_LINES = 15  # one thought a cell: handson-ml3 averages ~7 lines, more when a thought needs it


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
def test_papermill_sees_every_parameter_the_cell_assigns(path):
    """A second `=` on a line (even in its comment) hides that parameter from papermill's
    inspection, and `make PARAMS=...` would then refuse it as unknown."""
    cell = next(c for c in _cells(path) if _is_parameters(c))
    assigned = [t.id for node in ast.parse(_source(cell)).body if isinstance(node, ast.Assign)
                for t in node.targets]
    assert assigned and runner.notebook_parameters(path) == assigned


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
    """No code line over 100 characters; code cells of 1-15 lines (the parameters cell, which
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


def _tiny_notebook(folder: Path, name: str, body: str, *, params: str = "TARGET = None\n") -> Path:
    """A numbered notebook: a cell tagged ``parameters``, then ``body``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    parameters = nbformat.v4.new_code_cell(params)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def test_an_unknown_parameter_is_an_error_before_anything_runs(tmp_path):
    src = tmp_path / "notebooks"
    _tiny_notebook(src, "01_a.ipynb", "open('ran', 'w').write('yes')", params="TARGET = None\n")
    _tiny_notebook(src, "02_b.ipynb", "open('ran', 'w').write('yes')", params="EPOCHS = 1\n")
    out = tmp_path / "executed"
    with pytest.raises(runner.ParameterError, match=r"(?s)\['TARGT'\].*01_a: TARGET.*"
                                                         r"02_b: EPOCHS") as err:
        runner.run_notebooks(parameters={"TARGT": "articleType", "EPOCHS": 2},
                             notebooks_dir=src, output_dir=out, html=False)
    assert "QUICK" not in str(err.value).split("Received")[0]  # the runner's own name is fine
    assert not out.exists() or not any(out.iterdir())
    assert not (src / "ran").exists()
    # a name only one of the notebooks declares goes to every notebook, as before
    runner.check_parameters(sorted(src.glob("*.ipynb")), ["TARGET", "EPOCHS"])


def test_the_command_line_exits_2_on_an_unknown_parameter(capsys, monkeypatch):
    monkeypatch.setattr(runner, "run_notebooks", lambda **_: runner.check_parameters(
        runner.notebook_paths(only=["01"]), ["TARGT"]))
    assert runner.main(["--only", "01", "-p", "TARGT=articleType"]) == 2
    err = capsys.readouterr().err
    assert "NOTHING RAN" in err and "TARGT" in err and "DATA_DIR" in err


def test_a_malformed_parameter_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.main(["-p", "IMAGE_SIZE"])
    assert exit_.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow  # starts two kernels
@pytest.mark.parametrize("body, timeout, message", [
    ("import os\nos._exit(3)", None, "its kernel died"),
    ("import time\ntime.sleep(60)", 3, "a cell ran past the 3 s timeout"),
])
def test_a_dead_kernel_or_a_timeout_names_the_notebook_and_cell(tmp_path, body, timeout, message):
    nb = _tiny_notebook(tmp_path / "notebooks", "07_crash.ipynb", body)
    out = tmp_path / "executed" / nb.name
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match=rf"07_crash.ipynb stopped in cell 2: {message}") as err:
        runner.execute_notebook(nb, out, parameters={"TARGET": "x"}, html=False,
                                cell_timeout=timeout)
    assert body.splitlines()[-1] in str(err.value)  # the cell's source
    assert str(out) in str(err.value)


def test_the_command_line_exits_1_on_a_failed_notebook_and_130_on_ctrl_c(monkeypatch, capsys):
    def fail(**_):
        raise RuntimeError("07_crash.ipynb stopped in cell 2: its kernel died")

    def interrupt(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_notebooks", fail)
    assert runner.main(["--only", "01"]) == 1
    assert "NOTEBOOK FAILED: 07_crash.ipynb stopped in cell 2" in capsys.readouterr().err
    monkeypatch.setattr(runner, "run_notebooks", interrupt)
    assert runner.main(["--only", "01"]) == 130
    assert "INTERRUPTED" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("", "DATA_DIR is empty"),
                                            ("/no/such/catalog", "DATA_DIR is not a folder")])
def test_a_data_dir_that_cannot_work_is_an_error_before_anything_runs(tmp_path, value, message):
    src = tmp_path / "notebooks"
    _tiny_notebook(src, "01_a.ipynb", "open('ran', 'w').write('yes')",
                   params="DATA_DIR = None\n")
    with pytest.raises(runner.ParameterError, match=message):
        runner.run_notebooks(parameters={"DATA_DIR": value}, notebooks_dir=src,
                             output_dir=tmp_path / "executed", html=False)
    with pytest.raises(runner.ParameterError, match=message):
        runner.run_study(parameters={"DATA_DIR": value}, notebooks_dir=src,
                         output_dir=tmp_path / "executed", html=False)
    assert not (src / "ran").exists()


@pytest.mark.slow  # starts a kernel
def test_the_terminal_shows_cells_and_progress_and_the_notebook_none_of_it(tmp_path, capfd,
                                                                           monkeypatch):
    from fashion_utils.tools import terminal

    monkeypatch.setattr(terminal, "LOG_INTERVAL", 0.5)  # off a terminal: a line every 0.5 s
    body = ("from fashion_utils import progress\n"
            "import time\n"
            "for _ in progress.track(range(3), desc='hashing', unit='img'):\n"
            "    time.sleep(0.8)\n"
            "print('done')")
    nb = _tiny_notebook(tmp_path / "notebooks", "07_progress.ipynb", body)
    out = tmp_path / "executed" / nb.name
    runner.execute_notebook(nb, out, parameters={"TARGET": "articleType"}, html=False)
    shown = capfd.readouterr()
    terminal_text = shown.out + shown.err
    assert "07_progress [articleType] | cell 1/3" in terminal_text  # papermill's injected cell
    assert re.search(r"07_progress \[articleType\] \| cell 3/3 \| 0:0\d \| hashing \d/3 img",
                     terminal_text)
    assert "Kernel is running over TCP" not in terminal_text  # start-up noise: in the log
    assert "Kernel is running over TCP" in out.with_name("07_progress.kernel.log").read_text()
    outputs = json.dumps(json.loads(out.read_text())["cells"][-1]["outputs"])
    assert "done" in outputs and "hashing" not in outputs and "it/s" not in outputs
    assert not list(out.parent.glob(".*.progress"))


def test_the_status_line_hears_the_kernels_progress(tmp_path, monkeypatch):
    """What the kernel reports reaches the line (the kernel is simulated by a thread)."""
    import io
    import threading
    import time

    from fashion_utils import progress
    from fashion_utils.tools import terminal

    file = tmp_path / ".p"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(file))
    monkeypatch.setattr(terminal, "REDRAW_INTERVAL", 0.05)
    stream = io.StringIO()
    status = terminal.NotebookStatus(notebook="03", target=None, progress_file=file,
                                     stream=stream, tty=True)
    with status:
        worker = threading.Thread(target=lambda: [time.sleep(0.02) for _ in progress.track(
            range(20), desc="extracting", unit="img", bar=False)])
        worker.start()
        worker.join()
        time.sleep(0.3)
    assert "extracting 20/20 img" in stream.getvalue()


def test_the_study_runs_01_then_plans_the_rest_for_this_machine(tiny_kaggle_dir, output_root,
                                                                monkeypatch):
    """``make``: 01 runs first, its catalog profile and the machine's speed plan every later
    step once; each notebook gets the plan's parameters (a user's win), and study.json sets the
    planned seconds beside the actual ones."""
    from fashion_utils.catalog import eda
    from fashion_utils.tools import budget

    ran = []

    def execute(nb_path, out, *, parameters, **_):
        ran.append((nb_path.stem, dict(parameters)))
        if nb_path.stem == "01_eda":  # what 01 hands over
            eda.write_catalog_profile(config.get_paths(tiny_kaggle_dir), {
                "n_products": 70_000, "median_short_side": 28.0, "image_size": 96,
                "native_side": 28})
        return 2.0

    monkeypatch.setattr(runner, "execute_notebook", execute)
    speed = budget.MachineSpeed(infer_s_per_image=0.0012, train_s_per_image=0.006,
                                head_s_per_row_epoch=budget.REFERENCE_HEAD_S)
    record = runner.run_study(parameters={"DATA_DIR": str(tiny_kaggle_dir), "N_SEEDS": 2},
                              speed=speed, html=False)
    assert [name for name, _ in ran] == ["01_eda", "02_sampling_augmentation",
                                         "03_baseline_cnn", "04_tuning",
                                         "02_sampling_augmentation", "03_baseline_cnn",
                                         "04_tuning", "05_recommendation", "06_multi_output"]
    plan, _ = budget.plan_study(60, profile=eda.read_catalog_profile(
        config.get_paths(tiny_kaggle_dir)), speed=speed, first_seconds=2.0)
    for (name, passed), step in zip(ran[1:], plan):
        assert passed == {"QUICK": False, **step.parameters, "DATA_DIR": str(tiny_kaggle_dir),
                          "N_SEEDS": 2}, name
    assert "RECIPES" in ran[3][1] and ran[3][1]["N_SEEDS"] == 2  # the user's value wins
    assert record["steps"][0]["planned_seconds"] is None
    assert [s["planned_seconds"] for s in record["steps"][1:]] == [s.planned_seconds
                                                                  for s in plan]
    assert record["plan_notes"] and record["machine_speed"]["head_s_per_row_epoch"] > 0
    written = json.loads((config.get_paths(tiny_kaggle_dir).metrics / "study.json").read_text())
    assert written["steps"] == record["steps"]
    assert written["feature_stores"] == []  # nothing was extracted: the notebooks were stubs
