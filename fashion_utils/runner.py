"""Execute the study's notebooks with papermill, in order, into ``reports/<catalog>/executed/``.

Usage::

    python -m fashion_utils.runner                 # every notebooks/NN_*.ipynb, full mode
    python -m fashion_utils.runner --quick         # quick mode (small sample, small images)
    python -m fashion_utils.runner --only 03 04 -p TARGET=articleType -p IMAGE_SIZE=64
    python -m fashion_utils.runner --strip         # strip outputs from the source notebooks
    python -m fashion_utils.runner --study --budget-minutes 60   # the whole study (`make`)

Each executed notebook is written as ``.ipynb`` and as an HTML copy. The first failure stops
the run, names the notebook and the cell, and the process exits non-zero.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from fashion_utils import budget, config, provenance
from fashion_utils.atomic import write_text_atomic
from fashion_utils.data import load_catalog
from fashion_utils.evaluation import write_metrics

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
                  kernel_name: str = "python3") -> list[Path]:
    """Execute the numbered notebooks in order with papermill.

    Args:
        quick: pass ``QUICK=True`` (small sample, small images) to every notebook.
        parameters: extra papermill parameters for every notebook (unknown names are ignored
            by the notebooks that lack them, as papermill does).
        only: restrict to these notebook numbers/names.
        notebooks_dir: where the source notebooks are.
        output_dir: where executed copies go (default: the catalog's
            ``config.get_paths(DATA_DIR, quick=...).executed``, so that each catalog keeps
            its own executed study).
        html: also write an HTML copy of each executed notebook.
        kernel_name: the Jupyter kernel to run.

    Returns:
        Paths of the executed notebooks.

    Raises:
        RuntimeError: naming the notebook and cell that failed.
    """
    params = {"QUICK": bool(quick), **(parameters or {})}
    out_dir = (Path(output_dir) if output_dir
               else config.get_paths(params.get("DATA_DIR"), quick=quick).executed)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    for nb_path in notebook_paths(notebooks_dir, only=only):
        out = out_dir / executed_name(nb_path, target=params.get("TARGET"))
        execute_notebook(nb_path, out, parameters=params, html=html, kernel_name=kernel_name)
        executed.append(out)
    return executed


def execute_notebook(nb_path: Path, out: Path, *, parameters: dict[str, Any], html: bool = True,
                     kernel_name: str = "python3") -> float:
    """Execute one notebook with papermill into ``out`` (and an HTML copy); returns its seconds.

    Raises:
        RuntimeError: naming the notebook and cell that failed.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb_params = dict(parameters)
    if "INTERACTIVE" in pm.inspect_notebook(str(nb_path)):
        nb_params.setdefault("INTERACTIVE", False)  # no browser under papermill: static views
    print(f"==> {nb_path.name}  parameters={nb_params}", flush=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(nb_path), str(out), parameters=nb_params, kernel_name=kernel_name,
                            cwd=str(nb_path.parent), progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        raise RuntimeError(
            f"{nb_path.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n--- cell source ---\n{err.source}\n"
            f"The partly executed notebook is {out}") from err
    seconds = time.perf_counter() - start
    if html:
        export_html(out)
    print(f"    done in {seconds:.1f} s -> {out}", flush=True)
    return seconds


def _catalog_has(data_dir: Path, column: str) -> bool:
    catalog, _ = load_catalog(data_dir, check_images=False)
    return column in catalog.columns


def run_study(*, budget_minutes: float = config.STUDY_BUDGET_MINUTES, quick: bool = False,
              parameters: dict[str, Any] | None = None, html: bool = True,
              notebooks_dir: Path = config.NOTEBOOKS_DIR, output_dir: Path | None = None,
              kernel_name: str = "python3") -> dict[str, Any]:
    """Execute the whole study (:func:`budget.study_plan`) and write its timing table.

    The plan runs 01-04 for the default target, 02-04 for :data:`config.SECOND_TARGET` (when
    the catalog has that column and ``parameters`` names no ``TARGET``), then 05 and 06.
    ``parameters`` (``make PARAMS=...``) go to every step and win over the plan's.

    Returns:
        The record written to the catalog's ``metrics/study.json``: each step's notebook,
        target, parameters and seconds, the wall time, the load average before and after.
    """
    user = dict(parameters or {})
    paths = config.get_paths(user.get("DATA_DIR"), quick=quick)
    second = None if "TARGET" in user else config.SECOND_TARGET
    if second and not _catalog_has(paths.data_dir, second):
        print(f"The catalog has no {second!r} column: one pass, for the default target.")
        second = None
    plan = budget.study_plan(budget_minutes, quick=quick, second_target=second)
    out_dir = Path(output_dir) if output_dir else paths.executed
    out_dir.mkdir(parents=True, exist_ok=True)
    load_start, start = os.getloadavg(), time.perf_counter()
    steps = []
    for step in plan:
        params = {"QUICK": bool(quick), **step.parameters, **user}
        [nb_path] = notebook_paths(notebooks_dir, only=[step.notebook])
        out = out_dir / executed_name(nb_path, target=params.get("TARGET"))
        seconds = execute_notebook(nb_path, out, parameters=params, html=html,
                                   kernel_name=kernel_name)
        steps.append({"notebook": nb_path.stem, "target": params.get("TARGET")
                      or config.DEFAULT_TARGET, "parameters": dict(step.parameters),
                      "seconds": round(seconds, 1), "executed": out.name})
    record = {"budget_minutes": budget_minutes, "quick": bool(quick), "steps": steps,
              "notebook_seconds": round(sum(s["seconds"] for s in steps), 1),
              "wall_seconds": round(time.perf_counter() - start, 1),
              "load_average": {"start": list(load_start), "end": list(os.getloadavg())}}
    record["provenance"] = provenance.collect(parameters={"BUDGET_MINUTES": budget_minutes,
                                                          **user}, seconds=record["wall_seconds"])
    write_metrics("study", record, paths=paths)
    print("\n" + budget.timing_table(record), flush=True)
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
    parser.add_argument("--strip", action="store_true",
                        help="strip outputs from the source notebooks instead of running them")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.strip:
        for path in notebook_paths(only=args.only):
            if strip_outputs(path):
                print(f"stripped {path.name}")
        return 0
    params = dict(parse_parameter(p) for p in args.param)
    if args.study and args.only:
        parser.error("--study runs every notebook: leave out --only")
    try:
        if args.study:
            run_study(budget_minutes=args.budget_minutes, quick=args.quick, parameters=params,
                      html=not args.no_html)
        else:
            run_notebooks(quick=args.quick, parameters=params, only=args.only,
                          html=not args.no_html)
    except RuntimeError as err:
        print(f"\nNOTEBOOK FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
