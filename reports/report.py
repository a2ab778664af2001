"""The comparison report: counts, verified formulas, paddings, receptive fields, training results and
the exercise's questions answered from them.

:func:`collect_context` computes everything (sections in :mod:`reports.sections`, runs and evidence
in :mod:`reports.results`, answers in :mod:`reports.answers`); :func:`render_report` renders it
deterministically; :func:`build_report` does both into a temporary folder and replaces the report's
files together only when every one of them was written.

>>> from reports import build_report
>>> result = build_report("out/report", formats=("md",))   # doctest: +SKIP
>>> result.markdown.name                                    # doctest: +SKIP
'report.md'
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from analysis.errors import ArchcountError

from .labels import DEFAULT_POINT, LABELS, label  # noqa: F401 - re-exported
from .results import SWEEP_BATCH_SIZES, SWEEP_MODEL, collect_runs, trainable

DEFAULT_MODELS = ("pool_upsample", "conv_transpose", "unet")
#: The list of files of the last report written into a folder (removed files are only those listed).
MANIFEST = ".archcount-report.json"
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


def _formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    out = tuple(f.strip().lower() for f in formats)
    bad = [f for f in out if f not in ("md", "pdf")]
    if bad or not out:
        raise ArchcountError(f"formats must be md and/or pdf, got {', '.join(bad) or 'nothing'}", argument="--format")
    return out


def check_models(models: Any) -> list[str]:
    """The model names of ``--models`` (a comma list or a sequence of names), each a zoo model."""
    import models as zoo
    if isinstance(models, str):
        names = [m.strip() for m in models.split(",") if m.strip()]
    elif isinstance(models, (list, tuple)) and all(isinstance(m, str) for m in models):
        names = [m.strip() for m in models if m.strip()]
    else:
        raise ArchcountError(f"models must be a comma list or a list of names, got {models!r}", argument="--models")
    if not names:
        raise ArchcountError("needs at least one model", argument="--models")
    for n in names:
        zoo.spec(n)
    return names


def check_options(*, verify_configs: Any = 1, epochs: Any = 25) -> None:
    """Refuse bad numbers before anything is computed.

    >>> check_options(verify_configs=-1)
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: argument --verify-configs: must be an integer >= 0, got -1
    """
    for name, value, low in (("--verify-configs", verify_configs, 0), ("--epochs", epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ArchcountError(f"must be an integer >= {low}, got {value!r}", argument=name)
        if value > 10_000:
            raise ArchcountError(f"must be at most 10000, got {value!r}", argument=name)


def check_out_dir(out: str | os.PathLike[str], argument: str = "--out") -> Path:
    """The output folder, created if needed; a file, or a folder that cannot be written, is a clear error."""
    if out is None or (isinstance(out, str) and not out.strip()):
        raise ArchcountError("needs a folder name", argument=argument)
    if not isinstance(out, (str, os.PathLike)):
        raise ArchcountError(f"must be a folder path, got {type(out).__name__}", argument=argument)
    if "\x00" in os.fspath(out):
        raise ArchcountError(f"the path {os.fspath(out)!r} contains a NUL character", argument=argument)
    p = Path(out)
    for parent in [p, *p.parents]:
        try:
            is_file = parent.exists() and not parent.is_dir()
        except OSError as exc:
            raise ArchcountError(f"cannot use the folder {p}: {exc.strerror or exc}", argument=argument) from None
        if is_file:
            raise ArchcountError(f"{parent} is a file, not a folder", argument=argument,
                                 hint="give --out a folder (it is created if missing)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ArchcountError(f"cannot create the folder {p}: {getattr(exc, 'strerror', None) or exc}",
                             argument=argument) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".archcount-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ArchcountError(f"cannot write into {p}: {exc.strerror or exc}", argument=argument,
                             hint="choose a folder you can write to") from None
    return p


# --------------------------------------------------------------------------- provenance

def provenance(*, device: str, sources: Sequence[str], palettes: Sequence[str], command: str | None,
               threads: str | None = None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version
    libs = {}
    for lib in ("archcount", "torch", "sympy", "fvcore", "typst", "pandas", "matplotlib", "jinja2", "numpy"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = "not installed"
    if threads is None:
        import torch
        threads = f"{torch.get_num_threads()} torch threads for the analysis"
    return {"date": _dt.date.today().isoformat(), "archcount": libs["archcount"],
            "versions": ", ".join(f"{k} {v}" for k, v in libs.items() if k != "archcount"),
            "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "threads": threads, "sources": list(sources), "palettes": list(palettes),
            "command": command or " ".join(["archcount"] + sys.argv[1:]), "wall_time": None}


def _frames(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """DataFrames the templates show as tables."""
    import pandas as pd
    prov = ctx["provenance"]
    comparison = pd.DataFrame([{"model": m["label"], "weights": m["at32"]["weights"],
                                "outputs 32×32": m["at32"]["outputs"], "outputs 64×64": m["at64"]["outputs"],
                                "connections 32×32": m["at32"]["connections"],
                                "connections 64×64": m["at64"]["connections"]} for m in ctx["models"]])
    provenance_df = pd.DataFrame([
        {"item": "archcount", "value": prov["archcount"]}, {"item": "date", "value": prov["date"]},
        {"item": "device", "value": prov["device"]}, {"item": "threads", "value": prov["threads"]},
        {"item": "data source", "value": "; ".join(prov["sources"]) or "none (analysis only)"},
        {"item": "palette", "value": "; ".join(prov["palettes"]) or "none (analysis only)"},
        {"item": "libraries", "value": prov["versions"]},
        {"item": "Python", "value": f"{prov['python']} on {prov['platform']}"},
        {"item": "command", "value": prov["command"]}, {"item": "wall time", "value": prov["wall_time"]}])
    conventions = pd.DataFrame([{"convention": c["name"], "what counts": c["description"]}
                                for c in ctx["conventions"]])
    return {"comparison_df": comparison, "provenance_df": provenance_df, "conventions_df": conventions}


# --------------------------------------------------------------------------- context

def collect_context(out: str | Path = "out/report", *, models: Sequence[str] | str = DEFAULT_MODELS,
                    runs: str | Path | None = None, train: bool = False, epochs: int = 25, data: Any = None,
                    sweep: bool = False, palette: str | None = None, device: str = "auto", verify_configs: int = 1,
                    tools: Sequence[str] | None = None, quiet: bool = True,
                    provenance_overrides: Mapping[str, Any] | None = None, command: str | None = None,
                    fig_dir: str | Path | None = None) -> dict[str, Any]:
    """Compute everything the report shows (figures are written to ``fig_dir``, default ``out/figures``)."""
    from analysis.conventions import PRESETS
    from models.training import select_device

    from . import answers, plots, sections as S
    from .background import background
    from .results import training_section
    t0 = time.perf_counter()
    check_options(verify_configs=verify_configs, epochs=epochs)
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")  # torch: harmless here
    names = check_models(models)
    if runs is not None and Path(runs).exists() and not Path(runs).is_dir():
        raise ArchcountError(f"{runs} is a file, not a folder of runs", argument="--runs")
    fig_dir = Path(fig_dir) if fig_dir is not None else Path(out) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    strided = [n for n in names if S.padding_description(n)] or ["conv_transpose", "unet"]

    def independent() -> tuple[Any, ...]:  # the sections that need nothing else: beside the rest (two cores)
        return (S.padding_section(), S.kernel_models_section(strided, verify_models=True),
                S.receptive_section(names), S.rf_factors_section(),
                S.verification_section(names, verify_configs, tools))

    with background(independent) as job:  # everything up to job.result() runs beside it
        model_sections = [S.model_section(n, fig_dir) for n in names]
        by_name = {s["name"]: s for s in model_sections}
        counts = {n: S.handout_counts(n, nic=1 if n.endswith("_2021") else None, table=by_name[n]["table"])
                  for n in ("pool_upsample", "cnn_2021") if n in names}
        scaling_fig = plots.scaling_bars([{"label": s["label"], **{f"{q}_32": s["at32"][q] for q in s["at32"]},
                                           **{f"{q}_64": s["at64"][q] for q in s["at64"]}} for s in model_sections],
                                         fig_dir / "scaling.png").name
        if train:  # the thread choice of the training must see both cores free
            job.result()
        main, sweep_runs = collect_runs(names, runs_dir=Path(runs) if runs else None, train=train, epochs=epochs,
                                        data=data, sweep=sweep, palette=palette, device=device, quiet=quiet)
        training = (training_section(main, sweep_runs, model_sections, fig_dir, data=data) if main or sweep_runs
                    else None)
        padding, kernels, rf, rf_factors, verification = job.result()
    split = ("; padding, kernels, receptive fields and verification computed beside the rest in a forked process "
             "with 1 torch thread") if job.from_child else ""
    missing = []
    if training is None:
        missing.append("training results: no finished runs were found. Train with `archcount report --train "
                       "--runs runs` (or `make report`), or point `--runs` at a folder of finished runs. The data "
                       "come from `--data PATH`, `$ARCHCOUNT_DATA`, the cache, `../shared/data/cifar10-jpeg.zip`, "
                       "or the official CIFAR-10 download.")
    else:
        missing.extend(f"training run of {label(n)}" for n in names if trainable(n) and n not in main)
        if sweep and not training["has_sweep"]:
            missing.append(f"batch-size sweep of {label(SWEEP_MODEL)}")
        missing.extend(f"evidence of run {rid}: {why}" for rid, why in training["evidence_failed"].items())
    dev = select_device(device)
    prov = provenance(device=(", ".join(training["devices"]) if training else f"{dev.type} (analysis only)"),
                      sources=training["sources"] if training else [], palettes=training["palettes"] if training else [],
                      command=command)
    prov["threads"] += split
    prov["jpeg_note"] = JPEG_NOTE if training and training["jpeg"] else ""
    qa = answers.all_answers(names=names, sections=model_sections, counts=counts, padding=padding, kernels=kernels,
                             rf_factors=rf_factors, rf=rf, training=training, epochs=epochs,
                             batch_sizes=SWEEP_BATCH_SIZES)
    prov["wall_time"] = f"{time.perf_counter() - t0:.1f} s (analysis" + (" and reading runs)" if training else ")")
    if provenance_overrides:
        prov.update(provenance_overrides)
    context = {
        "title": "archcount report: " + ", ".join(label(n) for n in names),
        "models": model_sections, "padding": padding, "kernels": kernels, "rf": rf, "rf_factors": rf_factors,
        "verification": verification, "training": training, "counts": counts, "answers": qa,
        "versions": answers.exercise_versions(names), "missing": missing, "provenance": prov,
        "conventions": [{"name": n, "description": c.describe()} for n, c in PRESETS.items()],
        "scaling_fig": scaling_fig, "point": DEFAULT_POINT, "sweep_model": label(SWEEP_MODEL),
        "runs": [str(Path(r.run_dir).name) for r in list(main.values()) + list(sweep_runs)],
    }
    context.update(_frames(context))
    return context


def render_report(context: Mapping[str, Any], out: str | Path, formats: Iterable[str] | str = ("md", "pdf")
                  ) -> tuple[Path | None, Path | None]:
    """Render a context from :func:`collect_context` into ``out``: deterministic (same context, same bytes)."""
    from reports.render import render_markdown, render_pdf
    fmts = _formats(formats)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = render_markdown("report.md.j2", context, out_dir / "report.md") if "md" in fmts else None
    pdf_path = render_pdf("report.typ.j2", context, out_dir / "report.pdf", root=out_dir) if "pdf" in fmts else None
    return md_path, pdf_path


# --------------------------------------------------------------------------- the output set

def _read_manifest(out_dir: Path) -> list[str]:
    try:
        files = json.loads((out_dir / MANIFEST).read_text()).get("files", [])
        return [f for f in files if isinstance(f, str) and not Path(f).is_absolute() and ".." not in Path(f).parts]
    except (OSError, ValueError, AttributeError):
        return []


def _replace_set(stage: Path, out_dir: Path) -> list[str]:
    """Move every staged file into ``out_dir`` (figures first, the report files last, back to back), then
    remove the files of the previous report (from its manifest) that the new one does not have."""
    from analysis.files import write_atomic
    new = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    old = _read_manifest(out_dir)
    order = sorted(new, key=lambda f: (not f.startswith("figures/"), f))
    for rel in order:
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, dst)
    for rel in set(old) - set(new):
        try:
            (out_dir / rel).unlink()
        except OSError:
            pass
    write_atomic(out_dir / MANIFEST, json.dumps({"files": new}, indent=1))
    return new


def build_report(out: str | Path = "out/report", *, formats: Iterable[str] | str = ("md", "pdf"),
                 **options: Any) -> ReportResult:
    """Build the report into ``out`` (``report.md``, ``report.pdf``, ``figures/``).

    Everything is built in a temporary folder inside ``out`` first; only when every output was
    written are they moved into place together (an interrupted build, or a Typst failure, leaves
    the previous report as it was).  Options are those of :func:`collect_context`: ``models``,
    ``runs``, ``train``, ``epochs``, ``data``, ``sweep``, ``palette``, ``device``, ``verify_configs``,
    ``tools``, ``quiet``, ``provenance_overrides``, ``command``.  Without runs the report is
    analysis-only and says what is missing and how to get it.
    """
    t0 = time.perf_counter()
    fmts = _formats(formats)
    check_options(verify_configs=options.get("verify_configs", 1), epochs=options.get("epochs", 25))
    check_models(options.get("models", DEFAULT_MODELS))
    from models.training import select_device
    select_device(options.get("device", "auto"))
    runs = options.get("runs")
    if runs is not None and Path(runs).exists() and not Path(runs).is_dir():
        raise ArchcountError(f"{runs} is a file, not a folder of runs", argument="--runs")
    out_dir = check_out_dir(out)
    for old in out_dir.glob(".archcount-report-*"):  # left by a build that was killed
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=".archcount-report-", dir=out_dir))
    try:
        context = collect_context(stage, fig_dir=stage / "figures", **options)
        md_path, pdf_path = render_report(context, stage, fmts)
        files = _replace_set(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ReportResult(out_dir, out_dir / "report.md" if md_path else None, out_dir / "report.pdf" if pdf_path else None,
                        tuple(sorted(out_dir / f for f in files if f.startswith("figures/"))),
                        time.perf_counter() - t0, tuple(context["missing"]), tuple(context["runs"]))


__all__ = ["DEFAULT_MODELS", "MANIFEST", "ReportResult", "build_report", "check_models", "check_options",
           "check_out_dir",
           "collect_context", "render_report"]
