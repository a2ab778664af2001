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


def cpu_details() -> str:
    """Vendor, family, model and vector ISA from /proc/cpuinfo: ``lscpu`` says only "AMD EPYC" for
    both the Zen 3 and the Zen 5 machines, which differ 2-3x in speed."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "cpu family", "model", "flags") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    isa = next((f for f in ("avx512f", "avx2", "sse4_2") if f in flags), "no AVX")
    amx = " amx" if "amx_tile" in flags else ""
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    zen = ""
    if fields.get("vendor_id") == "AuthenticAMD" and family.isdigit() and model.isdigit():
        fam, mod = int(family), int(model)
        zen = {23: " (Zen 1/2)", 26: " (Zen 5)"}.get(fam, "")
        if fam == 25:  # Zen 3: models 0x00-0x0f, 0x20-0x5f; Zen 4: 0x10-0x1f, 0x60-0xaf
            zen = " (Zen 4)" if 0x10 <= mod <= 0x1f or 0x60 <= mod <= 0xaf else " (Zen 3)"
    return f"{fields.get('vendor_id', '?')} family {family} model {model}{zen}, {isa}{amx}"


def machine() -> dict[str, Any]:
    """Machine, device and library versions for the JSON results."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_details": cpu_details(),
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
