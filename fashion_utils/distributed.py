"""Distributed KerasTuner search: one oracle (the chief) and several workers sharing one search.

  trains one configuration with several seeds, so a difference can be told from noise.
- Distributed search on KerasTuner's own chief/worker mode (gRPC): :func:`launch_distributed`
  and ``python -m fashion_utils.distributed distributed --workers N`` (``make tune-distributed``).

Command line::

    python -m fashion_utils.distributed distributed --workers 2      # chief + 2 workers on 127.0.0.1
    python -m fashion_utils.distributed export-data --out search.npz   # the arrays a search uses
    python -m fashion_utils.distributed chief  --data-file search.npz  # one machine: the oracle
    python -m fashion_utils.distributed worker --data-file search.npz  # every other machine

``chief`` and ``worker`` read ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` from the environment, as KerasTuner does.

``distributed`` (``make tune-distributed WORKERS=N``) searches the train and validation rows
of the default data set's cached features (notebook 03's feature cache, rows and labels from
notebook 02's study sample; see :func:`load_search_data`) when they exist, and otherwise
synthetic features (:func:`synthetic_search_data`); the first line it prints says which. The
search lives in ``<models>/tuning_distributed/``: the chief's oracle and every trial in
``distributed/``, each worker's own trials in ``workers/<tuner id>/``, logs in ``logs/``.
Running it again resumes that search; ``--overwrite`` starts afresh.
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
import pandas as pd
import keras
import keras_tuner as kt
from fashion_utils import config
from fashion_utils.checks import positive_int
from fashion_utils.tuning import OBJECTIVE, TUNER_KINDS, summarise_search, trial_table, update_search_log, load_search_data, make_hypermodel, make_tuner, read_search_data, save_search_data, synthetic_search_data


CHIEF_ID = "chief"
ASSIGNMENTS_FILE = "assignments.json"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _atomic_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def _serve_oracle(tuner: kt.Tuner, *, expected_workers: int | None = None,
                  poll_s: float = 0.2) -> dict[str, list[str]]:
    """The chief's loop: KerasTuner's oracle servicer, plus a record of who ran what.

    Unlike ``tuner.search()`` on the chief (which polls every 20 s), this returns within
    ``poll_s`` of the last worker leaving, stops cleanly on SIGTERM/SIGINT (the oracle state
    is saved after every trial anyway), and writes ``assignments.json`` into the project
    folder: ``{"workers": {tuner_id: [trial_id, ...]}, "log": [[trial_id, tuner_id], ...]}``.
    A trial appears twice when a worker was lost and the trial was handed out again (KerasTuner
    puts trials that were running when the chief stopped back in its retry queue).

    With ``expected_workers``, the chief also waits until that many distinct workers have been
    told to stop: KerasTuner alone would leave as soon as the workers it has seen are done, so
    a worker that connects late (e.g. to a finished search) would wait for it forever.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    project_dir = Path(tuner.project_dir)
    assignments_file = project_dir / ASSIGNMENTS_FILE
    record = (json.loads(assignments_file.read_text()) if assignments_file.exists()
              else {"workers": {}, "log": []})
    assignments: dict[str, list[str]] = record["workers"]
    oracle = tuner.oracle
    stopped: set[str] = set()

    class RecordingServicer(oracle_chief.OracleServicer):
        def CreateTrial(self, request, context):  # noqa: N802 - gRPC method name
            response = super().CreateTrial(request, context)
            if response.trial.status == protos.get_proto().TrialStatus.RUNNING:
                trial_id = response.trial.trial_id
                ids = assignments.setdefault(request.tuner_id, [])
                if trial_id not in ids:
                    ids.append(trial_id)
                if record["log"][-1:] != [[trial_id, request.tuner_id]]:
                    record["log"].append([trial_id, request.tuner_id])
                _atomic_json(assignments_file, record)
            elif response.trial.status == protos.get_proto().TrialStatus.STOPPED:
                stopped.add(request.tuner_id)
            return response

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    tuner.save()
    _atomic_json(assignments_file, record)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = RecordingServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"The chief could not listen on {address} (port in use?)")
    server.start()
    print(f"chief: oracle listening on {address}", flush=True)
    try:
        while stop["signal"] is None:
            time.sleep(poll_s)
            if (servicer.stop_triggered and oracle_chief.exit_chief(oracle)
                    and len(stopped) >= (expected_workers or 0)):
                break
    finally:
        server.stop(grace=1.0).wait()
        oracle.save()
        _atomic_json(assignments_file, record)
        for s, handler in previous.items():
            signal.signal(s, handler)
    why = "all trials handed out and every worker gone" if stop["signal"] is None else \
        f"stopped by signal {stop['signal']}"
    print(f"chief: done ({why})", flush=True)
    return assignments


