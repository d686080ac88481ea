"""Execute the study's notebooks with papermill, in order, into ``reports/<catalog>/executed/``.

Usage::

    python -m fashion_utils.tools.runner                 # every notebooks/NN_*.ipynb, full mode
    python -m fashion_utils.tools.runner --quick         # quick mode (small sample, small images)
    python -m fashion_utils.tools.runner --only 03 04 -p TARGET=articleType -p IMAGE_SIZE=64
    python -m fashion_utils.tools.runner --strip         # strip outputs from the source notebooks
    python -m fashion_utils.tools.runner --study --budget-minutes 60   # the whole study (`make`)

Each executed notebook is written as ``.ipynb`` and as an HTML copy. A parameter that none
of the notebooks to run declares is an error before anything runs (it lists their
parameters). The first failure — an error in a cell, a dead kernel, a cell past
``--cell-timeout`` — stops the run, names the notebook and the cell, and the process exits 1;
Ctrl-C stops it with exit status 130, naming the partly executed notebook.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from fashion_utils import config, progress, provenance
from fashion_utils.tools import budget, terminal
from fashion_utils.atomic import write_text_atomic
from fashion_utils.catalog.data import load_catalog
from fashion_utils.catalog.eda import read_catalog_profile
from fashion_utils.evaluation import write_metrics
from fashion_utils.vision.features import store_summary

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")


def notebook_paths(notebooks_dir: Path = config.NOTEBOOKS_DIR, *,
                   only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in execution order.

    Args:
        notebooks_dir: folder to look in.
        only: optional notebook numbers or names (``"03"``, ``"03_baseline_cnn"``) to keep.

    Returns:
        Sorted paths.
    """
    paths = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if only:
        wanted = [str(o).removesuffix(".ipynb") for o in only]
        kept = [p for p in paths if any(p.stem == w or p.stem.startswith(f"{w}_") for w in wanted)]
        unknown = [w for w in wanted if not any(p.stem == w or p.stem.startswith(f"{w}_") for p in paths)]
        if unknown:
            raise ValueError(f"No notebook matches {unknown}. Received: only={list(only)!r}; "
                             f"available: {[p.stem for p in paths]}")
        paths = kept
    return paths


