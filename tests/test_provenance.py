"""Provenance: the commit, parameters, machine and versions every metrics file records."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from fashion_utils import config, provenance


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None,
                                              "dirty_excludes": list(provenance.RUN_OUTPUTS)}


def test_in_a_git_checkout_the_commit_and_dirty_flag_are_read(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env,
                       capture_output=True)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "m.json").write_text("{}")
    git("add", "a.txt", "reports/m.json")
    git("commit", "-q", "-m", "one")
    state = provenance.git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and state["dirty"] is False
    (tmp_path / "reports" / "m.json").write_text('{"a": 1}')  # what a run writes: still clean
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    assert provenance.git_state(tmp_path)["dirty"] is True and state["commit"] in str(
        provenance.git_state(tmp_path))


def test_collect_records_parameters_time_machine_and_versions():
    record = provenance.collect(parameters={"TARGET": "label", "EPOCHS": 3}, seconds=12.5)
    assert record["parameters"] == {"TARGET": "label", "EPOCHS": 3}
    assert record["seconds"] == 12.5
    assert record["machine"]["cpu_count"] == os.cpu_count()
    assert record["machine"]["cpu"] == provenance.cpu()
    assert record["machine"]["gpus"] is None or isinstance(record["machine"]["gpus"], list)
    assert {"numpy", "pandas", "keras"} <= set(record["versions"])
    assert set(record["versions"]) <= set(provenance.PACKAGES)
    assert record["git"] == provenance.git_state(config.PROJ_ROOT)


@pytest.mark.parametrize("flags, widest", [
    ("fpu sse2 avx avx2 avx512f avx512_bf16", "avx512_bf16"), ("fpu sse2 avx avx2 fma", "avx2"),
    ("fpu sse2", None)])
def test_the_cpu_record_names_the_model_and_widest_vector_isa(tmp_path, flags, widest):
    info = tmp_path / "cpuinfo"
    core = f"processor\t: {{n}}\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\n"
    info.write_text(core.format(n=0) + core.format(n=1))
    assert provenance.cpu(info) == {"model": "AMD EPYC", "vector_isa": widest}
    assert provenance.cpu(tmp_path / "missing") == {"model": None, "vector_isa": None}
