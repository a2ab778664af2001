"""matplotlib figures of the report (Agg backend, deterministic PNG bytes, labelled axes with units)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .render import write_atomic

_SAVE = dict(dpi=150, metadata={"Software": None}, format="png")


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _no_minor_labels(ax: Any) -> None:
    from matplotlib.ticker import NullFormatter
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig: Any, path: Path) -> Path:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, bbox_inches="tight", **_SAVE)
    return write_atomic(path, buf.getvalue())


def loss_curves(runs: Sequence[Any], labels: Sequence[str], path: Path) -> Path:
    """Training and validation loss per epoch (left) and validation accuracy (right) for each run."""
    fig = _figure(9.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    for run, label in zip(runs, labels):
        epochs = [int(h["epoch"]) for h in run.history]
        line, = ax1.plot(epochs, [float(h["train_loss"]) for h in run.history], "--", linewidth=1.2)
        ax1.plot(epochs, [float(h["val_loss"]) for h in run.history], "-", color=line.get_color(), linewidth=1.6,
                 label=label)
        ax2.plot(epochs, [100 * float(h["val_acc"]) for h in run.history], "-", color=line.get_color(),
                 linewidth=1.6, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss (nats per pixel)")
    ax1.set_title("loss: training (dashed), validation (solid)", fontsize=9)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy (% of pixels)")
    ax2.set_title("per-pixel validation accuracy", fontsize=9)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def cost_quality(points: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Connections at 32x32 (millions) against best validation accuracy, one point per model."""
    fig = _figure(5.6, 3.6)
    ax = fig.subplots()
    for p in points:
        x = p["connections"] / 1e6
        ax.scatter([x], [100 * p["accuracy"]], s=40)
        ax.annotate(p["label"], (x, 100 * p["accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    xs = [p["connections"] / 1e6 for p in points]
    pad = 0.15 * (max(xs) - min(xs) or max(xs))
    ax.set_xlim(min(xs) - pad, max(xs) + 2 * pad)
    ax.set_xlabel("connections at 32×32 (millions of multiply-adds per image, weighted convention)")
    ax.set_ylabel("best validation accuracy (% of pixels)")
    ax.set_title("cost against quality", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def batch_sweep(rows: Sequence[Mapping[str, Any]], path: Path, model_label: str) -> Path:
    """Final validation loss and accuracy (left) and time per epoch (right) against batch size."""
    fig = _figure(10.0, 3.6)
    ax1, ax3 = fig.subplots(1, 2, gridspec_kw={"wspace": 0.15})
    bs = [r["batch_size"] for r in rows]
    ax1.plot(bs, [r["final_val_loss"] for r in rows], "o-", color="tab:blue", label="final validation loss")
    if all(r.get("final_train_loss") is not None for r in rows):
        ax1.plot(bs, [r["final_train_loss"] for r in rows], "o:", color="tab:blue", alpha=0.6,
                 label="final training loss")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size (images, log scale)")
    ax1.set_ylabel("loss (nats per pixel): validation solid, training dotted", color="tab:blue", fontsize=8)
    ax2 = ax1.twinx()
    ax2.plot(bs, [100 * r["final_val_acc"] for r in rows], "s--", color="tab:red", label="final validation accuracy")
    ax2.set_ylabel("validation accuracy (% of pixels)", color="tab:red")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
               frameon=False)  # below the axes: the lines fill every corner
    ax1.set_title(f"{model_label}: quality after the same number of epochs", fontsize=9)
    ax1.grid(alpha=0.3)
    ax3.plot(bs, [r["epoch_time_s"] for r in rows], "o-", color="tab:green")
    ax3.set_xscale("log", base=2)
    ax3.set_xlabel("batch size (images, log scale)")
    ax3.set_ylabel("mean time per epoch (s)")
    ax3.set_title("speed", fontsize=9)
    ax3.grid(alpha=0.3)
    for x in bs:
        ax3.annotate(str(x), (x, rows[bs.index(x)]["epoch_time_s"]), textcoords="offset points", xytext=(0, 5),
                     fontsize=7, ha="center")
    return _save(fig, path)


def scaling_bars(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Weights, outputs and connections at 32x32 and 64x64 per model (log scale)."""
    import numpy as np
    fig = _figure(9.0, 3.6)
    axes = fig.subplots(1, 3)
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    for ax, q in zip(axes, ("weights", "outputs", "connections")):
        ax.bar(x - 0.2, [r[f"{q}_32"] for r in rows], 0.4, label="32×32")
        ax.bar(x + 0.2, [r[f"{q}_64"] for r in rows], 0.4, label="64×64")
        ax.set_xticks(x, labels, rotation=20, fontsize=7)
        if q != "weights":  # weights do not change with the size: a linear axis shows that best
            ax.set_yscale("log")
            _no_minor_labels(ax)
        ax.set_ylabel(f"{q} (count{', log scale' if q != 'weights' else ''})", fontsize=8)
        ax.set_title(q, fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def image_grid(rows: Sequence[tuple[str, Any]], path: Path, title: str = "", scale: int = 3) -> Path:
    """Rows of images (each ``[n, H, W, 3]`` RGB in [0, 1], or ``[n, H, W]`` grey), one labelled row each:
    the same validation images in every row, so that the models can be compared image by image.

    The tiles are composed into one array (``scale``× nearest-neighbour, 2-pixel gaps) and drawn once.
    """
    import numpy as np
    n = max(len(imgs) for _, imgs in rows)
    h, w = np.asarray(rows[0][1][0]).shape[:2]
    gap, th, tw = 2, h * scale, w * scale
    canvas = np.ones((len(rows) * (th + gap) - gap, n * (tw + gap) - gap, 3))
    for r, (_, imgs) in enumerate(rows):
        for c, img in enumerate(imgs):
            a = np.asarray(img, dtype=np.float64)
            a = np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a
            a = np.kron(np.clip(a, 0, 1), np.ones((scale, scale, 1)))
            y0, x0 = r * (th + gap), c * (tw + gap)
            canvas[y0:y0 + th, x0:x0 + tw] = a
    width = 1.4 + canvas.shape[1] / 110
    fig = _figure(width, 0.3 + canvas.shape[0] / 110)
    ax = fig.subplots()
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(th + gap) * r + th / 2 for r in range(len(rows))], [label for label, _ in rows], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)
    return _save(fig, path)
