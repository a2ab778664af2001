"""Measured evidence about a finished colourization run, for the report's answers.

From a run's checkpoint, palette and validation data: the model's predictions and what they
show — accuracy against two trivial baselines (the most frequent training colour everywhere,
and the palette colour nearest to each pixel's grey value), colour collapse (the share of
pixels in the 3 most used colours, predicted against target), accuracy on edge pixels (the 20%
with the largest grey-level gradient) against flat ones (the 50% with the smallest), the gradient norm that reaches the
first layer, and the predictions for a few fixed validation images (the comparison figure).

It is computed once per run and cached with it, in ``<run>/evidence.json``, keyed by the
checkpoint's sha256 and :data:`EVIDENCE_VERSION`; a read-only run folder just is not cached.

>>> from models.evidence import EVIDENCE_FILE
>>> EVIDENCE_FILE
'evidence.json'
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from analysis.errors import ArchcountError

EVIDENCE_FILE = "evidence.json"
#: Bumped whenever what is measured, or how, changes (old caches are then recomputed).
EVIDENCE_VERSION = 3  # 3: measured in the layout the run was trained in (channels_last on CPU)
#: Validation images shown in the comparison figure (the same indices for every run).
SAMPLE_INDICES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
#: Training images used for the first-layer gradient norm of the finished model.
GRAD_BATCH = 100


@dataclass(frozen=True)
class RunEvidence:
    """What one finished run's predictions show (fractions in [0, 1]; pixels of the validation set)."""

    run_id: str
    model: str
    version: int
    checkpoint_sha256: str
    data_fingerprint: str
    palette_sha256: str
    n_val_images: int
    n_train_images: int
    batch_size: int
    steps_per_epoch: int
    accuracy: float
    baseline_most_frequent: float
    most_frequent_colour: int
    baseline_grey_nearest: float
    top3_share_pred: float
    top3_share_target: float
    colours_used_pred: int
    colours_used_target: int
    edge_share: float
    edge_accuracy: float
    flat_accuracy: float
    grad_norm_first: float
    grad_norm_layer: str
    grad_norm_history: tuple[float, ...]
    train_loss_final: float | None
    val_loss_final: float | None
    sample_indices: tuple[int, ...]
    sample_pred: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)
    sample_target: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)
    sample_grey: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({f.name: getattr(self, f.name) for f in fields(self)}))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunEvidence":
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("sample_pred", "sample_target", "sample_grey"):
            kw[key] = tuple(tuple(tuple(int(x) for x in row) for row in img) for img in kw.get(key, ()))
        kw["sample_indices"] = tuple(int(i) for i in kw.get("sample_indices", ()))
        kw["grad_norm_history"] = tuple(float(g) for g in kw.get("grad_norm_history", ()))
        missing = names - set(kw)
        if missing:
            raise ArchcountError(f"evidence lacks {', '.join(sorted(missing))}", argument="evidence")
        return cls(**kw)

    def arrays(self) -> dict[str, np.ndarray]:
        """The sample images as arrays: ``pred``/``target`` colour indices, ``grey`` 0..255."""
        return {"pred": np.array(self.sample_pred, dtype=np.int64), "target": np.array(self.sample_target, np.int64),
                "grey": np.array(self.sample_grey, dtype=np.uint8)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def top_share(labels: np.ndarray, n: int = 3, k: int | None = None) -> float:
    """Share of ``labels`` that fall in its ``n`` most frequent values.

    >>> top_share(np.array([0, 0, 0, 1, 1, 2, 3, 4]), n=2)
    0.625
    """
    counts = np.bincount(labels.ravel(), minlength=k or 0)
    return float(np.sort(counts)[::-1][:n].sum() / max(labels.size, 1))


#: Edge pixels: the share of validation pixels with the largest grey-level gradient; flat: the smallest half.
EDGE_SHARE = 0.2
FLAT_SHARE = 0.5


def grey_gradient(grey: np.ndarray) -> np.ndarray:
    """Per pixel (``[N, H, W]``), the magnitude of the grey level's gradient (central differences).

    >>> grey_gradient(np.array([[[0.0, 0.0, 1.0, 1.0]]])).round(2).tolist()
    [[[0.0, 0.5, 0.5, 0.0]]]
    """
    g = np.asarray(grey, dtype=np.float64)
    gy = np.gradient(g, axis=1) if g.shape[1] > 1 else np.zeros_like(g)
    gx = np.gradient(g, axis=2) if g.shape[2] > 1 else np.zeros_like(g)
    return np.hypot(gx, gy)


def edge_and_flat(grey: np.ndarray, edge_share: float = EDGE_SHARE, flat_share: float = FLAT_SHARE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of edge pixels (the ``edge_share`` with the largest grey gradient) and flat pixels (the
    ``flat_share`` with the smallest), ties broken by position so that the shares are exact.

    >>> e, f = edge_and_flat(np.array([[[0.0, 0.0, 0.0, 0.0, 1.0]]]), 0.2, 0.4)
    >>> e.astype(int).tolist(), f.astype(int).tolist()
    ([[[0, 0, 0, 0, 1]]], [[[1, 1, 0, 0, 0]]])
    """
    mag = grey_gradient(grey).ravel()
    order = np.argsort(mag, kind="stable")
    n = mag.size
    edge, flat = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    edge[order[n - int(round(edge_share * n)):]] = True
    flat[order[:int(round(flat_share * n))]] = True
    return edge.reshape(np.shape(grey)), flat.reshape(np.shape(grey))


def grey_nearest(grey: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Per pixel, the palette colour nearest (RGB distance) to the grey (g, g, g) of the input.

    >>> grey_nearest(np.array([[[0.1, 0.9]]]), np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])).tolist()
    [[[0, 1]]]
    """
    g = np.asarray(grey, dtype=np.float64)
    levels, where = np.unique(g, return_inverse=True)  # images hold at most 256 grey levels: one distance row each
    u = levels[:, None]
    d = ((u - palette[:, 0]) ** 2 + (u - palette[:, 1]) ** 2 + (u - palette[:, 2]) ** 2)  # [levels, K]
    return np.argmin(d, axis=-1)[where.reshape(g.shape)]


def first_layer(model: Any) -> tuple[str, Any]:
    """(name, parameter) of the first convolution weight in module order."""
    for name, p in model.named_parameters():
        if p.dim() == 4:
            return name, p
    raise ArchcountError("the model has no convolution weight", argument="model")


def _load(run: Any, data: Any, cache_dir: Any) -> tuple[Any, Any, Any, str]:
    """(model with the checkpoint's weights, CategoryData, Palette, checkpoint sha256)."""
    import torch

    import models
    from models.data import load_category
    from models.palette import load_palette

    rd = Path(run.run_dir)
    ckpt_path = rd / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise ArchcountError(f"{ckpt_path} is missing: the run's predictions cannot be measured",
                             argument="runs", hint="train the run again (archcount train --force)")
    sha = _sha256(ckpt_path)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net = models.build(run.model, **dict(run.hparams))
        net.load_state_dict(ckpt["model"])
    except ArchcountError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign checkpoints
        raise ArchcountError(f"cannot load {ckpt_path} ({type(exc).__name__}: {exc})", argument="runs") from None
    pal_path = rd / "palette.csv"
    palette = load_palette(pal_path)
    if run.palette.get("sha256") and palette.sha256 != run.palette.get("sha256"):
        raise ArchcountError(f"{pal_path} is not the palette the run was trained with", argument="runs")
    want = run.data.get("fingerprint")
    tried = []
    for source in ([data] if data is not None else []) + [run.data.get("path"), None]:
        try:
            cat = load_category(source, run.data.get("category") or run.config.get("category", "horse"),
                                cache_dir=cache_dir, download=False)
        except ArchcountError as exc:
            tried.append(f"{source or 'the default sources'}: {exc.reason}")
            continue
        if not want or cat.fingerprint == want:
            return net, cat, palette, sha
        tried.append(f"{source or 'the default sources'}: other images (fingerprint {cat.fingerprint[:12]}, the run "
                     f"used {want[:12]})")
    raise ArchcountError("the run's validation images were not found; " + "; ".join(tried), argument="data",
                         hint="pass --data with the data the run was trained on")


_DATA_SIDE: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}


def _data_side(cat: Any, palette: Any) -> tuple[np.ndarray, ...]:
    """What depends only on the images and the palette, not on the run: the arrays, the grey-nearest
    baseline and the edge/flat masks (once per process for the runs that share them)."""
    from models.training import colourization_arrays
    key = (cat.fingerprint, palette.sha256)
    if key not in _DATA_SIDE:
        x_tr, y_tr, x_va, y_va = colourization_arrays(cat, palette)
        _DATA_SIDE.clear()  # one data set at a time: a report's runs share theirs
        _DATA_SIDE[key] = (x_tr, y_tr, x_va, y_va, grey_nearest(x_va[:, 0], palette.array), *edge_and_flat(x_va[:, 0]))
    return _DATA_SIDE[key]


def compute_evidence(run: Any, *, data: Any = None, cache_dir: Any = None) -> RunEvidence:
    """Measure the evidence of one finished run (see the module docstring); no caching."""
    import torch
    import torch.nn.functional as F

    from models.loop import channels_last_input
    t0 = time.perf_counter()
    net, cat, palette, sha = _load(run, data, cache_dir)
    x_tr, y_tr, x_va, y_va, grey, edges, flats = _data_side(cat, palette)
    pal = palette.array
    # the layout the run was trained and validated in: its own rounding, and 2-3x faster on a CPU
    cl = bool(getattr(run, "channels_last", False))
    layout = channels_last_input if cl else (lambda t: t)
    if cl:
        net = net.to(memory_format=torch.channels_last)
    net.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(x_va), 250):
            preds.append(net(layout(torch.from_numpy(x_va[start:start + 250]))).argmax(dim=1).numpy())
    pred = np.concatenate(preds)
    correct = pred == y_va
    counts = np.bincount(y_tr.ravel(), minlength=len(pal))
    most = int(np.argmax(counts))
    # gradient that reaches the first layer, for the finished weights, in training mode (batch statistics)
    net.train()
    xb, yb = layout(torch.from_numpy(x_tr[:GRAD_BATCH])), torch.from_numpy(y_tr[:GRAD_BATCH])
    loss = F.cross_entropy(net(xb), yb)
    name, w = first_layer(net)
    (grad,) = torch.autograd.grad(loss, [w])
    history = [h for h in run.history]
    hist_norms = tuple(float(h["grad_norm_first"]) for h in history
                       if h.get("grad_norm_first") not in (None, "", "nan"))
    idx = tuple(i for i in SAMPLE_INDICES if i < len(x_va))
    last = history[-1] if history else {}
    return RunEvidence(
        run_id=run.run_id, model=run.model, version=EVIDENCE_VERSION, checkpoint_sha256=sha,
        data_fingerprint=cat.fingerprint, palette_sha256=palette.sha256, n_val_images=int(len(x_va)),
        n_train_images=int(len(x_tr)), batch_size=run.batch_size,
        steps_per_epoch=math.ceil(len(x_tr) / run.batch_size), accuracy=float(correct.mean()),
        baseline_most_frequent=float((y_va == most).mean()), most_frequent_colour=most,
        baseline_grey_nearest=float((grey == y_va).mean()),
        top3_share_pred=top_share(pred, 3, len(pal)), top3_share_target=top_share(y_va, 3, len(pal)),
        colours_used_pred=int((np.bincount(pred.ravel(), minlength=len(pal)) > 0).sum()),
        colours_used_target=int((np.bincount(y_va.ravel(), minlength=len(pal)) > 0).sum()),
        edge_share=float(edges.mean()), edge_accuracy=float(correct[edges].mean()) if edges.any() else float("nan"),
        flat_accuracy=float(correct[flats].mean()) if flats.any() else float("nan"),
        grad_norm_first=float(grad.norm()), grad_norm_layer=name, grad_norm_history=hist_norms,
        train_loss_final=float(last["train_loss"]) if "train_loss" in last else None,
        val_loss_final=float(last["val_loss"]) if "val_loss" in last else None,
        sample_indices=idx, sample_pred=tuple(map(_img, pred[list(idx)])),
        sample_target=tuple(map(_img, y_va[list(idx)])),
        sample_grey=tuple(map(_img, np.clip(np.rint(x_va[list(idx), 0] * 256), 0, 255).astype(np.int64))),
        seconds=time.perf_counter() - t0)


