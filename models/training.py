"""Training of the colourization models on CIFAR-10, on the best available device.

The task is the published exercise: greyscale input (the mean of R, G, B divided by 256), per-pixel
target the nearest palette colour, per-pixel cross-entropy, Adam; defaults kernel 3, NF 32, lr 1e-3,
batch 100, 25 epochs, seed 0, category horse.

A run lives in a run directory (``<runs root>/<model>-<hash>/`` by default; the hash covers the
model, its hyperparameters, the optimiser settings, the seed, the data's pixels and the palette's
colours) holding ``config.json``, ``metrics.csv``, ``checkpoint.pt`` (written atomically after every
epoch, with every RNG state, so that on CPU a resumed run ends exactly like an uninterrupted one),
``samples.png``, ``palette.csv``, once finished ``summary.json``, and the ownership manifest.

This module holds :func:`train` (one run) and the run lookup of the report; the pieces live in
:mod:`models.runs` (configuration, run directories, checkpoints), :mod:`models.loop` (the epoch),
:mod:`models.execution` (device, threads, signals) and :mod:`models.schedule` (several runs at once).

>>> cfg = TrainConfig("unet", batch_size=64)
>>> cfg.batch_size, cfg.lr, cfg.category
(64, 0.001, 'horse')
>>> select_device("cpu").type
'cpu'
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from analysis.errors import ArchcountError, require_positive_int

from .data import CategoryData, DataSource, load_category
from .execution import Choice, Log, TrainingInterrupted, amp_dtype as _amp_dtype, auto_threads, \
    channels_last_flag, choose, cpu_count, device_name, interruptible, parse_count, select_device, tuned_malloc
from .loop import channels_last_input, colourization_arrays, evaluate, samples_png, time_step, train_epoch
from .palette import Palette, load_palette, resolve_palette
from .runs import CHECKPOINT_FORMAT, METRIC_FIELDS, RUN_FILES, RunSummary, TrainConfig, checkpoint_bytes, \
    check_writable_dir, clear_run_dir, differences, experiment_dict, json_bytes, load_checkpoint, load_run, \
    load_runs, metrics_csv_bytes, now, owned_files, read_history, read_json, remove_stale_temps, run_key, \
    sweep_configs, versions, write_run_files

#: Test hooks: after writing the checkpoint of this epoch (1-based), the process sends itself a signal.
STOP_AFTER_EPOCH_ENV = "ARCHCOUNT_STOP_AFTER_EPOCH"
STOP_SIGNAL_ENV = "ARCHCOUNT_STOP_SIGNAL"
MAX_SAMPLES = 64
MAX_VAL_BATCH = 65536
MAX_THREADS = 1024


# ----------------------------------------------------------------------------- preparing a run

@dataclass
class Plan:
    """What :func:`train` found before training: the run's identity, directory and state."""

    cfg: TrainConfig
    data: CategoryData
    palette: Palette
    hparams: dict[str, Any]
    experiment: dict[str, Any]
    key: str
    run_id: str
    run_dir: Path
    finished: RunSummary | None = None
    resume_from: Path | None = None
    checkpoint: dict[str, Any] | None = None
    clear: bool = False


def resolve_config(config: TrainConfig | str, fields: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a config or a model name, with ``fields`` overriding its fields."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ArchcountError(f"unknown argument(s) {', '.join(unknown)}; train takes "
                             f"{', '.join(sorted(names - {'model'}))}", argument=unknown[0])
    if isinstance(config, TrainConfig):
        return dataclasses.replace(config, **fields) if fields else config
    if isinstance(config, str):
        return TrainConfig(model=config, **fields)
    raise ArchcountError(f"expects a TrainConfig or a model name, got {type(config).__name__}", argument="config")


