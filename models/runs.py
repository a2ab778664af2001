"""Training runs on disk: the configuration and its limits, the run key, summaries, and the run directory.

A run directory holds ``config.json``, ``metrics.csv``, ``checkpoint.pt``, ``samples.png``,
``palette.csv``, ``summary.json`` once finished, and ``.archcount-run.json``: the manifest of the
files archcount wrote there, each with the sha256 of its content. ``--force`` replaces only files
the manifest vouches for (plus the report's ``evidence.json`` and ``evidence/``); anything else with
one of those names is refused, so that a user's own ``metrics.csv`` is never deleted.

>>> cfg = TrainConfig("unet", batch_size=64)
>>> cfg.batch_size, cfg.lr, cfg.category
(64, 0.001, 'horse')
>>> TrainConfig("unet", seed=2**70)
Traceback (most recent call last):
...
analysis.errors.ArchcountError: argument seed: must be at most 4294967295 (numpy's seed range), got 1180591620717411303424
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import platform
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from analysis.errors import ArchcountError, require_positive_int
from analysis.files import write_atomic

from .data import category_name
from .palette import DEFAULT_K, DEFAULT_SEED, MAX_COLOURS

#: Files a run directory may hold, all written by training.
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "samples.png", "summary.json", "palette.csv")
#: Written into a run directory later by the report; archcount's own when the folder is a run directory.
REPORT_FILES = ("evidence.json",)
REPORT_DIRS = ("evidence",)
#: The ownership manifest: every file archcount wrote into the run directory, with its sha256.
MANIFEST = ".archcount-run.json"
#: Columns of metrics.csv, in order.
METRIC_FIELDS = ("epoch", "train_loss", "val_loss", "val_acc", "grad_norm_first", "epoch_time_s", "train_time_s",
                 "val_time_s", "images_per_s")
#: Bumped whenever the meaning of a run key changes.
KEY_VERSION = 1
CHECKPOINT_FORMAT = 1
#: The fields of :class:`TrainConfig` that may be given as comma lists to sweep over.
SWEEP_FIELDS = ("model", "kernel", "num_filters", "lr", "batch_size", "epochs", "seed")
#: Upper bounds of what a user types (with the reason given in the error).
MAX_KERNEL = 65          # 2 * 32 + 1: a larger kernel adds only taps on the zero padding of a 32x32 image
MAX_NUM_FILTERS = 1024
MAX_BATCH_SIZE = 65536
MAX_EPOCHS = 10000
MAX_SEED = 2**32 - 1     # numpy's seed range


def bounded_int(value: Any, argument: str, lo: int, hi: int, why: str = "", model: str | None = None) -> int:
    """``value`` as an int in ``[lo, hi]``, else an error naming ``argument`` (bools and floats are refused).

    >>> bounded_int(3, "kernel", 1, 65)
    3
    >>> bounded_int(10**6, "num_filters", 1, 1024, "the largest supported width")
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: argument num_filters: must be at most 1024 (the largest supported width), got 1000000
    """
    value = require_positive_int(value, argument, minimum=lo, model=model)
    if value > hi:
        raise ArchcountError(f"must be at most {hi}{f' ({why})' if why else ''}, got {value}", argument=argument,
                             model=model)
    return value


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrainConfig:
    """What defines a training run (not where or how fast it runs).

    ``palette`` is a CSV/.npy file, or None for archcount's own k-means palette (``palette_k``
    colours, ``palette_seed``). ``hparams`` holds further model hyperparameters as (name, value) pairs.

    >>> TrainConfig("conv_transpose", category=7).category
    'horse'
    >>> TrainConfig("nope")
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: nope: argument model: unknown model; available: ...
    """

    model: str = "unet"
    kernel: int = 3
    num_filters: int = 32
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 25
    seed: int = 0
    category: str = "horse"
    palette: str | None = None
    palette_k: int = DEFAULT_K
    palette_seed: int = DEFAULT_SEED
    hparams: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        import models
        if not isinstance(self.model, str):
            raise ArchcountError(f"must be a model name, got {self.model!r}", argument="model")
        spec = models.spec(self.model)
        if spec.task != "colourization":
            raise ArchcountError(f"is a {spec.task} model; training supports colourization models "
                                 f"({', '.join(s.name for s in models.registry if s.task == 'colourization')})",
                                 model=self.model, argument="model")
        if not spec.valid_size(32):
            raise ArchcountError(f"cannot take 32x32 inputs (input size must be {spec.size_rule()})",
                                 model=self.model, argument="model")
        limits = {"kernel": (MAX_KERNEL, "a larger kernel only adds taps on the zero padding of 32x32 images"),
                  "num_filters": (MAX_NUM_FILTERS, "the widest model archcount trains"),
                  "batch_size": (MAX_BATCH_SIZE, ""), "epochs": (MAX_EPOCHS, "")}
        for name, (hi, why) in limits.items():
            object.__setattr__(self, name, bounded_int(getattr(self, name), name, 1, hi, why, model=self.model))
        for name in ("seed", "palette_seed"):
            object.__setattr__(self, name, bounded_int(getattr(self, name), name, 0, MAX_SEED, "numpy's seed range"))
        object.__setattr__(self, "palette_k", bounded_int(self.palette_k, "palette_k", 2, MAX_COLOURS,
                                                          "more colours make k-means and the targets very slow"))
        try:
            lr = float(self.lr)
        except (TypeError, ValueError, OverflowError):
            raise ArchcountError(f"must be a positive number, got {self.lr!r}", argument="lr") from None
        if not math.isfinite(lr) or lr <= 0:
            raise ArchcountError(f"must be a positive number, got {self.lr!r}", argument="lr")
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "category", category_name(self.category))
        if self.palette is not None:
            if not isinstance(self.palette, (str, os.PathLike)):
                raise ArchcountError(f"must be a file path, got {type(self.palette).__name__}", argument="palette")
            text = os.fspath(self.palette)
            if not str(text).strip():
                raise ArchcountError("is an empty path; leave it out for archcount's own k-means palette",
                                     argument="palette")
            object.__setattr__(self, "palette", str(text))
        if isinstance(self.hparams, Mapping):
            extra = dict(self.hparams.items())
        else:
            try:
                extra = dict(self.hparams)
            except (TypeError, ValueError):
                raise ArchcountError(f"must be NAME=VALUE pairs, got {self.hparams!r}", argument="hparams") from None
        for name in ("kernel", "num_filters"):
            if name in extra:
                raise ArchcountError(f"give {name} as its own argument, not in hparams", argument="hparams")
        if "num_in_channels" in extra and extra["num_in_channels"] != 1:
            raise ArchcountError(f"the input is greyscale, so num_in_channels must be 1, got "
                                 f"{extra['num_in_channels']!r}", model=self.model, argument="num_in_channels")
        spec.hparams(**extra)  # unknown names are an error naming the model
        object.__setattr__(self, "hparams", tuple(sorted(extra.items())))

    def model_hparams(self, num_colours: int) -> dict[str, Any]:
        """The model's full hyperparameters for a palette of ``num_colours`` colours."""
        import models
        extra = dict(self.hparams)
        if "num_colours" in extra and extra["num_colours"] != num_colours:
            raise ArchcountError(f"num_colours={extra['num_colours']} but the palette has {num_colours} colours",
                                 model=self.model, argument="num_colours")
        extra.update(kernel=self.kernel, num_filters=self.num_filters, num_colours=num_colours, num_in_channels=1)
        return models.spec(self.model).hparams(**extra)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hparams"] = dict(self.hparams)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        if not isinstance(d, Mapping):
            raise ArchcountError(f"a configuration must be a mapping, got {type(d).__name__}", argument="config")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if isinstance(kwargs.get("hparams"), Mapping):
            kwargs["hparams"] = tuple(sorted(kwargs["hparams"].items()))
        return cls(**kwargs)


