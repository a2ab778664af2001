"""Several training runs at once: a sweep or the report's eight runs, scheduled so that the cores stay busy.

On a CPU, small convolutions at 32x32 do not scale well across threads, and two threads on a
machine where another process holds a core wait at every barrier. So independent runs go to
separate worker processes (``python -m models._worker``), one per core, each with the free cores
shared out as threads (one on a 2-core machine), longest runs first. Finished runs are
skipped, identical configurations train once, and every problem that would stop a run (a foreign
folder, a checkpoint of another configuration) is raised before anything trains.

>>> parse_jobs("auto"), parse_jobs("2"), parse_jobs(1)
(None, 2, 1)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from analysis.errors import ArchcountError

from .data import CategoryData, load_category
from .execution import INTERRUPT_GRACE_S, IDLE_BUSY_CPUS, Log, busy_cpus, cpu_count, cpu_model, interruptible, \
    parse_count
from .runs import RunSummary, TrainConfig
from .training import Plan, check_options, find_run, model_size, precheck, prepare, train

MAX_JOBS = 64


class TrainBatch(list):
    """The :class:`RunSummary` of each configuration, in order, and how the batch was scheduled.

    ``wall_time_s``: the whole call; ``jobs``: runs trained at once; ``schedule``: one row per run
    (run id, status, threads, start and end in seconds from the start of the batch).
    """

    def __init__(self, runs: Iterable[RunSummary] = (), *, wall_time_s: float = 0.0, jobs: int = 1,
                 schedule: Sequence[Mapping[str, Any]] = (), busy_cpus: float | None = None) -> None:
        super().__init__(runs)
        self.wall_time_s = wall_time_s
        self.jobs = jobs
        self.schedule = [dict(r) for r in schedule]
        self.cores = cpu_count()
        self.cpu = cpu_model()
        self.busy_cpus = busy_cpus

    def to_dict(self) -> dict[str, Any]:
        return {"wall_time_s": round(self.wall_time_s, 2), "jobs": self.jobs, "cores": self.cores, "cpu": self.cpu,
                "busy_cpus_at_start": None if self.busy_cpus is None else round(self.busy_cpus, 2),
                "runs": self.schedule}


def parse_jobs(jobs: Any) -> int | None:
    """``auto``/None -> None (one run per core), else 1 to :data:`MAX_JOBS` runs at once."""
    return parse_count(jobs, "jobs", MAX_JOBS)


def plan_jobs(n_runs: int, *, cores: int, busy: float | None, jobs: int | None = None,
              threads: int | None = None) -> tuple[int, int | None]:
    """``(runs at once, threads per run)``: a run per core, the free cores shared out among them as threads.

    A single-threaded run never waits at a barrier for a descheduled thread, so running one per core
    pays even when other processes hold some of them (each run then gets its share of the CPU);
    only the threads per run shrink to what is free. Up to twice as many runs as cores all start at
    once (one thread each), so that no core idles while the last run finishes alone: the default
    three models on 2 cores took 39 s instead of 44-46 s for 4 epochs. ``threads`` None with one
    job leaves the choice to :func:`train` (it measures).

    >>> plan_jobs(8, cores=2, busy=0.0), plan_jobs(8, cores=2, busy=1.1), plan_jobs(1, cores=2, busy=0.0)
    ((2, 1), (2, 1), (1, None))
    >>> plan_jobs(3, cores=2, busy=0.0), plan_jobs(8, cores=16, busy=0.0), plan_jobs(8, cores=16, busy=10.0)
    ((3, 1), (8, 2), (8, 1))
    """
    free = cores if busy is None or busy < IDLE_BUSY_CPUS else max(1.0, cores - busy)
    if jobs is None:
        jobs = max(1, n_runs if n_runs <= 2 * cores else cores)
    jobs = max(1, min(jobs, max(n_runs, 1)))
    if threads is None and jobs > 1:
        threads = max(1, math.floor(free + 0.5) // jobs)
    return jobs, threads


def _cost(plan: Plan) -> float:
    """Relative cost of a run: epochs x images x activations per image, plus a per-step overhead."""
    acts = model_size(plan.cfg.model, plan.hparams)[1]
    return plan.cfg.epochs * len(plan.data.train) * acts * (1 + 25 / plan.cfg.batch_size)


def train_many(configs: Iterable[TrainConfig], *, jobs: int | str | None = "auto",
               data: Any = None, cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
               quiet: bool = False, runs_root: str | os.PathLike[str] = "runs",
               run_dir: str | os.PathLike[str] | None = None, resume: bool = False, force: bool = False,
               device: str = "auto", threads: int | str | None = "auto", progress: bool | None = None,
               **options: Any) -> TrainBatch:
    """Train every configuration, skipping finished runs; returns a :class:`TrainBatch` in config order.

    ``jobs``: runs trained at once (``auto``: one per core on a CPU, one on a GPU). With more
    than one, each run is a worker process with ``threads`` threads (``auto``: the free cores shared
    out); with one, runs train here in turn and ``threads=auto`` is measured per run. ``options``
    go to :func:`models.training.train` (``amp``, ``channels_last``, ``samples`` ...). ``run_dir``
    is not allowed with more than one configuration. The data are loaded once per category.
    """
    t0 = time.perf_counter()
    configs = list(configs)
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise ArchcountError(f"expects TrainConfig objects, got {type(c).__name__}", argument="configs")
    if len(configs) > 1 and run_dir is not None:
        raise ArchcountError("a single --run-dir cannot hold several runs; use --runs ROOT for sweeps",
                             argument="run_dir")
    n_jobs = parse_jobs(jobs)
    dev, _, _, n_threads, _, _ = check_options(device=device, threads=threads, data=data, **{
        k: options[k] for k in ("samples", "val_batch_size", "amp", "channels_last") if k in options})
    for cfg in configs:  # before any data are read: a mistake writes nothing
        precheck(cfg, runs_root=runs_root, run_dir=run_dir, force=force, dev=dev)
    log = Log(quiet)
    loaded: dict[str, CategoryData] = {}
    if isinstance(data, CategoryData):
        loaded[data.category] = data
    plans: list[Plan] = []
    for cfg in configs:
        if cfg.category not in loaded:
            loaded[cfg.category] = load_category(data, cfg.category, cache_dir=cache_dir, download=download,
                                                 quiet=quiet)
        plans.append(prepare(cfg, data=loaded[cfg.category], cache_dir=cache_dir, download=download,
                             runs_root=runs_root, run_dir=run_dir, resume=resume, force=force, quiet=quiet, dev=dev))
    first_of: dict[Path, int] = {}
    todo: list[int] = []
    for i, plan in enumerate(plans):
        rd = plan.run_dir.resolve()
        if rd not in first_of:
            first_of[rd] = i
            if plan.finished is None:
                todo.append(i)
    busy = busy_cpus() if dev.type == "cpu" and len(todo) > 1 and n_threads is None else None
    if dev.type != "cpu" and n_jobs is None:
        n_jobs = 1
    n_jobs, per_run = plan_jobs(len(todo), cores=cpu_count(), busy=busy, jobs=n_jobs, threads=n_threads)
    common = dict(options, cache_dir=cache_dir, download=download, runs_root=runs_root, run_dir=run_dir,
                  resume=resume, force=force, device=device)
    results: dict[int, RunSummary] = {}
    schedule: dict[int, dict[str, Any]] = {}
    for i, plan in enumerate(plans):
        if plan.finished is not None and first_of[plan.run_dir.resolve()] == i:
            log(f"{plan.run_id}: already finished in {plan.run_dir}; skipped")
            results[i] = dataclasses.replace(plan.finished, status="reused")
            schedule[i] = _row(plan, results[i], None, None)
    if todo:
        if len(todo) > 1 and not quiet:
            log(f"training {len(todo)} runs, {n_jobs} at a time"
                + (f", {per_run} thread{'s' if per_run != 1 else ''} each" if per_run else "")
                + (f" ({busy:.1f} of {cpu_count()} cores busy with other work)" if busy is not None else ""))
        if n_jobs == 1:
            for k, i in enumerate(todo, start=1):
                plan = plans[i]
                if len(todo) > 1 and not quiet:
                    log(f"[{k}/{len(todo)}] {_describe(plan.cfg)}")
                start = time.perf_counter() - t0
                results[i] = train(plan.cfg, data=plan.data, resolved_palette=plan.palette, quiet=quiet,
                                   progress=progress, threads=n_threads, parallel_runs=1, **common)
                schedule[i] = _row(plan, results[i], start, time.perf_counter() - t0)
        else:
            order = sorted(todo, key=lambda i: -_cost(plans[i]))
            _Pool(plans, order, n_jobs, per_run, common, quiet, progress, t0).run(results, schedule)
    out = [results[first_of[p.run_dir.resolve()]] for p in plans]
    rows = [schedule[first_of[p.run_dir.resolve()]] for p in plans]
    return TrainBatch(out, wall_time_s=time.perf_counter() - t0, jobs=n_jobs, schedule=rows, busy_cpus=busy)


def _describe(cfg: TrainConfig) -> str:
    return f"{cfg.model} batch {cfg.batch_size} lr {cfg.lr:g} kernel {cfg.kernel} NF {cfg.num_filters} seed {cfg.seed}"


def _row(plan: Plan, summary: RunSummary, start: float | None, end: float | None) -> dict[str, Any]:
    return {"run_id": plan.run_id, "model": plan.cfg.model, "batch_size": plan.cfg.batch_size,
            "status": summary.status, "threads": summary.threads, "channels_last": summary.channels_last,
            "thread_choice": (summary.execution.get("thread_choice") or {}).get("method", ""),
            "start_s": None if start is None else round(start, 2), "end_s": None if end is None else round(end, 2)}


class _Worker:
    """One run in a worker process; its event and stderr lines go to the pool's queue."""

    def __init__(self, index: int, plan: Plan, task: bytes, events: "queue.Queue[tuple[int, str, str]]") -> None:
        self.index, self.plan = index, plan
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([sys.executable, "-m", "models._worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.result: dict[str, Any] | None = None
        self.stderr: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, "event", events), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, "stderr", events), daemon=True)]
        for t in self.readers:
            t.start()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(task)
            self.proc.stdin.close()
        except OSError:
            pass  # the worker died at once; its exit status tells

    def _read(self, stream: Any, kind: str, events: "queue.Queue[tuple[int, str, str]]") -> None:
        for raw in iter(stream.readline, b""):
            events.put((self.index, kind, raw.decode("utf-8", "replace").rstrip("\n")))
        events.put((self.index, kind + "-eof", ""))

    def close(self) -> None:
        """Wait for the process and close its pipes (both readers have seen the end of their stream)."""
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass


