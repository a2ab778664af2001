"""The comparison report: counts, verified formulas, paddings, receptive fields and training results.

>>> from reports import build_report
>>> result = build_report("out/report", formats=("md",))   # doctest: +SKIP
>>> result.markdown.name                                    # doctest: +SKIP
'report.md'
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import sympy as sp

from analysis.errors import ArchcountError

DEFAULT_MODELS = ("pool_upsample", "conv_transpose", "unet")
SWEEP_MODEL = "conv_transpose"
SWEEP_BATCH_SIZES = (32, 64, 100, 128, 256, 512)
#: The exercise's default hyperparameters, where numbers are shown.
DEFAULT_POINT = {"NIC": 1, "NF": 32, "NC": 24, "k": 3}
LABELS = {"pool_upsample": "PoolUpsampleNet", "conv_transpose": "ConvTransposeNet", "unet": "UNet",
          "cnn_2021": "CNN (2021)", "unet_2021": "UNet (2021)", "mnist_fixed": "MNIST fixed",
          "mnist_global_pool": "MNIST global pool"}
JPEG_NOTE = ("the shipped CIFAR-10 copy is a JPEG re-encoding (quality about 75, 4:2:0 chroma), not the official "
             "lossless archive, so per-pixel colour accuracy is not strictly comparable with published numbers")


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and what it contains."""

    out_dir: Path
    markdown: Path | None
    pdf: Path | None
    figures: tuple[Path, ...]
    wall_time_s: float
    missing: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "markdown": str(self.markdown) if self.markdown else None,
                "pdf": str(self.pdf) if self.pdf else None, "figures": [str(p) for p in self.figures],
                "wall_time_s": self.wall_time_s, "missing": list(self.missing), "runs": list(self.runs)}


def label(name: str) -> str:
    return LABELS.get(name, name)


def _formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    out = tuple(f.strip().lower() for f in formats)
    bad = [f for f in out if f not in ("md", "pdf")]
    if bad or not out:
        raise ArchcountError(f"formats must be md and/or pdf, got {', '.join(bad) or 'nothing'}", argument="--format")
    return out


# --------------------------------------------------------------------------- analysis sections

def _shape_text(shape: Sequence[Any]) -> str:
    return "[BS, " + ", ".join(sp.sstr(s) for s in shape) + "]"