def sweep_configs(model: str | Sequence[str] = ("pool_upsample", "conv_transpose", "unet"), **fields: Any
                  ) -> list[TrainConfig]:
    """Every combination of the list-valued fields (any of :data:`SWEEP_FIELDS`), models outermost.

    >>> [(c.model, c.batch_size) for c in sweep_configs(["unet", "conv_transpose"], batch_size=[32, 64])]
    [('unet', 32), ('unet', 64), ('conv_transpose', 32), ('conv_transpose', 64)]
    """
    lists: dict[str, list[Any]] = {"model": [model] if isinstance(model, str) else list(model)}
    fixed: dict[str, Any] = {}
    for name, value in fields.items():
        if name in SWEEP_FIELDS and isinstance(value, (list, tuple)):
            lists[name] = list(value)
        else:
            fixed[name] = value
    for name, values in lists.items():
        if not values:
            raise ArchcountError("needs at least one value", argument=name)
    combos = math.prod(len(v) for v in lists.values())
    if combos > 1000:
        raise ArchcountError(f"the lists give {combos} combinations; at most 1000 runs at once", argument=next(
            n for n, v in lists.items() if len(v) > 1))
    return [TrainConfig(**dict(zip(lists, combo)), **fixed) for combo in itertools.product(*lists.values())]


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class RunSummary:
    """The outcome of a finished run, as stored in ``summary.json``.

    ``final`` and ``best`` are metric rows (``best``: the epoch with the lowest validation loss);
    ``status`` is ``"finished"`` on disk and ``"reused"`` when :func:`train` found the run done.
    ``execution`` holds how it ran (threads and how they were chosen, channels_last, the number of
    runs sharing the machine); ``wall_time_s`` is the wall time of the training call.
    """

    run_id: str
    run_dir: str
    key: str
    model: str
    config: Mapping[str, Any]
    hparams: Mapping[str, Any]
    experiment: Mapping[str, Any]
    epochs: int
    epochs_completed: int
    final: Mapping[str, Any]
    best: Mapping[str, Any]
    history: tuple[Mapping[str, Any], ...]
    num_weights: int
    device: str
    device_name: str
    amp: str
    channels_last: bool
    threads: int
    data: Mapping[str, Any]
    palette: Mapping[str, Any]
    versions: Mapping[str, Any]
    train_time_s: float
    mean_epoch_time_s: float
    images_per_s: float
    resumed: int = 0
    started: str = ""
    finished_at: str = ""
    status: str = "finished"
    wall_time_s: float = 0.0
    execution: Mapping[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.config["batch_size"])

    @property
    def final_val_loss(self) -> float:
        return float(self.final["val_loss"])

    @property
    def final_val_acc(self) -> float:
        return float(self.final["val_acc"])

    @property
    def best_val_loss(self) -> float:
        return float(self.best["val_loss"])

    @property
    def best_val_acc(self) -> float:
        return max(float(h["val_acc"]) for h in self.history) if self.history else float("nan")

    @property
    def data_description(self) -> str:
        return str(self.data.get("description", ""))

    @property
    def palette_description(self) -> str:
        return str(self.palette.get("description", ""))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["history"] = [dict(h) for h in self.history]
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSummary":
        """Rebuild a summary, checking every field's type (a wrong one is an error naming the field)."""
        if not isinstance(d, Mapping):
            raise ArchcountError(f"a summary must be a JSON object, got {type(d).__name__}", argument="summary")
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        missing = [n for n, f in names.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ArchcountError(f"summary lacks {', '.join(missing)}", argument="summary")
        problem = _summary_problem(kwargs)
        if problem:
            raise ArchcountError(problem, argument="summary")
        kwargs["history"] = tuple(kwargs.get("history") or ())
        return cls(**kwargs)


_NUMBER = (int, float)
_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "run_dir": (str,), "key": (str,), "model": (str,), "config": (Mapping,), "hparams": (Mapping,),
    "experiment": (Mapping,), "epochs": (int,), "epochs_completed": (int,), "final": (Mapping,), "best": (Mapping,),
    "history": (list, tuple), "num_weights": (int,), "device": (str,), "device_name": (str,), "amp": (str,),
    "channels_last": (bool,), "threads": (int,), "data": (Mapping,), "palette": (Mapping,), "versions": (Mapping,),
    "train_time_s": _NUMBER, "mean_epoch_time_s": _NUMBER, "images_per_s": _NUMBER, "resumed": (int,),
    "started": (str,), "finished_at": (str,), "status": (str,), "wall_time_s": _NUMBER, "execution": (Mapping,)}