def parse_parameter(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` into a papermill parameter; VALUE is a Python literal or a string.

    >>> parse_parameter("IMAGE_SIZE=64")
    ('IMAGE_SIZE', 64)
    """
    if "=" not in text:
        raise ValueError(f"A parameter must look like KEY=VALUE. Received: {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ValueError(f"Parameter name must be an identifier. Received: {key!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = {"true": True, "false": False, "none": None}.get(raw.strip().lower(), raw)
    return key, value


def notebook_parameters(nb_path: Path) -> list[str]:
    """The names a notebook's ``parameters`` cell declares (papermill's inspection)."""
    import papermill as pm

    return list(pm.inspect_notebook(str(nb_path)))


class ParameterError(ValueError):
    """A parameter that cannot work, found before anything runs: a name none of the notebooks
    to run declares, or a ``DATA_DIR`` that is empty or not a folder."""


def check_data_dir(parameters: dict[str, Any]) -> None:
    """Fail before anything runs when ``DATA_DIR`` is given but empty or not a folder (it
    would otherwise fail inside the first notebook, or an empty one read the default data).

    Raises:
        ParameterError: naming the value.
    """
    if "DATA_DIR" not in parameters or parameters["DATA_DIR"] is None:
        return
    value = parameters["DATA_DIR"]
    if not str(value).strip():
        raise ParameterError(f"DATA_DIR is empty: pass a catalog folder, or leave it out for "
                             f"the default data. Received: DATA_DIR={value!r}")
    if not Path(str(value)).expanduser().is_dir():
        raise ParameterError(f"DATA_DIR is not a folder (a Kaggle-layout catalog, a folder per "
                             f"class, ...). Received: DATA_DIR={value!r}")


def check_parameters(notebooks: Sequence[Path], parameters: Iterable[str]) -> None:
    """Fail before anything runs when a parameter is declared by none of ``notebooks``.

    A parameter goes to every notebook of a run, and each uses those it declares, so a name
    only some of them declare is fine; a misspelt one (``TARGT``) would otherwise be ignored
    with a warning while the default study ran and overwrote its results.

    Raises:
        ParameterError: naming the unknown parameters and listing each notebook's.
    """
    declared = {nb.stem: notebook_parameters(nb) for nb in notebooks}
    known = {name for names in declared.values() for name in names}
    unknown = [name for name in dict.fromkeys(parameters) if name not in known]
    if unknown:
        listing = "\n".join(f"  {stem}: {', '.join(names) or '(none)'}"
                             for stem, names in declared.items())
        raise ParameterError(f"Unknown parameter(s) {unknown}: no notebook to run declares them. "
                         f"Received: {unknown!r}. The notebooks' parameters:\n{listing}")


def last_started_cell(out: Path) -> tuple[int | None, str]:
    """The cell a partly executed papermill notebook stopped in: the last one papermill
    started (``start_time`` in its metadata) as ``(index, source)``; ``(None, "")`` when the
    file is missing or no cell started."""
    try:
        cells = json.loads(Path(out).read_text()).get("cells", [])
    except (OSError, ValueError):
        return None, ""
    started = [i for i, cell in enumerate(cells)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return None, ""
    source = cells[started[-1]].get("source", "")
    return started[-1], "".join(source) if isinstance(source, list) else source


def strip_outputs(path: Path) -> bool:
    """Remove outputs and execution counts from a notebook in place.

    Returns:
        True when the file changed.
    """
    text = Path(path).read_text()
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        for key in ("papermill",):
            cell.get("metadata", {}).pop(key, None)
    nb.get("metadata", {}).pop("papermill", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        write_text_atomic(path, new)
        return True
    return False


def has_outputs(path: Path) -> bool:
    """True when any code cell of the notebook holds outputs or an execution count."""
    nb = json.loads(Path(path).read_text())
    return any(c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))
               for c in nb.get("cells", []))


def export_html(notebook: Path) -> Path:
    """Write an HTML copy beside an executed notebook; returns its path."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return write_text_atomic(notebook.with_suffix(".html"), body)


def executed_name(notebook: Path, *, target: str | None = None) -> str:
    """The executed copy's file name: the notebook's, plus ``-<target>`` for a target other
    than :data:`config.DEFAULT_TARGET`, so that runs for two targets keep both copies.

    >>> executed_name(Path("04_tuning.ipynb"), target="articleType")
    '04_tuning-articleType.ipynb'
    """
    return config.named_for_target(notebook.stem, target=target) + notebook.suffix


def run_notebooks(*, quick: bool = False, parameters: dict[str, Any] | None = None,
                  only: Sequence[str] | None = None, notebooks_dir: Path = config.NOTEBOOKS_DIR,
                  output_dir: Path | None = None, html: bool = True,
                  kernel_name: str = "python3", cell_timeout: float | None = None) -> list[Path]:
    """Execute the numbered notebooks in order with papermill.

    Args:
        quick: pass ``QUICK=True`` (small sample, small images) to every notebook.
        parameters: extra papermill parameters for every notebook; each must be declared by
            at least one of them (:func:`check_parameters`), and the notebooks that lack one
            ignore it.
        only: restrict to these notebook numbers/names.
        notebooks_dir: where the source notebooks are.
        output_dir: where executed copies go (default: the catalog's
            ``config.get_paths(DATA_DIR, quick=...).executed``, so that each catalog keeps
            its own executed study).
        html: also write an HTML copy of each executed notebook.
        kernel_name: the Jupyter kernel to run.
        cell_timeout: seconds a cell may run (``None``: no limit).

    Returns:
        Paths of the executed notebooks.

    Raises:
        ParameterError: a parameter no notebook to run declares (before anything
            runs).
        RuntimeError: naming the notebook and cell that failed.
    """
    params = {"QUICK": bool(quick), **(parameters or {})}
    notebooks = notebook_paths(notebooks_dir, only=only)
    check_parameters(notebooks, parameters or {})
    check_data_dir(params)
    out_dir = (Path(output_dir) if output_dir
               else config.get_paths(params.get("DATA_DIR"), quick=quick).executed)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    for nb_path in notebooks:
        out = out_dir / executed_name(nb_path, target=params.get("TARGET"))
        execute_notebook(nb_path, out, parameters=params, html=html, kernel_name=kernel_name,
                         cell_timeout=cell_timeout)
        executed.append(out)
    return executed


def _terminal_engine(status: terminal.NotebookStatus, kernel_log: Any) -> str:
    """Register (once) and configure papermill's engine ``"fashion-terminal"``: nbclient, as
    papermill's default engine runs it, plus a status line told of every cell that starts, and
    the kernel process's own stdout/stderr (start-up warnings, C++ logs) sent to ``kernel_log``
    instead of the terminal."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class TerminalEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False,
                                     stdout_file=None, stderr_file=None, start_timeout=60,
                                     execution_timeout=None, **kwargs):
            begin = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                if cell_index is not None:
                    status.cell(nb_man.nb.cells, cell_index)
                return begin(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            client = PapermillNotebookClient(nb_man, **final_kwargs)
            return client.execute(stdout=kernel_log, stderr=kernel_log)  # to the kernel's Popen

    papermill_engines.register("fashion-terminal", TerminalEngine)
    return "fashion-terminal"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def execute_notebook(nb_path: Path, out: Path, *, parameters: dict[str, Any], html: bool = True,
                     kernel_name: str = "python3", cell_timeout: float | None = None) -> float:
    """Execute one notebook with papermill into ``out`` (and an HTML copy); returns its seconds.

    While it runs, the terminal shows one status line (:class:`terminal.NotebookStatus`: cell
    n of N, its section, the elapsed time, the progress a long step reports through
    :mod:`fashion_utils.progress`); the kernel's own start-up noise goes to ``out``'s
    ``.kernel.log`` beside it.

    Raises:
        RuntimeError: naming the notebook and cell that failed: an error in the cell, a kernel
            that died, or a cell that ran past ``cell_timeout`` seconds.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    nb_params = dict(parameters)
    if "INTERACTIVE" in pm.inspect_notebook(str(nb_path)):
        nb_params.setdefault("INTERACTIVE", False)  # no browser under papermill: static views
    shown = " ".join(f"{k}={v}" for k, v in nb_params.items())
    print(f"==> {nb_path.stem}  {shown}", flush=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel_log_path = out.with_name(f"{out.stem}.kernel.log")
    progress_path = out.with_name(f".{out.stem}.progress")
    saved = os.environ.get(progress.PROGRESS_ENV)
    start = time.perf_counter()
    status = terminal.NotebookStatus(notebook=nb_path.stem, target=nb_params.get("TARGET"),
                                     progress_file=progress_path)
    try:
        os.environ[progress.PROGRESS_ENV] = str(progress_path)  # the kernel inherits it
        with status, open(kernel_log_path, "w", encoding="utf-8") as kernel_log:
            pm.execute_notebook(str(nb_path), str(out), parameters=nb_params,
                                kernel_name=kernel_name, cwd=str(nb_path.parent),
                                progress_bar=False, log_output=False,
                                execution_timeout=cell_timeout,
                                engine_name=_terminal_engine(status, kernel_log))
    except PapermillExecutionError as err:
        raise RuntimeError(
            f"{nb_path.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n--- cell source ---\n{err.source}\n"
            f"The partly executed notebook is {out}") from err
    except (DeadKernelError, CellTimeoutError) as err:
        index, source = last_started_cell(out)
        what = ("its kernel died" if isinstance(err, DeadKernelError)
                else f"a cell ran past the {cell_timeout:g} s timeout")
        raise RuntimeError(f"{nb_path.name} stopped in cell {index}: {what} "
                           f"({type(err).__name__}: {err})\n--- cell source ---\n{source}\n"
                           f"--- the kernel's last lines ({kernel_log_path}) ---\n"
                           f"{_tail(kernel_log_path)}\n"
                           f"The partly executed notebook is {out}") from err
    finally:
        if saved is None:
            os.environ.pop(progress.PROGRESS_ENV, None)
        else:
            os.environ[progress.PROGRESS_ENV] = saved
    seconds = time.perf_counter() - start
    if html:
        export_html(out)
    print(f"    done in {terminal.clock(seconds)} ({seconds:.1f} s) -> {out}", flush=True)
    return seconds


def _catalog_has(data_dir: Path, column: str) -> bool:
    catalog, _ = load_catalog(data_dir, check_images=False)
    return column in catalog.columns


def run_study(*, budget_minutes: float = config.STUDY_BUDGET_MINUTES, quick: bool = False,
              parameters: dict[str, Any] | None = None, html: bool = True,
              notebooks_dir: Path = config.NOTEBOOKS_DIR, output_dir: Path | None = None,
              kernel_name: str = "python3", cell_timeout: float | None = None,
              speed: budget.MachineSpeed | None = None) -> dict[str, Any]:
    """Execute the whole study, planned once to fit ``budget_minutes``, and write its timing
    table.

    Notebook 01 runs first; its catalog profile and this machine's speed
    (:func:`budget.probe_machine`, cached; or ``speed``) then plan the rest
    (:func:`budget.plan_study`): 02-04 for the default target, 02-04 for
    :data:`config.SECOND_TARGET` (when the catalog has that column and ``parameters`` names no
    ``TARGET``), then 05 and 06. Quick mode plans nothing (the notebooks' quick defaults).
    ``parameters`` (``make PARAMS=...``) go to every step and win over the plan's.

    Returns:
        The record written to the catalog's ``metrics/study.json``: each step's notebook,
        target, parameters, planned and actual seconds, the plan's notes, the machine's speed,
        the wall time, the load average before and after.
    """
    user = dict(parameters or {})
    check_data_dir(user)
    paths = config.get_paths(user.get("DATA_DIR"), quick=quick)
    second = None if "TARGET" in user else config.SECOND_TARGET
    if second and not _catalog_has(paths.data_dir, second):
        print(f"The catalog has no {second!r} column: one pass, for the default target.")
        second = None
    every = notebook_paths(notebooks_dir)
    notebooks = {nb.stem[:2]: nb for nb in every}
    check_parameters(every, user)
    out_dir = Path(output_dir) if output_dir else paths.executed
    out_dir.mkdir(parents=True, exist_ok=True)
    load_start, start = os.getloadavg(), time.perf_counter()
    steps: list[dict[str, Any]] = []

    def run(step: budget.Step) -> None:
        params = {"QUICK": bool(quick), **step.parameters, **user}
        nb_path = notebooks[step.notebook]
        out = out_dir / executed_name(nb_path, target=params.get("TARGET"))
        seconds = execute_notebook(nb_path, out, parameters=params, html=html,
                                   kernel_name=kernel_name, cell_timeout=cell_timeout)
        steps.append({"notebook": nb_path.stem, "target": params.get("TARGET")
                      or config.DEFAULT_TARGET, "parameters": dict(step.parameters),
                      "planned_seconds": step.planned_seconds, "seconds": round(seconds, 1),
                      "executed": out.name})

    run(budget.Step("01"))
    notes: list[str] = []
    if quick:
        plan = budget.quick_steps(second)
    else:
        speed = speed or budget.probe_machine(paths.interim.parent / "machine_probe.json")
        profile = read_catalog_profile(paths)
        plan, notes = budget.plan_study(budget_minutes, profile=profile, speed=speed,
                                        first_seconds=steps[0]["seconds"], second_target=second)
        print("\n".join(["", "The plan:", *(f"  {n}" for n in notes), ""]), flush=True)
    for step in plan:  # the plan's own names too: a renamed notebook parameter fails here
        check_parameters([notebooks[step.notebook]], step.parameters)
    for step in plan:
        run(step)
    stores = store_summary(paths.features)  # forward passes against distinct images
    record = {"budget_minutes": budget_minutes, "quick": bool(quick), "steps": steps,
              "plan_notes": notes, "machine_speed": None if quick else dataclasses.asdict(speed),
              "feature_stores": stores.to_dict("records"),
              "notebook_seconds": round(sum(s["seconds"] for s in steps), 1),
              "wall_seconds": round(time.perf_counter() - start, 1),
              "load_average": {"start": list(load_start), "end": list(os.getloadavg())}}
    record["provenance"] = provenance.collect(parameters={"BUDGET_MINUTES": budget_minutes,
                                                          **user}, seconds=record["wall_seconds"])
    write_metrics("study", record, paths=paths)
    print("\n" + budget.timing_table(record), flush=True)
    if not stores.empty:
        print("Feature stores (forward passes against distinct images):\n"
              + stores.to_string(index=False), flush=True)
    return record


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode (QUICK=True)")
    parser.add_argument("--only", nargs="+", help="notebook numbers or names to run")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a papermill parameter (repeatable)")
    parser.add_argument("--study", action="store_true",
                        help="the whole study: both targets, 05 and 06 (budget.study_plan)")
    parser.add_argument("--budget-minutes", type=float, default=config.STUDY_BUDGET_MINUTES,
                        help="the study's time budget: scales notebook 04's heavy steps")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    parser.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop (exit 1) when a cell runs longer than this")
    parser.add_argument("--strip", action="store_true",
                        help="strip outputs from the source notebooks instead of running them")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.strip:
        for path in notebook_paths(only=args.only):
            if strip_outputs(path):
                print(f"stripped {path.name}")
        return 0
    try:
        params = dict(parse_parameter(p) for p in args.param)
    except ValueError as err:
        parser.error(str(err))
    if args.study and args.only:
        parser.error("--study runs every notebook: leave out --only")
    options = {"quick": args.quick, "parameters": params, "html": not args.no_html,
               "cell_timeout": args.cell_timeout}
    try:
        if args.study:
            run_study(budget_minutes=args.budget_minutes, **options)
        else:
            run_notebooks(only=args.only, **options)
    except ParameterError as err:  # nothing has run
        print(f"\nNOTHING RAN: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"\nNOTEBOOK FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nINTERRUPTED (Ctrl-C): the notebook that was running is left partly executed "
              "in the executed folder; rerun to start it again.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
