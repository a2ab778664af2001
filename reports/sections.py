"""The analysis sections of the report: per-model counts, paddings and the kernel-4/5 models,
receptive fields and what changes them, verification.  Each returns plain data (DataFrames, sympy
expressions, numbers) for the templates; nothing here formats text.

>>> rows = kernel_models_section(("conv_transpose",), kernels=(4,), size=32)["table"]
>>> rows.loc[0, "block shapes as in the handout"]
'yes'
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import sympy as sp

from .labels import DEFAULT_POINT, label

HANDOUT_NF, HANDOUT_NC = 32, 24


def _shape_text(shape: Sequence[Any]) -> str:
    from .formulas import text
    return "[BS, " + ", ".join(text(s) if isinstance(s, sp.Basic) and not s.is_number else str(s)
                              for s in shape) + "]"


def _diagram_nodes(table: Any, strides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Diagram nodes from a count table: modules grouped by their top-level block."""
    nodes = []
    for row in table.rows:
        desc = row.type
        if row.type in ("Conv2d", "ConvTranspose2d", "SameConv2d"):
            desc = f"{'Conv2d' if row.type == 'SameConv2d' else row.type} k×k"
            if strides.get(row.path, 1) != 1:
                desc += f", stride {strides[row.path]}"
            if row.type == "SameConv2d":
                desc += ", 'same'"
        inputs = ["input" if i in ("x", "input") else i for i in row.inputs] or ["input"]
        nodes.append({"name": row.path, "label": desc, "shape": _shape_text(row.out_shape), "inputs": inputs,
                      "group": row.path.split(".")[0]})
    return nodes


def _strides(name: str) -> dict[str, Any]:
    import models
    out = {}
    for path, mod in models.build(name, num_filters=2, num_colours=2).named_modules():
        s = getattr(mod, "stride", None)
        if isinstance(s, tuple) and s and hasattr(mod, "weight"):
            out[path] = s[0]
    return out


def padding_description(name: str) -> str | None:
    """How the model's paddings follow from k (None for models without kernel-dependent strides)."""
    import models
    net = models.build(name, kernel=4, num_filters=2, num_colours=2) if _even_ok(name) else None
    if net is None:
        return None
    return ("any kernel size k builds: the stride-2 convs use the padding solver's halving padding "
            "⌈k/2⌉ − 1, the stride-2 transposed convs its doubling padding ⌈k/2⌉ − 1 with output padding 1 for "
            "odd k and 0 for even k, and the final stride-1 conv torch's padding='same': symmetric, (k − 1)/2, "
            "for odd k and asymmetric for even k ((k − 2)/2 rows and columns before, k/2 after)")


def _even_ok(name: str) -> bool:
    import models
    from analysis.errors import ArchcountError
    try:
        models.build(name, kernel=4, num_filters=2, num_colours=2)
        return True
    except ArchcountError:
        return False


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
    flows = {q: [sp.sympify(getattr(r, q)) for r in table.counted_rows()] for q in ("weights", "outputs", "connections")}
    return {
        "name": name, "label": label(name), "diagram": diagram.name,
        "assumptions": list(table.active_assumptions), "padding": padding_description(name),
        "layers": pd.DataFrame(layer_rows), "values": pd.DataFrame(value_rows),
        "presets": pd.DataFrame(preset_rows), "preset_values": pd.DataFrame(preset_values),
        "totals": {q: sp.sympify(table.total(q)) for q in ("weights", "outputs", "connections")},
        "flows": flows,
        "exact_outputs": sp.sympify(exact.total("outputs")),
        "exact_flow": [sp.sympify(r.outputs) for r in exact.counted_rows()],
        "at32": {q: int(at32.total(q)) for q in ("weights", "outputs", "connections")},
        "at64": {q: int(at64.total(q)) for q in ("weights", "outputs", "connections")},
        "ratios": {r.quantity: (r.ratio if r.constant else r.ratio_assuming) for r in scaling.rows},
        "unsupported": [f"{u.path} ({u.type}): {u.reason}" for u in table.unsupported],
        "table": table,
    }