def model_size(model: str, hparams: Mapping[str, Any]) -> tuple[int, float]:
    """``(weights, activation elements per image)`` of a zoo model at 32x32, without building it at full width.

    The weights are counted on the meta device (nothing allocated); the activations (every leaf
    module's output) are measured at NF=1 and NF=2 on one image and extended linearly in NF, which is
    exact for the zoo's models (every width is a multiple of NF or a constant).

    >>> w, a = model_size("conv_transpose", TrainConfig("conv_transpose").model_hparams(24))
    >>> w
    49728
    """
    items = tuple(sorted(hparams.items()))
    try:
        return _model_size(model, items)
    except TypeError:  # unhashable hyperparameter values: measure without the cache
        return _model_size.__wrapped__(model, items)


@functools.lru_cache(maxsize=64)
def _model_size(model: str, items: tuple[tuple[str, Any], ...]) -> tuple[int, float]:
    import models
    hparams = dict(items)

    def measure(nf: int) -> int:
        net = models.build(model, **{**hparams, "num_filters": nf}).eval()
        acts = [0]
        hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(0, acts[0] + o.numel()))
                 for m in net.modules() if not list(m.children())]
        with torch.no_grad():
            net(torch.zeros(1, 1, 32, 32))
        for h in hooks:
            h.remove()
        return acts[0]
    with torch.device("meta"):
        weights = sum(p.numel() for p in models.build(model, **hparams).parameters())
    nf = int(hparams.get("num_filters", 1))
    with torch.random.fork_rng(devices=[]):
        for n1, n2 in ((1, 2), (2, 4), (4, 8)):  # a registered model may need a wider minimum
            try:
                a1, a2 = measure(n1), measure(n2)
            except Exception:  # noqa: BLE001 - that width does not build or run; try the next
                continue
            return weights, float(a1 + (a2 - a1) * (nf - n1) / (n2 - n1))
    return weights, 0.0  # not measurable at small widths: only the weights are checked


def check_memory(cfg: TrainConfig, hparams: Mapping[str, Any], dev: torch.device) -> int:
    """Estimated bytes a training step needs (weights, Adam state, activations), refused when it cannot fit.

    >>> check_memory(TrainConfig("unet"), TrainConfig("unet").model_hparams(24), torch.device("cpu")) < 2**30
    True
    """
    weights, acts = model_size(cfg.model, hparams)
    acts *= cfg.batch_size
    need = int(4 * (4 * weights + 3 * acts))  # weights, grads, Adam m and v; activations, their grads, workspace
    if dev.type == "cuda":
        available = torch.cuda.mem_get_info(dev)[0]
    else:
        available = _available_memory()
    if available and need > 0.8 * available:
        argument = "num_filters" if 4 * weights > 3 * acts else "batch_size"
        raise ArchcountError(
            f"{cfg.model} with kernel {cfg.kernel}, NF {cfg.num_filters} and batch {cfg.batch_size} needs about "
            f"{need / 2**30:.1f} GiB ({weights:,} weights), more than the {available / 2**30:.1f} GiB available",
            argument=argument, model=cfg.model)
    return need


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def writable_target(path: Path, argument: str) -> None:
    """Fail early, writing nothing, when ``path`` (a folder to be) cannot hold files: it or an ancestor
    is a file, or the nearest existing ancestor refuses new entries (probed with a temporary folder,
    which also catches read-only file systems for root)."""
    import tempfile
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if p.exists() and not p.is_dir():
        raise ArchcountError(f"{p} is a file, not a folder" + (f" (so {path} cannot be created)" if p != path else ""),
                             argument=argument)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".archcount-probe-", dir=p))
    except OSError as exc:
        raise ArchcountError(f"cannot write into {p}: {exc.strerror or exc}" +
                             (f" (so {path} cannot be created)" if p != path else ""), argument=argument,
                             hint="choose a writable folder") from None


