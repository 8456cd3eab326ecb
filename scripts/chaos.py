"""Chaos run: workers SIGKILLed at random while they share one study; nothing may be lost.

    python scripts/chaos.py                      # 4 workers, 40 trials, journal then PostgreSQL
    python scripts/chaos.py --storage journal --workers 2 --trials 8   # the slow test's version

Each storage gets a fresh tiny study (``task=sentiment search_space=tiny``, budgets of a second
or two a trial, one torch thread a worker). ``--workers`` run ``nas/search.py`` as a user would;
every ``--kill-every`` seconds (a random pause around it) one worker, picked at random among those
in the middle of a trial, gets SIGKILL and is started again with the same command, until the study
is complete. At most one kill per trial finished since the previous kill, so that the run
progresses however slow the workers start (on a loaded machine start-up alone can take longer
than the pause). Then the
run checks, and exits 1 if any fails:

* exactly ``--trials`` finished trials (complete or pruned), none left running or waiting;
* no trial number twice;
* no completed trial lost: every trial seen COMPLETE during the run is COMPLETE at the end with
  the same value;
* kept weights intact: every trial that ranks among ``export.keep_top_k`` has its
  ``weights/trial_<n>/`` folder, its ``meta.json`` names it with its value, and every
  safetensors file in it reads whole.

It prints one JSON line per storage (kills, trials, wall time, ...) and writes them to
``<out>/chaos.json``. PostgreSQL comes from ``scripts/postgres.sh url`` (root) or
``ADAPTNAS_STORAGE_URL``. Bounded: past ``--max-seconds`` per storage every worker is killed and
the run fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from nas.config.nodes import TINY as TINY_BUDGETS  # noqa: E402

State = optuna.trial.TrialState
FINISHED = (State.COMPLETE, State.PRUNED)

# A tiny study: about a second or two a trial on an idle core (tests/conftest.py's TINY budgets).
TINY = [
    "task=sentiment",
    "search_space=tiny",
    "sampler=random",
    "pruner=none",
    "finalists.seeds=0",  # exactly n_trials finished trials: no finalist repeats on top
    "threads=1",
    "plots=false",
    *TINY_BUDGETS,
    "tasks.sentiment.steps=null",
    "tasks.sentiment.source.n_train=96",
    "tasks.sentiment.source.n_val=32",
    "tasks.sentiment.source.n_test=32",
    "export.keep_top_k=3",
    "objective.test_top_k=1",
    # A killed worker's trial is failed at the next start on this machine (its pid is gone);
    # heartbeats catch the rest.
    "storage.heartbeat_interval=1",
    "storage.grace_period=4",
    "storage.max_retry=3",
]


def postgres_url() -> str:
    """The PostgreSQL URL, checked by one connection (one line and exit 1 when it fails)."""
    import sqlalchemy

    from nas.study.storage import error_text, mask_url

    url = os.environ.get("ADAPTNAS_STORAGE_URL")
    if not url:
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "postgres.sh"), "url"], capture_output=True, text=True
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            raise SystemExit(f"chaos: no PostgreSQL URL ({proc.stderr.strip()}); start it first")
        url = proc.stdout.strip()
    try:
        with sqlalchemy.create_engine(url).connect():
            pass
    except Exception as err:  # noqa: BLE001 (one line, then exit)
        raise SystemExit(
            f"chaos: PostgreSQL at {mask_url(url)} does not answer ({error_text(url, err)}); "
            "start it first: bash scripts/services.sh start"
        ) from None
    return url


def open_storage(kind: str, root: Path, study: str, url: str | None):
    if kind == "journal":
        path = root / "studies" / study / "journal.log"
        if not path.exists():
            return None
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(url)


def trials_now(storage, study: str) -> list[optuna.trial.FrozenTrial]:
    if storage is None:
        return []
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


class Worker:
    """One ``nas/search.py`` process; ``restart`` starts it again with the same command."""

    def __init__(self, index: int, args: list[str], env: dict[str, str], logs: Path):
        self.index, self.args, self.env, self.logs = index, args, env, logs
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"worker{self.index}.{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "nas" / "search.py"), *self.args, f"worker={self.index}"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a SIGKILL of its group takes any child with it
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def busy_pid(trials: list[optuna.trial.FrozenTrial], pid: int) -> bool:
    """Whether process ``pid`` runs a trial past sampling (its architecture is recorded)."""
    return any(
        t.state == State.RUNNING
        and t.user_attrs.get("pid") == pid
        and "architecture" in t.user_attrs
        for t in trials
    )


def check_weights(folder: Path, study: optuna.Study, keep_top_k: int) -> list[str]:
    """What is wrong with the kept weights of ``study`` (empty: intact)."""
    from safetensors import safe_open

    from nas.study.kept_weights import kept_trials, trial_weights_dir

    problems = []
    for number in sorted(kept_trials(study, keep_top_k, multi_objective=False)):
        path = trial_weights_dir(folder, number)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            problems.append(f"trial {number}: kept, but {meta_path} is missing")
            continue
        meta = json.loads(meta_path.read_text())
        value = study.trials[number].values[0]
        if meta.get("trial") != number or not math.isclose(meta["adaptability"], value):
            problems.append(f"trial {number}: meta.json says {meta.get('trial')}, {meta}")
        files = sorted(path.rglob("*.safetensors"))
        if not files:
            problems.append(f"trial {number}: no safetensors in {path}")
        for file in files:
            try:
                with safe_open(str(file), "pt") as f:
                    for key in f.keys():
                        f.get_tensor(key)
            except Exception as err:  # noqa: BLE001 (reported)
                problems.append(f"{file}: {type(err).__name__}: {err}")
    return problems


def run(kind: str, args: argparse.Namespace, out: Path) -> dict:
    study = f"chaos-{kind}-{os.getpid()}-{int(time.time())}"
    url = postgres_url() if kind == "postgres" else None  # checked before anything is written
    root = out / kind
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    if url:
        env["ADAPTNAS_STORAGE_URL"] = url
    common = [
        *TINY,
        f"storage={kind}",
        f"study_name={study}",
        f"n_trials={args.trials}",
        f"seed={args.seed}",
        f"paths.root={root}",
    ]
    workers = [Worker(i, common, env, root / "logs") for i in range(args.workers)]
    rng = random.Random(args.seed)
    seen_complete: dict[int, tuple] = {}
    kills = finished_at_kill = 0
    t0 = time.monotonic()
    for w in workers:
        w.start()
    next_kill = t0 + args.kill_every * rng.uniform(0.5, 1.5)
    storage = None
    ok_exit = True
    try:
        while True:
            now = time.monotonic()
            if now - t0 > args.max_seconds:
                ok_exit = False
                break
            if storage is None:
                storage = open_storage(kind, root, study, url)
            trials = trials_now(storage, study)
            for t in trials:
                if t.state == State.COMPLETE:
                    seen_complete.setdefault(t.number, tuple(t.values))
            done = sum(t.state in FINISHED for t in trials) >= args.trials
            if done:  # the workers leave by themselves now
                if not any(w.running() for w in workers):
                    break
            else:
                finished = sum(t.state in FINISHED for t in trials)
                if now >= next_kill and finished > finished_at_kill:
                    # A worker in the middle of a trial (the fault that can lose work), and at
                    # most one kill per trial finished since the last: on a loaded machine a
                    # worker's start-up alone can outlast the pause, and the run must progress.
                    busy = [w for w in workers if w.running() and busy_pid(trials, w.proc.pid)]
                    if busy:
                        victim = rng.choice(busy)
                        victim.kill()
                        kills += 1
                        finished_at_kill = finished
                        victim.start()
                        next_kill = now + args.kill_every * rng.uniform(0.5, 1.5)
                # A worker that left early (the study looked complete while the last trials ran
                # elsewhere, or it stopped after failures): started again, as an operator would.
                for w in workers:
                    if not w.running():
                        w.start()
            time.sleep(0.25)
    finally:
        for w in workers:
            w.kill()
    wall = time.monotonic() - t0
    storage = open_storage(kind, root, study, url)
    final = optuna.load_study(study_name=study, storage=storage)
    trials = final.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    finished = [t for t in trials if t.state in FINISHED]
    problems = []
    if not ok_exit:
        problems.append(f"not complete after {args.max_seconds}s")
    if len(finished) != args.trials:
        problems.append(f"{len(finished)} finished trials, not {args.trials}")
    if len(set(numbers)) != len(numbers):
        problems.append("a trial number appears twice")
    left = [t.number for t in trials if t.state in (State.RUNNING, State.WAITING)]
    if left:
        problems.append(f"trials left running or waiting: {left}")
    for number, values in seen_complete.items():
        t = trials[number]
        if t.state != State.COMPLETE or tuple(t.values) != values:
            problems.append(f"trial {number} was complete with {values}, now {t.state.name}")
    problems += check_weights(root / "studies" / study, final, keep_top_k=3)
    result = {
        "storage": kind,
        "workers": args.workers,
        "trials": len(finished),
        "target": args.trials,
        "kills": kills,
        "worker_starts": sum(w.starts for w in workers),
        "failed_trials": sum(t.state == State.FAIL for t in trials),
        "retried": sum("retry_history" in t.system_attrs for t in trials),
        "wall_s": round(wall, 1),
        "kept_weights": sorted(
            int(p.name.removeprefix("trial_"))
            for p in (root / "studies" / study / "weights").glob("trial_*")
        ),
        "problems": problems,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=("journal", "postgres", "both"), default="both")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--kill-every", type=float, default=6.0, help="seconds, on average")
    parser.add_argument("--max-seconds", type=float, default=1500.0, help="per storage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="adaptnas-chaos-"))
    out.mkdir(parents=True, exist_ok=True)
    kinds = ["journal", "postgres"] if args.storage == "both" else [args.storage]
    results = []
    for kind in kinds:
        result = run(kind, args, out)
        print(json.dumps(result), flush=True)
        results.append(result)
    (out / "chaos.json").write_text(json.dumps(results, indent=1) + "\n")
    bad = [r for r in results if r["problems"]]
    print(f"chaos: {'FAILED' if bad else 'ok'}; results in {out / 'chaos.json'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
