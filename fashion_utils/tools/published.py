"""What an executed notebook may show a reader: the one checker of the published outputs.

An executed notebook (``reports/<catalog>/executed/*.ipynb``, the runner's papermill output) is
part of the report. :func:`notebook_problems` lists everything in it that is noise rather than
result: output on stderr, warnings, progress bars, absolute machine paths, widget state and
empty tables printed as such. Each is filtered where it starts (the package, the notebooks),
never by editing the executed file; ``tests/test_published.py`` and the quick smoke run hold
the rule.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

#: The output MIME type of a displayed ipywidget.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: The cell papermill adds with the passed parameters (not part of the notebook's source).
INJECTED_TAG = "injected-parameters"

#: A pattern per problem in an output's text, by its name in the problem list.
TEXT_PROBLEMS: Mapping[str, re.Pattern[str]] = {
    "a warning": re.compile(r"Warning|WARNING"),
    "a progress bar": re.compile(r"\r|it/s|█|\d+/\d+ \["),
    "an absolute path": re.compile(
        r"(?<![\w.~])/(?:tmp|work|root|home|usr|var|opt|mnt|private|Users)/"),
    "an empty table": re.compile(r"Empty DataFrame"),
}


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output_texts(output: Mapping[str, Any]) -> list[str]:
    """The texts a reader sees in one output: a stream, an error, every ``text/*`` item."""
    kind = output.get("output_type")
    if kind == "stream":
        return [_text(output.get("text", ""))]
    if kind == "error":
        return [f"{output.get('ename')}: {output.get('evalue')}"]
    data = output.get("data", {})
    return [_text(v) for k, v in data.items() if k.startswith("text/")]


def _excerpt(text: str, match: re.Match[str]) -> str:
    start = max(0, match.start() - 40)
    return repr(text[start:match.end() + 40])


def _notebook(notebook: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """A notebook's JSON, read from its file when given a path."""
    nb = notebook
    if isinstance(notebook, (str, Path)):
        nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    if not isinstance(nb, Mapping) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"Expected a notebook (a file, or JSON with 'cells'). "
                         f"Received: notebook={str(notebook)[:80]!r}")
    return nb


def notebook_problems(notebook: Mapping[str, Any] | str | Path) -> list[str]:
    """Every problem of an executed notebook (a file or its parsed JSON), one line each.

    A problem is an output on stderr; an error output; output text holding a warning
    (``Warning``/``WARNING``), a progress bar (a carriage return, ``it/s``, ``█``, ``3/70 [``),
    an absolute machine path (``/work/...``, ``/tmp/...``; ``~/...`` and relative paths are
    fine) or ``Empty DataFrame``; a displayed widget; widget state in the notebook's metadata.
    An empty list: nothing to clean.

    Raises:
        ValueError: ``notebook`` is neither a notebook file nor a notebook's JSON.
    """
    nb = _notebook(notebook)
    problems = []
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata: widget state (metadata.widgets)")
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            where = f"cell {index}"
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: output on stderr: {_text(output['text'])[:80]!r}")
            if output.get("output_type") == "error":
                problems.append(f"{where}: an error output: {output.get('ename')}")
            if WIDGET_VIEW in output.get("data", {}):
                problems.append(f"{where}: a displayed widget ({WIDGET_VIEW})")
            for text in _output_texts(output):
                for name, pattern in TEXT_PROBLEMS.items():
                    match = pattern.search(text)
                    if match:
                        problems.append(f"{where}: {name}: {_excerpt(text, match)}")
    return problems


def source_cells(notebook: Mapping[str, Any] | str | Path) -> list[tuple[str, str]]:
    """A notebook's cells as ``(cell type, source)``, without papermill's injected parameters
    cell: what an executed notebook must share with its source in ``notebooks/``."""
    nb = _notebook(notebook)
    return [(c["cell_type"], _text(c.get("source", ""))) for c in nb["cells"]
            if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