def precheck(cfg: TrainConfig, *, runs_root: str | os.PathLike[str] = "runs",
             run_dir: str | os.PathLike[str] | None = None, force: bool = False,
             dev: torch.device | None = None) -> Palette | None:
    """What can be checked before the data are read (so that a mistake writes nothing, not even a cache):
    the run folders, a palette file, and whether the model fits in memory. Returns the palette file's palette."""
    if run_dir is not None:
        rd = Path(run_dir)
        if rd.exists() and not rd.is_dir():
            raise ArchcountError(f"{rd} exists and is not a folder", argument="run_dir")
        writable_target(rd, "run_dir")
        if rd.is_dir() and any(rd.iterdir()):
            owned, foreign = owned_files(rd)
            if force and foreign:
                raise _foreign(rd, foreign)
            if not force and read_json(rd / "config.json") is None and not owned:
                raise ArchcountError(f"{rd} is not empty and holds no archcount run", argument="run_dir",
                                     hint="choose another --run-dir, or pass --force to write the run files there")
    else:
        root = Path(runs_root)
        if root.exists() and not root.is_dir():
            raise ArchcountError(f"{root} is a file, not a folder of runs", argument="runs")
        writable_target(root, "runs")
    pal = load_palette(cfg.palette) if cfg.palette is not None else None
    check_memory(cfg, cfg.model_hparams(pal.k if pal is not None else cfg.palette_k), dev or torch.device("cpu"))
    return pal


def _foreign(rd: Path, foreign: list[str]) -> ArchcountError:
    return ArchcountError(f"{rd} holds {', '.join(foreign)} that archcount did not write (or that changed since); "
                          f"--force replaces only archcount's own files", argument="force",
                          hint="move those files away, or choose another --run-dir")


def prepare(cfg: TrainConfig, *, data: Any = None, cache_dir: Any = None, download: bool = True,
            runs_root: str | os.PathLike[str] = "runs", run_dir: str | os.PathLike[str] | None = None,
            resume: bool = False, force: bool = False, quiet: bool = True, palette: Palette | None = None,
            dev: torch.device | None = None) -> Plan:
    """Load the data and palette, key the run and look at its directory, writing nothing.

    Raises for every problem that must stop the run before it starts (a foreign folder, a
    checkpoint of another configuration, files ``--force`` may not replace).
    """
    file_palette = precheck(cfg, runs_root=runs_root, run_dir=run_dir, force=force, dev=dev)
    if isinstance(data, CategoryData):
        if data.category != cfg.category:
            raise ArchcountError(f"the given data hold {data.category!r}, the configuration asks for "
                                 f"{cfg.category!r}", argument="category")
        cat = data
    else:
        cat = load_category(data, cfg.category, cache_dir=cache_dir, download=download, quiet=quiet)
    pal = palette or file_palette or resolve_palette(None, cat, k=cfg.palette_k, seed=cfg.palette_seed,
                                                     cache_dir=cache_dir)
    hp = cfg.model_hparams(pal.k)
    experiment = experiment_dict(cfg, hp, cat, pal)
    key = run_key(experiment)
    run_id = f"{cfg.model}-{key[:12]}"
    argument = "run_dir" if run_dir is not None else "runs"
    if run_dir is not None:
        rd = Path(run_dir)
    else:
        root = Path(runs_root)
        if root.exists() and not root.is_dir():
            raise ArchcountError(f"{root} is a file, not a folder of runs", argument="runs")
        rd = root / run_id
    plan = Plan(cfg, cat, pal, hp, experiment, key, run_id, rd)
    if rd.exists() and not rd.is_dir():
        raise ArchcountError(f"{rd} exists and is not a folder", argument=argument)
    try:
        empty = not (rd.is_dir() and any(rd.iterdir()))
    except OSError as exc:
        raise ArchcountError(f"cannot read the folder {rd}: {exc.strerror or exc}", argument=argument) from None
    if empty:
        return plan
    cfg_json = read_json(rd / "config.json")
    summary_json = read_json(rd / "summary.json")
    ckpt_path = rd / "checkpoint.pt"
    same = cfg_json is not None and cfg_json.get("key") == key
    if force:
        foreign = owned_files(rd)[1]
        if foreign:
            raise _foreign(rd, foreign)
        plan.clear = True
        return plan
    if same and summary_json is not None and summary_json.get("key") == key:
        try:
            plan.finished = load_run(rd)
            return plan
        except ArchcountError as exc:
            warnings.warn(f"{exc.reason}; the run counts as unfinished", stacklevel=3)
    if resume and (ckpt_path.exists() or ckpt_path.is_symlink()):
        ckpt = load_checkpoint(ckpt_path, cfg.epochs)
        if ckpt["key"] != key:
            raise ArchcountError(
                f"the checkpoint {ckpt_path} belongs to a different configuration ("
                f"{differences(ckpt.get('experiment', {}), experiment)}); refusing to resume",
                argument="resume", hint="use the original settings, another --run-dir, or --force to start over")
        plan.resume_from, plan.checkpoint = ckpt_path, ckpt
        return plan
    if same and resume:
        return plan  # config.json written, no epoch finished yet: start from scratch
    if same:
        done = len(read_history(rd))
        raise ArchcountError(f"{rd} holds an unfinished run of this configuration ({done}/{cfg.epochs} epochs)",
                             argument="run_dir", hint="pass --resume to continue it or --force to start over")
    if cfg_json is not None:
        raise ArchcountError(
            f"{rd} already holds a different run ({cfg_json.get('run_id', '?')}: "
            f"{differences(cfg_json.get('experiment', {}), experiment)})", argument="run_dir",
            hint="choose another --run-dir, or pass --force to replace it")
    raise ArchcountError(f"{rd} is not empty and holds no archcount run", argument="run_dir",
                         hint="choose another --run-dir, or pass --force to write the run files there")