def handout_counts(name: str, *, nic: int | None = None, table: Any = None) -> dict[str, Any]:
    """Exercise 4.3 (and the 2021 version): weights, outputs, connections as formulas in NIC, NF, NC
    (k kept, and at k=3) at 32×32 and 64×64, under the handout's convention and named variants,
    with the values at NF=32, NC=24 and the 64/32 ratios.  ``nic=1`` fixes the greyscale input."""
    import pandas as pd

    from analysis.counting import count
    from analysis.symbols import NC, NF, NIC, H, W, k

    from .formulas import humanize
    base = table if table is not None else count(name).simplified()
    fixed = {NIC: nic} if nic is not None else {}
    variants = [("handout: weighted layers only, no biases, no BatchNorm", base),
                ("BatchNorm counted: weighted[batchnorm=layer]", base.under("weighted", ["batchnorm=layer"])),
                ("all-layers: pooling and upsampling counted too", base.under("all-layers"))]
    rows, values = [], []
    point = {NIC: nic or 1, NF: HANDOUT_NF, NC: HANDOUT_NC, k: 3}
    for vname, t in variants:
        for q in ("weights", "outputs", "connections"):
            total = sp.sympify(t.total(q)).subs(fixed)
            flow = [sp.sympify(getattr(r, q)).subs(fixed) for r in t.counted_rows()]
            shown = humanize(total, flow=flow)
            v32 = int(total.subs({H: 32, W: 32, **point}))
            v64 = int(total.subs({H: 64, W: 64, **point}))
            rows.append({"convention": vname, "quantity": q, "formula (H×W)": shown,
                         "32×32": shown.subs({H: 32, W: 32}), "32×32, k=3": shown.subs({H: 32, W: 32, k: 3}),
                         "64×64": shown.subs({H: 64, W: 64}), "64×64, k=3": shown.subs({H: 64, W: 64, k: 3}),
                         "_total": total})
            values.append({"convention": vname.split(":")[0], "quantity": q, "32×32": v32, "64×64": v64,
                           "64×64 / 32×32": round(v64 / v32, 2) if v32 else None})
    return {"name": name, "label": label(name), "nic": nic, "rows": rows,
            "table": pd.DataFrame([{k_: v for k_, v in r.items() if not k_.startswith("_")} for r in rows]),
            "values": pd.DataFrame(values), "point": {"NIC": nic or 1, "NF": HANDOUT_NF, "NC": HANDOUT_NC, "k": 3}}


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
            for n in sizes:  # what the zoo uses for every k: padding='same'
                assert nn.Conv2d(1, 1, kv, padding="same")(torch.zeros(1, 1, n, n)).shape[-1] == n
                checked += 1
        before, after = (kv - 1) // 2, kv // 2
        rows.append({"k": kv,
                     "stride-2 conv halving: p": ", ".join(str(p) for p, _ in half.solutions) or "none",
                     "stride-2 transposed doubling: (p, op)": ", ".join(f"({p}, {op})" for p, op in dbl.solutions)
                     or "none",
                     "stride-1 conv keeping: p": ", ".join(str(p) for p, _ in keep.solutions) or "none (even k)",
                     "padding='same' (before, after)": f"({before}, {after})"})
    sym_half = solve_padding(k, stride=2).solutions[0]
    sym_dbl = solve_padding(k, stride=2, transposed=True).solutions[0]
    return {"table": pd.DataFrame(rows), "checked": checked, "sizes": list(sizes),
            "general": list(general_padding_formulas()),
            "half_p": sym_half[0], "dbl_p": sym_dbl[0], "dbl_op": sym_dbl[1],
            "k4": {"half": solve_padding(4, stride=2).solutions, "dbl": solve_padding(4, stride=2, transposed=True).solutions,
                   "keep": solve_padding(4, stride=1).solutions},
            "k5": {"half": solve_padding(5, stride=2).solutions, "dbl": solve_padding(5, stride=2, transposed=True).solutions,
                   "keep": solve_padding(5, stride=1).solutions}}


