"""The runner's status line: cell n of N, section, elapsed time, the kernel's progress."""

from __future__ import annotations

import io
import json

from fashion_utils.tools import terminal


def _cells():
    return [{"cell_type": "markdown", "source": "# 04 · Tuning\n> purpose"},
            {"cell_type": "code", "source": "TARGET = None"},
            {"cell_type": "markdown", "source": "Some prose.\n## Search the head\nmore"},
            {"cell_type": "code", "source": "\n\ntuner = make_tuner()\nsearch(tuner)"},
            {"cell_type": "code", "source": ["x = 1\n", "y = 2"]}]


def test_a_cell_is_labelled_by_its_section_and_first_line():
    cells = _cells()
    assert terminal.cell_label(cells, 1) == ("04 · Tuning", "TARGET = None")
    assert terminal.cell_label(cells, 3) == ("Search the head", "tuner = make_tuner()")
    assert terminal.cell_label(cells, 4) == ("Search the head", "x = 1")


def test_clock_and_progress_text():
    assert terminal.clock(0) == "0:00" and terminal.clock(61) == "1:01"
    assert terminal.clock(3600 * 2 + 5) == "2:00:05"
    assert terminal.progress_text({"desc": "seed 1", "n": 3, "total": None, "unit": ""}) == "seed 1 3"


def test_off_a_terminal_a_line_is_printed_when_the_section_changes(tmp_path):
    out = io.StringIO()
    status = terminal.NotebookStatus(notebook="04_tuning", target="articleType",
                                     progress_file=tmp_path / "p", stream=out, tty=False)
    cells = _cells()
    status.cell(cells, 0)  # markdown: nothing
    status.cell(cells, 1)
    status.cell(cells, 3)
    status.cell(cells, 4)  # same section, within the interval: no new line
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("04_tuning [articleType] | cell 1/3 | 0:00 | 04 · Tuning")
    assert lines[1].startswith("04_tuning [articleType] | cell 2/3 | 0:00 | Search the head")


def test_the_kernels_progress_is_read_line_by_line(tmp_path):
    file = tmp_path / "p"
    status = terminal.NotebookStatus(notebook="03", target=None, progress_file=file,
                                     stream=io.StringIO(), tty=False)
    status.cell(_cells(), 3)
    file.write_text(json.dumps({"desc": "extracting lite0 @ 96px", "n": 256, "total": 70000,
                                "unit": "img"}) + "\n" + '{"desc": "half a li')
    assert status.read_progress()
    assert status.line().endswith("| extracting lite0 @ 96px 256/70,000 img")
    assert not status.read_progress()  # the half-written line waits for its end
    with open(file, "a") as fh:
        fh.write('ne", "n": 1, "total": 2, "unit": "x"}\n')
    assert status.read_progress()
    assert status.line().endswith("| half a line 1/2 x")
    status.cell(_cells(), 4)  # a new cell: the old step's progress is gone
    assert status.line().endswith("| cell 3/3 | 0:00 | Search the head")


def test_on_a_terminal_the_line_is_redrawn_in_place(tmp_path):
    out = io.StringIO()
    status = terminal.NotebookStatus(notebook="01_eda", target=None, progress_file=tmp_path / "p",
                                     stream=out, tty=True)
    with status:
        status.cell(_cells(), 1)
        status.cell(_cells(), 3)
    assert out.getvalue().count("\r\x1b[K") >= 3 and "\n" not in out.getvalue()
    assert not (tmp_path / "p").exists()  # the progress file is removed at the end
