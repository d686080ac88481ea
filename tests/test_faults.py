"""Real kills (issue 15): a child process is sent SIGKILL at a random moment of its work, then
the work is rerun; nothing half-written may remain and the result must equal an uninterrupted
run. Each test repeats its kill a few times (a few seconds each, the child's imports included)
and prints its tally: kills tried, killed mid-work, resumed, identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fashion_utils import config

from conftest import write_image

pytestmark = pytest.mark.slow

KILLS = 3  # per test
#: Where the child finds the package whatever the working folder.
ENV = {**os.environ, "PYTHONPATH": str(config.PROJ_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _kill_at_random(code: str, args: dict, *, window: float, rng: np.random.Generator,
                    timeout: float = 120.0) -> bool:
    """Run ``code`` (reads its arguments from a JSON file, prints READY when its work starts,
    DONE when it ends) in a fresh Python; SIGKILL its process group a uniform random time in
    ``[0, window]`` s after READY. Returns whether it died before DONE."""
    arg_file = Path(args["root"]) / f"args-{rng.integers(1 << 30)}.json"
    arg_file.write_text(json.dumps(args))
    child = subprocess.Popen([sys.executable, "-c", code, str(arg_file)], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    line = ""
    while "READY" not in line:
        line = child.stdout.readline()
        if not line and child.poll() is not None:
            raise RuntimeError(f"the child exited with {child.returncode} before READY")
        if time.monotonic() > deadline:
            os.killpg(child.pid, signal.SIGKILL)
            raise RuntimeError("the child never got READY")
    time.sleep(float(rng.uniform(0.0, window)))
    family = _descendants(child.pid)  # a kernel runs in a session of its own
    os.killpg(child.pid, signal.SIGKILL)
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out, _ = child.communicate(timeout=timeout)
    return "DONE" not in out


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def _no_temporaries(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------- feature extraction

EXTRACT = r"""
import json, sys, time
from fashion_utils.vision import features
args = json.load(open(sys.argv[1]))
real = features._write_shard
def slow(*a):  # widen the window: a shard every ~0.1 s
    time.sleep(0.1)
    return real(*a)
features._write_shard = slow
import keras
def factory():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs) * 2.0)
print("READY", flush=True)
features.extract_embeddings(args["ids"], args["paths"], model_factory=factory, model_key="m",
                            image_size=16, cache_dir=args["cache"], batch_size=8,
                            chunk_size=args["chunk"], progress=False)
print("DONE", flush=True)
"""


def _mean_colour():
    import keras

    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs) * 2.0)


def test_feature_extraction_killed_anywhere_resumes_to_the_same_features(tmp_path):
    from fashion_utils.vision import features

    paths = [str(write_image(tmp_path / "img" / f"{i}.png", size=(20, 20), seed=i))
             for i in range(96)]
    ids = [str(i) for i in range(96)]
    kw = dict(model_key="m", image_size=16, batch_size=8, progress=False)
    _, reference = features.extract_embeddings(ids, paths, model_factory=_mean_colour,
                                               cache_dir=tmp_path / "reference", chunk_size=8,
                                               **kw)
    rng = np.random.default_rng(15)
    tally = {"tried": 0, "killed mid-work": 0, "resumed": 0, "identical": 0}
    for k in range(KILLS):
        cache = tmp_path / f"cache{k}"
        # the kill at chunk size 8; the rerun at 8, then at 16 and 24 (issue 15's case)
        killed = _kill_at_random(EXTRACT, {"root": str(tmp_path), "ids": ids, "paths": paths,
                                           "cache": str(cache), "chunk": 8},
                                 window=1.5, rng=rng)
        tally["tried"] += 1
        tally["killed mid-work"] += killed
        _, again = features.extract_embeddings(ids, paths, model_factory=_mean_colour,
                                               cache_dir=cache, chunk_size=8 * (k + 1), **kw)
        tally["resumed"] += 1
        tally["identical"] += bool(np.allclose(again, reference, atol=1e-4))
        [folder] = [p for p in cache.iterdir() if p.is_dir()]
        assert {p.name for p in folder.iterdir()} - {p.name for p in folder.glob(
            features.SHARD_GLOB)} == {features.STORE_FILE}
        summary = features.store_summary(cache).iloc[0]
        assert summary.distinct_images == len(ids)  # every image stored, none lost
        assert not _no_temporaries(cache)
    print("feature extraction kills:", tally)
    assert tally["identical"] == tally["resumed"] == tally["tried"] == KILLS
    assert tally["killed mid-work"] >= 1  # the window is real work, not an empty start


# --------------------------------------------------------------------------- tuner search

SEARCH = r"""
import json, sys
from fashion_utils.tools import search_data
from fashion_utils.training import tuning
args = json.load(open(sys.argv[1]))
d = search_data.synthetic_search_data(n=160, dim=8, num_classes=3, seed=0)
hm = tuning.make_hypermodel(8, 3, seed=1)
tuner = tuning.make_tuner("random", hm, directory=args["dir"], project_name="search",
                          max_trials=4, seed=3)
print("READY", flush=True)
tuning.run_search(tuner, d["x_train"], d["y_train"], d["x_val"], d["y_val"], epochs=3,
                  patience=3)
