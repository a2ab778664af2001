"""``receptive_field()``: exact per-layer windows of a captured model, symbolic in k."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..rules import RULES, RuleRegistry
from ..symbols import H, W
from ..symbols import k as K_SYM
from .engine import FINITE_LIMIT, UNKNOWN, connected, finite, solve
from .plan import Step, plan
from .result import LayerRF, ReceptiveField
from .windows import DRIFT, GLOBAL

AXIS_NAMES = ("H", "W", "D")
#: with a symbolic kernel and a numeric input, global layers' extents are enumerated up to this kernel
SMALL_KERNELS = 15


def receptive_field(model: Any, *, input_size: Any = None, input_shape: Any = None,
                    symbols: Mapping[str, Any] | None = None, registry: RuleRegistry = RULES,
                    **hparams: Any) -> ReceptiveField:
    """Receptive field of every layer call of ``model``: largest/smallest window, jump, start; symbolic in k.

    ``model`` is a zoo name, a factory or an ``nn.Module``; hyperparameters not fixed in ``hparams``
    are lifted (only the kernel k matters here).  The input is ``input_shape=(C, H, W)`` or its
    spatial ``input_size``; a numeric one also gives ``visible`` (the largest window clipped to
    the image) and the exact extent read by global layers.  It defaults to the zoo model's fixed
    size, else the symbols ``(H, W)``.  Reused modules get a row per call; residual adds and
    concatenations take the union of their branches; bilinear upsampling, dilation, crops and
    padding are followed exactly; global pooling, attention and squeeze-and-excitation gates make
    a layer global (noted).

    >>> rf = receptive_field("pool_upsample")
    >>> rf.size[0]
    10*k + Mod(k, 4) - 7
    >>> [rf.evaluate(k=v).size[0] for v in (3, 5, 7)]
    [26, 44, 66]
    >>> g = receptive_field("mnist_global_pool", kernel=3, input_size=32)
    >>> g.last_spatial, g.spatial.size, g.size
    ('features.7', (12, 12), (32, 32))
    """
    from ..counting import _capture, _default_request, input_sizes, normalise_input_shape
    from ..capture import InputRequest
    spec = None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
    if input_shape is not None and input_size is not None:
        raise ArchcountError("give input_shape or input_size, not both", argument="input_shape")
    if input_shape is not None:
        req = InputRequest(normalise_input_shape(input_shape))
    else:
        if input_size is None:
            input_size = tuple(spec.fixed_size) if spec is not None and spec.fixed_size else (H, W)
        sizes = input_sizes(input_size, spec=spec, model=spec.name if spec else None)
        req = _default_request(model, hparams, sizes)
        req = InputRequest(req.shapes, req.dtypes, default_channels=1)  # windows do not depend on channels
    from ..counting import _lift_large_sizes
    capture_req, _ = _lift_large_sizes(req)  # huge inputs: record small, windows do not depend on the size
    graph = _capture(model, hparams, symbols, registry, capture_req)
    steps, n = plan(graph, registry)
    sizes = tuple(req.shapes[0][1:1 + n]) if req.shapes and len(req.shapes[0]) > n else ()
    symbolic = _uses_k(graph)
    parity = graph.kernel_parity if symbolic else None
    stats, notes_by_step, assumptions = solve(steps, n, symbolic, parity, graph.model)
    kval = _numeric_kernel(graph)
    numeric = bool(sizes) and all(isinstance(s, int) for s in sizes)
    bounded = numeric and max(sizes) <= FINITE_LIMIT
    fin = None
    if bounded and not symbolic:
        try:
            fin = finite(steps, sizes, kval)
        except (IndexError, ValueError, ArchcountError):  # pragma: no cover - sizes invalid for the model
            fin = None
    small_k = _small_kernel_coverage(steps, sizes, parity) if bounded and symbolic else None
    notes = []
    if numeric and not bounded:
        notes.append(f"input larger than {FINITE_LIMIT} positions: windows clipped to the image (visible) and "
                     f"the extent read by global layers are not enumerated")
    layers, output, last_spatial = _rows(graph, steps, stats, notes_by_step, sizes, fin, small_k, n, kval)
    if any(r.varies for r in layers):
        notes.append("window sizes vary with the output position where 'varies' is set: size is the largest, "
                     "min_size the smallest")
    if any(r.unknown for r in layers):
        notes.append("some layers follow an operation archcount cannot follow: their windows are unknown (see "
                     "their notes)")
    return ReceptiveField(graph.model, dict(graph.hparams), tuple(sizes), tuple(layers), output, last_spatial, parity,
                          tuple(assumptions), tuple(notes))


def _uses_k(graph: Any) -> bool:
    def walk(v: Any) -> bool:
        if isinstance(v, sp.Basic):
            return K_SYM in v.free_symbols
        if isinstance(v, (tuple, list)):
            return any(walk(x) for x in v)
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if hasattr(v, "__dataclass_fields__"):
            return any(walk(getattr(v, f)) for f in v.__dataclass_fields__)
        return False
    return any(walk(node.params) for node in graph.nodes)


def _numeric_kernel(graph: Any) -> int | None:
    kv = graph.hparams.get("kernel")
    return int(kv) if isinstance(kv, int) else None


def _small_kernel_coverage(steps: Sequence[Step], sizes: Sequence[int], parity: str | None) -> dict[str, dict]:
    out: dict[str, dict[int, tuple]] = {}
    for kv in range(1, SMALL_KERNELS + 1):
        if parity == "odd" and kv % 2 == 0 or parity == "even" and kv % 2:
            continue
        try:
            env = finite(steps, sizes, kv)
        except (IndexError, ValueError, ArchcountError):
            continue
        for name, v in env.items():
            if v[0] == "tensor" and all(isinstance(a, tuple) for a in v[1]):
                out.setdefault(name, {})[kv] = tuple(0 if a[1] is None else a[1][1] - a[1][0] + 1 for a in v[1])
    return out


def _rows(graph: Any, steps: Sequence[Step], stats: Mapping[str, Any], notes: Mapping[str, str],
          sizes: Sequence[Any], fin: Mapping[str, Any] | None, small_k: Mapping[str, Mapping[int, tuple]] | None,
          n: int, kval: int | None) -> tuple[list[LayerRF], str, str | None]:
    path_of = {st.name: st.path for st in steps}
    if not graph.outputs:
        raise ArchcountError("the forward returned no tensor", model=graph.model)
    rows: list[LayerRF] = []
    last_spatial = None
    full = tuple(sizes) if sizes else tuple(AXIS_NAMES[:n])
    for st in steps:
        if st.kind in ("input", "const") or st.name not in stats:
            continue
        value = stats[st.name]
        ins = tuple(path_of.get(i[0], i[0]) for i in st.inputs)
        if value[0] == UNKNOWN:
            exact = _from_finite(fin, st.name) if "numeric input size" in (value[1] or "") else None
            if exact is not None:
                rows.append(LayerRF(st.path, st.type_name, st.op, ins, exact, None, None, None, None, True,
                                    notes=(value[1], "size: the largest exact window at this input size"),
                                    visible=exact))
                if st.positional:
                    last_spatial = st.path
                continue
            rows.append(LayerRF(st.path, st.type_name, "unknown", ins, None, None, None, None, None,
                                notes=(value[1] or "unknown windows",), unknown=True))
            continue
        axes, positional = value
        row_notes = [notes[st.name]] if st.name in notes else []
        if all(a == GLOBAL for a in axes):
            cov = fin.get(st.name) if fin else None
            size: tuple = tuple(sizes) if sizes else (H, W)[:n]
            if cov is not None and cov[0] == "tensor" and all(isinstance(a, tuple) and a[1] is not None
                                                              for a in cov[1]):
                size = tuple(a[1][1] - a[1][0] + 1 for a in cov[1])
                for ax, a, whole in zip(AXIS_NAMES, cov[1], sizes):
                    if (a[1][0], a[1][1]) != (0, whole - 1):
                        row_notes.append(f"reads input positions {a[1][0]}..{a[1][1]} of 0..{whole - 1} along {ax}")
            elif small_k is not None and st.name in small_k:
                short = {kv: ext for kv, ext in small_k[st.name].items() if ext != tuple(sizes)}
                if short:
                    size = tuple(sp.Piecewise(*[(ext[i], sp.Eq(K_SYM, kv)) for kv, ext in sorted(short.items())],
                                              (sizes[i], True)) for i in range(len(sizes)))
                    row_notes.append(f"small kernels leave input rows unread (k = "
                                     f"{', '.join(map(str, sorted(short)))})")
                row_notes.append(f"extent read enumerated for k <= {SMALL_KERNELS}; larger kernels read the "
                                 f"whole input")
            else:
                row_notes.append("reads every position of its input: the whole image (global pooling, a layer "
                                 "over positions, attention or a gate computed from all positions)")
            rows.append(LayerRF(st.path, st.type_name, "global", ins, size, size, None, None, None, False, True,
                                False, None, tuple(row_notes)))
            continue
        if any(a == DRIFT for a in axes) or any(a == GLOBAL for a in axes):
            if any(a == DRIFT for a in axes):
                rows.append(LayerRF(st.path, st.type_name, st.op, ins, None, None, None, None, None, False, False,
                                    True, None, tuple(row_notes or ["follows a drifting merge: no size independent "
                                                                    "of the input size"])))
                continue
        vis = None
        if fin is not None and st.name in fin and fin[st.name][0] == "tensor":
            vis_axes = []
            for a in fin[st.name][1]:
                got = [w[1] - w[0] + 1 for w in a if w is not None] if isinstance(a, list) else \
                    ([a[1][1] - a[1][0] + 1] if a[1] is not None else [])
                vis_axes.append(max(got) if got else 0)
            vis = tuple(vis_axes)
        size_t = tuple((full[i] if a == GLOBAL else a["size"]) for i, a in enumerate(axes))
        min_t = tuple((full[i] if a == GLOBAL else a["min_size"]) for i, a in enumerate(axes))
        jump = tuple((None if a == GLOBAL else a["jump"]) for a in axes)
        start = tuple((None if a == GLOBAL else a["start"]) for a in axes)
        period = tuple((1 if a == GLOBAL else a["period"]) for a in axes)
        varies = any(a != GLOBAL and a["varies"] for a in axes)
        if any(a == GLOBAL for a in axes):
            row_notes.append("global along " + ", ".join(AXIS_NAMES[i] for i, a in enumerate(axes) if a == GLOBAL))
        empty = any(a != GLOBAL and a["size"] == 0 for a in axes)
        if empty:
            row_notes.append("no output unit reads any input")
        elif any(a != GLOBAL and a["min_size"] == 0 for a in axes):
            row_notes.append("some output units read no input (a transposed conv with kernel < stride)")
        conn = _connected(steps, n, kval, st, axes, graph)
        if conn is not None and conn != size_t:
            row_notes.append("dilation leaves gaps: " + ", ".join(f"{c} of {s} positions along {ax} connect"
                                                                  for c, s, ax in zip(conn, size_t, AXIS_NAMES)
                                                                  if c != s))
        rows.append(LayerRF(st.path, st.type_name, st.op, ins, size_t, min_t, jump, start, period, varies, False,
                            False, vis, tuple(row_notes), conn))
        if positional:
            last_spatial = st.path
    out_ref = graph.outputs[0]
    output = path_of.get(out_ref.node)
    if output is None or output not in [r.path for r in rows]:
        raise ArchcountError("the output is not a tensor that depends on the input", model=graph.model)
    return rows, output, last_spatial


def _from_finite(fin: Mapping[str, Any] | None, name: str) -> tuple[int, ...] | None:
    """The largest exact window of a layer at a numeric input size (from the bounded enumeration)."""
    if not fin or name not in fin or fin[name][0] != "tensor":
        return None
    out = []
    for a in fin[name][1]:
        if isinstance(a, tuple):
            return None
        got = [w[1] - w[0] + 1 for w in a if w is not None]
        out.append(max(got) if got else 0)
    return tuple(out)


def _gappy(steps: Sequence[Step]) -> bool:
    """Whether any step can leave gaps inside a window (dilation, a stride above the kernel)."""
    for st in steps:
        for aop in st.axes.values():
            if aop.kind in ("conv", "transposed", "crop") and (aop.d != 1 or aop.kind != "crop" and
                                                               _lt(aop.K, aop.s)) or aop.kind == "crop" and aop.s != 1:
                return True
    return False


def _lt(a: Any, b: Any) -> bool:
    try:
        return bool(sp.sympify(a) < sp.sympify(b))
    except TypeError:
        return True


def _connected(steps: Sequence[Step], n: int, kval: int | None, st: Step, axes: Sequence[Any],
               graph: Any) -> tuple[int, ...] | None:
    """Input positions the largest unit reads, per axis (numeric kernels; positional axes only)."""
    if _uses_k(graph) and kval is None:
        return None
    if any(a == GLOBAL or not isinstance(a, dict) for a in axes):
        return None
    if not _gappy(steps):
        return tuple(a["size"] for a in axes)
    # the unit of the largest window: search the phases of the period
    best = []
    for a in axes:
        best.append(a["period"])
    if max(best) > 64:
        return None
    result = [0] * n
    for phase in range(max(best)):
        got = connected(steps, n, kval or 0, st.name, [phase % p for p in best])
        if got is None:
            return None
        result = [max(r, g) for r, g in zip(result, got)]
    return tuple(result)


__all__ = ["AXIS_NAMES", "receptive_field"]
