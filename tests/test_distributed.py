"""Distributed search: KerasTuner's stock chief and workers as processes on 127.0.0.1.

The command-line checks take a second. The search tests start real chief and worker processes
(each imports TensorFlow): one search in which a worker is killed mid-search (shared by both
tests, run once per module), then a rerun of a copy of it that must resume it.
"""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest

from fashion_utils.tools import distributed, search_data

DIM, CLASSES = 8, 3
MAX_TRIALS = 6
SEARCH = dict(max_trials=MAX_TRIALS, epochs=2, patience=2, seed=5, threads_per_worker=1)


@pytest.fixture(scope="module")
def data():
    """Separable Gaussian blobs standing in for cached features."""
    return search_data.synthetic_search_data(n=160, dim=DIM, num_classes=CLASSES, seed=0)


# ---------------------------------------------------------------------------------- command line


def test_export_data_writes_synthetic_arrays(tmp_path, capsys):
    out = tmp_path / "search.npz"
    assert distributed.main(["export-data", "--synthetic", "--out", str(out)]) == 0
    assert "synthetic" in capsys.readouterr().out
    assert search_data.read_search_data(out)["x_train"].ndim == 2


def test_chief_and_worker_need_the_kerastuner_environment(tmp_path, monkeypatch, data):
    path = search_data.save_search_data(data, tmp_path / "d.npz")
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="Set KERASTUNER_TUNER_ID"):
        distributed.main(["worker", "--data-file", str(path), "--directory", str(tmp_path)])
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    with pytest.raises(SystemExit, match="missing: KERASTUNER_ORACLE_PORT"):
        distributed.main(["worker", "--data-file", str(path), "--directory", str(tmp_path)])
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")
    with pytest.raises(SystemExit, match="does not fit the role 'chief'"):
        distributed.main(["chief", "--data-file", str(path), "--directory", str(tmp_path)])
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    with pytest.raises(SystemExit, match="does not fit the role 'worker'"):
        distributed.main(["worker", "--data-file", str(path), "--directory", str(tmp_path)])


def test_the_chief_refuses_a_port_in_use(tmp_path, monkeypatch, data):
    """KerasTuner's chief would serve nothing and leave its workers waiting for an hour."""
    path = search_data.save_search_data(data, tmp_path / "d.npz")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
            distributed.main(["chief", "--data-file", str(path), "--directory", str(tmp_path),
                              "--max-trials", "2"])


