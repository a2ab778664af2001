"""Shared helpers for the benchmark scripts: machine info, a text table, JSON results."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def machine() -> dict[str, Any]:
    """Machine, device and library versions for the JSON results."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch
        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = f"cuda: {torch.cuda.get_device_name(0)}"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            info["device"] = "mps"
        else:
            info["device"] = f"cpu ({platform.processor() or platform.machine()})"
    except ImportError:  # pragma: no cover
        info["device"] = "cpu"
    for lib in ("sympy", "fvcore", "typst", "numpy"):
        try:
            from importlib.metadata import version
            info[lib] = version(lib)
        except Exception:
            pass
    return info


def table(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    if not rows:
        return f"{title}\n(no rows)"
    cols = list(rows[0].keys())
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    out = [title] if title else []
    out.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically, with machine info."""
    from analysis.files import write_atomic
    data = {"benchmark": name, "machine": machine(), **payload}
    return write_atomic(RESULTS / f"{name}.json", json.dumps(data, indent=2, default=str))