class _Pool:
    def __init__(self, plans: Sequence[Plan], order: Sequence[int], jobs: int, threads: int | None,
                 common: Mapping[str, Any], quiet: bool, progress: bool | None, t0: float) -> None:
        self.plans, self.pending, self.jobs, self.threads = plans, list(order), jobs, threads
        self.common, self.quiet, self.t0 = dict(common), quiet, t0
        self.log = Log(quiet)
        self.events: queue.Queue[tuple[int, str, str]] = queue.Queue()
        self.running: dict[int, _Worker] = {}
        self.starts: dict[int, float] = {}
        self.show_bar = (not quiet) and (progress if progress is not None else sys.stderr.isatty())

    def _start(self, i: int) -> None:
        plan = self.plans[i]
        options = dict(self.common, threads=self.threads, parallel_runs=self.jobs, quiet=True, progress=False)
        task = pickle.dumps({"config": plan.cfg, "data": plan.data, "palette": plan.palette, "options": options})
        self.starts[i] = time.perf_counter() - self.t0
        self.running[i] = _Worker(i, plan, task, self.events)
        self.log(f"started {plan.run_id}: {_describe(plan.cfg)}, {self.threads or 'auto'} thread"
                 f"{'s' if self.threads != 1 else ''}")

    def run(self, results: dict[int, RunSummary], schedule: dict[int, dict[str, Any]]) -> None:
        from tqdm import tqdm
        total = sum(self.plans[i].cfg.epochs for i in self.pending)
        eofs: dict[int, int] = {}
        error: ArchcountError | None = None

        def status() -> str:
            return "training interrupted; unfinished runs keep their last checkpoints; continue with --resume"
        with tqdm(total=total, unit="epoch", desc=f"{len(self.pending)} runs, {self.jobs} at a time",
                  disable=not self.show_bar, file=sys.stderr) as bar, interruptible(status, Log(False)):
            try:
                while self.pending or self.running:
                    while self.pending and len(self.running) < self.jobs and error is None:
                        self._start(self.pending.pop(0))
                    if not self.running:
                        break
                    try:
                        i, kind, line = self.events.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    w = self.running.get(i)
                    if w is None:
                        continue
                    if kind == "event":
                        ev = _parse_event(line)
                        if ev is None:
                            continue
                        if ev.get("event") == "epoch":
                            bar.update(1)
                            self.log(_epoch_line(ev))
                        elif ev.get("event") in ("done", "error", "interrupted"):
                            w.result = ev
                    elif kind == "stderr":
                        w.stderr = (w.stderr + [line])[-20:]
                        if line.strip():
                            self.log(f"  [{w.plan.run_id}] {line}")
                    else:
                        eofs[i] = eofs.get(i, 0) + 1
                    if eofs.get(i, 0) == 2:  # both streams closed: the worker is done
                        w.close()
                        del self.running[i]
                        problem = self._finish(w, results, schedule)
                        if problem is not None and error is None:
                            error = problem
                            for other in self.running.values():
                                other.stop()
                if error is not None:
                    raise error
            except KeyboardInterrupt:
                for w in self.running.values():
                    w.stop()
                deadline = time.monotonic() + INTERRUPT_GRACE_S + 5
                for w in self.running.values():
                    try:
                        w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        w.proc.kill()
                        w.proc.wait()
                self.log(status())
                raise

    def _finish(self, w: _Worker, results: dict[int, RunSummary], schedule: dict[int, dict[str, Any]]
                ) -> ArchcountError | None:
        ev = w.result or {}
        if ev.get("event") == "done":
            summary = RunSummary.from_dict(ev["summary"])
            results[w.index] = summary
            schedule[w.index] = _row(w.plan, summary, self.starts[w.index], time.perf_counter() - self.t0)
            self.log(f"{summary.run_id}: finished in {summary.wall_time_s:.0f} s; final val loss "
                     f"{summary.final_val_loss:.4f}, val acc {100 * summary.final_val_acc:.1f}%")
            return None
        if ev.get("event") == "error":
            e = ev.get("error") or {}
            return ArchcountError(f"{w.plan.run_id}: {e.get('reason', 'failed')}", argument=e.get("argument"),
                                  model=e.get("model"), hint=e.get("hint"))
        if ev.get("event") == "interrupted":
            return ArchcountError(f"{w.plan.run_id} was interrupted (its last checkpoint is kept; continue with "
                                  f"--resume)", argument="jobs")
        tail = " | ".join(x for x in w.stderr[-5:] if x.strip())
        return ArchcountError(f"the worker training {w.plan.run_id} ended without a result (exit status "
                              f"{w.proc.returncode}){': ' + tail if tail else ''}", argument="jobs",
                              hint="run it alone with --jobs 1 to see more")