# ----------------------------------------------------------------------------- train

def train(config: TrainConfig | str = "unet", *, data: str | os.PathLike[str] | DataSource | CategoryData | None = None,
          cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
          runs_root: str | os.PathLike[str] = "runs", run_dir: str | os.PathLike[str] | None = None,
          resume: bool = False, force: bool = False, device: str | torch.device = "auto", amp: str = "auto",
          channels_last: str | bool = "auto", threads: int | str | None = "auto", compile: bool = False,
          quiet: bool = False, progress: bool | None = None, samples: int = 8, val_batch_size: int | None = None,
          on_epoch: Callable[[Mapping[str, Any]], None] | None = None, resolved_palette: Palette | None = None,
          parallel_runs: int = 1, **fields: Any) -> RunSummary:
    """Train one model on the colourization task and return its :class:`RunSummary`.

    ``config`` is a :class:`TrainConfig` or a model name; ``fields`` override its fields
    (``batch_size=64``, ``epochs=5``, ``palette="colours.csv"`` ...). A finished run with the same
    key is returned as it is (``status == "reused"``) unless ``force``; an unfinished one continues
    with ``resume``; a run directory that holds a different run is refused unless ``force``, which
    replaces only files archcount wrote.
    ``device`` is ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda[:N]`` or ``mps``; ``amp`` is
    ``auto`` (bf16 on CUDA), ``bf16`` or ``off``; ``channels_last`` is ``auto`` (on for CPU and
    CUDA), ``on`` or ``off``; ``threads`` is a number or ``auto`` (every core of an idle machine,
    else the counts that fit what other processes leave free are timed for a few steps). A resumed
    run keeps its threads, memory format, amp and validation batch. ``compile`` wraps the model in
    ``torch.compile`` (measured slower on CPU here, so off). ``on_epoch(row)`` is called after every
    epoch; ``resolved_palette`` and ``parallel_runs`` are for :func:`train_many`.

    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for split, n in (("train", 6), ("test", 2)):
    ...     (d / split / "horse").mkdir(parents=True)
    ...     for i in range(n):
    ...         Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / split / "horse" / f"{i}.png")
    >>> s = train("conv_transpose", num_filters=2, epochs=1, batch_size=4, palette_k=3, data=d,
    ...           cache_dir=d / "cache", runs_root=d / "runs", device="cpu", quiet=True)
    >>> s.epochs_completed, s.data["n_train"], sorted(p.name for p in pathlib.Path(s.run_dir).iterdir())
    (1, 6, ['.archcount-run.json', 'checkpoint.pt', 'config.json', 'metrics.csv', 'palette.csv', 'samples.png', 'summary.json'])
    """
    t_start = time.perf_counter()
    cfg = resolve_config(config, fields)
    # bad execution settings fail before anything is read or written
    dev, samples, val_batch_size, threads, amp_mode, cl_flag = check_options(
        device=device, samples=samples, val_batch_size=val_batch_size, threads=threads, amp=amp,
        channels_last=channels_last, data=data)
    log = Log(quiet)
    plan = prepare(cfg, data=data, cache_dir=cache_dir, download=download, runs_root=runs_root, run_dir=run_dir,
                   resume=resume, force=force, quiet=quiet, palette=resolved_palette, dev=dev)
    if plan.finished is not None:
        log(f"{plan.run_id}: already finished in {plan.run_dir}; skipped")
        return dataclasses.replace(plan.finished, status="reused")
    rd = plan.run_dir
    if plan.clear:
        log(f"--force: replacing archcount's run files in {rd}")
        clear_run_dir(rd)
    check_writable_dir(rd, "run_dir" if run_dir is not None else "runs")

    execution = {"device": str(dev), "device_name": device_name(dev), "compile": bool(compile),
                 "parallel_runs": int(parallel_runs)}
    given = {"threads": threads, "channels_last": cl_flag, "amp": amp_mode, "val_batch_size": val_batch_size}
    explicit = {"threads": threads is not None, "channels_last": channels_last not in ("auto", None),
                "amp": str(amp).lower() != "auto", "val_batch_size": val_batch_size is not None}
    if plan.checkpoint is not None:  # keep what changes the numbers
        for name, value in _checkpoint_execution(plan.checkpoint).items():
            if not explicit[name]:
                given[name] = value
            elif given[name] != value:
                warnings.warn(f"the interrupted run used {name}={_show(value)}, this one {_show(given[name])}: its "
                              f"numbers will differ from an uninterrupted run's", stacklevel=2)
    if given["val_batch_size"] is None:
        # validation batches: small ones are fastest on CPU (cache-friendly), large ones on accelerators
        given["val_batch_size"] = 100 if dev.type == "cpu" else 1000
    old_threads = torch.get_num_threads()
    saved = {"epoch": plan.checkpoint["epoch"] if plan.checkpoint else 0}

    def status() -> str:
        if saved["epoch"]:
            return f"{plan.run_id}: interrupted; the checkpoint after epoch {saved['epoch']} is kept in {rd}; " \
                   f"continue with --resume"
        return f"{plan.run_id}: interrupted before the first epoch finished; no checkpoint was written"
    try:
        with tuned_malloc() as malloc, interruptible(status, Log(False)):
            execution["malloc"] = malloc
            return _run(plan, dev, given, execution, compile, log, quiet, progress, samples, on_epoch, saved,
                        status, t_start)
    finally:
        torch.set_num_threads(old_threads)


