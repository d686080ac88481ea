"""Distributed KerasTuner search on KerasTuner's public API: one chief (the oracle), N workers.

Every process runs the stock ``tuner.search()`` in KerasTuner's documented distributed mode:
``KERASTUNER_TUNER_ID`` (``"chief"``, ``"tuner0"``, ``"tuner1"``, ...), ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT`` set. The chief's ``search()`` serves the oracle and blocks; each
worker's asks it for trials until told to stop. KerasTuner's chief never leaves while a dead
worker's trial is still running, so :func:`launch_distributed` starts the processes under a
small supervisor, :class:`DistributedSearch`: its ``wait()`` waits until every worker has exited
(finished or died), then stops the chief (SIGTERM, which the chief takes as a clean stop;
SIGKILL after a grace period) and summarises the search from disk (:func:`distributed_summary`).

The oracle saves its state after every trial (and the chief once more when it stops). Running
the same search again (same folder, no ``overwrite``) resumes it: KerasTuner puts the trials that
were running when the chief stopped (a killed worker's) in its retry queue, so they run again;
none is lost or counted twice.

Layout of ``directory``: ``<project>/`` the chief's oracle, every trial and ``search_log.json``;
``workers/<tuner id>/<project>/trial_*`` the trials each worker started, with their checkpoints
(the record of who ran what); ``logs/<tuner id>.log`` each process's output.

Command line::

    python -m fashion_utils.tools.distributed distributed --workers 2     # chief + 2 workers, 127.0.0.1
    python -m fashion_utils.tools.distributed export-data --out search.npz  # the arrays a search uses
    python -m fashion_utils.tools.distributed chief  --data-file search.npz --directory D  # the oracle
    python -m fashion_utils.tools.distributed worker --data-file search.npz --directory D  # the others

``chief`` and ``worker`` read the three ``KERASTUNER_*`` variables from the environment.
``distributed`` (``make tune-distributed WORKERS=N``) searches the train and validation rows of
the default data set's cached features (:func:`load_search_data`) when they exist, otherwise
synthetic features (:func:`synthetic_search_data`); its first line says which. The search lives
in ``<models>/tuning_distributed/``; running it again resumes it, ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import keras_tuner as kt
import pandas as pd

from fashion_utils import config
from fashion_utils.atomic import write_json_atomic, write_text_atomic
from fashion_utils.checks import one_of, positive_int
from fashion_utils.tools.search_data import (load_search_data, read_search_data, save_search_data,
                                             synthetic_search_data)
from fashion_utils.training.tuning import (OBJECTIVE, TUNER_KINDS, make_hypermodel, make_tuner,
                                           summarise_search, trial_table, update_search_log)

CHIEF_ID = "chief"
ENV_VARS = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
ENDED = ("COMPLETED", "FAILED", "INVALID")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    """KerasTuner's chief ignores a port it cannot bind (its workers would wait for an hour)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------- the record


def _load_trials(project_dir: Path) -> tuple[list[kt.engine.trial.Trial], list[str]]:
    trials = [kt.engine.trial.Trial.load(str(f))
              for f in sorted(project_dir.glob("trial_*/trial.json"))]
    oracle_file = project_dir / "oracle.json"
    state = json.loads(oracle_file.read_text()) if oracle_file.exists() else {}
    return trials, state.get("start_order", [])


def _count_ended_trials(project_dir: Path) -> int:
    """Trials of a search folder that ended (completed, failed or invalid)."""
    return sum(json.loads(path.read_text()).get("status") in ENDED
               for path in project_dir.glob("trial_*/trial.json"))


def _started_trials(directory: Path, project_name: str) -> dict[str, dict[str, float]]:
    """Tuner id → {trial id: modification time of its folder} of the trials each worker started.

    KerasTuner creates a worker's ``trial_<id>`` folder when the trial starts.
    """
    started = {}
    for folder in sorted((directory / "workers").glob(f"*/{project_name}")):
        trials = {p.name.removeprefix("trial_"): p.stat().st_mtime
                  for p in folder.glob("trial_*") if p.is_dir()}
        if trials:
            started[folder.parent.name] = dict(sorted(trials.items()))
    return started