print("DONE", flush=True)
"""


def test_a_tuner_search_killed_anywhere_resumes_without_losing_or_repeating_a_trial(tmp_path):
    from fashion_utils.training import tuning
    from fashion_utils.tools import search_data

    data = search_data.synthetic_search_data(n=160, dim=8, num_classes=3, seed=0)
    hm = tuning.make_hypermodel(8, 3, seed=1)
    rng = np.random.default_rng(16)
    tally = {"tried": 0, "killed mid-work": 0, "resumed": 0, "complete": 0}
    for k in range(KILLS):
        folder = tmp_path / f"search{k}"
        killed = _kill_at_random(SEARCH, {"root": str(tmp_path), "dir": str(folder)},
                                 window=3.0, rng=rng)
        tally["tried"] += 1
        tally["killed mid-work"] += killed
        tuner = tuning.make_tuner("random", hm, directory=folder, project_name="search",
                                  max_trials=4, seed=3)
        result = tuning.run_search(tuner, data["x_train"], data["y_train"], data["x_val"],
                                   data["y_val"], epochs=3, patience=3)
        tally["resumed"] += 1
        trials = result.trials
        ok = bool(result.summary["completed_trials"] == 4 and len(trials) == 4
              and trials["trial_id"].is_unique and trials["val_accuracy"].notna().all())
        tally["complete"] += int(ok)
        assert ok, trials
    print("tuner search kills:", tally)
    assert tally["complete"] == tally["resumed"] == tally["tried"] == KILLS


# --------------------------------------------------------------------------- a model save

SMALL_MODEL = r"""
import keras
from fashion_utils.vision import models
def small_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Resizing(16, 16)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    out = models.ClassNames(["a", "b"])(keras.layers.Dense(2, activation="softmax")(x))
    return keras.Model(inputs, out)
"""

SAVE = SMALL_MODEL + r"""
import json, sys
args = json.load(open(sys.argv[1]))
model = small_model()
print("READY", flush=True)
for i in range(1000):  # keep saving over the same file
    models.save_end_to_end_model(model, args["path"])
print("DONE", flush=True)
"""


def test_a_model_save_killed_anywhere_leaves_a_loadable_file(tmp_path):
    from fashion_utils.vision import models

    scope: dict = {}
    exec(SMALL_MODEL, scope)  # the same model, built here
    path = tmp_path / "model.keras"
    rng = np.random.default_rng(17)
    tally = {"tried": 0, "killed mid-work": 0, "loadable": 0}
    for _ in range(KILLS):
        killed = _kill_at_random(SAVE, {"root": str(tmp_path), "path": str(path)},
                                 window=1.0, rng=rng)
        tally["tried"] += 1
        tally["killed mid-work"] += killed
        if path.exists():  # a kill before the first save leaves no file, never half a file
            model = models.load_end_to_end_model(path)
            tally["loadable"] += models.class_names_of(model) == ["a", "b"]
        else:
            tally["loadable"] += 1  # nothing written yet is not half written
        models.save_end_to_end_model(scope["small_model"](), path)
        assert not _no_temporaries(tmp_path)  # the next save cleaned what the kill left
    print("model save kills:", tally)
    assert tally["loadable"] == tally["tried"] == KILLS


# --------------------------------------------------------------------------- a notebook run

NOTEBOOK_BODY = r"""
import numpy as np
from fashion_utils import atomic
for i in range(400):
    atomic.write_json_atomic(OUT + "/metrics.json", {"i": i, "values": list(range(2000))})
    atomic.save_npy_atomic(OUT + "/features.npy", np.full((300, 64), i, dtype=np.float32))
"""

RUN = r"""
import json, sys
from pathlib import Path
from fashion_utils.tools import runner
args = json.load(open(sys.argv[1]))
print("READY", flush=True)
runner.run_notebooks(parameters={"OUT": args["out"]}, notebooks_dir=Path(args["src"]),
                     output_dir=Path(args["executed"]), html=False)
print("DONE", flush=True)
"""


def test_a_notebook_run_killed_anywhere_reruns_and_leaves_nothing_half_written(tmp_path):
    import nbformat

    src = tmp_path / "notebooks"
    src.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    parameters = nbformat.v4.new_code_cell("OUT = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(NOTEBOOK_BODY)]
    nbformat.write(nb, str(src / "01_writes.ipynb"))
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(18)
    tally = {"tried": 0, "killed mid-work": 0, "intact": 0, "rerun complete": 0}
    args = {"root": str(tmp_path), "out": str(out), "src": str(src),
            "executed": str(tmp_path / "executed")}
    for _ in range(KILLS):
        killed = _kill_at_random(RUN, args, window=6.0, rng=rng)  # kernel start + writes
        tally["tried"] += 1
        tally["killed mid-work"] += killed
        intact = True
        if (out / "metrics.json").exists():
            intact &= json.loads((out / "metrics.json").read_text())["values"][-1] == 1999
        if (out / "features.npy").exists():
            intact &= np.load(out / "features.npy").shape == (300, 64)
        tally["intact"] += intact
    from fashion_utils.tools import runner

    runner.run_notebooks(parameters={"OUT": str(out)}, notebooks_dir=src,
                         output_dir=tmp_path / "executed", html=False)
    tally["rerun complete"] += json.loads((out / "metrics.json").read_text())["i"] == 399
    assert float(np.load(out / "features.npy")[0, 0]) == 399.0
    assert not _no_temporaries(out)
    print("notebook run kills:", tally)
    assert tally["intact"] == tally["tried"] == KILLS and tally["rerun complete"] == 1
