"""A report on the user's own model: counts under the three presets, receptive fields, verification.

``archcount report --model path/to/file.py:NAME --input 3x224x224`` writes ``model_report.md`` and
``model_report.json`` into ``--out`` (each atomically).  The exercise report (training, §10) is
for the zoo models; this one is the same analysis for any model.

>>> import tempfile, torch.nn as nn
>>> out = tempfile.mkdtemp()
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
>>> path = model_report(net, "tiny", input_shape=(3, 16, 16), out=out)
>>> text = path.read_text()
>>> "## Counts: parameters" in text and "242" in text and "0 mismatches" in text
True
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

from analysis.errors import ArchcountError

PRESET_ORDER = ("weighted", "all-layers", "parameters")


def model_report(model: Any, label: str, *, input_shape: Any = None, out: str | Path = "out/report",
                 command: str = "", source: str = "") -> Path:
    """Write the report of one model (any ``nn.Module``, class or factory) and return the Markdown path."""
    import torch

    from analysis import count, receptive_field
    from analysis.files import write_atomic
    from analysis.symbols import H, W
    from analysis.verify import verify
    from models.user import build_user

    from .display import count_markdown, receptive_markdown
    from .formatting import json_text
    from .render import md_escape
    t0 = time.perf_counter()
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ArchcountError(f"{out_dir} is a file, not a folder", argument="--out")
    module = build_user(model, {}, label) if not isinstance(model, str) else model
    tables = {name: count(module, input_shape=input_shape, convention=name) for name in PRESET_ORDER}
    numeric = input_shape is not None and all(isinstance(v, int) for v in tuple(input_shape)[1:])
    symbolic = None
    if numeric and len(input_shape) == 3:
        try:
            symbolic = count(module, input_shape=(input_shape[0], H, W))
        except ArchcountError as exc:
            symbolic = exc
    try:
        rf = receptive_field(module, input_shape=input_shape)
    except ArchcountError as exc:
        rf = exc
    check = None
    if numeric and len(input_shape) == 3:
        check = verify(module, configs=[{"H": int(input_shape[1]), "W": int(input_shape[2])}], n_random=0,
                       progress=False)
    table = tables["weighted"]
    lines = [f"# archcount report: {md_escape(label)}", ""]
    prov = [("model", source or label), ("input", "x".join(str(v) for v in table.input_shape) or "-"),
            ("parameters (sum of numel)", f"{sum(p.numel() for p in module.parameters()):,}"),
            ("archcount", _version()), ("torch", torch.__version__), ("python", platform.python_version()),
            ("device", "cpu (counting runs on the meta device: nothing is trained)"),
            ("threads", str(torch.get_num_threads())), ("command", command or "-")]
    lines += ["| | |", "| --- | --- |"] + [f"| {k} | {md_escape(v)} |" for k, v in prov] + [""]
    if source:
        lines += [f"This report imported and ran `{md_escape(source)}`.", ""]
    if table.unsupported:
        lines += [f"**Partial:** {len(table.unsupported)} operation(s) have no counting rule; every total below "
                  f"misses their share.", ""]
        lines += ["| operation | type | reason |", "| --- | --- | --- |"]
        lines += [f"| {md_escape(u.path)} | {md_escape(u.type)} | {md_escape(u.reason)} |" for u in table.unsupported]
        lines.append("")
    for name, t in tables.items():
        lines += [f"## Counts: {name}", "", f"{md_escape(t.convention.describe())}.", "", count_markdown(t)]
    if symbolic is not None:
        lines += ["## In the input size", ""]
        if isinstance(symbolic, ArchcountError):
            lines += [f"No formula in H, W: {md_escape(symbolic.reason)}", ""]
        else:
            lines += [count_markdown(symbolic)]
    lines += ["## Receptive fields", ""]
    lines += [f"Not available: {md_escape(rf.reason)}", ""] if isinstance(rf, ArchcountError) else \
        [receptive_markdown(rf)]
    if check is not None:
        s = check.summary()
        lines += ["## Verification", "",
                  f"{s['quantities_checked']:,} quantities compared with measurements of the real model (parameter "
                  f"numel, forward hooks, fvcore, FlopCounterMode and structural counts): {s['mismatches']} "
                  f"mismatches, {s['configs_skipped']} configuration(s) skipped.", ""]
        lines += [f"- {md_escape(r.reason)}" for r in check.skipped]
    lines += ["", f"Wall time: {time.perf_counter() - t0:.1f} s."]
    md = "\n".join(lines).rstrip() + "\n"
    data = {"model": label, "source": source, "input_shape": list(map(str, table.input_shape)),
            "tables": {name: t.to_dict() for name, t in tables.items()},
            "receptive_field": None if isinstance(rf, ArchcountError) else rf.to_dict(),
            "verification": None if check is None else check.summary()}
    md_path = write_atomic(out_dir / "model_report.md", md)
    write_atomic(out_dir / "model_report.json", json_text(json.loads(json_text(data))))
    return md_path


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("archcount")
    except Exception:  # pragma: no cover - not installed
        return "0+unknown"


__all__ = ["model_report"]