def check_options(*, device: Any = "auto", samples: Any = 8, val_batch_size: Any = None, threads: Any = "auto",
                  amp: Any = "auto", channels_last: Any = "auto", data: Any = None
                  ) -> tuple[torch.device, int, int | None, int | None, torch.dtype | None, bool]:
    """Validate the execution options of :func:`train`: ``(device, samples, val_batch_size, threads, amp dtype,
    channels_last)``."""
    dev = select_device(device)
    samples = require_positive_int(samples, "samples", minimum=0)
    if samples > MAX_SAMPLES:
        raise ArchcountError(f"must be at most {MAX_SAMPLES}, got {samples}", argument="samples")
    if val_batch_size is not None:
        val_batch_size = require_positive_int(val_batch_size, "val_batch_size")
        if val_batch_size > MAX_VAL_BATCH:
            raise ArchcountError(f"must be at most {MAX_VAL_BATCH}, got {val_batch_size}", argument="val_batch_size")
    if isinstance(data, (str, os.PathLike)) and not os.fspath(data).strip():
        raise ArchcountError("is an empty path; leave it out to use $ARCHCOUNT_DATA, the cache or the shared zip",
                             argument="data")
    return dev, samples, val_batch_size, parse_threads(threads), _amp_dtype(amp, dev), \
        channels_last_flag(channels_last, dev)