def _forget_ended_trials(project_dir: Path) -> list[str]:
    """Drop the trials that ended from the saved oracle's ``ongoing_trials``; returns their ids.

    KerasTuner's chief saves its state in ``end_trial`` before it forgets the trial as ongoing.
    :func:`_serve` saves once more at the end, but after a chief that was killed the last trial
    would look unfinished, and resuming would run it again and count it twice.
    """
    oracle_file = project_dir / "oracle.json"
    if not oracle_file.exists():
        return []
    state = json.loads(oracle_file.read_text())
    ended = {}
    for tuner_id, trial_id in state.get("ongoing_trials", {}).items():
        trial_file = project_dir / f"trial_{trial_id}" / "trial.json"
        if trial_file.exists() and json.loads(trial_file.read_text()).get("status") in ENDED:
            ended[tuner_id] = trial_id
    if ended:
        state["ongoing_trials"] = {k: v for k, v in state["ongoing_trials"].items()
                                   if k not in ended}
        write_json_atomic(oracle_file, state, indent=1)
    return sorted(ended.values())


def read_trials(project_dir: str | os.PathLike) -> pd.DataFrame:
    """The per-trial table of a search folder, read from its ``trial_*/trial.json`` files."""
    return trial_table(*_load_trials(Path(project_dir)))