def _handout_shapes(name: str, h: int, w: int, nf: int, nc: int) -> dict[str, tuple[int, ...]]:
    """The block output shapes of the handout's figure (without the batch dimension)."""
    if name in ("conv_transpose", "unet", "pool_upsample"):
        return {"block1": (nf, h // 2, w // 2), "block2": (2 * nf, h // 4, w // 4), "block3": (nf, h // 2, w // 2),
                "block4": (nc, h, w), "final": (nc, h, w)}
    return {"block1": (nf, h // 2, w // 2), "block2": (2 * nf, h // 4, w // 4), "block3": (2 * nf, h // 4, w // 4),
            "block4": (nf, h // 2, w // 2), "block5": (nc, h, w), "final": (nc, h, w)}


def kernel_models_section(names: Sequence[str], kernels: Sequence[int] = (4, 5), size: int = 32,
                          verify_models: bool = False) -> dict[str, Any]:
    """Exercise 5.4 on real tensors: build each strided model with kernel 4 and 5, run a [2, 1, H, W]
    tensor through it and record every block's output shape against the handout's figure."""
    import pandas as pd
    import torch

    import models
    from analysis.errors import ArchcountError
    rows, details = [], []
    for name in names:
        for kv in kernels:
            try:
                net = models.build(name, kernel=kv, num_filters=HANDOUT_NF, num_colours=HANDOUT_NC)
            except ArchcountError as exc:
                rows.append({"model": label(name), "k": kv, "paddings": "does not build", "block shapes": exc.reason,
                             "block shapes as in the handout": "no", "receptive field": "—"})
                continue
            seen: dict[str, tuple[int, ...]] = {}
            want = _handout_shapes(name, size, size, HANDOUT_NF, HANDOUT_NC)
            hooks = [getattr(net, b).register_forward_hook(lambda m, i, o, b=b: seen.__setitem__(b, tuple(o.shape[1:])))
                     for b in want]
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                net.eval()(torch.zeros(2, 1, size, size))
            for hk in hooks:
                hk.remove()
            ok = all(seen.get(b) == s for b, s in want.items())
            down = net.block1[0]
            up = net.block3[0]
            fin = net.final
            pads = (f"down p={down.padding[0]}; up p={up.padding[0]}, op={up.output_padding[0]}; final "
                    f"{fin.padding!r} ({fin._reversed_padding_repeated_twice[0]} before, "
                    f"{fin._reversed_padding_repeated_twice[1]} after)")
            shapes = "; ".join(f"{b} [BS, {', '.join(map(str, s))}]" for b, s in seen.items())
            rf = _receptive_size(name, kv)
            rows.append({"model": label(name), "k": kv, "paddings": pads, "block shapes": shapes,
                         "block shapes as in the handout": "yes" if ok else "no", "receptive field": rf})
            details.append({"name": name, "k": kv, "ok": ok, "shapes": seen})
    verification = None
    if verify_models:
        from analysis.verify import verify
        with warnings.catch_warnings():  # torch: "padding='same' with even kernel lengths may require a copy"
            warnings.simplefilter("ignore", UserWarning)
            rep = verify(list(names), configs=[{"kernel": kv, "H": size, "W": size} for kv in kernels],
                         conventions=["weighted"], n_random=0)
        s = rep.summary()
        verification = {"configs": s["configs_checked"], "quantities": s["quantities_checked"],
                        "mismatches": s["mismatches"], "skipped": s["configs_skipped"]}
    return {"table": pd.DataFrame(rows), "details": details, "size": size, "kernels": list(kernels),
            "all_ok": all(d["ok"] for d in details) and len(details) == len(names) * len(kernels),
            "verification": verification}


_RF_MEMO: dict[tuple[str, int], Any] = {}


def symbolic_rf(name: str) -> Any:
    """The receptive field of a zoo model, symbolic in k (computed once per process and model)."""
    import models
    from analysis.receptive import receptive_field
    key = (name, id(models.spec(name).factory))
    if key not in _RF_MEMO:
        _RF_MEMO[key] = receptive_field(name)
    return _RF_MEMO[key]


def rf_size(name: str, kv: int) -> int:
    """The output receptive field of a zoo model at kernel ``kv``: the symbolic field evaluated when it is
    already known, else measured at that kernel (both exact)."""
    import models
    from analysis.receptive import receptive_field
    key = (name, id(models.spec(name).factory))
    if key in _RF_MEMO:
        return int(_RF_MEMO[key].evaluate(k=kv).size[0])
    nkey = (name, id(models.spec(name).factory), kv)
    if nkey not in _RF_MEMO:
        _RF_MEMO[nkey] = int(receptive_field(name, kernel=kv).size[0])
    return _RF_MEMO[nkey]


def _receptive_size(name: str, kv: int) -> Any:
    from analysis.errors import ArchcountError
    try:
        return rf_size(name, kv)
    except (ArchcountError, TypeError) as exc:  # pragma: no cover - reported in the table
        return f"not available ({getattr(exc, 'reason', exc)})"


def receptive_section(names: Sequence[str]) -> list[dict[str, Any]]:
    """Receptive field, jump and position dependence per layer (first spatial axis; kernels are square)."""
    import pandas as pd

    from analysis.receptive import receptive_field

    from .formulas import humanize, parity_cases

    out = []
    for name in names:
        rf = symbolic_rf(name)

        def first(t: Any, parity: str | None = rf.kernel_parity) -> Any:
            if t is None:
                return "—"
            e = sp.sympify(t[0])
            if parity:  # the model builds with one parity only: show that case, laid out (no other case)
                cases = dict(parity_cases(e))
                if f"k {parity}" in cases and not e.is_number:
                    return humanize(cases[f"k {parity}"])
                e = cases.get(None, e)
            return e

        at3 = rf.evaluate(k=3)
        rows = [{"layer": layer.path, "type": layer.type_name, "receptive field": first(layer.size),
                 "at k=3": first(l3.size), "jump": first(layer.jump),
                 "varies with position": "yes" if layer.varies else "no"}
                for layer, l3 in zip(rf.layers, at3.layers) if layer.op not in ("identity",)]
        out.append({"name": name, "label": label(name), "table": pd.DataFrame(rows),
                    "output": first(rf.size), "output_k3": first(at3.size), "varies": bool(rf.varies)})
    return out


def _stack(kernel: int, dilation: int, depth: int, pool: bool = False) -> Any:
    import torch.nn as nn
    layers: list[Any] = []
    for i in range(depth):
        layers.append(nn.Conv2d(1, 1, kernel, dilation=dilation, padding=dilation * (kernel // 2)))
        if pool and i < depth - 1:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def rf_factors_section() -> dict[str, Any]:
    """Exercise 3.3: what changes the receptive field, measured with :func:`analysis.receptive_field`
    on the zoo (kernel size, stride against pooling, depth) and on small conv stacks (dilation, depth)."""
    import pandas as pd

    from analysis.receptive import receptive_field

    def size(model: Any, **kw: Any) -> int:
        if isinstance(model, str):
            return rf_size(model, kw["kernel"])
        return int(receptive_field(model, **kw).size[0])

    rows = []
    for kv in (3, 5, 7):
        rows.append({"factor": "kernel size", "configuration": f"ConvTransposeNet, k={kv}",
                     "receptive field": size("conv_transpose", kernel=kv)})
    for kv in (3, 5, 7):
        rows.append({"factor": "kernel size", "configuration": f"PoolUpsampleNet, k={kv}",
                     "receptive field": size("pool_upsample", kernel=kv)})
    rows.append({"factor": "stride against pooling", "configuration": "ConvTransposeNet (stride-2 convs), k=3",
                 "receptive field": size("conv_transpose", kernel=3)})
    rows.append({"factor": "stride against pooling", "configuration": "PoolUpsampleNet (conv + 2×2 max-pool), k=3",
                 "receptive field": size("pool_upsample", kernel=3)})
    for d in (1, 2, 4):
        rows.append({"factor": "dilation", "configuration": f"three 3×3 convs, dilation {d}",
                     "receptive field": size(_stack(3, d, 3))})
    for depth in (1, 2, 3, 4):
        rows.append({"factor": "depth", "configuration": f"{depth} × (3×3 conv) stacked",
                     "receptive field": size(_stack(3, 1, depth))})
    rows.append({"factor": "depth", "configuration": "3 × (3×3 conv) with 2×2 max-pool between",
                 "receptive field": size(_stack(3, 1, 3, pool=True))})
    rows.append({"factor": "depth", "configuration": "PoolUpsampleNet, k=3 (5 convs)",
                 "receptive field": size("pool_upsample", kernel=3)})
    rows.append({"factor": "depth", "configuration": "CNN (2021), k=3 (6 convs: a middle block at H/4)",
                 "receptive field": size("cnn_2021", kernel=3)})
    df = pd.DataFrame(rows)
    return {"table": df, "rows": rows}


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