def _diagram_nodes(table: Any, strides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Diagram nodes from a count table: modules grouped by their top-level block."""
    nodes = []
    for row in table.rows:
        desc = row.type
        if row.type in ("Conv2d", "ConvTranspose2d"):
            desc = f"{row.type} k×k"
            if strides.get(row.path, 1) != 1:
                desc += f", stride {strides[row.path]}"
        inputs = ["input" if i in ("x", "input") else i for i in row.inputs] or ["input"]
        nodes.append({"name": row.path, "label": desc, "shape": _shape_text(row.out_shape), "inputs": inputs,
                      "group": row.path.split(".")[0]})
    return nodes


def _strides(name: str) -> dict[str, Any]:
    from analysis.counting import _capture
    from analysis.rules import RULES
    out = {}
    for node in _capture(name, {}, None, RULES).nodes:
        s = node.params.get("stride")
        if s is not None:
            out[node.path] = s[0] if isinstance(s, tuple) else s
    return out


def model_section(name: str, fig_dir: Path) -> dict[str, Any]:
    """Per-model data: diagram, per-layer formulas and values, totals under every preset."""
    import pandas as pd

    from analysis.conventions import PRESETS
    from analysis.counting import count
    from analysis.symbols import H, W
    from reports.diagram import draw_architecture

    exact = count(name)
    table = exact.simplified()
    diagram = draw_architecture(_diagram_nodes(table, _strides(name)), fig_dir / f"arch_{name}.png",
                                title=f"{label(name)} (k×k kernels, input [BS, NIC, H, W])")
    at32 = table.evaluate(H=32, W=32, **DEFAULT_POINT)
    at64 = table.evaluate(H=64, W=64, **DEFAULT_POINT)
    layer_rows, value_rows = [], []
    for row in table.counted_rows():
        layer_rows.append({"layer": row.path, "type": row.type, "output shape": _shape_text(row.out_shape),
                           "weights": sp.sympify(row.weights), "outputs": sp.sympify(row.outputs),
                           "connections": sp.sympify(row.connections)})
        r32, r64 = at32.row(row.path), at64.row(row.path)
        value_rows.append({"layer": row.path, "weights": int(r32.weights), "outputs 32×32": int(r32.outputs),
                           "outputs 64×64": int(r64.outputs), "connections 32×32": int(r32.connections),
                           "connections 64×64": int(r64.connections)})
    preset_rows, preset_values = [], []
    for preset in PRESETS:
        t = table.under(preset)
        e32, e64 = t.evaluate(H=32, W=32, **DEFAULT_POINT), t.evaluate(H=64, W=64, **DEFAULT_POINT)
        preset_rows.append({"convention": preset, "weights": sp.sympify(t.total("weights")),
                            "outputs": sp.sympify(t.total("outputs")), "connections": sp.sympify(t.total("connections"))})
        v = {"convention": preset}
        for q in ("weights", "outputs", "connections"):
            a, b = int(e32.total(q)), int(e64.total(q))
            v[f"{q} 32"] = a
            v[f"{q} 64"] = b
            v[f"{q} ×"] = f"{b / a:.2f}" if a else "—"
        preset_values.append(v)
    scaling = table.scaled(H=2 * H, W=2 * W)
    return {
        "name": name, "label": label(name), "diagram": diagram.name,
        "assumptions": list(table.active_assumptions),
        "layers": pd.DataFrame(layer_rows), "values": pd.DataFrame(value_rows),
        "presets": pd.DataFrame(preset_rows), "preset_values": pd.DataFrame(preset_values),
        "totals": {q: sp.sympify(table.total(q)) for q in ("weights", "outputs", "connections")},
        "exact_outputs": sp.sympify(exact.total("outputs")),
        "at32": {q: int(at32.total(q)) for q in ("weights", "outputs", "connections")},
        "at64": {q: int(at64.total(q)) for q in ("weights", "outputs", "connections")},
        "ratios": {r.quantity: (r.ratio if r.constant else r.ratio_assuming) for r in scaling.rows},
        "unsupported": [f"{u.path} ({u.type}): {u.reason}" for u in table.unsupported],
    }


def padding_section() -> dict[str, Any]:
    """Padding table for k = 1..7, each entry checked on real torch layers."""
    import pandas as pd
    import torch
    import torch.nn as nn

    from analysis.shapes import general_padding_formulas, solve_padding
    from analysis.symbols import k

    rows, checked = [], 0
    sizes = (8, 10, 16, 30)
    for kv in range(1, 8):
        half = solve_padding(kv, stride=2)
        dbl = solve_padding(kv, stride=2, transposed=True)
        keep = solve_padding(kv, stride=1)
        with torch.no_grad():
            for p, _ in half.solutions:
                for n in sizes:
                    assert nn.Conv2d(1, 1, kv, stride=2, padding=p)(torch.zeros(1, 1, n, n)).shape[-1] == n // 2
                    checked += 1
            for p, op in dbl.solutions:
                for n in sizes:
                    out = nn.ConvTranspose2d(1, 1, kv, stride=2, padding=p, output_padding=op)(torch.zeros(1, 1, n, n))
                    assert out.shape[-1] == 2 * n
                    checked += 1
            for p, _ in keep.solutions:
                for n in sizes:
                    assert nn.Conv2d(1, 1, kv, padding=p)(torch.zeros(1, 1, n, n)).shape[-1] == n
                    checked += 1
        rows.append({"k": kv,
                     "stride-2 conv halving: p": ", ".join(str(p) for p, _ in half.solutions) or "none",
                     "stride-2 transposed doubling: (p, op)": ", ".join(f"({p}, {op})" for p, op in dbl.solutions)
                     or "none",
                     "stride-1 conv keeping: p": ", ".join(str(p) for p, _ in keep.solutions) or "none (even k)"})
    sym_half = solve_padding(k, stride=2).solutions[0]
    sym_dbl = solve_padding(k, stride=2, transposed=True).solutions[0]
    return {"table": pd.DataFrame(rows), "checked": checked, "sizes": list(sizes),
            "general": list(general_padding_formulas()),
            "half_p": sym_half[0], "dbl_p": sym_dbl[0], "dbl_op": sym_dbl[1],
            "k4": {"half": solve_padding(4, stride=2).solutions, "dbl": solve_padding(4, stride=2, transposed=True).solutions},
            "k5": {"half": solve_padding(5, stride=2).solutions, "dbl": solve_padding(5, stride=2, transposed=True).solutions}}


def receptive_section(names: Sequence[str]) -> list[dict[str, Any]]:
    """Receptive field, jump and position dependence per layer (first spatial axis; kernels are square)."""
    import pandas as pd

    from analysis.receptive import receptive_field

    def first(t: Any) -> Any:
        return "—" if t is None else sp.sympify(t[0])

    out = []
    for name in names:
        rf = receptive_field(name)
        at3 = rf.evaluate(k=3)
        rows = [{"layer": layer.path, "type": layer.type_name, "receptive field": first(layer.size),
                 "at k=3": first(l3.size), "jump": first(layer.jump),
                 "varies with position": "yes" if layer.varies else "no"}
                for layer, l3 in zip(rf.layers, at3.layers) if layer.op not in ("identity",)]
        out.append({"name": name, "label": label(name), "table": pd.DataFrame(rows),
                    "output": first(rf.size), "output_k3": first(at3.size), "varies": bool(rf.varies)})
    return out


def verification_section(names: Sequence[str], n_random: int, tools: Sequence[str] | None = None) -> dict[str, Any]:
    """Formulas against measurements of the real models, and what other counting tools say."""
    import pandas as pd

    from analysis.compare_tools import compare_tools
    from analysis.verify import verify
    reports = [verify(name, n_random=n_random, seed=0) for name in names]
    summary = []
    for r in reports:
        s = r.summary()
        summary.append({"model": label(r.models[0]), "configurations": s["configs_checked"],
                        "skipped": s["configs_skipped"], "conventions": s["conventions"],
                        "quantities checked": s["quantities_checked"], "mismatches": s["mismatches"]})
    tool_rows, notes, skipped_tools = [], [], set()
    seen: set[tuple[str, str]] = set()
    for name in names:
        comp = compare_tools(name, tools=tools)
        conv = comp.archcount
        for t in comp.tools:
            if not t.available:
                skipped_tools.add(f"{t.tool}: {t.message}")
                continue
            tool_rows.append({"model": label(name), "tool": t.message, "unit": t.unit, "total": t.total,
                              "parameters": t.params})
        tool_rows.append({"model": label(name), "tool": "archcount weighted (connections)", "unit": "MACs",
                          "total": conv.get("weighted", {}).get("connections"), "parameters": comp.total_params})
        for e in comp.explanations:  # one line per tool and layer type: the first model showing it
            key = (e.tool, e.group)
            if (e.disagrees or not e.holds) and key not in seen:
                seen.add(key)
                notes.append(f"{label(name)}: {e.text}")
    return {"summary": pd.DataFrame(summary), "total_mismatches": sum(len(r.mismatches) for r in reports),
            "total_checked": sum(x["quantities checked"] for x in summary),
            "total_configs": sum(x["configurations"] for x in summary),
            "tools": pd.DataFrame(tool_rows), "tool_notes": notes + sorted(skipped_tools)}


# --------------------------------------------------------------------------- training sections

def _collect_runs(names: Sequence[str], *, runs_dir: Path | None, train: bool, epochs: int, data: Any,
                  sweep: bool, palette: str | None, device: str, quiet: bool) -> tuple[dict[str, Any], list[Any]]:
    from models.training import TrainConfig, find_or_train_many, find_run, load_runs
    root = Path(runs_dir) if runs_dir else Path("runs")
    main_cfgs = {n: TrainConfig(n, epochs=epochs, palette=palette) for n in names
                 if _trainable(n)}
    sweep_cfgs = [TrainConfig(SWEEP_MODEL, epochs=epochs, batch_size=b, palette=palette)
                  for b in SWEEP_BATCH_SIZES] if sweep else []
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
    sweep_runs = _same_but_batch(main.get(SWEEP_MODEL), finished)
    return main, (sweep_runs if len(sweep_runs) > 1 else [])


def _same_but_batch(reference: Any, finished: Sequence[Any]) -> list[Any]:
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


def json_key(obj: Any) -> str:
    import json
    return json.dumps(obj, sort_keys=True, default=str)


def _trainable(name: str) -> bool:
    import models
    spec = models.spec(name)
    return spec.task == "colourization" and spec.valid_size(32)


def training_section(main: Mapping[str, Any], sweep_runs: Sequence[Any], sections: Sequence[Mapping[str, Any]],
                     fig_dir: Path) -> dict[str, Any]:
    import pandas as pd

    from reports import plots
    names = [n for n in main]
    rows = []
    by_name = {s["name"]: s for s in sections}
    for n in names:
        r = main[n]
        conn = by_name[n]["at32"]["connections"] if n in by_name else None
        rows.append({"model": label(n), "weights": by_name[n]["at32"]["weights"] if n in by_name else r.num_weights,
                     "parameters": r.num_weights, "connections 32×32": conn,
                     "best val loss": round(r.best_val_loss, 4), "final val loss": round(r.final_val_loss, 4),
                     "best val acc %": round(100 * r.best_val_acc, 2), "final val acc %": round(100 * r.final_val_acc, 2),
                     "epochs": r.epochs_completed, "s / epoch": round(r.mean_epoch_time_s, 2),
                     "images / s": round(r.images_per_s, 1)})
    figures = {}
    if names:
        figures["curves"] = plots.loss_curves([main[n] for n in names], [label(n) for n in names],
                                              fig_dir / "training_curves.png").name
        pts = [{"label": label(n), "connections": by_name[n]["at32"]["connections"], "accuracy": main[n].best_val_acc}
               for n in names if n in by_name]
        if pts:
            figures["cost"] = plots.cost_quality(pts, fig_dir / "cost_quality.png").name
        samples = []
        for n in names:
            src = Path(main[n].run_dir) / "samples.png"
            if src.is_file():
                dst = fig_dir / f"samples_{n}.png"
                shutil.copyfile(src, dst)
                samples.append({"label": label(n), "file": dst.name})
        figures["samples"] = samples
    sweep_rows = []
    for r in sorted(sweep_runs, key=lambda r: r.batch_size):
        sweep_rows.append({"batch_size": r.batch_size, "final_val_loss": round(r.final_val_loss, 4),
                           "final_val_acc": r.final_val_acc, "best_val_loss": round(r.best_val_loss, 4),
                           "epoch_time_s": round(r.mean_epoch_time_s, 2), "images_per_s": round(r.images_per_s, 1),
                           "epochs": r.epochs_completed})
    if sweep_rows:
        figures["sweep"] = plots.batch_sweep(sweep_rows, fig_dir / "batch_sweep.png", label(SWEEP_MODEL)).name
    sweep_df = pd.DataFrame([{"batch size": r["batch_size"], "final val loss": r["final_val_loss"],
                              "final val acc %": round(100 * r["final_val_acc"], 2), "best val loss": r["best_val_loss"],
                              "s / epoch": r["epoch_time_s"], "images / s": r["images_per_s"], "epochs": r["epochs"]}
                             for r in sweep_rows])
    sources = sorted({r.data_description for r in list(main.values()) + list(sweep_runs)})
    palettes = sorted({r.palette_description for r in list(main.values()) + list(sweep_runs)})
    devices = sorted({f"{r.device} ({r.device_name})" for r in list(main.values()) + list(sweep_runs)})
    return {"table": pd.DataFrame(rows), "figures": figures, "sweep": sweep_df, "has_sweep": bool(sweep_rows),
            "sources": sources, "palettes": palettes, "devices": devices,
            "jpeg": any("JPEG" in s for s in sources)}


# --------------------------------------------------------------------------- answers

def answers(sections: Sequence[Mapping[str, Any]], main: Mapping[str, Any], padding: Mapping[str, Any]
            ) -> list[dict[str, str]]:
    """Answers to the exercise's questions, generated from the measured values."""
    out = []

    def compare(a: str, b: str, question: str) -> None:
        if a in main and b in main:
            ra, rb = main[a], main[b]
            dl = rb.best_val_loss - ra.best_val_loss
            da = 100 * (rb.best_val_acc - ra.best_val_acc)
            better = "lower" if dl < 0 else "higher"
            text = (f"{label(b)} reaches a best validation loss of {rb.best_val_loss:.3f} against {ra.best_val_loss:.3f} "
                    f"for {label(a)}: {abs(dl):.3f} {better} ({100 * abs(dl) / ra.best_val_loss:.1f}%). Best validation "
                    f"accuracy: {100 * rb.best_val_acc:.1f}% against {100 * ra.best_val_acc:.1f}% "
                    f"({'+' if da >= 0 else '−'}{abs(da):.1f} points), after {rb.epochs_completed} and "
                    f"{ra.epochs_completed} epochs.")
        else:
            missing = [label(m) for m in (a, b) if m not in main]
            text = (f"Not measured: no finished training run of {', '.join(missing)}. Run "
                    f"`archcount report --train` (or `archcount train`) and pass `--runs`.")
        out.append({"question": question, "answer": text})

    compare("pool_upsample", "conv_transpose",
            "Does ConvTransposeNet reach a lower validation loss than PoolUpsampleNet, and by how much?")
    compare("conv_transpose", "unet", "Did the skip connections (UNet against ConvTransposeNet) improve loss and accuracy?")
    for s in sections:
        parts = []
        for q in ("weights", "outputs", "connections"):
            a, b = s["at32"][q], s["at64"][q]
            parts.append(f"{q} {a:,} at 32×32 and {b:,} at 64×64 (×{b / a:.2f})")
        out.append({"question": f"{s['label']}: weights, outputs and connections at 32×32 and at the doubled size 64×64 "
                                f"(weighted convention, NIC=1, NF=32, NC=24, k=3)?",
                    "answer": "; ".join(parts) + "."})
    for kv in (4, 5):
        d = padding[f"k{kv}"]
        half = ", ".join(f"padding {p}" for p, _ in d["half"]) or "no padding works"
        dbl = ", ".join(f"padding {p} with output_padding {op}" for p, op in d["dbl"]) or "none"
        out.append({"question": f"Which paddings keep the shapes for kernel {kv}?",
                    "answer": f"A stride-2 conv halving the size needs {half}; a stride-2 transposed conv doubling it "
                              f"needs {dbl} (all solutions; checked on torch layers)."})
    return out


# --------------------------------------------------------------------------- provenance and build

def provenance(*, device: str, sources: Sequence[str], palettes: Sequence[str], command: str | None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version
    libs = {}
    for lib in ("archcount", "torch", "sympy", "fvcore", "typst", "pandas", "matplotlib", "jinja2", "numpy"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = "not installed"
    return {"date": _dt.date.today().isoformat(), "archcount": libs["archcount"],
            "versions": ", ".join(f"{k} {v}" for k, v in libs.items() if k != "archcount"),
            "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "sources": list(sources), "palettes": list(palettes),
            "command": command or " ".join(["archcount"] + sys.argv[1:]), "wall_time": None}


def _frames(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """DataFrames the Typst template shows as tables (the Markdown template writes them inline)."""
    import pandas as pd
    prov = ctx["provenance"]
    comparison = pd.DataFrame([{"model": m["label"], "weights": m["at32"]["weights"],
                                "outputs 32×32": m["at32"]["outputs"], "outputs 64×64": m["at64"]["outputs"],
                                "connections 32×32": m["at32"]["connections"],
                                "connections 64×64": m["at64"]["connections"]} for m in ctx["models"]])
    provenance_df = pd.DataFrame([
        {"item": "archcount", "value": prov["archcount"]}, {"item": "date", "value": prov["date"]},
        {"item": "device", "value": prov["device"]},
        {"item": "data source", "value": "; ".join(prov["sources"]) or "none (analysis only)"},
        {"item": "palette", "value": "; ".join(prov["palettes"]) or "none (analysis only)"},
        {"item": "libraries", "value": prov["versions"]},
        {"item": "Python", "value": f"{prov['python']} on {prov['platform']}"},
        {"item": "command", "value": prov["command"]}, {"item": "wall time", "value": prov["wall_time"]}])
    conventions = pd.DataFrame([{"convention": c["name"], "what counts": c["description"]}
                                for c in ctx["conventions"]])
    return {"comparison_df": comparison, "provenance_df": provenance_df, "conventions_df": conventions}


def collect_context(out: str | Path = "out/report", *, models: Sequence[str] | str = DEFAULT_MODELS,
                    runs: str | Path | None = None, train: bool = False, epochs: int = 25, data: Any = None,
                    sweep: bool = False, palette: str | None = None, device: str = "auto", verify_configs: int = 1,
                    tools: Sequence[str] | None = None, quiet: bool = True,
                    provenance_overrides: Mapping[str, Any] | None = None, command: str | None = None
                    ) -> dict[str, Any]:
    """Compute everything the report shows (figures are written to ``out/figures``)."""
    import models as zoo

    from analysis.conventions import PRESETS
    from models.training import select_device
    t0 = time.perf_counter()
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m.strip()]
    if not names:
        raise ArchcountError("needs at least one model", argument="--models")
    for n in names:
        zoo.spec(n)
    fig_dir = Path(out) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    sections = [model_section(n, fig_dir) for n in names]
    padding = padding_section()
    rf = receptive_section(names)
    verification = verification_section(names, verify_configs, tools)
    main, sweep_runs = _collect_runs(names, runs_dir=Path(runs) if runs else None, train=train, epochs=epochs,
                                     data=data, sweep=sweep, palette=palette, device=device, quiet=quiet)
    training = training_section(main, sweep_runs, sections, fig_dir) if main or sweep_runs else None
    missing = []
    if training is None:
        missing.append("training results: no finished runs were found. Train with `archcount report --train "
                       "--runs runs` (or `make report`), or point `--runs` at a folder of finished runs. The data "
                       "come from `--data PATH`, `$ARCHCOUNT_DATA`, the cache, `../shared/data/cifar10-jpeg.zip`, "
                       "or the official CIFAR-10 download.")
    else:
        missing.extend(f"training run of {label(n)}" for n in names if _trainable(n) and n not in main)
        if sweep and not training["has_sweep"]:
            missing.append(f"batch-size sweep of {label(SWEEP_MODEL)}")
    from reports import plots
    scaling_fig = plots.scaling_bars([{"label": s["label"], **{f"{q}_32": s["at32"][q] for q in s["at32"]},
                                       **{f"{q}_64": s["at64"][q] for q in s["at64"]}} for s in sections],
                                     fig_dir / "scaling.png").name
    dev = select_device(device)
    prov = provenance(device=(", ".join(training["devices"]) if training else f"{dev.type} (analysis only)"),
                      sources=training["sources"] if training else [], palettes=training["palettes"] if training else [],
                      command=command)
    prov["jpeg_note"] = JPEG_NOTE if training and training["jpeg"] else ""
    prov["wall_time"] = f"{time.perf_counter() - t0:.1f} s (analysis" + (" and reading runs)" if training else ")")
    if provenance_overrides:
        prov.update(provenance_overrides)
    context = {
        "title": "archcount report: " + ", ".join(label(n) for n in names),
        "models": sections, "padding": padding, "rf": rf, "verification": verification, "training": training,
        "answers": answers(sections, main, padding), "missing": missing, "provenance": prov,
        "conventions": [{"name": n, "description": c.describe()} for n, c in PRESETS.items()],
        "scaling_fig": scaling_fig, "point": DEFAULT_POINT,
        "runs": [str(Path(r.run_dir).name) for r in list(main.values()) + list(sweep_runs)],
    }
    context.update(_frames(context))
    return context


def render_report(context: Mapping[str, Any], out: str | Path, formats: Iterable[str] | str = ("md", "pdf")
                  ) -> tuple[Path | None, Path | None]:
    """Render a context from :func:`collect_context`: deterministic (same context, same bytes)."""
    from reports.render import render_markdown, render_pdf
    fmts = _formats(formats)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = render_markdown("report.md.j2", context, out_dir / "report.md") if "md" in fmts else None
    pdf_path = render_pdf("report.typ.j2", context, out_dir / "report.pdf", root=out_dir) if "pdf" in fmts else None
    return md_path, pdf_path


def build_report(out: str | Path = "out/report", *, formats: Iterable[str] | str = ("md", "pdf"),
                 **options: Any) -> ReportResult:
    """Build the report into ``out`` (``report.md``, ``report.pdf``, ``figures/``).

    Options are those of :func:`collect_context`: ``models``, ``runs``, ``train``, ``epochs``,
    ``data``, ``sweep``, ``palette``, ``device``, ``verify_configs``, ``tools``, ``quiet``,
    ``provenance_overrides``, ``command``.  Without runs (no ``runs`` folder and ``train=False``)
    the report is analysis-only and says what is missing and how to get it.  With ``train=True``
    missing runs are trained (and finished ones reused) under ``runs`` (default ``runs/``).
    """
    t0 = time.perf_counter()
    _formats(formats)
    context = collect_context(out, **options)
    md_path, pdf_path = render_report(context, out, formats)
    out_dir = Path(out)
    return ReportResult(out_dir, md_path, pdf_path, tuple(sorted((out_dir / "figures").glob("*.png"))),
                        time.perf_counter() - t0, tuple(context["missing"]), tuple(context["runs"]))


__all__ = ["DEFAULT_MODELS", "ReportResult", "build_report", "collect_context", "render_report"]