def _count_ended_trials(project_dir: Path) -> int:
    """Trials of a search folder that finished (completed, failed or invalid)."""
    ended = 0
    for path in Path(project_dir).glob("trial_*/trial.json"):
        ended += json.loads(path.read_text()).get("status") in ("COMPLETED", "FAILED", "INVALID")
    return ended


def _load_trials(project_dir: Path) -> tuple[list[Any], list[str]]:
    from keras_tuner.src.engine.trial import Trial

    trials = [Trial.load(str(f)) for f in sorted(Path(project_dir).glob("trial_*/trial.json"))]
    oracle_file = Path(project_dir) / "oracle.json"
    order = json.loads(oracle_file.read_text()).get("start_order", []) if oracle_file.exists() else []
    return trials, order


def read_trials(project_dir: str | os.PathLike) -> pd.DataFrame:
    """The per-trial table of a search folder, read from its ``trial_*/trial.json`` files."""
    return trial_table(*_load_trials(Path(project_dir)))


def distributed_summary(directory: str | os.PathLike, project_name: str, *,
                        exit_codes: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """Summary of a distributed search from the chief's folder (its oracle holds every trial).

    Returns:
        :func:`run_search`'s summary keys plus ``"assignments"`` (tuner id → trial ids),
        ``"trials_per_worker"``, ``"lost_trials"`` (started by a worker that never reported
        back: still RUNNING in the oracle) and ``"exit_codes"``; and ``"table"`` (the per-trial
        rows as records, with the worker that ran each).
    """
    project_dir = Path(directory) / project_name
    trials, order = _load_trials(project_dir)
    table = trial_table(trials, order)
    assignments_file = project_dir / ASSIGNMENTS_FILE
    record = (json.loads(assignments_file.read_text()) if assignments_file.exists()
              else {"workers": {}, "log": []})
    assignments = record["workers"]
    worker_of = {t: w for t, w in record["log"]}  # the last worker given each trial
    table.insert(1, "worker", [worker_of.get(t) for t in table["trial_id"]])
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    best_hps = max(completed, key=lambda t: t.score).hyperparameters.values if completed else None
    log_file = project_dir / "search_log.json"
    runs = json.loads(log_file.read_text())["runs"] if log_file.exists() else []
    summary = summarise_search("distributed", table, wall_time_s=sum(r["seconds"] for r in runs),
                         new_trials=runs[-1]["new_trials"] if runs else 0, best_hps=best_hps,
                         runs=len(runs))
    summary.update({
        "assignments": assignments,
        "trials_per_worker": {w: len(ids) for w, ids in assignments.items()},
        "reassigned_trials": sorted({t for t, _ in record["log"]
                                     if sum(t == u for u, _ in record["log"]) > 1}),
        "lost_trials": table.loc[table["status"] == "RUNNING", "trial_id"].tolist(),
        "exit_codes": dict(exit_codes or {}),
        "table": table.to_dict(orient="records"),
    })
    return summary


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

    def __enter__(self) -> "DistributedSearch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    @property
    def project_dir(self) -> Path:
        return self.directory / self.project_name

    def assignments(self) -> dict[str, list[str]]:
        """The chief's record so far: tuner id → trial ids handed out."""
        path = self.project_dir / ASSIGNMENTS_FILE
        try:
            return json.loads(path.read_text())["workers"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return {}

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs[name]
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _stop_chief(self, grace_s: float) -> None:
        try:
            self.chief.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        self.chief.send_signal(signal.SIGTERM)  # saves and exits (see _serve_oracle)
        try:
            self.chief.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.chief.kill()
            self.chief.wait()

    def wait(self, *, timeout: float | None = None, chief_grace_s: float = 5.0,
             worker_grace_s: float = 60.0) -> dict[str, Any]:
        """Wait for every worker, then for the chief (stopping it if a worker was lost).

        Args:
            timeout: seconds before everything is killed and ``TimeoutError`` raised.
            chief_grace_s: how long the chief may take to leave by itself once the workers
                are done (it cannot when a worker died holding a trial).
            worker_grace_s: how long workers may still run after the chief left normally
                (they are killed after that; their exit codes say so).

        Returns:
            :func:`distributed_summary`, with ``"wall_time_s"`` of this launch.

        Raises:
            RuntimeError: the chief died while workers were running (its log tail included).
            TimeoutError: the search did not finish within ``timeout``.
        """
        deadline = None if timeout is None else time.perf_counter() + timeout
        chief_left = None
        try:
            while any(p.poll() is None for p in self.workers.values()):
                if self.chief.poll() not in (None, 0):
                    raise RuntimeError(f"The chief exited with code {self.chief.returncode} while "
                                       f"workers ran. Its log:\n{self.log_tail(CHIEF_ID)}")
                if self.chief.poll() == 0:
                    # The chief leaves once the last worker has been told to stop; that worker
                    # may still be shutting down. One that is not gone soon is stuck.
                    chief_left = chief_left or time.perf_counter()
                    if time.perf_counter() - chief_left > worker_grace_s:
                        for proc in self.workers.values():
                            if proc.poll() is None:
                                proc.kill()
                                proc.wait()
                        break
                if deadline is not None and time.perf_counter() > deadline:
                    raise TimeoutError(f"The distributed search did not finish in {timeout} s. "
                                       f"Chief log:\n{self.log_tail(CHIEF_ID)}")
                time.sleep(0.2)
            self._stop_chief(chief_grace_s)
        except BaseException:
            self.terminate()
            raise
        seconds = time.perf_counter() - self.started
        exit_codes = {CHIEF_ID: self.chief.returncode,
                      **{name: p.returncode for name, p in self.workers.items()}}
        new_trials = _count_ended_trials(self.project_dir) - self.trials_before
        update_search_log(self.project_dir, {
            "seconds": round(seconds, 3), "new_trials": new_trials, "workers": len(self.workers),
            "trials_before": self.trials_before, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return distributed_summary(self.directory, self.project_name, exit_codes=exit_codes)

    def terminate(self) -> None:
        """Kill every process of this search that still runs (workers first)."""
        for proc in [*self.workers.values(), self.chief]:
            if proc.poll() is None:
                proc.kill()
        for proc in [*self.workers.values(), self.chief]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a kill is not refused
                pass


def _role_command(role: str, *, data_file: Path, directory: Path, project_name: str, kind: str,
                  max_trials: int, max_epochs: int, epochs: int, patience: int, seed: int,
                  overwrite: bool, extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "fashion_utils.distributed", role, "--data-file", str(data_file),
               "--directory", str(directory), "--project-name", project_name, "--tuner", kind,
               "--max-trials", str(max_trials), "--max-epochs", str(max_epochs),
               "--epochs", str(epochs), "--patience", str(patience), "--seed", str(seed)]
    return command + (["--overwrite"] if overwrite else []) + list(extra)


def launch_distributed(*, workers: int, data_file: str | os.PathLike,
                       directory: str | os.PathLike, project_name: str = "distributed",
                       kind: str = "random", max_trials: int = 10, max_epochs: int = 10,
                       epochs: int = 10, patience: int = 3, seed: int = config.SEED,
                       host: str = "127.0.0.1", port: int | None = None, overwrite: bool = False,
                       threads_per_worker: int | None = None) -> DistributedSearch:
    """Start one chief and ``workers`` workers on this machine, sharing one search.

    The chief runs the oracle (KerasTuner's gRPC service) and writes every trial into
    ``directory/project_name``; worker ``tunerK`` trains in its own folder
    ``directory/workers/tunerK/project_name``. Logs go to ``directory/logs/``.

    Args:
        workers: number of worker processes (>= 1).
        data_file: the ``.npz`` of :func:`save_search_data`.
        directory: the search's folder.
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
    if kind not in TUNER_KINDS:
        raise ValueError(f"kind must be one of {list(TUNER_KINDS)}. Received: kind={kind!r}")
    directory = Path(directory).resolve()
    data_file = Path(data_file).resolve()
    if not data_file.exists():
        raise FileNotFoundError(f"No search data at {data_file} (see save_search_data).")
    if overwrite and directory.exists():
        shutil.rmtree(directory)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    port = port or _free_port(host)
    base_env = {**os.environ, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if threads_per_worker:
        base_env.update({"TF_NUM_INTRAOP_THREADS": str(threads_per_worker),
                         "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": str(threads_per_worker)})
    options = dict(data_file=data_file, project_name=project_name, kind=kind, max_trials=max_trials,
                   max_epochs=max_epochs, epochs=epochs, patience=patience, seed=seed,
                   overwrite=False)
    logs: dict[str, Path] = {}
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, role: str, folder: Path, extra: Sequence[str] = ()) -> subprocess.Popen:
        logs[name] = directory / "logs" / f"{name}.log"
        with open(logs[name], "ab") as log:
            return subprocess.Popen(_role_command(role, directory=folder, extra=extra, **options),
                                    env={**base_env, "KERASTUNER_TUNER_ID": name},
                                    stdout=log, stderr=subprocess.STDOUT, cwd=config.PROJ_ROOT,
                                    start_new_session=True)

    trials_before = _count_ended_trials(directory / project_name)
    chief = start(CHIEF_ID, "chief", directory, extra=["--workers", str(workers)])
    try:
        for k in range(workers):
            name = f"tuner{k}"
            processes[name] = start(name, "worker", directory / "workers" / name)
    except BaseException:
        for proc in [*processes.values(), chief]:
            proc.kill()
        raise
    return DistributedSearch(directory=directory, project_name=project_name, port=port,
                             chief=chief, workers=processes, logs=logs, trials_before=trials_before)


def _run_role(role: str, args: argparse.Namespace) -> int:
    """``chief`` or ``worker``: the KerasTuner process this machine plays in a search."""
    from keras_tuner.src.distribute import utils as dist_utils

    if not dist_utils.has_chief_oracle():
        raise SystemExit("Set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
                         "KERASTUNER_ORACLE_PORT (see the README's distributed tuning section).")
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    if (role == "chief") != dist_utils.is_chief_oracle():
        raise SystemExit(f"KERASTUNER_TUNER_ID={tuner_id!r} does not fit the role {role!r} "
                         f"(the chief's id contains 'chief').")
    data = read_search_data(args.data_file)
    hypermodel = make_hypermodel(int(data["x_train"].shape[1]), len(data["class_names"]),
                                 seed=args.seed)
    tuner = make_tuner(args.tuner, hypermodel, directory=args.directory,
                       project_name=args.project_name, max_trials=args.max_trials,
                       max_epochs=args.max_epochs, seed=args.seed, overwrite=args.overwrite)
    start = time.perf_counter()
    if role == "chief":
        _serve_oracle(tuner, expected_workers=args.workers)
        return 0
    result = run_search_worker(tuner, data, epochs=args.epochs, patience=args.patience)
    result["seconds"] = round(time.perf_counter() - start, 2)
    _atomic_json(Path(tuner.project_dir) / f"worker_{tuner_id}.json", result)
    print(f"{tuner_id}: ran {len(result['trial_dirs'])} trial(s) in {result['seconds']} s", flush=True)
    return 0


def run_search_worker(tuner: kt.Tuner, data: Mapping[str, Any], *, epochs: int,
                      patience: int) -> dict[str, Any]:
    """A worker's part of a distributed search: trials until the chief says stop."""
    stop = keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max", patience=patience,
                                         restore_best_weights=True)
    tuner.search(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                 epochs=epochs, callbacks=[stop], verbose=0)
    trial_dirs = sorted(p.name for p in Path(tuner.project_dir).glob("trial_*") if p.is_dir())
    return {"tuner_id": os.environ.get("KERASTUNER_TUNER_ID"), "trial_dirs": trial_dirs}


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
    printable = {k: v for k, v in summary.items() if k != "table"}
    print(json.dumps(printable, indent=1, default=str))
    table = pd.DataFrame(summary.get("table", []))
    if len(table):
        print(table[["trial_id", "worker", "status", "val_accuracy"]].to_string(index=False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.distributed",
                                     description="KerasTuner searches over a head on cached features.")
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
        p.add_argument("--data", default=None, help="catalog folder (default: DATA_DIR or Fashion-MNIST)")
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
        if role == "chief":
            p.add_argument("--workers", type=int, default=None,
                           help="wait until this many workers have been told to stop")
        search_options(p)
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
    search = launch_distributed(workers=args.workers, data_file=data_file, directory=directory,
                                project_name=args.project_name, kind=args.tuner,
                                max_trials=args.max_trials, max_epochs=args.max_epochs,
                                epochs=args.epochs, patience=args.patience, seed=args.seed,
                                port=args.port,
                                threads_per_worker=(args.threads_per_worker
                                                    or max(1, (os.cpu_count() or 1) // args.workers)))
    print(f"chief + {args.workers} worker(s) on 127.0.0.1:{search.port}; logs in {directory / 'logs'}",
          flush=True)
    with search:
        summary = search.wait(timeout=args.timeout)
    _print_summary(summary)
    return 0 if all(code == 0 for code in summary["exit_codes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