def _parse_event(line: str) -> dict[str, Any] | None:
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


def _epoch_line(ev: Mapping[str, Any]) -> str:
    try:
        return (f"{ev['run_id']} epoch {ev['epoch']}/{ev['epochs']}: train loss {ev['train_loss']:.4f}, val loss "
                f"{ev['val_loss']:.4f}, val acc {100 * ev['val_acc']:.1f}%, {ev['epoch_time_s']:.1f} s")
    except (KeyError, TypeError, ValueError):
        return str(ev)


def find_or_train_many(configs: Iterable[TrainConfig], runs_root: str | os.PathLike[str] = "runs",
                       **options: Any) -> TrainBatch:
    """The finished run of every configuration, training (or resuming) the missing ones with :func:`train_many`.

    When the data cannot be found but every configuration has a finished run with the same
    settings, those runs are returned (with a warning).
    """
    configs = list(configs)
    options.setdefault("resume", True)
    t0 = time.perf_counter()
    try:
        return train_many(configs, runs_root=runs_root, **options)
    except ArchcountError as exc:
        if exc.argument != "data":
            raise
        found = [find_run(c, runs_root) for c in configs]
        if any(f is None for f in found):
            raise
        warnings.warn(f"data unavailable ({exc.reason}); using the finished runs in {runs_root}", stacklevel=2)
        runs = [dataclasses.replace(f, status="reused") for f in found if f is not None]
        return TrainBatch(runs, wall_time_s=time.perf_counter() - t0, jobs=0)


__all__ = ["TrainBatch", "find_or_train_many", "parse_jobs", "plan_jobs", "train_many"]
