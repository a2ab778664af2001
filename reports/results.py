"""The training results of the report: finding runs, their table and figures, and their evidence.

Evidence (baselines, colour collapse, edge accuracy, first-layer gradient, sample predictions) is
measured by :mod:`models.evidence` once per run and cached with it; this module only arranges it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from .labels import label

SWEEP_MODEL = "conv_transpose"
SWEEP_BATCH_SIZES = (32, 64, 100, 128, 256, 512)


def json_key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def trainable(name: str) -> bool:
    import models
    spec = models.spec(name)
    return spec.task == "colourization" and spec.valid_size(32)


def collect_runs(names: Sequence[str], *, runs_dir: Path | None, train: bool, epochs: int, data: Any,
                 sweep: bool, palette: str | None, device: str, quiet: bool,
                 sweep_model: str = SWEEP_MODEL) -> tuple[dict[str, Any], list[Any]]:
    """The main run of every trainable model and the batch-size sweep (trained when ``train``)."""
    from models.training import TrainConfig, find_or_train_many, find_run, load_runs
    root = Path(runs_dir) if runs_dir else Path("runs")
    main_cfgs = {n: TrainConfig(n, epochs=epochs, palette=palette) for n in names if trainable(n)}
    sweep_cfgs = [TrainConfig(sweep_model, epochs=epochs, batch_size=b, palette=palette)
                  for b in SWEEP_BATCH_SIZES] if sweep and sweep_model in main_cfgs else []
    main: dict[str, Any] = {}
    sweep_runs: list[Any] = []
    if train:  # one batch, scheduled on the free cores; batch.wall_time_s and batch.schedule say how it ran
        batch = find_or_train_many([*main_cfgs.values(), *sweep_cfgs], root, data=data, device=device, quiet=quiet)
        main = dict(zip(main_cfgs, batch[:len(main_cfgs)]))
        return main, list(batch[len(main_cfgs):])
    if runs_dir is None:
        return main, sweep_runs
    finished = load_runs(root)
    for n, cfg in main_cfgs.items():
        found = find_run(cfg, root)
        if found is None:  # else a finished run of that model, preferring the default batch size and epochs
            cands = sorted((r for r in finished if r.model == n),
                           key=lambda r: (r.batch_size == 100, r.epochs_completed == epochs, r.finished_at))
            found = cands[-1] if cands else None
        if found is not None:
            main[n] = found
    sweep_runs = same_but_batch(main.get(sweep_model), finished)
    return main, (sweep_runs if len(sweep_runs) > 1 else [])


def threads_text(run: Any) -> str:
    """``2``, or ``1 (2 runs at once)``: the threads a run trained with, and whether it shared the machine."""
    ex = getattr(run, "execution", {}) or {}
    together = ex.get("parallel_runs")
    text = str(run.threads)
    if isinstance(together, int) and together > 1:
        text += f" ({together} runs at once)"
    return text


def wall_text(runs: Sequence[Any]) -> str:
    """The wall time from the first run's start to the last run's end, and the run time they add up to."""
    import datetime as dt

    def when(text: str) -> Any:
        try:
            return dt.datetime.fromisoformat(text)
        except (TypeError, ValueError):
            return None
    starts = [when(r.started) for r in runs]
    ends = [when(r.finished_at) for r in runs]
    busy = sum(float(r.train_time_s or 0) for r in runs)
    if not runs or None in starts or None in ends:
        return f"{len(runs)} run(s), {busy / 60:.1f} min of training time in all"
    span = (max(ends) - min(starts)).total_seconds()
    return (f"{len(runs)} run(s) trained in {span / 60:.1f} min of wall time, {busy / 60:.1f} min of run time in all "
            f"(from the runs' own start and end times; runs trained in earlier sessions widen the span)")


def same_but_batch(reference: Any, finished: Sequence[Any]) -> list[Any]:
    """Finished runs with the reference run's settings, data and palette, except the batch size."""
    if reference is None:
        return []

    def key(run: Any) -> tuple:
        cfg = {k: v for k, v in run.config.items() if k != "batch_size"}
        return (run.model, json_key(cfg), run.palette.get("sha256"), run.data.get("fingerprint"))

    ref = key(reference)
    best: dict[int, Any] = {}
    for r in finished:
        if key(r) == ref and (r.batch_size not in best or r.finished_at > best[r.batch_size].finished_at):
            best[r.batch_size] = r
    return [best[b] for b in sorted(best)]


