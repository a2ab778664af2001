"""Training of the colourization models on CIFAR-10, on the best available device.

The task is the published exercise: greyscale input (the mean of R, G, B divided by 256), per-pixel
target the nearest palette colour, per-pixel cross-entropy, Adam; defaults kernel 3, NF 32, lr 1e-3,
batch 100, 25 epochs, seed 0, category horse.

A run lives in a run directory (``<runs root>/<model>-<hash>/`` by default; the hash covers the
model, its hyperparameters, the optimiser settings, the seed, the data's pixels and the palette's
colours) holding ``config.json``, ``metrics.csv``, ``checkpoint.pt`` (written atomically after every
epoch, with every RNG state, so that on CPU a resumed run ends exactly like an uninterrupted one),
``samples.png``, ``palette.csv`` and, once finished, ``summary.json``.

>>> cfg = TrainConfig("unet", batch_size=64)
>>> cfg.batch_size, cfg.lr, cfg.category
(64, 0.001, 'horse')
>>> select_device("cpu").type
'cpu'
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import platform
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from analysis.errors import ArchcountError, require_positive_int

from .data import CategoryData, DataSource, atomic_write, atomic_write_bytes, category_name, greyscale, \
    load_category, nearest_colour
from .palette import DEFAULT_K, DEFAULT_SEED, Palette, load_palette, resolve_palette

#: Files a run directory may hold; ``--force`` removes only these.
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "samples.png", "summary.json", "palette.csv")
#: Columns of metrics.csv, in order.
METRIC_FIELDS = ("epoch", "train_loss", "val_loss", "val_acc", "epoch_time_s", "train_time_s", "val_time_s",
                 "images_per_s")
#: Bumped whenever the meaning of a run key changes.
KEY_VERSION = 1
CHECKPOINT_FORMAT = 1
#: The fields of :class:`TrainConfig` that may be given as comma lists to sweep over.
SWEEP_FIELDS = ("model", "kernel", "num_filters", "lr", "batch_size", "epochs", "seed")
#: Test hooks: after writing the checkpoint of this epoch (1-based), the process sends itself a signal.
STOP_AFTER_EPOCH_ENV = "ARCHCOUNT_STOP_AFTER_EPOCH"
STOP_SIGNAL_ENV = "ARCHCOUNT_STOP_SIGNAL"


class TrainingInterrupted(KeyboardInterrupt):
    """Raised inside :func:`train` when the process gets SIGTERM (SIGINT raises KeyboardInterrupt)."""


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
        spec = models.spec(self.model)
        if spec.task != "colourization":
            raise ArchcountError(f"is a {spec.task} model; training supports colourization models "
                                 f"({', '.join(s.name for s in models.registry if s.task == 'colourization')})",
                                 model=self.model, argument="model")
        if not spec.valid_size(32):
            raise ArchcountError(f"cannot take 32x32 inputs (input size must be {spec.size_rule()})",
                                 model=self.model, argument="model")
        for name in ("kernel", "num_filters", "batch_size", "epochs"):
            object.__setattr__(self, name, require_positive_int(getattr(self, name), name, model=self.model))
        object.__setattr__(self, "seed", require_positive_int(self.seed, "seed", minimum=0))
        object.__setattr__(self, "palette_k", require_positive_int(self.palette_k, "palette_k", minimum=2))
        object.__setattr__(self, "palette_seed", require_positive_int(self.palette_seed, "palette_seed", minimum=0))
        try:
            lr = float(self.lr)
        except (TypeError, ValueError):
            raise ArchcountError(f"must be a positive number, got {self.lr!r}", argument="lr") from None
        if not math.isfinite(lr) or lr <= 0:
            raise ArchcountError(f"must be a positive number, got {self.lr!r}", argument="lr")
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "category", category_name(self.category))
        if self.palette is not None:
            object.__setattr__(self, "palette", str(self.palette) if str(self.palette) else None)
        extra = dict(self.hparams.items() if isinstance(self.hparams, Mapping) else self.hparams)
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
    out = []
    for combo in itertools.product(*lists.values()):
        out.append(TrainConfig(**dict(zip(lists, combo)), **fixed))
    return out


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class RunSummary:
    """The outcome of a finished run, as stored in ``summary.json``.

    ``final`` and ``best`` are metric rows (``best``: the epoch with the lowest validation loss);
    ``status`` is ``"finished"`` on disk and ``"reused"`` when :func:`train` found the run done.
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
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["history"] = tuple(kwargs.get("history") or ())
        missing = [n for n, f in names.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ArchcountError(f"summary lacks {', '.join(missing)}", argument="summary")
        return cls(**kwargs)


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
        raise ArchcountError(f"{path} is not an archcount run summary: {exc}", argument="run_dir") from None


def load_runs(root: str | os.PathLike[str] = "runs") -> list[RunSummary]:
    """Every finished run under ``root`` (sub-folders holding a ``summary.json``), sorted by model then batch size.

    Unreadable summaries are skipped with a warning. A missing root gives an empty list.

    >>> load_runs("/nonexistent/runs")
    []
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for sub in sorted(root.iterdir()):
        if (sub / "summary.json").is_file():
            try:
                runs.append(load_run(sub))
            except ArchcountError as exc:
                warnings.warn(str(exc), stacklevel=2)
    runs.sort(key=lambda r: (r.model, r.batch_size, r.run_id))
    return runs


# ----------------------------------------------------------------------------- device and speed settings

def select_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is not available is an error.

    >>> select_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    spec = str(device).strip().lower()
    if spec in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ArchcountError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps",
                             argument="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchcountError("cuda is not available on this machine (use --device auto or cpu)", argument="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ArchcountError(f"there is no {dev} (this machine has {torch.cuda.device_count()} cuda devices)",
                             argument="device")
    if dev.type == "mps" and not _mps_available():
        raise ArchcountError("mps is not available on this machine (use --device auto or cpu)", argument="device")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ArchcountError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps", argument="device")
    return dev


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _amp_dtype(amp: str | None, dev: torch.device) -> torch.dtype | None:
    mode = (amp or "off").lower()
    if mode == "auto":
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if mode in ("off", "none", "no", "false", "fp32"):
        return None
    if mode in ("bf16", "bfloat16"):
        return torch.bfloat16
    raise ArchcountError(f"unknown mixed-precision mode {amp!r}; use auto, bf16 or off", argument="amp")


def _channels_last(flag: str | bool | None, dev: torch.device) -> bool:
    if isinstance(flag, bool):
        return flag
    mode = (flag or "auto").lower()
    if mode == "auto":
        return dev.type in ("cpu", "cuda")  # measured faster on both; mps prefers contiguous
    if mode in ("on", "yes", "true", "1"):
        return True
    if mode in ("off", "no", "false", "0"):
        return False
    raise ArchcountError(f"unknown value {flag!r}; use auto, on or off", argument="channels_last")


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


# ----------------------------------------------------------------------------- the epoch

def _pixels_last(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C, H, W]`` and targets ``[N, H, W]`` as ``[N*H*W, C]`` and ``[N*H*W]`` when that is free.

    For a channels_last output the permuted view is already contiguous: the loss then needs no
    layout copies forward or backward (1.2-1.6x faster steps on CPU). Otherwise the 4-d form is kept.
    """
    if out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous():
        return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]), y.reshape(-1)
    return out, y