def metric_row_problem(row: Any, where: str) -> str | None:
    """Why ``row`` is not a metrics row (epoch an int >= 1, the other known fields numbers), or None.

    >>> metric_row_problem({"epoch": 1, "train_loss": 1.0, "val_loss": "abc", "val_acc": 0.5}, "final")
    "final: val_loss must be a number, got 'abc'"
    """
    if not isinstance(row, Mapping):
        return f"{where} must be an object, got {type(row).__name__}"
    epoch = row.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f"{where}: epoch must be an integer >= 1, got {epoch!r}"
    for name in ("train_loss", "val_loss", "val_acc"):
        if name not in row:
            return f"{where} lacks {name}"
    for name in METRIC_FIELDS[1:]:
        if name in row and (isinstance(row[name], bool) or not isinstance(row[name], _NUMBER)):
            return f"{where}: {name} must be a number, got {row[name]!r}"
    return None


def _summary_problem(d: Mapping[str, Any]) -> str | None:
    for name, types in _SUMMARY_TYPES.items():
        if name not in d:
            continue
        v = d[name]
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            return f"field {name} must be {' or '.join(t.__name__ for t in types)}, got {v!r}"[:300]
    for name in ("final", "best"):
        problem = metric_row_problem(d[name], name)
        if problem:
            return problem
    for i, row in enumerate(d["history"]):
        problem = metric_row_problem(row, f"history[{i}]")
        if problem:
            return problem
    batch = d["config"].get("batch_size")
    if isinstance(batch, bool) or not isinstance(batch, int):
        return f"config.batch_size must be an integer, got {batch!r}"
    return None


