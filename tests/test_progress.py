"""Progress reports of long steps: to the runner's file when one listens, else nothing written."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from fashion_utils import progress


def _reports(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_nothing_is_written_when_no_runner_listens(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.report("step", 3, total=10)
    assert list(tmp_path.iterdir()) == []
    assert list(progress.track(range(5), desc="quiet", bar=False)) == [0, 1, 2, 3, 4]


def test_track_reports_the_start_and_the_final_count(tmp_path, monkeypatch):
    file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(file))
    assert list(progress.track(list("abcdef"), desc="hashes", unit="img")) == list("abcdef")
    reports = _reports(file)
    assert reports[0] == {"desc": "hashes", "n": 0, "total": 6, "unit": "img"}
    assert reports[-1] == {"desc": "hashes", "n": 6, "total": 6, "unit": "img"}
    assert all(a["n"] <= b["n"] for a, b in zip(reports, reports[1:]))


def test_reports_are_throttled_but_the_last_is_always_written(tmp_path, monkeypatch):
    file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(file))
    with progress.Progress(total=10_000, desc="images", unit="img", bar=False) as counter:
        for _ in range(10_000):
            counter.update(1)
    reports = _reports(file)
    assert len(reports) < 50  # not one line per item
    assert reports[-1]["n"] == 10_000


def test_a_negative_total_is_refused():
    with pytest.raises(ValueError, match="total=-1"):
        progress.Progress(total=-1, desc="x", bar=False)


def test_a_runner_that_went_away_does_not_stop_the_step(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "gone" / "progress.jsonl"))
    assert sum(progress.track(range(4), desc="x")) == 6


def test_the_keras_callback_reports_epochs_and_counts_a_searchs_trials(tmp_path, monkeypatch):
    import keras

    file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(file))
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    callback = progress.keras_callback("random search", count_trials=True, trials=3)
    for _ in range(2):  # KerasTuner gives each trial a deep copy of the callback
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
                  callbacks=[copy.deepcopy(callback)])
    epochs = [r for r in _reports(file) if r["unit"] == "epochs"]
    assert [(r["n"], r["total"]) for r in epochs] == [(1, 2), (2, 2), (1, 2), (2, 2)]
    assert epochs[0]["desc"].startswith("random search, trial 1/3 (val_accuracy ")
    assert epochs[-1]["desc"].startswith("random search, trial 2/3 (val_accuracy ")