def _palette_rgb(run: Any) -> Any:
    from models.palette import load_palette
    return load_palette(Path(run.run_dir) / "palette.csv").array


def _grid_rows(evidence: Mapping[str, Any], runs: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Rows grey / one per run / target for the runs' shared sample images."""
    import numpy as np
    first = evidence[runs[0][1].run_id]
    a = first.arrays()
    pal = _palette_rgb(runs[0][1])
    rows = [("grey input", a["grey"].astype(np.float64) / 255.0)]
    for name, run in runs:
        rows.append((name, pal[evidence[run.run_id].arrays()["pred"]]))
    rows.append(("target", pal[a["target"]]))
    return rows


def _comparable(evidence: Mapping[str, Any], runs: Sequence[Any]) -> list[Any]:
    """Runs whose evidence shows the same validation images with the same palette as the first one."""
    runs = [r for r in runs if r.run_id in evidence]
    if not runs:
        return []
    e0 = evidence[runs[0].run_id]
    return [r for r in runs if evidence[r.run_id].data_fingerprint == e0.data_fingerprint
            and evidence[r.run_id].palette_sha256 == e0.palette_sha256
            and evidence[r.run_id].sample_indices == e0.sample_indices]


def training_section(main: Mapping[str, Any], sweep_runs: Sequence[Any], sections: Sequence[Mapping[str, Any]],
                     fig_dir: Path, *, data: Any = None) -> dict[str, Any]:
    import pandas as pd

    from models.evidence import evidence_for
    from reports import plots
    names = list(main)
    by_name = {s["name"]: s for s in sections}
    all_runs = list(main.values()) + [r for r in sweep_runs if r.run_id not in {m.run_id for m in main.values()}]
    evidence, failed = evidence_for(all_runs, data=data)
    rows = []
    for n in names:
        r = main[n]
        conn = by_name[n]["at32"]["connections"] if n in by_name else None
        rows.append({"model": label(n), "weights": by_name[n]["at32"]["weights"] if n in by_name else r.num_weights,
                     "parameters": r.num_weights, "connections 32×32": conn,
                     "best val loss": round(r.best_val_loss, 4), "final val loss": round(r.final_val_loss, 4),
                     "final train loss": round(float(r.final["train_loss"]), 4),
                     "best val acc %": round(100 * r.best_val_acc, 2), "final val acc %": round(100 * r.final_val_acc, 2),
                     "epochs": r.epochs_completed, "s / epoch": round(r.mean_epoch_time_s, 2),
                     "images / s": round(r.images_per_s, 1), "threads": threads_text(r)})
    ev_rows = []
    for n in names:
        e = evidence.get(main[n].run_id)
        if e is None:
            continue
        ev_rows.append({"model": label(n), "accuracy %": round(100 * e.accuracy, 2),
                        "most frequent colour %": round(100 * e.baseline_most_frequent, 2),
                        "grey-nearest colour %": round(100 * e.baseline_grey_nearest, 2),
                        "top-3 colours, predicted %": round(100 * e.top3_share_pred, 1),
                        "top-3 colours, target %": round(100 * e.top3_share_target, 1),
                        "colours used": f"{e.colours_used_pred} of {e.colours_used_target}",
                        "edge acc %": round(100 * e.edge_accuracy, 2), "flat acc %": round(100 * e.flat_accuracy, 2),
                        "first-layer gradient norm": float(f"{e.grad_norm_first:.4g}"),
                        "steps / epoch": e.steps_per_epoch})
    figures: dict[str, Any] = {"samples": []}
    if names:
        figures["curves"] = plots.loss_curves([main[n] for n in names], [label(n) for n in names],
                                              fig_dir / "training_curves.png").name
        pts = [{"label": label(n), "connections": by_name[n]["at32"]["connections"], "accuracy": main[n].best_val_acc}
               for n in names if n in by_name]
        if pts:
            figures["cost"] = plots.cost_quality(pts, fig_dir / "cost_quality.png").name
        comp = _comparable(evidence, [main[n] for n in names])
        if comp:
            figures["comparison"] = plots.image_grid(
                _grid_rows(evidence, [(label(r.model), r) for r in comp]), fig_dir / "comparison.png",
                "the same validation images: grey input, each model's prediction, target").name
            figures["comparison_models"] = [label(r.model) for r in comp]
        else:
            for n in names:  # no evidence: the runs' own sample grids
                src = Path(main[n].run_dir) / "samples.png"
                if src.is_file():
                    dst = fig_dir / f"samples_{n}.png"
                    shutil.copyfile(src, dst)
                    figures["samples"].append({"label": label(n), "file": dst.name})
    sweep_rows = []
    for r in sorted(sweep_runs, key=lambda r: r.batch_size):
        e = evidence.get(r.run_id)
        sweep_rows.append({"batch_size": r.batch_size, "final_val_loss": r.final_val_loss,
                           "final_train_loss": float(r.final["train_loss"]),
                           "final_val_acc": r.final_val_acc, "best_val_loss": r.best_val_loss,
                           "epoch_time_s": r.mean_epoch_time_s, "images_per_s": r.images_per_s,
                           "epochs": r.epochs_completed, "steps": e.steps_per_epoch if e else None,
                           "top3": e.top3_share_pred if e else None, "edge_acc": e.edge_accuracy if e else None})
    if sweep_rows:
        figures["sweep"] = plots.batch_sweep(sweep_rows, fig_dir / "batch_sweep.png", label(SWEEP_MODEL)).name
        comp = _comparable(evidence, sorted(sweep_runs, key=lambda r: r.batch_size))
        if comp:
            figures["sweep_samples"] = plots.image_grid(
                _grid_rows(evidence, [(f"batch {r.batch_size}", r) for r in comp]), fig_dir / "sweep_samples.png",
                f"{label(SWEEP_MODEL)}: the same validation images after the same number of epochs, per batch size").name
    sweep_df = pd.DataFrame([{"batch size": r["batch_size"], "steps / epoch": r["steps"],
                              "final train loss": round(r["final_train_loss"], 4),
                              "final val loss": round(r["final_val_loss"], 4),
                              "final val acc %": round(100 * r["final_val_acc"], 2),
                              "best val loss": round(r["best_val_loss"], 4),
                              "top-3 colours %": None if r["top3"] is None else round(100 * r["top3"], 1),
                              "s / epoch": round(r["epoch_time_s"], 2), "images / s": round(r["images_per_s"], 1),
                              "epochs": r["epochs"]}
                             for r in sweep_rows])
    sources = sorted({r.data_description for r in all_runs})
    palettes = sorted({r.palette_description for r in all_runs})
    devices = sorted({f"{r.device} ({r.device_name}, {r.threads} thread{'' if r.threads == 1 else 's'})"
                      for r in all_runs})
    return {"table": pd.DataFrame(rows), "evidence_table": pd.DataFrame(ev_rows), "figures": figures,
            "wall": wall_text(all_runs),
            "sweep": sweep_df, "has_sweep": bool(sweep_rows), "sweep_rows": sweep_rows,
            "sources": sources, "palettes": palettes, "devices": devices, "evidence": evidence,
            "evidence_failed": failed, "jpeg": any("JPEG" in s for s in sources),
            "runs": main, "sweep_runs": list(sweep_runs)}