def load_run(run_dir: str | os.PathLike[str]) -> RunSummary:
    """The :class:`RunSummary` of a finished run directory (from its ``summary.json``)."""
    path = Path(run_dir) / "summary.json"
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArchcountError(f"{path} does not exist (the run is not finished)", argument="run_dir") from None
    except (OSError, ValueError) as exc:
        raise ArchcountError(f"{path} is not valid JSON: {exc}", argument="run_dir") from None
    try:
        return dataclasses.replace(RunSummary.from_dict(d), run_dir=str(Path(run_dir).resolve()))
    except (ArchcountError, TypeError) as exc:
        reason = exc.reason if isinstance(exc, ArchcountError) else str(exc)
        raise ArchcountError(f"{path} is not an archcount run summary: {reason}", argument="run_dir") from None


def load_runs(root: str | os.PathLike[str] = "runs") -> list[RunSummary]:
    """Every finished run under ``root`` (sub-folders holding a ``summary.json``), sorted by model then batch size.

    Unreadable or malformed summaries are skipped with a warning. A missing root gives an empty list.

    >>> load_runs("/nonexistent/runs")
    []
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    try:
        subs = sorted(root.iterdir())
    except OSError as exc:
        warnings.warn(f"cannot list the runs folder {root}: {exc.strerror or exc}", stacklevel=2)
        return []
    for sub in subs:
        if (sub / "summary.json").is_file():
            try:
                runs.append(load_run(sub))
            except ArchcountError as exc:
                warnings.warn(str(exc), stacklevel=2)
    runs.sort(key=lambda r: (r.model, r.batch_size, r.run_id))
    return runs


def experiment_dict(config: TrainConfig, hparams: Mapping[str, Any], data: Any, palette: Any) -> dict[str, Any]:
    """What the run key hashes: everything that changes the numbers, nothing about paths or devices."""
    return {"key_version": KEY_VERSION, "task": "colourization", "loss": "per-pixel cross-entropy",
            "model": config.model, "hparams": dict(hparams), "optimizer": "adam", "lr": config.lr,
            "batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
            "category": data.category, "data_fingerprint": data.fingerprint, "palette_sha256": palette.sha256}


def run_key(experiment: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of an :func:`experiment_dict` (key order does not matter).

    >>> run_key({"a": 1, "b": 2}) == run_key({"b": 2, "a": 1})
    True
    """
    return hashlib.sha256(json.dumps(experiment, sort_keys=True).encode()).hexdigest()


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"name: old there, new now"`` for every differing key.

    >>> differences({"batch_size": 5}, {"batch_size": 7})
    'batch_size: 5 there, 7 now'
    """
    diffs = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            a, b = old.get(k), new.get(k)
            if isinstance(a, str) and len(a) > 16 and isinstance(b, str):
                a, b = a[:12] + "…", b[:12] + "…"
            diffs.append(f"{k}: {a!r} there, {b!r} now")
    return "; ".join(diffs) or "(run keys differ)"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, unreadable or not an object."""
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- the run directory and its owner

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