def test_launch_refuses_bad_options(tmp_path, data):
    path = search_data.save_search_data(data, tmp_path / "d.npz")
    with pytest.raises(ValueError, match="Received: workers=0"):
        distributed.launch_distributed(workers=0, data_file=path, directory=tmp_path / "s")
    with pytest.raises(ValueError, match="Received: kind='grid'"):
        distributed.launch_distributed(workers=1, kind="grid", data_file=path,
                                       directory=tmp_path / "s")
    with pytest.raises(ValueError, match="Received: max_trials=0"):
        distributed.launch_distributed(workers=1, max_trials=0, data_file=path,
                                       directory=tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="No search data"):
        distributed.launch_distributed(workers=1, data_file=tmp_path / "none.npz",
                                       directory=tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing started, nothing written


# ---------------------------------------------------------------------------------- distributed


def _oracle_state(project_dir):
    return json.loads((project_dir / "oracle.json").read_text())


def test_a_resumed_chief_does_not_rerun_a_trial_that_ended(tmp_path):
    """A chief killed after its last trial ended leaves it "ongoing" in oracle.json (KerasTuner
    saves before it forgets it); resuming must not run it again, only the unfinished one."""
    project = tmp_path / "distributed"
    for trial_id, status in (("0", "COMPLETED"), ("1", "RUNNING"), ("2", "FAILED")):
        (project / f"trial_{trial_id}").mkdir(parents=True)
        (project / f"trial_{trial_id}" / "trial.json").write_text(json.dumps({"status": status}))
    state = {"ongoing_trials": {"tuner0": "0", "tuner1": "1", "tuner2": "2"}, "end_order": ["0"]}
    (project / "oracle.json").write_text(json.dumps(state))
    assert distributed._forget_ended_trials(project) == ["0", "2"]
    assert _oracle_state(project) == {**state, "ongoing_trials": {"tuner1": "1"}}
    assert distributed._forget_ended_trials(project) == []  # nothing more to forget
    assert distributed._forget_ended_trials(tmp_path / "none") == []


@pytest.fixture(scope="module")
def killed_search(tmp_path_factory, data):
    """A chief and two workers share one search; tuner1 is killed in its second trial.

    Returns ``(search, summary)`` once the supervisor has ended it.
    """
    directory = tmp_path_factory.mktemp("killed") / "dist"
    data_file = search_data.save_search_data(data, directory / "search_data.npz")
    search = distributed.launch_distributed(workers=2, data_file=data_file, directory=directory,
                                            **SEARCH)
    with search:  # kills whatever still runs if anything below fails
        deadline = time.monotonic() + 240
        # Kill tuner1 once it has finished one trial and started another.
        while len(search.assignments().get("tuner1", [])) < 2:
            assert time.monotonic() < deadline, search.log_tail("chief")
            assert search.workers["tuner1"].poll() is None, search.log_tail("tuner1")
            time.sleep(0.05)
        search.workers["tuner1"].kill()
        summary = search.wait(timeout=max(10.0, deadline - time.monotonic()))
    return search, summary


@pytest.mark.slow  # three Python processes importing TensorFlow on 2 cores: ~30-60 s
def test_distributed_search_survives_a_killed_worker(killed_search):
    """The survivor finishes the search, the chief ends when the workers are done."""
    search, summary = killed_search
    assignments = summary["assignments"]
    assert set(assignments) == {"tuner0", "tuner1"}  # both workers ran trials
    assert len(assignments["tuner1"]) >= 2
    assert summary["exit_codes"]["tuner0"] == 0  # the survivor finished the search
    assert summary["exit_codes"]["tuner1"] != 0
    # KerasTuner's chief waits forever for a dead worker: the supervisor stopped it, cleanly.
    assert summary["exit_codes"]["chief"] == 0
    assert summary["chief_stop"] == "stopped (SIGTERM)"
    assert all(p.poll() is not None for p in [search.chief, *search.workers.values()])
    # The chief's oracle holds every trial of both workers, each started by one worker once.
    table = summary["table"]
    assert summary["trials"] == len(table) == MAX_TRIALS
    assert sorted(t for ids in assignments.values() for t in ids) == sorted(
        row["trial_id"] for row in table)
    assert summary["reassigned_trials"] == []
    assert all(row["trial_id"] in assignments[row["worker"]] for row in table)
    # Lost: at most tuner1's last trial, still running in the oracle's own record.
    lost = summary["lost_trials"]
    assert set(lost) <= set(assignments["tuner1"][-1:])
    assert summary["completed_trials"] == MAX_TRIALS - len(lost)
    assert summary["incomplete_trials"] == len(lost)
    state = _oracle_state(search.project_dir)
    assert state["ongoing_trials"] == ({"tuner1": lost[0]} if lost else {})
    completed = [row["trial_id"] for row in table if row["status"] == "COMPLETED"]
    assert sorted(state["end_order"]) == sorted(completed)  # each ended once, none twice
    assert summary["new_trials"] == len(completed) and summary["runs"] == 1
    # Each worker wrote its own trials, in its own folder: a checkpoint per completed trial.
    for worker, ids in assignments.items():
        folder = search.directory / "workers" / worker / search.project_name
        assert {p.name for p in folder.glob("trial_*")} == {f"trial_{i}" for i in ids}
        for trial_id in set(ids) & set(completed):
            assert (folder / f"trial_{trial_id}" / "checkpoint.weights.h5").exists()
    survivor = json.loads((search.directory / "workers" / "tuner0" / search.project_name
                           / "worker_tuner0.json").read_text())
    assert survivor["trial_dirs"] == [f"trial_{i}" for i in assignments["tuner0"]]


@pytest.mark.slow  # the rerun starts three more processes: ~30-60 s
def test_rerunning_a_search_after_a_killed_worker_resumes_it(killed_search, tmp_path):
    """The same search run again reruns the lost trial; nothing is lost or counted twice."""
    first_search, first = killed_search
    directory = tmp_path / "dist"
    shutil.copytree(first_search.directory, directory)  # the killed search stays as it was
    lost = first["lost_trials"]
    assert lost == first["assignments"]["tuner1"][-1:]  # killed mid-trial: one trial to rerun
    search = distributed.launch_distributed(workers=2, data_file=directory / "search_data.npz",
                                            directory=directory, **SEARCH)
    with search:
        summary = search.wait(timeout=240)

    assert all(code == 0 for code in summary["exit_codes"].values()), summary["exit_codes"]
    table = summary["table"]
    ids = [row["trial_id"] for row in table]
    # The same trials as before, none new, none twice; every one of them completed now.
    assert len(ids) == len(set(ids)) == summary["trials"] == MAX_TRIALS
    assert sorted(ids) == sorted(row["trial_id"] for row in first["table"])
    assert summary["completed_trials"] == MAX_TRIALS and summary["lost_trials"] == []
    assert summary["new_trials"] == len(lost) and summary["runs"] == 2
    state = _oracle_state(search.project_dir)
    assert sorted(state["end_order"]) == sorted(ids)  # each trial ended exactly once
    assert state["ongoing_trials"] == {} and state["retry_queue"] == []
    # Completed trials were not rerun; the lost one was, with its own hyperparameters.
    before = {row["trial_id"]: row for row in first["table"]}
    after = {row["trial_id"]: row for row in table}
    for trial_id, row in before.items():
        hps = {k: v for k, v in row.items() if k.startswith("hp_") and v == v}
        assert {k: after[trial_id][k] for k in hps} == hps
        if trial_id not in lost:
            assert after[trial_id]["val_accuracy"] == row["val_accuracy"]
    # Who reran it: one worker, whose folder now holds its checkpoint.
    assert set(summary["reassigned_trials"]) <= set(lost)
    for trial_id in lost:
        worker = after[trial_id]["worker"]
        assert trial_id in summary["assignments"][worker]
        assert (directory / "workers" / worker / search.project_name / f"trial_{trial_id}"
                / "checkpoint.weights.h5").exists()
    assert sum(summary["trials_per_worker"].values()) == (
        MAX_TRIALS + len(summary["reassigned_trials"]))