def parse_threads(threads: Any) -> int | None:
    """``auto``/None -> None, else a thread count from 1 to :data:`MAX_THREADS`."""
    return parse_count(threads, "threads", MAX_THREADS)


def _show(value: Any) -> str:
    return "bf16" if value is torch.bfloat16 else "off" if value is None else str(value)


def _checkpoint_execution(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    ex = ckpt.get("execution") or {}
    out: dict[str, Any] = {}
    threads = ex.get("threads", ckpt.get("threads"))
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        out["threads"] = min(threads, MAX_THREADS)
    if isinstance(ex.get("channels_last"), bool):
        out["channels_last"] = ex["channels_last"]
    if ex.get("amp") in ("bf16", "off"):
        out["amp"] = torch.bfloat16 if ex["amp"] == "bf16" else None
    vb = ex.get("val_batch_size")
    if isinstance(vb, int) and not isinstance(vb, bool) and 0 < vb <= MAX_VAL_BATCH:
        out["val_batch_size"] = vb
    return out


def _run(plan: Plan, dev: torch.device, given: dict[str, Any], execution: dict[str, Any], use_compile: bool,
         log: Log, quiet: bool, progress: bool | None, n_samples: int,
         on_epoch: Callable[[Mapping[str, Any]], None] | None, saved: dict[str, int], status: Callable[[], str],
         t_start: float) -> RunSummary:
    import models
    from tqdm import tqdm

    cfg, cat, pal, rd, run_id = plan.cfg, plan.data, plan.palette, plan.run_dir, plan.run_id
    remove_stale_temps(rd)
    x_tr, y_tr, x_va, y_va = colourization_arrays(cat, pal)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(cfg.seed)
        torch.backends.cudnn.benchmark = True
    net = models.build(cfg.model, **plan.hparams)
    num_weights = sum(p.numel() for p in net.parameters())
    net = net.to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, Any]] = []
    start_epoch, resumed, started = 0, 0, now()
    x_train = torch.from_numpy(x_tr).to(dev)
    y_train = torch.from_numpy(y_tr).to(dev)

    if plan.checkpoint is not None:
        ckpt = plan.checkpoint
        try:
            net.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            generator.set_state(ckpt["rng"]["shuffle"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            _set_numpy_state(ckpt["rng"]["numpy"])
            if dev.type == "cuda" and ckpt["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ArchcountError(f"the checkpoint {plan.resume_from} does not fit this model ({str(exc)[:300]})",
                                 argument="resume", hint="start over with --force") from None
        history = [dict(h) for h in ckpt["history"]]
        start_epoch = int(ckpt["epoch"])
        resumed = int(ckpt.get("resumed", 0)) + 1
        started = str(ckpt.get("started", started))
        choice = Choice(given["threads"] or auto_threads(), True, "kept from the checkpoint")
        log(f"{run_id}: resuming after epoch {start_epoch}/{cfg.epochs} from {plan.resume_from}")
    else:
        xb, yb = x_train[:cfg.batch_size], y_train[:cfg.batch_size]
        timer = time_step(net, xb, yb, cfg.lr, bool(given["channels_last"])) if dev.type == "cpu" else None

        def step(threads: int) -> float:
            torch.set_num_threads(threads)
            assert timer is not None
            return timer()
        choice = choose(step if timer is not None else None, threads=given["threads"], dev=dev)
        del timer
    torch.set_num_threads(choice.threads)
    use_cl = bool(given["channels_last"])
    fmt = torch.channels_last if use_cl else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x_val = torch.from_numpy(x_va).to(dev)
    y_val = torch.from_numpy(y_va).to(dev)
    if use_cl:
        x_train, x_val = channels_last_input(x_train), channels_last_input(x_val)
    amp_dtype = given["amp"]
    execution.update({"amp": "bf16" if amp_dtype is not None else "off", "channels_last": use_cl,
                      "threads": choice.threads, "cpu_cores": cpu_count(), "thread_choice": choice.to_dict(),
                      "val_batch_size": given["val_batch_size"]})
    write_run_files(rd, {"config.json": json_bytes({
        "run_id": run_id, "key": plan.key, "experiment": dict(plan.experiment), "config": cfg.to_dict(),
        "data": cat.to_dict(), "palette": pal.to_dict(), "execution": execution, "written": now()}),
        "palette.csv": pal.csv_text().encode()})
    log(f"{run_id}: {cfg.model} {', '.join(f'{k}={v}' for k, v in plan.hparams.items())}; batch {cfg.batch_size}, "
        f"lr {cfg.lr:g}, {cfg.epochs} epochs, seed {cfg.seed}; {execution['device']} "
        f"({execution['device_name']}), amp {execution['amp']}, channels_last {use_cl}, "
        f"{choice.threads} threads ({choice.method})")
    log(f"  data: {cat.description}")
    log(f"  palette: {pal.description}")
    log(f"  run directory: {rd}")
    runner: torch.nn.Module = torch.compile(net) if use_compile else net  # type: ignore[assignment]

    show_bar = (not quiet) and (progress if progress is not None else sys.stderr.isatty())
    n_batches = math.ceil(len(x_train) / cfg.batch_size)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            with tqdm(total=n_batches, desc=f"{run_id} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                      disable=not show_bar, leave=False, file=sys.stderr) as bar:
                t0 = time.perf_counter()
                stats: dict[str, float] = {}
                train_loss = train_epoch(runner, optimizer, x_train, y_train, cfg.batch_size, generator,
                                         amp_dtype=amp_dtype, on_batch=bar.update if show_bar else None, stats=stats)
                t1 = time.perf_counter()
                val_loss, val_acc = evaluate(runner, x_val, y_val, batch_size=given["val_batch_size"],
                                             amp_dtype=amp_dtype)
                t2 = time.perf_counter()
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                   "grad_norm_first": stats["grad_norm_first"], "epoch_time_s": t2 - t0, "train_time_s": t1 - t0,
                   "val_time_s": t2 - t1, "images_per_s": len(x_train) / max(t1 - t0, 1e-12)}
            history.append(row)
            rng = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "shuffle": generator.get_state(),
                   "cuda": torch.cuda.get_rng_state_all() if dev.type == "cuda" else None}
            ckpt_obj = {"format": CHECKPOINT_FORMAT, "key": plan.key, "experiment": dict(plan.experiment),
                        "epoch": epoch + 1, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng, "history": history, "resumed": resumed, "started": started,
                        "threads": choice.threads, "execution": {k: v for k, v in execution.items()
                                                                 if k != "thread_choice"}}
            write_run_files(rd, {"checkpoint.pt": checkpoint_bytes(ckpt_obj),
                                 "metrics.csv": metrics_csv_bytes(history)})
            saved["epoch"] = epoch + 1
            log(f"{run_id} epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                f"val acc {100 * val_acc:.1f}%, {t2 - t0:.1f} s ({row['images_per_s']:.0f} img/s)")
            if on_epoch is not None:
                on_epoch({**row, "run_id": run_id, "epochs": cfg.epochs})
            _test_stop_hook(epoch + 1)
    except KeyboardInterrupt:
        log(status())
        raise

    png = samples_png(net, x_val, y_va, cat.test, pal, n_samples, amp_dtype)
    final = dict(history[-1])
    best = dict(min(history, key=lambda h: (h["val_loss"], h["epoch"])))
    train_times = [h["train_time_s"] for h in history]
    summary = RunSummary(
        run_id=run_id, run_dir=str(rd.resolve()), key=plan.key, model=cfg.model, config=cfg.to_dict(),
        hparams=dict(plan.hparams), experiment=dict(plan.experiment), epochs=cfg.epochs, epochs_completed=len(history),
        final=final, best=best, history=tuple(history), num_weights=num_weights, device=execution["device"],
        device_name=execution["device_name"], amp=execution["amp"], channels_last=use_cl, threads=choice.threads,
        data=cat.to_dict(), palette=pal.to_dict(), versions=versions(), train_time_s=float(sum(train_times)),
        mean_epoch_time_s=float(np.mean([h["epoch_time_s"] for h in history])),
        images_per_s=float(len(x_train) * len(history) / max(sum(train_times), 1e-12)), resumed=resumed,
        started=started, finished_at=now(), wall_time_s=time.perf_counter() - t_start, execution=dict(execution))
    write_run_files(rd, {**({"samples.png": png} if png is not None else {}),
                         "summary.json": json_bytes(summary.to_dict())})
    log(f"{run_id}: finished; final val loss {summary.final_val_loss:.4f}, val acc "
        f"{100 * summary.final_val_acc:.1f}%; best val loss {summary.best_val_loss:.4f} (epoch {best['epoch']})")
    return summary


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: Mapping[str, Any]) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["cached_gaussian"]))