def read_manifest(rd: Path) -> dict[str, list[str]] | None:
    """The manifest ``{file name: [sha256, ...]}`` of a run directory, or None when there is none (or it is bad)."""
    d = read_json(rd / MANIFEST)
    if d is None or d.get("archcount_run") != 1 or not isinstance(d.get("files"), dict):
        return None
    files = {}
    for name, shas in d["files"].items():
        if isinstance(name, str) and isinstance(shas, list) and all(isinstance(s, str) for s in shas):
            files[name] = shas
    return files


def _write_manifest(rd: Path, files: Mapping[str, Sequence[str]]) -> None:
    body = {"archcount_run": 1, "note": "files archcount wrote into this run directory; --force replaces only these",
            "files": {k: list(v) for k, v in sorted(files.items())}}
    _atomic(rd / MANIFEST, (json.dumps(body, indent=1) + "\n").encode())


def _atomic(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ArchcountError(f"cannot write {path}: {exc.strerror or exc}", argument="run_dir",
                             hint="choose a writable --run-dir or --runs folder") from None


def write_run_files(rd: Path, files: Mapping[str, bytes]) -> None:
    """Write run files atomically, recording them in the manifest first.

    The manifest keeps, per file, the hash of what is on disk now and of the new content, so that
    whatever a kill leaves behind is still recognised as archcount's.

    >>> import tempfile
    >>> rd = Path(tempfile.mkdtemp())
    >>> write_run_files(rd, {"metrics.csv": b"epoch\\n"})
    >>> owned_files(rd)
    (['.archcount-run.json', 'metrics.csv'], [])
    """
    manifest = read_manifest(rd) or {}
    for name, data in files.items():
        keep = [s for s in [_file_sha(rd / name)] if s is not None and s in manifest.get(name, ())]
        manifest[name] = sorted(set(keep) | {_sha(data)})
    _write_manifest(rd, manifest)
    for name, data in files.items():
        _atomic(rd / name, data)


def register_files(run_dir: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Record files that another part of archcount (the report) wrote into a run directory as archcount's own.

    ``evidence.json`` and ``evidence/`` count as archcount's in any run directory even without this;
    registering also vouches for their content.
    """
    rd = Path(run_dir)
    manifest = read_manifest(rd) or {}
    for name in names:
        sha = _file_sha(rd / name)
        if sha is not None:
            manifest[name] = sorted(set(manifest.get(name, ())) | {sha})
    _write_manifest(rd, manifest)


def _legacy_run(rd: Path) -> bool:
    """A run directory of an archcount without manifests: its config.json is an archcount run config."""
    cfg = read_json(rd / "config.json")
    return bool(cfg and isinstance(cfg.get("key"), str) and isinstance(cfg.get("run_id"), str)
                and isinstance(cfg.get("experiment"), dict))


def owned_files(rd: Path) -> tuple[list[str], list[str]]:
    """``(owned, foreign)``: the run-file names present in ``rd`` that archcount wrote, and those it did not.

    Files with other names (a user's notes) are in neither list and are never touched.
    """
    manifest = read_manifest(rd)
    legacy = manifest is None and _legacy_run(rd)
    is_run = manifest is not None or legacy
    owned, foreign = [], []
    for name in (*RUN_FILES, *REPORT_FILES, *REPORT_DIRS):
        p = rd / name
        if not (p.exists() or p.is_symlink()):
            continue
        if name in REPORT_DIRS:
            ok = is_run and p.is_dir() and not p.is_symlink()
        elif p.is_symlink() or not p.is_file():
            ok = False
        elif manifest is not None and name in manifest:
            ok = _file_sha(p) in manifest[name]
        else:
            ok = legacy and name in RUN_FILES or (is_run and name in REPORT_FILES)
        (owned if ok else foreign).append(name)
    if manifest is not None:
        owned.insert(0, MANIFEST)
    return owned, foreign


def clear_run_dir(rd: Path) -> None:
    """Remove what archcount wrote in ``rd`` (for ``--force``); refuse, removing nothing, if a run-file name
    there belongs to someone else."""
    owned, foreign = owned_files(rd)
    if foreign:
        raise ArchcountError(
            f"{rd} holds {', '.join(foreign)} that archcount did not write (or that changed since); "
            f"--force replaces only archcount's own files", argument="force",
            hint="move those files away, or choose another --run-dir")
    try:
        for name in owned:
            if name == MANIFEST:
                continue
            p = rd / name
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        remove_stale_temps(rd)
        (rd / MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        raise ArchcountError(f"cannot remove the old run files in {rd}: {exc.strerror or exc}",
                             argument="run_dir") from None


def remove_stale_temps(rd: Path) -> None:
    """Remove temporary files a killed write left behind (``.<run file>.*.tmp``)."""
    for name in (*RUN_FILES, MANIFEST):
        for tmp in rd.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def check_writable_dir(rd: Path, argument: str) -> None:
    """Create ``rd`` (and its parents) and check that files can be written there, else a clear error."""
    for parent in (rd, *rd.parents):
        if parent.exists() and not parent.is_dir():
            raise ArchcountError(f"{parent} is a file, not a folder", argument=argument)
        if parent.exists():
            break
    try:
        rd.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchcountError(f"cannot create the folder {rd}: {exc.strerror or exc}", argument=argument) from None
    if not os.access(rd, os.W_OK | os.X_OK):
        raise ArchcountError(f"cannot write into {rd}: permission denied", argument=argument,
                             hint="choose a writable folder")


# ----------------------------------------------------------------------------- checkpoints and metrics

def checkpoint_bytes(obj: Mapping[str, Any]) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save(dict(obj), buf)
    return buf.getvalue()


def load_checkpoint(path: Path, epochs: int | None = None) -> dict[str, Any]:
    """Load ``checkpoint.pt`` with ``weights_only=True`` and check its fields; any problem is an error naming it.

    ``epochs``: the run's number of epochs (a checkpoint beyond it is refused).
    """
    import torch
    hint = "start over with --force"
    if path.is_dir():
        raise ArchcountError(f"{path} is a folder, not a checkpoint file", argument="resume",
                             hint="remove or rename it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign files
        raise ArchcountError(f"cannot read the checkpoint {path} ({type(exc).__name__}: {str(exc)[:200]}); it is "
                             f"corrupt, truncated or not an archcount checkpoint", argument="resume",
                             hint=hint) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "key" not in ckpt:
        raise ArchcountError(f"{path} is not an archcount checkpoint (format {CHECKPOINT_FORMAT})",
                             argument="resume", hint=hint)
    problem = _checkpoint_problem(ckpt, epochs)
    if problem:
        raise ArchcountError(f"the checkpoint {path} is damaged: {problem}", argument="resume", hint=hint)
    return ckpt


def _checkpoint_problem(ckpt: Mapping[str, Any], epochs: int | None) -> str | None:
    import torch
    epoch = ckpt.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f"epoch must be an integer >= 1, got {epoch!r}"
    if epochs is not None and epoch > epochs:
        return f"epoch {epoch} is beyond the run's {epochs} epochs"
    if not isinstance(ckpt.get("key"), str):
        return "key must be a string"
    for name in ("model", "optimizer"):
        if not isinstance(ckpt.get(name), dict):
            return f"{name} must be a state dict"
    if not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        return "the model state holds values that are not tensors"
    history = ckpt.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        return f"history must list the {epoch} finished epochs"
    for i, row in enumerate(history):
        problem = metric_row_problem(row, f"history[{i}]")
        if problem:
            return problem
    rng = ckpt.get("rng")
    if not isinstance(rng, dict):
        return "rng must be a mapping"
    for name in ("torch", "shuffle"):
        if not isinstance(rng.get(name), torch.Tensor) or rng[name].dtype != torch.uint8:
            return f"rng.{name} must be a uint8 tensor"
    numpy_state = rng.get("numpy")
    if not (isinstance(numpy_state, dict) and isinstance(numpy_state.get("keys"), torch.Tensor)
            and isinstance(numpy_state.get("pos"), int) and isinstance(numpy_state.get("name"), str)):
        return "rng.numpy is not a numpy generator state"
    for name in ("resumed", "threads"):
        v = ckpt.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            return f"{name} must be a non-negative integer, got {v!r}"
    if not isinstance(ckpt.get("execution", {}), dict):
        return "execution must be a mapping"
    return None


def metrics_csv_bytes(history: Sequence[Mapping[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(METRIC_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue().encode()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def read_history(rd: Path) -> list[dict[str, Any]]:
    try:
        with open(rd / "metrics.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def versions() -> dict[str, str]:
    import numpy as np
    import torch
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "platform": platform.platform()}
    for mod in ("scipy", "PIL"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    try:
        from importlib.metadata import version
        out["archcount"] = version("archcount")
    except Exception:  # noqa: BLE001
        out["archcount"] = "0+unknown"
    return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