def distributed_summary(directory: str | os.PathLike, project_name: str, *,
                        exit_codes: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """Summary of a distributed search from the files on disk (the chief's holds every trial).

    Returns:
        :func:`run_search`'s summary keys plus ``"assignments"`` (tuner id → the trial ids it
        started), ``"trials_per_worker"``, ``"reassigned_trials"`` (started by more than one
        worker: a lost trial run again elsewhere), ``"lost_trials"`` (started by a worker that
        never reported back: still RUNNING in the oracle), ``"exit_codes"`` and ``"table"``
        (the per-trial rows as records, with the worker that last started each).
    """
    directory = Path(directory)
    project_dir = directory / project_name
    trials, order = _load_trials(project_dir)
    table = trial_table(trials, order)
    started = _started_trials(directory, project_name)
    latest: dict[str, tuple[float, str]] = {}
    for worker, ids in started.items():
        for trial_id, mtime in ids.items():
            latest[trial_id] = max(latest.get(trial_id, (mtime, worker)), (mtime, worker))
    table.insert(1, "worker", [latest[t][1] if t in latest else None for t in table["trial_id"]])
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    best_hps = max(completed, key=lambda t: t.score).hyperparameters.values if completed else None
    log_file = project_dir / "search_log.json"
    runs = json.loads(log_file.read_text())["runs"] if log_file.exists() else []
    summary = summarise_search("distributed", table, best_hps=best_hps, runs=len(runs),
                               wall_time_s=sum(r["seconds"] for r in runs),
                               new_trials=runs[-1]["new_trials"] if runs else 0)
    summary.update({
        "assignments": {w: list(ids) for w, ids in started.items()},
        "trials_per_worker": {w: len(ids) for w, ids in started.items()},
        "reassigned_trials": sorted(t for t in latest
                                    if sum(t in ids for ids in started.values()) > 1),
        "lost_trials": table.loc[table["status"] == "RUNNING", "trial_id"].tolist(),
        "exit_codes": dict(exit_codes or {}),
        "table": table.to_dict(orient="records"),
    })
    return summary


# ---------------------------------------------------------------------------------- supervisor


@dataclass
class DistributedSearch:
    """A chief and its workers running as local processes (see :func:`launch_distributed`).

    Always end with :meth:`wait` or :meth:`terminate` (or use it as a context manager, which
    terminates whatever still runs).
    """

    directory: Path
    project_name: str
    port: int
    chief: subprocess.Popen
    workers: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    trials_before: int = 0
    started: float = field(default_factory=time.perf_counter)
    chief_stop: str | None = None  # how the chief ended, once it has

    def __enter__(self) -> "DistributedSearch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    @property
    def project_dir(self) -> Path:
        return self.directory / self.project_name

    def assignments(self) -> dict[str, list[str]]:
        """Tuner id → the trial ids it has started so far (its trial folders)."""
        started = _started_trials(self.directory, self.project_name)
        return {w: list(ids) for w, ids in started.items()}

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs[name]
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _stop_chief(self, grace_s: float, term_grace_s: float) -> str:
        try:
            self.chief.wait(timeout=grace_s)
            return "exited by itself"
        except subprocess.TimeoutExpired:
            pass
        self.chief.send_signal(signal.SIGTERM)
        try:
            self.chief.wait(timeout=term_grace_s)
            return "stopped (SIGTERM)"
        except subprocess.TimeoutExpired:
            self.chief.kill()
            self.chief.wait()
            return "killed (SIGKILL)"

    def _kill_workers(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.workers.values():
            proc.wait()

    def wait(self, *, timeout: float | None = None, chief_grace_s: float = 2.0,
             term_grace_s: float = 30.0, worker_grace_s: float = 30.0) -> dict[str, Any]:
        """Wait until every worker has exited, then stop the chief; summarise.

        Args:
            timeout: seconds before everything is killed and ``TimeoutError`` raised.
            chief_grace_s: how long the chief may take to leave by itself once the workers are
                gone (it cannot while a dead worker's trial runs); then it gets SIGTERM.
            term_grace_s: how long the chief may take to stop on SIGTERM; then SIGKILL.
            worker_grace_s: how long workers may still run after the chief left (they cannot
                go on without it); then they are killed, as their exit codes say.

        Returns:
            :func:`distributed_summary`, plus ``"chief_stop"``: how the chief ended.

        Raises:
            RuntimeError: the chief failed while workers ran (its log tail included).
            TimeoutError: the search did not finish within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        chief_left = None
        try:
            while any(p.poll() is None for p in self.workers.values()):
                code = self.chief.poll()
                if code not in (None, 0):
                    raise RuntimeError(f"The chief exited with code {code} while workers ran. "
                                       f"Its log:\n{self.log_tail(CHIEF_ID)}")
                if code == 0:
                    chief_left = chief_left or time.monotonic()
                    if time.monotonic() - chief_left > worker_grace_s:
                        self._kill_workers()
                        break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"The distributed search did not finish in {timeout} s. "
                                       f"Chief log:\n{self.log_tail(CHIEF_ID)}")
                time.sleep(0.2)
            self.chief_stop = self._stop_chief(chief_grace_s, term_grace_s)
        except BaseException:
            self.terminate()
            raise
        seconds = time.perf_counter() - self.started
        exit_codes = {CHIEF_ID: self.chief.returncode,
                      **{name: p.returncode for name, p in self.workers.items()}}
        new_trials = _count_ended_trials(self.project_dir) - self.trials_before
        update_search_log(self.project_dir, {
            "seconds": round(seconds, 3), "new_trials": new_trials, "workers": len(self.workers),
            "trials_before": self.trials_before, "chief": self.chief_stop,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        summary = distributed_summary(self.directory, self.project_name, exit_codes=exit_codes)
        return {**summary, "chief_stop": self.chief_stop}

    def terminate(self) -> None:
        """Kill the workers that still run, then stop the chief (SIGTERM, then SIGKILL)."""
        self._kill_workers()
        if self.chief.poll() is None:
            self.chief_stop = self._stop_chief(0.0, 10.0)


def launch_distributed(*, workers: int, data_file: str | os.PathLike,
                       directory: str | os.PathLike, project_name: str = "distributed",
                       kind: str = "random", max_trials: int = 10, max_epochs: int = 10,
                       epochs: int = 10, patience: int = 3, seed: int = config.SEED,
                       host: str = "127.0.0.1", port: int | None = None, overwrite: bool = False,
                       threads_per_worker: int | None = None) -> DistributedSearch:
    """Start one chief and ``workers`` workers on this machine, sharing one search.

    Each is a stock ``tuner.search()`` process with the ``KERASTUNER_*`` environment. The chief
    serves the oracle and writes every trial into ``directory/project_name``; worker ``tunerK``
    trains in ``directory/workers/tunerK/project_name``. The workers start searching together
    (each waits until all have built their tuner). Logs go to ``directory/logs/``.

    Args:
        workers: number of worker processes (>= 1).
        data_file: the ``.npz`` of :func:`save_search_data`.
        directory: the search's folder; a search found there is resumed.
        project_name: the search's name.
        kind, max_trials, max_epochs, seed: see :func:`make_tuner`.
        epochs, patience: see :func:`run_search`.
        host, port: where the oracle listens (a free port when ``port`` is ``None``).
        overwrite: delete ``directory`` first (a fresh search) instead of resuming.
        threads_per_worker: TensorFlow threads per worker (``None``: TensorFlow's default).

    Returns:
        A :class:`DistributedSearch`; call its ``wait()``.
    """
    workers = positive_int("workers", workers)
    one_of("kind", kind, TUNER_KINDS)
    numbers = {"max_trials": max_trials, "max_epochs": max_epochs, "epochs": epochs,
               "patience": patience}
    numbers = {name: positive_int(name, value) for name, value in numbers.items()}
    seed = positive_int("seed", seed, minimum=0)
    threads_per_worker = positive_int("threads_per_worker", threads_per_worker, allow_none=True)
    port = positive_int("port", port, allow_none=True) or _free_port(host)
    directory = Path(directory).resolve()
    data_file = Path(data_file).resolve()
    if not data_file.exists():
        raise FileNotFoundError(f"No search data at {data_file} (see save_search_data).")
    if overwrite and directory.exists():
        shutil.rmtree(directory)
    ready_dir = directory / "logs" / "ready"
    shutil.rmtree(ready_dir, ignore_errors=True)
    ready_dir.mkdir(parents=True)
    base_env = {**os.environ, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if threads_per_worker:
        base_env.update({"TF_NUM_INTRAOP_THREADS": str(threads_per_worker),
                         "TF_NUM_INTEROP_THREADS": "1",
                         "OMP_NUM_THREADS": str(threads_per_worker)})
    options = [f"--{k.replace('_', '-')}={v}" for k, v in {
        **numbers, "data_file": data_file, "project_name": project_name, "tuner": kind,
        "seed": seed}.items()]
    logs: dict[str, Path] = {}
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, folder: Path, extra: Sequence[str] = ()) -> subprocess.Popen:
        role = "chief" if name == CHIEF_ID else "worker"
        command = [sys.executable, "-m", "fashion_utils.tools.distributed", role,
                   f"--directory={folder}", *options, *extra]
        logs[name] = directory / "logs" / f"{name}.log"
        with open(logs[name], "ab") as log:  # a log is appended to, not replaced
            return subprocess.Popen(command, env={**base_env, "KERASTUNER_TUNER_ID": name},
                                    stdout=log, stderr=subprocess.STDOUT, cwd=config.PROJ_ROOT,
                                    start_new_session=True)

    trials_before = _count_ended_trials(directory / project_name)
    chief = start(CHIEF_ID, directory)
    try:
        for k in range(workers):
            processes[f"tuner{k}"] = start(f"tuner{k}", directory / "workers" / f"tuner{k}",
                                           ["--ready-dir", str(ready_dir),
                                            "--workers", str(workers)])
    except BaseException:
        for proc in [*processes.values(), chief]:
            proc.kill()
        raise
    return DistributedSearch(directory=directory, project_name=project_name, port=port,
                             chief=chief, workers=processes, logs=logs,
                             trials_before=trials_before)


# ---------------------------------------------------------------------------------- roles


@kt.synchronized
def _save_oracle(oracle: kt.Oracle) -> None:
    """``oracle.save()`` under the oracle's own lock (no trial changes meanwhile)."""
    oracle.save()


def _serve(tuner: kt.Tuner) -> int:
    """The chief: KerasTuner's own ``search()``, which serves the oracle until it is done."""
    host, port = os.environ["KERASTUNER_ORACLE_IP"], int(os.environ["KERASTUNER_ORACLE_PORT"])
    if not _port_is_free(host, port):
        raise SystemExit(f"The chief cannot listen on {host}:{port} (port in use?).")
    # SIGTERM (the supervisor's stop, once every worker has gone) stops it as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"chief: serving the oracle on {host}:{port}", flush=True)
    try:
        tuner.search(verbose=1)
        why = "every trial ended and every worker told to stop"
    except KeyboardInterrupt:
        why = "stopped by SIGTERM or Ctrl-C"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _save_oracle(tuner.oracle)  # KerasTuner saved last with the last trial still ongoing
        signal.signal(signal.SIGTERM, previous)
    print(f"chief: done ({why}; oracle state saved)", flush=True)
    return 0


def _barrier(folder: Path, name: str, *, parties: int, timeout_s: float) -> bool:
    """Say ``name`` is ready in ``folder``; wait (at most ``timeout_s``) for ``parties`` names."""
    write_text_atomic(folder / name, f"{os.getpid()}\n")
    deadline = time.monotonic() + timeout_s
    while sum(not p.name.startswith(".") for p in folder.iterdir()) < parties:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_search_worker(tuner: kt.Tuner, data: Mapping[str, Any], *, epochs: int,
                      patience: int) -> dict[str, Any]:
    """A worker's part of a distributed search: trials until the chief says stop."""
    stop = keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max", patience=patience,
                                         restore_best_weights=True)
    tuner.search(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                 epochs=epochs, callbacks=[stop], verbose=0)
    trial_dirs = sorted(p.name for p in Path(tuner.project_dir).glob("trial_*") if p.is_dir())
    return {"tuner_id": os.environ.get("KERASTUNER_TUNER_ID"), "trial_dirs": trial_dirs}


def _run_role(role: str, args: argparse.Namespace) -> int:
    """``chief`` or ``worker``: the KerasTuner process this machine plays in a search."""
    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"Set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
                         f"KERASTUNER_ORACLE_PORT (missing: {', '.join(missing)}).")
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    if (role == "chief") != ("chief" in tuner_id):
        raise SystemExit(f"KERASTUNER_TUNER_ID={tuner_id!r} does not fit the role {role!r} "
                         f"(KerasTuner's chief is the id that contains 'chief').")
    if role == "chief" and not args.overwrite:
        forgotten = _forget_ended_trials(Path(args.directory) / args.project_name)
        if forgotten:
            print(f"chief: trial(s) {forgotten} had ended; not running them again", flush=True)
    data = read_search_data(args.data_file)
    hypermodel = make_hypermodel(int(data["x_train"].shape[1]), len(data["class_names"]),
                                 seed=args.seed)
    tuner = make_tuner(args.tuner, hypermodel, directory=args.directory,
                       project_name=args.project_name, max_trials=args.max_trials,
                       max_epochs=args.max_epochs, seed=args.seed, overwrite=args.overwrite)
    if role == "chief":
        return _serve(tuner)
    if args.ready_dir and not _barrier(Path(args.ready_dir), tuner_id, parties=args.workers,
                                       timeout_s=args.ready_timeout):
        print(f"{tuner_id}: not every worker was ready after {args.ready_timeout} s; "
              f"searching anyway", flush=True)
    start = time.perf_counter()
    result = run_search_worker(tuner, data, epochs=args.epochs, patience=args.patience)
    result["seconds"] = round(time.perf_counter() - start, 2)
    write_json_atomic(Path(tuner.project_dir) / f"worker_{tuner_id}.json", result, indent=1)
    print(f"{tuner_id}: done in {result['seconds']} s; {len(result['trial_dirs'])} trial "
          f"folder(s) in {tuner.project_dir}", flush=True)
    return 0


# ---------------------------------------------------------------------------------- command line


def _distributed_data(args: argparse.Namespace, directory: Path) -> Path:
    if args.data_file:
        return Path(args.data_file)
    if args.synthetic:
        data = synthetic_search_data(seed=args.seed)
    else:
        try:
            data = load_search_data(args.data, target=args.target)
        except (FileNotFoundError, ValueError) as error:
            print(f"No cached features to search on ({error}); using synthetic features instead.")
            data = synthetic_search_data(seed=args.seed)
    missing = data.get("missing", {})
    print(f"search data: {data['source']}; {len(data['x_train'])} train, {len(data['x_val'])} "
          f"validation rows, {len(data['class_names'])} classes"
          + (f" ({missing} rows without features left out)" if any(missing.values()) else ""),
          flush=True)
    return save_search_data(data, directory / "search_data.npz")


def _print_summary(summary: Mapping[str, Any]) -> None:
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=1, default=str))
    table = pd.DataFrame(summary.get("table", []))
    if len(table):
        print(table[["trial_id", "worker", "status", "val_accuracy"]].to_string(index=False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.tools.distributed",
                                     description="Distributed KerasTuner search over a head "
                                                 "on cached features.")
    sub = parser.add_subparsers(dest="command", required=True)

    def search_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tuner", choices=TUNER_KINDS, default="random")
        p.add_argument("--max-trials", type=int, default=8)
        p.add_argument("--max-epochs", type=int, default=9, help="Hyperband only")
        p.add_argument("--epochs", type=int, default=5, help="most epochs per trial")
        p.add_argument("--patience", type=int, default=3)
        p.add_argument("--seed", type=int, default=config.SEED)
        p.add_argument("--project-name", default="distributed")
        p.add_argument("--overwrite", action="store_true", help="start a fresh search")

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=None,
                       help="catalog folder (default: DATA_DIR or Fashion-MNIST)")
        p.add_argument("--target", default=config.DEFAULT_TARGET)
        p.add_argument("--synthetic", action="store_true", help="search on synthetic features")

    dist = sub.add_parser("distributed", help="chief + N workers on this machine")
    dist.add_argument("--workers", type=int, default=2)
    dist.add_argument("--directory", default=None,
                      help="the search's folder (default: <models>/tuning_distributed)")
    dist.add_argument("--data-file", default=None, help="an .npz from export-data")
    dist.add_argument("--port", type=int, default=None)
    dist.add_argument("--timeout", type=float, default=None)
    dist.add_argument("--threads-per-worker", type=int, default=None,
                      help="TensorFlow threads per worker (default: CPU cores / workers)")
    search_options(dist)
    data_options(dist)

    export = sub.add_parser("export-data", help="write the search arrays to an .npz")
    export.add_argument("--out", required=True)
    export.add_argument("--seed", type=int, default=config.SEED)
    data_options(export)

    for role in ("chief", "worker"):
        p = sub.add_parser(role, help=f"run this machine's {role} (env KERASTUNER_*)")
        p.add_argument("--data-file", required=True)
        p.add_argument("--directory", required=True)
        search_options(p)
        if role == "worker":  # what launch_distributed passes so that the workers start together
            p.add_argument("--ready-dir", default=None,
                           help="start searching once --workers workers have said ready here")
            p.add_argument("--workers", type=int, default=1)
            p.add_argument("--ready-timeout", type=float, default=300.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``distributed``, ``export-data``, ``chief``, ``worker``."""
    args = _parser().parse_args(argv)
    if args.command in ("chief", "worker"):
        return _run_role(args.command, args)
    if args.command == "export-data":
        data = synthetic_search_data(seed=args.seed) if args.synthetic else \
            load_search_data(args.data, target=args.target)
        print(f"wrote {save_search_data(data, args.out)} ({data['source']})")
        return 0
    directory = (Path(args.directory) if args.directory
                 else config.get_paths(args.data).models / "tuning_distributed")
    if args.overwrite and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data_file = _distributed_data(args, directory)
    threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, args.workers))
    search = launch_distributed(workers=args.workers, data_file=data_file, directory=directory,
                                project_name=args.project_name, kind=args.tuner,
                                max_trials=args.max_trials, max_epochs=args.max_epochs,
                                epochs=args.epochs, patience=args.patience, seed=args.seed,
                                port=args.port, threads_per_worker=threads)
    print(f"chief + {args.workers} worker(s) on 127.0.0.1:{search.port}; logs in "
          f"{directory / 'logs'}", flush=True)
    # SIGTERM (make stopped, say) ends the processes too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with search:
        summary = search.wait(timeout=args.timeout)
    _print_summary(summary)
    return 0 if all(code == 0 for code in summary["exit_codes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