def _acc_dtype(dev: torch.device) -> torch.dtype:
    """Accumulate sums in float64, except on MPS, which has no float64."""
    return torch.float32 if dev.type == "mps" else torch.float64


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                batch_size: int, generator: torch.Generator, *, amp_dtype: torch.dtype | None = None,
                on_batch: Any = None) -> float:
    """One pass over ``(x, y)`` (already on the model's device) in an order drawn from ``generator``.

    Returns the mean per-pixel training loss (batches weighted by their size). The last batch may be
    smaller than ``batch_size``.

    >>> import torch, models
    >>> net = models.build("conv_transpose", num_filters=2, num_colours=3)
    >>> opt = torch.optim.Adam(net.parameters())
    >>> x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 3, (5, 8, 8))
    >>> loss = train_epoch(net, opt, x, y, 2, torch.Generator().manual_seed(0))
    >>> 0 < loss < 10
    True
    """
    model.train()
    n = len(x)
    dev = x.device
    perm = torch.randperm(n, generator=generator)
    if dev.type != "cpu":
        perm = perm.to(dev, non_blocking=True)
    total = torch.zeros((), dtype=_acc_dtype(dev), device=dev)
    autocast = torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb = x.index_select(0, idx)
        yb = y.index_select(0, idx)
        with autocast:
            out = model(xb)
        logits, targets = _pixels_last(out.float(), yb)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().to(total.dtype) * len(idx)
        if on_batch is not None:
            on_batch()
    return float(total.item()) / n


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 100,
             amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """Mean per-pixel cross-entropy and per-pixel accuracy of ``model`` (in eval mode, no autograd).

    >>> import torch, models
    >>> net = models.build("unet", num_filters=2, num_colours=3)
    >>> loss, acc = evaluate(net, torch.rand(3, 1, 8, 8), torch.randint(0, 3, (3, 8, 8)))
    >>> 0 <= acc <= 1
    True
    """
    model.eval()
    dev = x.device
    loss_sum = torch.zeros((), dtype=_acc_dtype(dev), device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    autocast = torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = y[start:start + batch_size]
            with autocast:
                out = model(xb)
            logits, targets = _pixels_last(out.float(), yb)
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").to(loss_sum.dtype)
            correct += (logits.argmax(dim=1) == targets).sum()
    pixels = y.numel()
    return float(loss_sum.item()) / pixels, int(correct.item()) / pixels


# ----------------------------------------------------------------------------- tensors

_TENSOR_MEMO: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}