def _test_stop_hook(epoch: int) -> None:
    """Test hook: ``ARCHCOUNT_STOP_AFTER_EPOCH=N`` sends this process ``ARCHCOUNT_STOP_SIGNAL`` (default KILL)."""
    value = os.environ.get(STOP_AFTER_EPOCH_ENV)
    if value and value.strip().isdigit() and int(value) == epoch:
        name = os.environ.get(STOP_SIGNAL_ENV, "KILL").upper()
        sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name)
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the signal arrives; a handled one raises here


# ----------------------------------------------------------------------------- sweeps and the report

def train_many(configs: Iterable[TrainConfig], **options: Any) -> Any:
    """Train several runs, in parallel where the cores allow; see :func:`models.schedule.train_many`."""
    from .schedule import train_many as _train_many
    return _train_many(configs, **options)


def _same_settings(summary: RunSummary, cfg: TrainConfig) -> bool:
    """Does a finished run match ``cfg`` in everything but the data (used when the data are unavailable)?"""
    try:
        old = TrainConfig.from_dict(summary.config)
    except (ArchcountError, TypeError):
        return False
    plain = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("palette", "palette_k", "palette_seed")]
    if any(getattr(old, n) != getattr(cfg, n) for n in plain) or summary.epochs_completed != cfg.epochs:
        return False
    if cfg.palette is None:
        return (old.palette is None and summary.palette.get("kind") == "kmeans"
                and old.palette_k == cfg.palette_k and old.palette_seed == cfg.palette_seed)
    try:
        return load_palette(cfg.palette).sha256 == summary.palette.get("sha256")
    except ArchcountError:
        return False


