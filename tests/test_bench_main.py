"""``python -m fashion_utils.tools.bench``: sections, the results file and the docs pages' tables."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from fashion_utils.tools.bench import __main__ as cli
from fashion_utils.tools.bench import measure, scale


def test_main_runs_the_sections_asked_for_and_writes_json(tmp_path, monkeypatch, capsys):
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return {"value": 1}

    monkeypatch.setitem(cli.SECTIONS, "fake", fake)
    monkeypatch.setitem(cli.SECTIONS, "extraction", fake)
    out = tmp_path / "benchmarks.json"
    assert cli.main(["fake", "extraction", "--sizes", "32", "64", "--out", str(out),
                     "--no-docs"]) == 0
    assert calls == [{}, {"sizes": (32, 64)}]  # --sizes goes to the extraction section only
    data = json.loads(out.read_text())
    assert data["fake"] == {"value": 1} and data["extraction"] == {"value": 1}
    assert set(data["machine"]) == {"cpus", "platform", "python", "date"}
    assert f"written to {out}" in capsys.readouterr().out


def test_scale_options_go_to_the_scale_section(tmp_path, monkeypatch):
    calls = {}

    def fake(**kwargs):
        calls.update(kwargs)
        return {}

    monkeypatch.setitem(cli.SECTIONS, "scale", fake)
    out = tmp_path / "benchmarks.json"
    cli.main(["scale", "--n", "8", "--subset", "0", "--no-small", "--queries", "2", "--pool-size",
              "2", "--full-size", "64", "80", "--random-weights", "--root", str(tmp_path),
              "--out", str(out), "--no-docs"])
    assert calls == {"n": 8, "subset": None, "measure_full": True, "small_image_size": None,
                     "n_queries": 2, "pool_size": 2, "full_image_size": (64, 80),
                     "root": tmp_path, "weights": None}
    cli.main(["scale", "--out", str(out), "--no-docs"])  # the defaults are bench_scale's
    defaults = {k: v.default for k, v in inspect.signature(scale.bench_scale).parameters.items()}
    assert calls == {k: defaults[k] for k in calls}


def test_an_unknown_section_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(cli.SECTIONS, "fake", lambda **_: pytest.fail("ran a section"))
    out = tmp_path / "benchmarks.json"
    with pytest.raises(SystemExit) as err:
        cli.main(["fake", "nonsense", "--out", str(out)])
    assert err.value.code == 2 and not out.exists()


def test_sections_and_their_tables_are_the_known_ones():
    assert list(cli.SECTIONS) == ["extraction", "scale", "recommender", "training", "explorer"]
    assert set(cli.MARKDOWN) == {"extraction", "scale", "training", "explorer"}
    assert set(cli.MARKDOWN) == set(measure.BENCH_PAGES)  # every table has its page, and only those
    # the hour-long training budgets and the 12 GB explorer catalog run only when asked for
    assert cli._parser().parse_args([]).sections == ["extraction", "scale", "recommender"]
    explorer = cli._parser().parse_args(["explorer", "--items", "500", "--small-photos"])
    assert cli._section_options("explorer", explorer) == {"n": 500, "full_size": False}
    assert cli._section_options("explorer", cli._parser().parse_args(["explorer"])) == {
        "n": 44_000, "full_size": True}


def test_a_section_with_a_table_rewrites_it_on_its_page_unless_no_docs(tmp_path, monkeypatch,
                                                                       capsys):
    written = []

    def fake_update(markdown, *, section):
        written.append((markdown, section))
        return tmp_path / "PAGE.md"

    monkeypatch.setitem(cli.SECTIONS, "extraction", lambda **_: {"value": 1})
    monkeypatch.setitem(cli.MARKDOWN, "extraction", lambda result: f"| {result['value']} |")
    monkeypatch.setattr(cli, "update_page", fake_update)
    out = tmp_path / "benchmarks.json"
    cli.main(["extraction", "--out", str(out), "--no-docs"])
    assert written == []
    cli.main(["extraction", "--out", str(out)])
    assert written == [("| 1 |", "extraction")]
    assert f"table updated in {tmp_path / 'PAGE.md'}" in capsys.readouterr().out

    def missing(markdown, *, section):
        raise ValueError("PAGE.md lacks the markers")

    monkeypatch.setattr(cli, "update_page", missing)
    assert cli.main(["extraction", "--out", str(out)]) == 0  # the results file still counts
    assert "(table not updated: PAGE.md lacks the markers)" in capsys.readouterr().out


def test_training_options_go_to_the_training_section(tmp_path, monkeypatch):
    calls = {}

    def fake(**kwargs):
        calls.update(kwargs)
        return {}

    monkeypatch.setitem(cli.SECTIONS, "training", fake)
    out = tmp_path / "benchmarks.json"
    cli.main(["training", "--minutes", "0.5", "2", "--target", "masterCategory", "--data-dir",
              str(tmp_path), "--out", str(out), "--no-docs"])
    assert calls == {"minutes": (0.5, 2.0), "target": "masterCategory", "data_dir": tmp_path,
                     "out": out}


def test_the_module_runs_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fashion_utils.tools.bench", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    for option in ("extraction", "--sizes", "--out", "--no-docs", "--subset-only", "--no-small",
                   "training", "--minutes", "--target"):
        assert option in done.stdout