def colourization_arrays(data: CategoryData, palette: Palette) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_val, y_val)``: greyscale float32 ``[N, 1, 32, 32]`` and int64 targets ``[N, 32, 32]``."""
    key = (data.fingerprint, palette.sha256)
    if key not in _TENSOR_MEMO:
        _TENSOR_MEMO.clear()  # keep one entry: a sweep reuses the same data and palette
        pal = palette.array
        _TENSOR_MEMO[key] = (greyscale(data.train), nearest_colour(data.train, pal)[:, 0],
                             greyscale(data.test), nearest_colour(data.test, pal)[:, 0])
    return _TENSOR_MEMO[key]  # type: ignore[return-value]


# ----------------------------------------------------------------------------- run directories

def experiment_dict(config: TrainConfig, hparams: Mapping[str, Any], data: CategoryData, palette: Palette
                    ) -> dict[str, Any]:
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


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    diffs = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            a, b = old.get(k), new.get(k)
            if isinstance(a, str) and len(a) > 16 and isinstance(b, str):
                a, b = a[:12] + "…", b[:12] + "…"
            diffs.append(f"{k}: {a!r} there, {b!r} now")
    return "; ".join(diffs) or "(run keys differ)"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def _clear_run_dir(rd: Path) -> None:
    for name in RUN_FILES:
        try:
            (rd / name).unlink()
        except FileNotFoundError:
            pass
    _remove_stale_temps(rd)


def _remove_stale_temps(rd: Path) -> None:
    for name in RUN_FILES:
        for tmp in rd.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def _torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign files
        raise ArchcountError(f"cannot read the checkpoint {path} ({type(exc).__name__}: {exc}); it is corrupt, "
                             f"truncated or not an archcount checkpoint", argument="resume",
                             hint="start over with --force") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "key" not in ckpt:
        raise ArchcountError(f"{path} is not an archcount checkpoint (format {CHECKPOINT_FORMAT})",
                             argument="resume", hint="start over with --force")
    return ckpt


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: Mapping[str, Any]) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["cached_gaussian"]))


def _write_metrics_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(METRIC_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _write_samples(path: Path, model: torch.nn.Module, x_val: torch.Tensor, y_val: np.ndarray, rgb_val: np.ndarray,
                   palette: Palette, n: int, amp_dtype: torch.dtype | None) -> None:
    """A grid: greyscale input, prediction, target (nearest palette colours) and original, one column per image."""
    from PIL import Image, ImageDraw
    n = min(n, len(x_val))
    if n <= 0:
        return
    model.eval()
    with torch.inference_mode(), torch.autocast(device_type=x_val.device.type, dtype=amp_dtype or torch.bfloat16,
                                                enabled=amp_dtype is not None):
        pred = model(x_val[:n]).float().argmax(dim=1).cpu().numpy()
    pal = palette.array
    grey = x_val[:n, 0].float().cpu().numpy()
    rows = [("input", np.repeat(grey[..., None], 3, axis=-1)), ("prediction", pal[pred]),
            ("target", pal[y_val[:n]]), ("original", rgb_val[:n].transpose(0, 2, 3, 1) / 256.0)]
    scale, gap, label_w = 3, 2, 70
    h, w = grey.shape[1] * scale, grey.shape[2] * scale
    canvas = Image.new("RGB", (label_w + n * (w + gap), len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, imgs) in enumerate(rows):
        y0 = r * (h + gap)
        draw.text((3, y0 + h // 2 - 5), label, fill="black")
        for i in range(n):
            tile = Image.fromarray(np.clip(imgs[i] * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
            canvas.paste(tile.resize((w, h), Image.NEAREST), (label_w + i * (w + gap), y0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _versions() -> dict[str, str]:
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`TrainingInterrupted` and SIGINT into KeyboardInterrupt while training
    (main thread only), also when the process started with SIGINT ignored (e.g. a background job)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise TrainingInterrupted(f"received {signal.Signals(signum).name}")
    old = signal.signal(signal.SIGTERM, handler)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def _test_stop_hook(epoch: int) -> None:
    """Test hook: ``ARCHCOUNT_STOP_AFTER_EPOCH=N`` sends this process ``ARCHCOUNT_STOP_SIGNAL`` (default KILL)."""
    value = os.environ.get(STOP_AFTER_EPOCH_ENV)
    if value and value.strip().isdigit() and int(value) == epoch:
        name = os.environ.get(STOP_SIGNAL_ENV, "KILL").upper()
        sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name)
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the signal arrives; a handled one raises here


class _Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)


# ----------------------------------------------------------------------------- train

def train(config: TrainConfig | str = "unet", *, data: str | os.PathLike[str] | DataSource | CategoryData | None = None,
          cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
          runs_root: str | os.PathLike[str] = "runs", run_dir: str | os.PathLike[str] | None = None,
          resume: bool = False, force: bool = False, device: str | torch.device = "auto", amp: str = "auto",
          channels_last: str | bool = "auto", threads: int | str | None = "auto", compile: bool = False,
          quiet: bool = False, progress: bool | None = None, samples: int = 8, val_batch_size: int | None = None,
          **fields: Any) -> RunSummary:
    """Train one model on the colourization task and return its :class:`RunSummary`.

    ``config`` is a :class:`TrainConfig` or a model name; ``fields`` override its fields
    (``batch_size=64``, ``epochs=5``, ``palette="colours.csv"`` ...). A finished run with the same
    key is returned as it is (``status == "reused"``) unless ``force``; an unfinished one continues
    with ``resume``; a run directory that holds a different run is refused unless ``force``.
    ``device`` is ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda[:N]`` or ``mps``; ``amp`` is
    ``auto`` (bf16 on CUDA), ``bf16`` or ``off``; ``channels_last`` is ``auto``, ``on`` or ``off``;
    ``threads`` is a number or ``auto`` (:func:`auto_threads`; a resumed run keeps its thread count).

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
    (1, 6, ['checkpoint.pt', 'config.json', 'metrics.csv', 'palette.csv', 'samples.png', 'summary.json'])
    """
    if isinstance(config, TrainConfig):
        cfg = dataclasses.replace(config, **fields) if fields else config
    elif isinstance(config, str):
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ArchcountError(f"unknown argument(s) {', '.join(unknown)}; train takes "
                                 f"{', '.join(sorted(names - {'model'}))}", argument=unknown[0])
        cfg = TrainConfig(model=config, **fields)
    else:
        raise ArchcountError(f"expects a TrainConfig or a model name, got {type(config).__name__}", argument="config")
    samples = require_positive_int(samples, "samples", minimum=0)
    dev = select_device(device)  # bad execution settings fail before anything is read or written
    # validation batches: small ones are fastest on CPU (cache-friendly), large ones on accelerators
    val_batch_size = require_positive_int(val_batch_size if val_batch_size is not None else
                                          (100 if dev.type == "cpu" else 1000), "val_batch_size")
    if threads is None or (isinstance(threads, str) and threads.strip().lower() == "auto"):
        threads = None
    else:
        threads = require_positive_int(int(threads) if isinstance(threads, str) and threads.strip().isdigit()
                                       else threads, "threads")
    amp_dtype = _amp_dtype(amp, dev)
    use_cl = _channels_last(channels_last, dev)
    log = _Log(quiet)

    if isinstance(data, CategoryData):
        if data.category != cfg.category:
            raise ArchcountError(f"the given data hold {data.category!r}, the configuration asks for "
                                 f"{cfg.category!r}", argument="category")
        cat = data
    else:
        cat = load_category(data, cfg.category, cache_dir=cache_dir, download=download, quiet=quiet)
    pal = resolve_palette(cfg.palette, cat, k=cfg.palette_k, seed=cfg.palette_seed, cache_dir=cache_dir)
    hp = cfg.model_hparams(pal.k)
    experiment = experiment_dict(cfg, hp, cat, pal)
    key = run_key(experiment)
    run_id = f"{cfg.model}-{key[:12]}"
    rd = Path(run_dir) if run_dir is not None else Path(runs_root) / run_id

    # ---- what the run directory holds already
    resume_from: Path | None = None
    if rd.exists() and not rd.is_dir():
        raise ArchcountError(f"{rd} exists and is not a folder", argument="run_dir")
    if rd.is_dir() and any(rd.iterdir()):
        cfg_json = _read_json(rd / "config.json")
        summary_json = _read_json(rd / "summary.json")
        ckpt_path = rd / "checkpoint.pt"
        same = cfg_json is not None and cfg_json.get("key") == key
        if force:
            log(f"--force: clearing the run files in {rd}")
            _clear_run_dir(rd)
        elif same and summary_json is not None and summary_json.get("key") == key:
            summary = load_run(rd)
            log(f"{run_id}: already finished in {rd}; skipped")
            return dataclasses.replace(summary, status="reused")
        elif resume and ckpt_path.is_file():
            ckpt = _load_checkpoint(ckpt_path)
            if ckpt["key"] != key:
                raise ArchcountError(
                    f"the checkpoint {ckpt_path} belongs to a different configuration ("
                    f"{_differences(ckpt.get('experiment', {}), experiment)}); refusing to resume",
                    argument="resume", hint="use the original settings, another --run-dir, or --force to start over")
            resume_from = ckpt_path
        elif same and resume:
            pass  # config.json written, no epoch finished yet: start from scratch
        elif same:
            done = len(_read_history(rd))
            raise ArchcountError(f"{rd} holds an unfinished run of this configuration ({done}/{cfg.epochs} epochs)",
                                 argument="run_dir", hint="pass --resume to continue it or --force to start over")
        elif cfg_json is not None:
            raise ArchcountError(
                f"{rd} already holds a different run ({cfg_json.get('run_id', '?')}: "
                f"{_differences(cfg_json.get('experiment', {}), experiment)})", argument="run_dir",
                hint="choose another --run-dir, or pass --force to replace it")
        else:
            raise ArchcountError(f"{rd} is not empty and holds no archcount run", argument="run_dir",
                                 hint="choose another --run-dir, or pass --force to write the run files there")

    old_threads = torch.get_num_threads()
    if threads is None and resume_from is not None:
        # the thread count changes the rounding of CPU convolutions: keep the interrupted run's
        threads = _checkpoint_threads(resume_from)
    torch.set_num_threads(threads if threads is not None else auto_threads())
    try:
        with _sigterm_as_interrupt():
            return _run(cfg, cat, pal, hp, experiment, key, run_id, rd, resume_from, dev, amp_dtype, use_cl,
                        compile, log, quiet, progress, samples, val_batch_size)
    finally:
        torch.set_num_threads(old_threads)


def auto_threads() -> int:
    """torch's default thread count, lowered so that it and the current load fit the CPUs (at least 1).

    On a shared machine, more compute threads than idle cores make every operator wait for descheduled
    threads: with a load of 3.5 on 2 cores, one thread trained an epoch 2.4x faster than two.

    >>> 1 <= auto_threads() <= max(1, torch.get_num_threads())
    True
    """
    default = torch.get_num_threads()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return default
    return max(1, min(default, int(cpus - load + 0.5)))


def _checkpoint_threads(path: Path) -> int | None:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True).get("threads")
    except Exception:  # noqa: BLE001 - reported properly when the checkpoint is loaded
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def _read_history(rd: Path) -> list[dict[str, Any]]:
    try:
        with open(rd / "metrics.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _run(cfg: TrainConfig, cat: CategoryData, pal: Palette, hp: Mapping[str, Any], experiment: Mapping[str, Any],
         key: str, run_id: str, rd: Path, resume_from: Path | None, dev: torch.device,
         amp_dtype: torch.dtype | None, use_cl: bool, use_compile: bool, log: _Log, quiet: bool,
         progress: bool | None, n_samples: int, val_batch_size: int) -> RunSummary:
    import models
    from tqdm import tqdm

    rd.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(rd)
    x_tr, y_tr, x_va, y_va = colourization_arrays(cat, pal)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(cfg.seed)
        torch.backends.cudnn.benchmark = True
    net = models.build(cfg.model, **hp)
    num_weights = sum(p.numel() for p in net.parameters())
    net = net.to(dev)
    fmt = torch.channels_last if use_cl else torch.contiguous_format
    net = net.to(memory_format=fmt)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, Any]] = []
    start_epoch, resumed, started = 0, 0, _now()

    if resume_from is not None:
        ckpt = _load_checkpoint(resume_from)
        try:
            net.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            generator.set_state(ckpt["rng"]["shuffle"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            _set_numpy_state(ckpt["rng"]["numpy"])
            if dev.type == "cuda" and ckpt["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ArchcountError(f"the checkpoint {resume_from} does not fit this model ({exc})", argument="resume",
                                 hint="start over with --force") from None
        history = [dict(h) for h in ckpt["history"]]
        start_epoch = int(ckpt["epoch"])
        resumed = int(ckpt.get("resumed", 0)) + 1
        started = str(ckpt.get("started", started))
        log(f"{run_id}: resuming after epoch {start_epoch}/{cfg.epochs} from {resume_from}")

    execution = {"device": str(dev), "device_name": _device_name(dev),
                 "amp": "bf16" if amp_dtype is not None else "off", "channels_last": use_cl,
                 "threads": torch.get_num_threads(), "compile": bool(use_compile), "val_batch_size": val_batch_size}
    _write_json(rd / "config.json", {"run_id": run_id, "key": key, "experiment": dict(experiment),
                                     "config": cfg.to_dict(), "data": cat.to_dict(), "palette": pal.to_dict(),
                                     "execution": execution, "written": _now()})
    pal.save_csv(rd / "palette.csv")
    log(f"{run_id}: {cfg.model} {', '.join(f'{k}={v}' for k, v in hp.items())}; batch {cfg.batch_size}, "
        f"lr {cfg.lr:g}, {cfg.epochs} epochs, seed {cfg.seed}; {execution['device']} "
        f"({execution['device_name']}), amp {execution['amp']}, channels_last {use_cl}, "
        f"{execution['threads']} threads")
    log(f"  data: {cat.description}")
    log(f"  palette: {pal.description}")
    log(f"  run directory: {rd}")

    x_train = torch.from_numpy(x_tr).to(dev)
    y_train = torch.from_numpy(y_tr).to(dev)
    x_val = torch.from_numpy(x_va).to(dev)
    y_val = torch.from_numpy(y_va).to(dev)
    if use_cl:
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        x_val = x_val.contiguous(memory_format=torch.channels_last)
    runner: torch.nn.Module = torch.compile(net) if use_compile else net  # type: ignore[assignment]

    show_bar = (not quiet) and (progress if progress is not None else sys.stderr.isatty())
    n_batches = math.ceil(len(x_train) / cfg.batch_size)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            with tqdm(total=n_batches, desc=f"{run_id} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                      disable=not show_bar, leave=False, file=sys.stderr) as bar:
                t0 = time.perf_counter()
                train_loss = train_epoch(runner, optimizer, x_train, y_train, cfg.batch_size, generator,
                                         amp_dtype=amp_dtype, on_batch=bar.update if show_bar else None)
                t1 = time.perf_counter()
                val_loss, val_acc = evaluate(runner, x_val, y_val, batch_size=val_batch_size, amp_dtype=amp_dtype)
                t2 = time.perf_counter()
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                   "epoch_time_s": t2 - t0, "train_time_s": t1 - t0, "val_time_s": t2 - t1,
                   "images_per_s": len(x_train) / max(t1 - t0, 1e-12)}
            history.append(row)
            rng = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "shuffle": generator.get_state(),
                   "cuda": torch.cuda.get_rng_state_all() if dev.type == "cuda" else None}
            _torch_save({"format": CHECKPOINT_FORMAT, "key": key, "experiment": dict(experiment), "epoch": epoch + 1,
                         "model": net.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng,
                         "history": history, "resumed": resumed, "started": started,
                         "threads": torch.get_num_threads()}, rd / "checkpoint.pt")
            _write_metrics_csv(rd / "metrics.csv", history)
            log(f"{run_id} epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                f"val acc {100 * val_acc:.1f}%, {t2 - t0:.1f} s ({row['images_per_s']:.0f} img/s)")
            _test_stop_hook(epoch + 1)
    except KeyboardInterrupt:
        done = len(history)
        log(f"{run_id}: interrupted; the checkpoint after epoch {done} is kept in {rd}; continue with --resume")
        raise

    _write_samples(rd / "samples.png", net, x_val, y_va, cat.test, pal, n_samples, amp_dtype)
    final = dict(history[-1])
    best = dict(min(history, key=lambda h: (h["val_loss"], h["epoch"])))
    train_times = [h["train_time_s"] for h in history]
    summary = RunSummary(
        run_id=run_id, run_dir=str(rd.resolve()), key=key, model=cfg.model, config=cfg.to_dict(), hparams=dict(hp),
        experiment=dict(experiment), epochs=cfg.epochs, epochs_completed=len(history), final=final, best=best,
        history=tuple(history), num_weights=num_weights, device=execution["device"],
        device_name=execution["device_name"], amp=execution["amp"], channels_last=use_cl,
        threads=execution["threads"], data=cat.to_dict(), palette=pal.to_dict(), versions=_versions(),
        train_time_s=float(sum(train_times)),
        mean_epoch_time_s=float(np.mean([h["epoch_time_s"] for h in history])),
        images_per_s=float(len(x_train) * len(history) / max(sum(train_times), 1e-12)), resumed=resumed,
        started=started, finished_at=_now())
    _write_json(rd / "summary.json", summary.to_dict())
    log(f"{run_id}: finished; final val loss {summary.final_val_loss:.4f}, val acc "
        f"{100 * summary.final_val_acc:.1f}%; best val loss {summary.best_val_loss:.4f} (epoch {best['epoch']})")
    return summary


# ----------------------------------------------------------------------------- sweeps and the report

def train_many(configs: Iterable[TrainConfig], *,
               data: str | os.PathLike[str] | DataSource | CategoryData | None = None,
               cache_dir: str | os.PathLike[str] | None = None, download: bool = True, quiet: bool = False,
               **options: Any) -> list[RunSummary]:
    """Train every configuration (a sweep), skipping finished runs; the data are loaded once per category.

    ``options`` are passed to :func:`train` (``runs_root``, ``device``, ``resume`` ...); ``run_dir``
    is not allowed with more than one configuration.
    """
    configs = list(configs)
    if len(configs) > 1 and options.get("run_dir") is not None:
        raise ArchcountError("a single --run-dir cannot hold several runs; use --runs ROOT for sweeps",
                             argument="run_dir")
    loaded: dict[str, CategoryData] = {}
    if isinstance(data, CategoryData):
        loaded[data.category] = data
        data = data.source
    out = []
    for i, cfg in enumerate(configs, start=1):
        if cfg.category not in loaded:
            loaded[cfg.category] = load_category(data, cfg.category, cache_dir=cache_dir, download=download,
                                                 quiet=quiet)
        if not quiet and len(configs) > 1:
            _Log(quiet)(f"[{i}/{len(configs)}] {cfg.model} batch {cfg.batch_size} lr {cfg.lr:g} "
                        f"kernel {cfg.kernel} NF {cfg.num_filters} seed {cfg.seed}")
        out.append(train(cfg, data=loaded[cfg.category], cache_dir=cache_dir, download=download, quiet=quiet,
                         **options))
    return out


def _same_settings(summary: RunSummary, cfg: TrainConfig) -> bool:
    """Does a finished run match ``cfg`` in everything but the data (used when the data are unavailable)?"""
    try:
        old = TrainConfig.from_dict(summary.config)
    except ArchcountError:
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


__all__ = ["METRIC_FIELDS", "RUN_FILES", "RunSummary", "TrainConfig", "TrainingInterrupted", "auto_threads",
           "colourization_arrays",
           "evaluate", "experiment_dict", "find_or_train", "find_run", "load_run", "load_runs", "run_key",
           "select_device", "sweep_configs", "train", "train_epoch", "train_many"]