def find_run(config: TrainConfig, runs_root: str | os.PathLike[str] = "runs") -> RunSummary | None:
    """A finished run under ``runs_root`` with ``config``'s settings, matched without reading the data."""
    matches = [r for r in load_runs(runs_root) if _same_settings(r, config)]
    return max(matches, key=lambda r: r.finished_at) if matches else None


def find_or_train(config: TrainConfig, runs_root: str | os.PathLike[str] = "runs", **options: Any) -> RunSummary:
    """The finished run of ``config`` under ``runs_root``, training (or resuming) it when missing.

    When the data cannot be found but a finished run with the same settings exists, that run is returned.
    """
    options.setdefault("resume", True)
    try:
        return train(config, runs_root=runs_root, **options)
    except ArchcountError as exc:
        if exc.argument != "data":
            raise
        found = find_run(config, runs_root)
        if found is None:
            raise
        warnings.warn(f"data unavailable ({exc.reason}); using the finished run {found.run_dir}", stacklevel=2)
        return dataclasses.replace(found, status="reused")


def find_or_train_many(configs: Iterable[TrainConfig], runs_root: str | os.PathLike[str] = "runs",
                       **options: Any) -> Any:
    """:func:`find_or_train` for several runs at once, scheduled by :func:`models.schedule.train_many`."""
    from .schedule import find_or_train_many as _many
    return _many(configs, runs_root, **options)


__all__ = ["METRIC_FIELDS", "RUN_FILES", "RunSummary", "TrainConfig", "TrainingInterrupted", "auto_threads",
           "colourization_arrays", "evaluate", "experiment_dict", "find_or_train", "find_or_train_many", "find_run",
           "load_run", "load_runs", "run_key", "select_device", "sweep_configs", "train", "train_epoch", "train_many"]