def _img(a: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in a)


def load_evidence(run: Any, *, data: Any = None, cache_dir: Any = None, cache: bool = True) -> RunEvidence:
    """The evidence of ``run``: from ``<run>/evidence.json`` when it belongs to the same checkpoint,
    else computed and written there (atomically; a run folder that cannot be written is left alone)."""
    from analysis.files import write_atomic
    rd = Path(run.run_dir)
    path = rd / EVIDENCE_FILE
    ckpt = rd / "checkpoint.pt"
    if cache and path.is_file() and ckpt.is_file():
        try:
            ev = RunEvidence.from_dict(json.loads(path.read_text()))
            if ev.version == EVIDENCE_VERSION and ev.checkpoint_sha256 == _sha256(ckpt):
                return ev
        except (OSError, ValueError, TypeError, ArchcountError):
            pass  # stale or damaged: measured again
    ev = compute_evidence(run, data=data, cache_dir=cache_dir)
    if cache:
        try:
            write_atomic(path, json.dumps(ev.to_dict()))
        except (OSError, ArchcountError) as exc:
            warnings.warn(f"evidence of {run.run_id} not cached ({exc})", stacklevel=2)
    return ev


def evidence_for(runs: Sequence[Any], **options: Any) -> tuple[dict[str, RunEvidence], dict[str, str]]:
    """Evidence per run id, and the reason for each run whose evidence could not be measured."""
    out, failed = {}, {}
    for run in runs:
        try:
            out[run.run_id] = load_evidence(run, **options)
        except ArchcountError as exc:
            failed[run.run_id] = exc.reason
    return out, failed


__all__ = ["EVIDENCE_FILE", "EVIDENCE_VERSION", "RunEvidence", "compute_evidence", "edge_and_flat", "evidence_for",
           "first_layer", "grey_gradient", "grey_nearest", "load_evidence", "top_share"]
