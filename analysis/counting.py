"""``count()``: exact per-layer formulas of a real model.

>>> from analysis import count, NIC, NF, NC, k, H, W
>>> t = count("pool_upsample")
>>> t.total("weights")
NC**2*k**2 + NC*NF*k**2 + 4*NF**2*k**2 + NF*NIC*k**2
>>> count("unet", kernel=3, input_size=(32, 32)).evaluate(NIC=1, NF=32, NC=24).total("outputs")
69632
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from .capture import BATCH, CapturedGraph, InputRequest, capture
from .conventions import Convention, get_convention
from .errors import ArchcountError
from .graph import OpNode, TensorRef, resolve_sizes
from .rules import RULES, LayerCounts, LayerSpec, RuleRegistry
from .simplify import simplify_parity
from .symbols import H, W, k
from .table import CountTable, LayerRow, Unsupported, convention_values

#: Largest input size (per axis) or channel count accepted: torch's sizes are int64.
from .bounds import MAX_INT as MAX_SIZE  # noqa: E402
#: Numeric input sizes above this are counted in closed form: the forward is recorded at small
#: sizes with the sizes symbolic, and the formulas are evaluated at the numbers given.
CAPTURE_LIMIT = 2048


# --------------------------------------------------------------------------- capture cache

def _cache_key(model: Any, hparams: Mapping[str, Any], symbols: Mapping[str, Any] | None,
               req: InputRequest) -> Any:
    if isinstance(model, str):
        import models as zoo
        ident: Any = ("zoo", model, id(zoo.spec(model).factory))
    elif callable(model) and not hasattr(model, "parameters"):
        ident = ("factory", id(model))
    else:
        return None
    try:
        key = (ident, tuple(sorted(hparams.items())), tuple(sorted((symbols or {}).items(), key=str)), req)
        hash(key)
        return key
    except TypeError:
        return None


@functools.lru_cache(maxsize=64)
def _cached_capture(key: Any, model: Any, hparams: tuple, symbols: tuple, req: InputRequest) -> CapturedGraph:
    return capture(model, hparams=dict(hparams), symbols=dict(symbols), inputs=req)


def _capture(model: Any, hparams: Mapping[str, Any], symbols: Mapping[str, Any] | None,
             registry: RuleRegistry, req: InputRequest | None = None) -> CapturedGraph:
    req = req or _default_request(model, hparams, (H, W))
    key = _cache_key(model, hparams, symbols, req) if registry is RULES else None
    if key is None:
        return capture(model, hparams=hparams, symbols=symbols, registry=registry, inputs=req)
    return _cached_capture(key, model, tuple(sorted(hparams.items())),
                           tuple(sorted((symbols or {}).items(), key=str)), req)


# --------------------------------------------------------------------------- input description

def input_sizes(input_size: Any, ndim: int = 2, *, spec: Any = None, model: str | None = None) -> tuple[Any, ...]:
    """Normalise an input size: one size for every spatial axis, or one per axis (ints or sympy).

    With a zoo ``spec``, numeric sizes must satisfy the model's input rule.

    >>> input_sizes(32)
    (32, 32)
    """
    if isinstance(input_size, (int, sp.Basic)) and not isinstance(input_size, bool):
        input_size = (input_size,) * ndim
    try:
        sizes = tuple(input_size)
    except TypeError:
        raise ArchcountError(f"expected (H, W) or one size, got {input_size!r}", argument="input_size") from None
    out = []
    for axis, s in zip("HWD", sizes):
        out.append(_size(s, "input_size", axis))
        if isinstance(out[-1], int) and spec is not None and not spec.valid_size(out[-1]):
            raise ArchcountError(f"input {axis}={out[-1]} is not valid for this model's depth; {axis} must be "
                                 f"{spec.size_rule()}", model=model, argument="input_size")
    return tuple(out)


def _size(s: Any, argument: str, axis: str = "") -> Any:
    if isinstance(s, bool) or not isinstance(s, (int, sp.Basic)):
        try:
            import numpy as np
            if isinstance(s, np.integer):
                s = int(s)
        except ImportError:  # pragma: no cover
            pass
    if isinstance(s, bool) or not isinstance(s, (int, sp.Basic)):
        raise ArchcountError(f"sizes must be integers or sympy expressions, got {s!r}", argument=argument)
    if isinstance(s, int) or s.is_number:
        if not sp.sympify(s).is_Integer:
            raise ArchcountError(f"sizes must be integers, got {s}", argument=argument)
        s = int(s)
        if s < 1:
            raise ArchcountError(f"sizes must be >= 1, got {s}" + (f" for {axis}" if axis else ""), argument=argument)
        if s > MAX_SIZE:
            raise ArchcountError(f"must be at most 10^18, got {s}; give a symbol (H, W) for formulas in the size",
                                 argument=argument)
    return s


def normalise_input_shape(input_shape: Any, model: str | None = None) -> tuple[tuple[Any, ...], ...]:
    """One shape ``(C, H, W)`` or several ``[(3, H, W), (10,)]`` (per sample, batch excluded).

    >>> normalise_input_shape((3, 224, 224))
    ((3, 224, 224),)
    >>> normalise_input_shape("3x32x32")
    ((3, 32, 32),)
    """
    if isinstance(input_shape, str):
        from .layertext import parse_shape
        input_shape = parse_shape(input_shape)
    if isinstance(input_shape, (int, sp.Basic)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        items = list(input_shape)
    except TypeError:
        raise ArchcountError(f"expected a shape like (3, 224, 224), got {input_shape!r}", argument="input_shape",
                             model=model) from None
    if not items:
        raise ArchcountError("the input shape is empty", argument="input_shape", model=model)
    if all(isinstance(x, (tuple, list)) or hasattr(x, "__len__") and not isinstance(x, (str, sp.Basic))
           for x in items):
        shapes = [tuple(x) for x in items]
    else:
        shapes = [tuple(items)]
    out = []
    for shape in shapes:
        if not shape:
            raise ArchcountError("an input shape is empty", argument="input_shape", model=model)
        dims = [None if (i == 0 and s is None) else _size(s, "input_shape") for i, s in enumerate(shape)]
        out.append(tuple(dims))
    return tuple(out)


def _default_request(model: Any, hparams: Mapping[str, Any], sizes: Sequence[Any]) -> InputRequest:
    from .symbols import NIC
    channels: Any = None
    if isinstance(model, str):
        import models as zoo
        defaults = zoo.spec(model).defaults
    elif callable(model) and not hasattr(model, "parameters"):
        from .capture import _signature_defaults
        defaults = _signature_defaults(model)
    else:
        defaults = {}
    if "num_in_channels" in defaults:
        channels = hparams.get("num_in_channels", NIC)
    return InputRequest(((channels, *sizes),))


# --------------------------------------------------------------------------- count

def count(model: Any, *, convention: str | Convention = "weighted", input_size: Any = None,
          input_shape: Any = None, switches: Any = None, symbols: Mapping[str, Any] | None = None,
          strict: bool = False, registry: RuleRegistry = RULES, input_dtype: str | Sequence[str] | None = None,
          **hparams: Any) -> CountTable:
    """Exact weights, outputs and connections of every layer (every call) of ``model``.

    ``model`` is a zoo name, a factory taking the zoo hyperparameters (``kernel``,
    ``num_in_channels``, ``num_filters``, ``num_colours``), or a concrete ``nn.Module``.
    Hyperparameters not fixed in ``hparams`` become the symbols k, NIC, NF, NC;
    ``symbols={"N": sympy.Symbol("N", positive=True, integer=True)}`` lifts others.

    The input is ``input_shape=(C, H, W)`` (per sample; numbers or symbols), or several shapes
    for a model with several inputs; or only its spatial ``input_size=(H, W)``, the channels then
    coming from ``num_in_channels`` or the first layer.  The default is ``(H, W)`` symbolic.

    Every operation of the forward is counted or listed in ``table.unsupported`` with its reason
    (``strict=True`` raises instead); a module called twice gives two rows, its parameters counted once.

    >>> from analysis import count, H, W
    >>> count("conv_transpose", kernel=3).simplified(4).row("block1.0").out_shape
    (NF, H/2, W/2)
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    >>> count(net, input_shape=(3, 32, 32), convention="parameters").total("weights")
    242
    """
    if input_size is not None and input_shape is not None:
        raise ArchcountError("give input_shape or input_size, not both", argument="input_shape")
    name = model if isinstance(model, str) else None
    spec = None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
    if input_shape is not None:
        shapes = normalise_input_shape(input_shape, name)
        if spec is not None:
            for s in shapes[0][1:]:
                if isinstance(s, int) and not spec.valid_size(s):
                    raise ArchcountError(f"input size {s} is not valid for this model's depth; it must be "
                                         f"{spec.size_rule()}", model=name, argument="input_shape")
        req = InputRequest(shapes, _dtypes(input_dtype, len(shapes)))
    else:
        sizes = input_sizes(input_size if input_size is not None else (H, W), spec=spec, model=name)
        req = _default_request(model, hparams, sizes)
        if input_dtype is not None:
            req = InputRequest(req.shapes, _dtypes(input_dtype, 1))
    req, values = _lift_large_sizes(req)
    graph = _capture(model, hparams, symbols, registry, req)
    conv = get_convention(convention, switches)
    table = propagate(graph, conv, strict=strict, registry=registry,
                      size_multiple=spec.size_multiple if spec is not None else 1,
                      min_size=spec.min_size if spec is not None else 1)
    return table.evaluate(**values) if values else table


def _lift_large_sizes(req: InputRequest) -> tuple[InputRequest, dict[str, int]]:
    """Huge numeric spatial sizes become symbols for the recording (evaluated afterwards)."""
    from .symbols import positive_int_symbol
    values: dict[str, int] = {}
    shapes = []
    for i, shape in enumerate(req.shapes):
        dims = list(shape)
        for j, v in enumerate(dims[1:], start=1):
            if isinstance(v, int) and v > CAPTURE_LIMIT:
                name = "HWD"[j - 1] if len(req.shapes) == 1 and j <= 3 and not _has_symbol(req, "HWD"[j - 1]) \
                    else f"S{i}_{j}"
                dims[j] = positive_int_symbol(name) if name not in ("H", "W") else (H if name == "H" else W)
                values[name] = v
        shapes.append(tuple(dims))
    if not values:
        return req, {}
    return InputRequest(tuple(shapes), req.dtypes, req.default_channels), values


def _has_symbol(req: InputRequest, name: str) -> bool:
    return any(isinstance(v, sp.Basic) and any(str(s) == name for s in v.free_symbols)
               for shape in req.shapes for v in shape)


def _dtypes(value: Any, n: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) * n
    out = tuple(str(v) for v in value)
    if len(out) != n:
        raise ArchcountError(f"{len(out)} dtypes for {n} inputs", argument="input_dtype")
    return out


# --------------------------------------------------------------------------- propagation

def _constraint_text(constraints: list[tuple[str, Any, Any]], size_multiple: int,
                     symbols: Mapping[str, sp.Symbol]) -> list[str]:
    """Discharge shape constraints under the model's input rule (H, W multiples of m) where possible."""
    from .simplify import simplify_multiple
    out: list[str] = []
    needed = 1
    for path, a, b in constraints:
        diff = sp.sympify(a) - sp.sympify(b)
        for m in sorted({size_multiple, 2, 4, 8, 16, 32}):
            if m >= size_multiple and simplify_multiple(diff, {"H": m, "W": m}, symbols) == 0:
                needed = max(needed, m)
                break
        else:
            out.append(f"{path}: needs {sp.sstr(a)} = {sp.sstr(b)}, which holds only for some input sizes")
    if needed > 1:
        rule = "the model's input rule" if needed == size_multiple else "needed by the skip/flatten shapes"
        out.insert(0, f"H, W multiples of {needed} ({rule})")
    return out


def _num(x: Any) -> Any:
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return x


def _per_sample(value: Any) -> Any:
    if value is None:
        return None
    v = sp.sympify(value) / BATCH
    if v.has(BATCH):
        v = sp.cancel(v)
    return _num(sp.expand(v)) if not v.has(BATCH) else _num(v)


def _display(shape: Sequence[Any]) -> tuple[Any, ...]:
    """A shape as rows show it: per sample when the batch is its first dimension."""
    shape = tuple(shape)
    if shape and sp.sympify(shape[0]) == BATCH:
        return shape[1:]
    return shape


def apply_counts(spec: LayerSpec, rule: Any, full_shape: bool, in_full: Sequence[Sequence[Any]],
                 kinds: Sequence[str]) -> tuple[LayerCounts, list[tuple[Any, ...]]]:
    """Run a rule on whole input shapes; return per-sample counts and the whole output shapes."""
    if full_shape:
        c = rule(spec, [tuple(s) for s in in_full])
        outs = [tuple(s) for s in (c.out_shapes or (c.out_shape,))]
        counts = replace(c, out_shape=_display(outs[0]), out_shapes=tuple(_display(s) for s in outs),
                         outputs=_per_sample(c.outputs),
                         connections={key: _per_sample(v) for key, v in c.connections.items()},
                         products=_per_sample(c.products))
        return counts, outs
    acts = [tuple(s) for s, kd in zip(in_full, kinds) if kd == "activation"] or [tuple(s) for s in in_full]
    lead = acts[0][0] if acts and acts[0] else BATCH
    c = rule(spec, [s[1:] for s in acts])
    m = sp.sympify(lead) / BATCH

    def mul(v: Any) -> Any:
        return None if v is None else _num(sp.expand(m * v))

    per = [tuple(s) for s in (c.out_shapes or (c.out_shape,))]
    outs = [(lead, *s) for s in per]
    if m != 1:
        c = replace(c, outputs=mul(c.outputs), connections={key: mul(v) for key, v in c.connections.items()},
                    products=mul(c.products))
    return replace(c, out_shape=_display(outs[0]), out_shapes=tuple(_display(s) for s in outs)), outs


class _Env:
    """Shapes of every recorded tensor, whole (batch included), as expressions."""

    def __init__(self) -> None:
        self.shapes: dict[tuple[str, int], tuple[Any, ...] | None] = {}

    def get(self, ref: TensorRef) -> tuple[Any, ...] | None:
        return self.shapes.get((ref.node, ref.index))

    def shape_of(self, node: str, index: int) -> tuple[Any, ...]:
        shape = self.shapes.get((node, index))
        if shape is None:
            raise KeyError((node, index))
        return shape


def _capture_subs(graph: CapturedGraph) -> list[dict[sp.Symbol, int]]:
    """Per capture: the value of every symbol (batch, sizes, lifted hyperparameters) when recorded."""
    out = []
    lifted = {}
    for key, sym in graph.hparams.items():
        if isinstance(sym, sp.Symbol):
            lifted[sym] = None
    for cap in graph.captures:
        subs: dict[sp.Symbol, int] = {BATCH: int(cap["batch"])}
        for key, value in graph.hparams.items():
            if isinstance(value, sp.Symbol):
                subs[value] = int(cap["hparams"][key])
        subs.update({sym: int(v) for sym, v in cap.get("sizes", {}).items()})
        out.append(subs)
    return out


def _value_at(expr: Any, subs: Mapping[sp.Symbol, int]) -> int | None:
    try:
        v = sp.sympify(sp.sympify(expr).xreplace(subs))
        if not v.is_number:
            return None
        v = sp.nsimplify(v)
        return int(v) if v.is_Integer else None
    except (TypeError, ValueError):  # pragma: no cover
        return None


def _fallback_shapes(node: OpNode, in_shapes: Sequence[Any], graph: CapturedGraph,
                     subs_list: Sequence[Mapping[sp.Symbol, int]]) -> list[tuple[Any, ...]] | None:
    """Output shapes of an op without a rule, read off the recordings: a dimension equal to an input's
    at every recorded size takes that input's formula, the batch B, or a constant."""
    recorded = [cap["shapes"].get(node.name) for cap in graph.captures]
    if any(r is None for r in recorded):
        return None
    outs = []
    for i in range(len(recorded[0])):
        dims = []
        rank = len(recorded[0][i])
        for a in range(rank):
            vals = [r[i][a] for r in recorded]
            found = None
            same_axis = [s[a] for s in in_shapes if s is not None and len(s) == rank]
            candidates = same_axis + [BATCH] + [d for s in in_shapes if s is not None for d in s]
            for cand in candidates:
                if all(_value_at(cand, subs) == v for subs, v in zip(subs_list, vals)):
                    found = cand
                    break
            if found is None:
                if len(set(vals)) == 1 and (len(graph.captures) > 1 or not graph.inputs
                                            or not _symbolic_inputs(graph)):
                    found = vals[0]
                else:
                    return None
            dims.append(found)
        outs.append(tuple(dims))
    return outs


def _symbolic_inputs(graph: CapturedGraph) -> bool:
    return any(isinstance(d, sp.Basic) and not d.is_number for s in graph.inputs for d in s.shape[1:])


def propagate(graph: CapturedGraph, conv: Convention, *, strict: bool = False, registry: RuleRegistry = RULES,
              size_multiple: int = 1, min_size: int = 1) -> CountTable:
    """Apply the rules along the recorded forward; see :func:`count`."""
    env = _Env()
    kinds: dict[str, str] = {}
    paths: dict[str, str] = {}
    nodes_by: dict[str, OpNode] = {n.name: n for n in graph.nodes}
    rows: dict[int, LayerRow] = {}
    unsupported: list[Unsupported] = []
    assumptions: list[str] = list(graph.assumptions) + [n for n in graph.notes if n]
    constraints: list[tuple[str, Any, Any]] = []
    subs_list = _capture_subs(graph)
    parity = graph.kernel_parity if k in _free(graph.hparams.values()) else None
    counted: dict[str, str] = {}          # parameter name -> the row that counts it
    claimed_by: dict[str, str] = {}
    inputs = iter(graph.inputs)

    def tidy(x: Any) -> Any:
        if parity and isinstance(x, sp.Basic) and k in x.free_symbols:
            x = simplify_parity(x, parity)
        return _num(x)

    for idx, node in enumerate(graph.nodes):
        paths[node.name] = node.path
        if node.kind == "input":
            spec_in = next(inputs)
            env.shapes[(node.name, 0)] = tuple(spec_in.shape)
            kinds[node.name] = "activation"
            continue
        if node.kind in ("param", "buffer", "const"):
            env.shapes[(node.name, 0)] = tuple(node.params["shape"])
            kinds[node.name] = node.kind
            continue
        kinds[node.name] = "activation"
        in_full = [env.get(r) for r in node.inputs]
        in_kinds = tuple(kinds.get(r.node, "activation") for r in node.inputs)
        found = registry.resolve(node.mro_keys)
        reason = None
        if found is None:
            reason = _no_rule_reason(node)
        elif any(s is None for s in in_full):
            missing = sorted({paths.get(r.node, r.node) for r, s in zip(node.inputs, in_full) if s is None})
            reason = f"its input comes from unsupported {', '.join(missing)}"
        if reason is not None:
            if strict:
                raise ArchcountError(reason + ("; register one with analysis.rules.register_rule"
                                               if found is None else ""), model=graph.model, layer=node.path)
            unsupported.append(Unsupported(node.path, node.type_name, reason, node.source))
            fb = _fallback_shapes(node, in_full, graph, subs_list) if found is None else None
            for i, shape in enumerate(fb or [None] * max(1, len(node.out_shapes))):
                env.shapes[(node.name, i)] = shape
            for pname in node.param_names:
                claimed_by.setdefault(pname, node.path)
            continue
        key, rule = found
        try:
            params = resolve_sizes(node.params, env.shape_of)
        except KeyError:  # pragma: no cover - guarded above
            params = node.params
        spec = LayerSpec(node.path, node.key, node.mro_keys, params,
                         tuple(paths.get(r.node, r.node) for r in node.inputs), node.type_name, tuple(node.inputs),
                         in_kinds, max(1, len(node.out_shapes)))
        try:
            counts, outs = apply_counts(spec, rule, registry.full_shape(key), in_full, in_kinds)
        except ArchcountError as exc:
            raise exc.with_context(model=graph.model, layer=node.path,
                                   shapes={"input": [_display(s) for s in in_full if s is not None]},
                                   hint=f"at {node.source}" if node.source else None) from None
        if parity:
            outs = [tuple(tidy(x) for x in s) for s in outs]
            counts = replace(counts, out_shape=tuple(tidy(x) for x in counts.out_shape), weight=tidy(counts.weight),
                             bias=tidy(counts.bias), affine=tidy(counts.affine), outputs=tidy(counts.outputs),
                             products=tidy(counts.products),
                             connections={ck: (None if v is None else tidy(v)) for ck, v in counts.connections.items()})
        _check_sizes(node, outs, graph, in_full)
        _check_recorded(node, outs, graph, subs_list)
        for i, shape in enumerate(outs):
            env.shapes[(node.name, i)] = shape
        counts = _dedup(node, counts, counted, claimed_by, nodes_by, kinds, env)
        assumptions.extend(a for a in counts.assumptions if a not in assumptions)
        constraints.extend((node.path, tidy(a), tidy(b)) for a, b in counts.constraints)
        w, o, c = convention_values(counts, conv, node.path)
        rows[idx] = LayerRow(node.path, node.type_name, tuple(_display(s) for s in in_full),
                             tuple(counts.out_shape), counts, w, o, c,
                             tuple(paths.get(r.node, r.node) for r in node.inputs if in_kinds[node.inputs.index(r)]
                                   == "activation"),
                             source=node.source, spec=spec, in_full=tuple(tuple(s) for s in in_full),
                             full_shape=registry.full_shape(key), rule_key=key)
    # parameters read in forward that no layer counted: one row each, where they were first read
    for idx, node in enumerate(graph.nodes):
        if node.kind != "param" or node.path in counted:
            continue
        shape = tuple(node.params["shape"])
        numel = _num(sp.expand(sp.Mul(*shape))) if shape else 1
        counts = LayerCounts("parameter", shape, weight=numel,
                             notes=("a parameter read in forward: counted once as weights, no connections",))
        counted[node.path] = node.path
        w, o, c = convention_values(counts, conv, node.path)
        rows[idx] = LayerRow(node.path, "Parameter", (), shape, counts, w, o, c, ())
    ordered = [rows[i] for i in sorted(rows)]
    unused = [(name, numel) for name, numel in graph.unused_params if name not in counted and name not in claimed_by]
    if unused:
        total = sum(int(n) for _, n in unused)
        names = ", ".join(name for name, _ in unused[:6]) + (", ..." if len(unused) > 6 else "")
        counts = LayerCounts("unused", (), weight=total,
                             notes=(f"parameters the forward never read ({names}): in sum(p.numel()) but in no "
                                    f"layer's count",))
        w, o, c = convention_values(counts, conv, "(unused parameters)")
        ordered.append(LayerRow("(unused parameters)", "Parameter", (), (), counts, w, o, c, ()))
    assumptions.extend(_constraint_text(constraints, size_multiple, graph.symbols))
    assumptions.extend(a for a in _conditions(graph, env, min_size) if a not in assumptions)
    if unsupported:
        assumptions.append(f"partial: {len(unsupported)} unsupported operation(s) not counted")
    first = graph.inputs[0].shape[1:] if graph.inputs else ()
    return CountTable(graph.model, conv, dict(graph.hparams), tuple(first), tuple(ordered), tuple(unsupported),
                      tuple(assumptions), dict(graph.symbols),
                      inputs=tuple(tuple(s.shape[1:]) for s in graph.inputs), registry=registry)


_RELATION = {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq, "ne": sp.Ne}
_NEGATION = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt", "eq": "ne", "ne": "eq"}


def _conditions(graph: CapturedGraph, env: _Env, min_size: int = 1) -> list[str]:
    """The comparisons of the input size the forward made, as conditions on it: the counts hold where
    they hold (``W > 100``).  Comparisons that are always true, that only check channel counts (the
    lifted graph is the same at every hyperparameter point), or that only ask for the model's
    minimum size are dropped."""
    from .graph import SizeExpr
    spatial = {d for spec in graph.inputs for v in spec.shape[2:] for d in sp.sympify(v).free_symbols}
    out = []
    for op, lhs, rhs, result, source in graph.conditions:
        try:
            a = resolve_sizes(SizeExpr(lhs, 0), env.shape_of)
            b = resolve_sizes(SizeExpr(rhs, 0), env.shape_of)
        except KeyError:
            continue
        rel = _RELATION[op if result else _NEGATION[op]](a, b)
        if rel in (sp.true, True) or not isinstance(rel, sp.Basic) or not (rel.free_symbols & spatial):
            continue
        if isinstance(rel, (sp.Ge, sp.Gt)) and rel.lhs in spatial and rel.rhs.is_number and \
                (rel.rhs < min_size or isinstance(rel, sp.Ge) and rel.rhs <= min_size):
            continue  # "H >= 4": the model's own minimum size
        where = f" at {source}" if source else ""
        text = sp.sstr(rel).replace("Eq(", "(").replace("Ne(", "(")
        if isinstance(rel, sp.Eq):
            text = f"{sp.sstr(rel.lhs)} = {sp.sstr(rel.rhs)}"
        elif isinstance(rel, sp.Ne):
            text = f"{sp.sstr(rel.lhs)} != {sp.sstr(rel.rhs)}"
        out.append(f"{text} (the forward tests the input size{where}; the counts hold where it holds)")
    return out


def _no_rule_reason(node: OpNode) -> str:
    reason = f"no counting rule for {node.type_name}"
    if node.kind == "module" and node.n_params:
        reason += f" (it has {node.n_params} parameters, not counted)"
    return reason


def _check_sizes(node: OpNode, outs: Sequence[Sequence[Any]], graph: CapturedGraph,
                 in_full: Sequence[Any]) -> None:
    for shape in outs:
        for s in shape:
            if isinstance(s, int) and s < 1 and not (s == 0 and node.kind == "function"):
                raise ArchcountError(f"output size {s}: the input is too small for this layer", model=graph.model,
                                     layer=node.path, shapes={"input": [_display(x) for x in in_full if x]})


def _check_recorded(node: OpNode, outs: Sequence[Sequence[Any]], graph: CapturedGraph,
                    subs_list: Sequence[Mapping[sp.Symbol, int]]) -> None:
    """The symbolic shapes must give the shapes the forward produced at every recorded size."""
    for cap, subs in zip(graph.captures, subs_list):
        recorded = cap["shapes"].get(node.name)
        if recorded is None:
            continue
        for i, (shape, rec) in enumerate(zip(outs, recorded)):
            got = tuple(_value_at(s, subs) for s in shape)
            if None in got:
                continue
            if got != tuple(rec):
                sizes = "x".join(str(v) for v in cap["inputs"][0][1:]) if cap["inputs"] else "?"
                raise ArchcountError(
                    f"archcount's rule for {node.type_name} gives the output shape {got} at input {sizes}, but "
                    f"the forward gave {tuple(rec)}", model=graph.model, layer=node.path,
                    hint=(f"at {node.source}; " if node.source else "") + "please report it, or register a rule")


_FIELD = {"weight": "weight", "bias": "bias", "affine": "affine", "affine_b": "affine"}


def _dedup(node: OpNode, counts: LayerCounts, counted: dict[str, str], claimed_by: dict[str, str],
           nodes_by: Mapping[str, OpNode], kinds: Mapping[str, str], env: _Env) -> LayerCounts:
    """Count every parameter once: a module called again, or a tied / shared parameter, adds no weights."""
    notes = list(counts.notes)
    if node.kind == "module" and node.param_names:
        already = [p for p in node.param_names if p in counted]
        if already and len(already) == len(node.param_names):
            first = counted[already[0]]
            notes.append(f"parameters shared with {first}: counted there")
            counts = replace(counts, weight=0, bias=0, affine=0, notes=tuple(notes))
        elif already:
            prefix = node.module + "." if node.module else ""
            changes: dict[str, Any] = {}
            for pname in already:
                local = pname[len(prefix):] if pname.startswith(prefix) else pname.rsplit(".", 1)[-1]
                field = "affine" if counts.category == "norm" else ("bias" if local.endswith("bias") else "weight")
                numel = node.param_numel[node.param_names.index(pname)]
                changes[field] = _num(sp.sympify(changes.get(field, getattr(counts, field))) - numel)
                notes.append(f"{local} shared with {counted[pname]}: counted there")
            counts = replace(counts, notes=tuple(notes), **changes)
        for pname in node.param_names:
            counted.setdefault(pname, node.path)
            claimed_by.setdefault(pname, node.path)
    if counts.claimed:
        changes = {}
        for index, field in counts.claimed:
            ref = node.inputs[index]
            pnode = nodes_by.get(ref.node)
            if pnode is None or pnode.kind != "param":
                continue
            pname = pnode.path
            if pname in counted:
                shape = env.get(ref) or ()
                numel = sp.Mul(*shape) if shape else 1
                f = _FIELD[field]
                changes[f] = _num(sp.expand(sp.sympify(changes.get(f, getattr(counts, f))) - numel))
                notes.append(f"{pname} already counted in {counted[pname]}")
            else:
                counted[pname] = node.path
            claimed_by.setdefault(pname, node.path)
        if changes:
            counts = replace(counts, notes=tuple(notes), **changes)
    return counts


def _free(values: Any) -> set:
    out: set = set()
    for v in values:
        if isinstance(v, sp.Basic):
            out |= v.free_symbols
    return out


# --------------------------------------------------------------------------- output_shape of one layer

def output_shape(layer: Any, input_shape: Any) -> tuple[Any, ...]:
    """Exact output shape of a torch layer or container for ``input_shape`` (with or without the
    batch dim; ints, sympy expressions, a torch.Size or text like ``"1x3x9x9"``), without running it.

    Single layers go through the counting rule registry; containers are captured like a model.

    >>> import torch.nn as nn
    >>> output_shape(nn.Conv2d(3, 16, 5, stride=2, padding=1), (1, 3, 1024, 768))
    (1, 16, 511, 383)
    >>> output_shape(nn.MaxPool2d(2), "1x3x9x9")
    (1, 3, 4, 4)
    """
    from .rules import type_key
    from .trace import module_params, mro_keys
    if isinstance(input_shape, str):
        from .layertext import parse_shape
        input_shape = parse_shape(input_shape)
    shape = tuple(int(s) if isinstance(s, int) or (isinstance(s, sp.Basic) and s.is_Integer) else s
                  for s in input_shape)
    cls = type(layer)
    name = cls.__name__

    def fail(reason: str, argument: str = "input") -> ArchcountError:
        return ArchcountError(reason, layer=name, argument=argument, shapes={"input": shape})

    if any(isinstance(s, int) and s < 1 for s in shape):
        raise fail("every dimension must be >= 1")
    found = RULES.resolve(mro_keys(cls))
    if found is None:
        if not list(layer.children()):
            raise fail(f"no counting rule for {name}; register one with analysis.rules.register_rule", "layer")
        if len(shape) < 3:
            raise fail("a container needs a batched input [BS, C, ...]")
        table = count(layer, input_shape=shape[1:], strict=True)
        return (shape[0], *table.rows[-1].out_shape)
    spec = LayerSpec(name, type_key(cls), mro_keys(cls), module_params(layer), (), name)
    batched = _batched(name, shape)
    if batched is None:
        raise fail(f"{name} needs a batch dimension; got a {len(shape)}-d input")
    per_sample = shape[1:] if batched else shape
    try:
        if RULES.full_shape(found[0]):
            counts = found[1](spec, [tuple(shape)])
            return tuple(counts.out_shape)
        counts = found[1](spec, [tuple(per_sample)])
    except ArchcountError as exc:
        raise ArchcountError(exc.reason, layer=name, argument=exc.argument or "input", shapes={"input": shape},
                             hint=exc.hint) from None
    return (shape[0], *counts.out_shape) if batched else tuple(counts.out_shape)


def _batched(name: str, shape: tuple) -> bool | None:
    """Whether the first dim is the batch (None: the layer needs one and the input has none)."""
    for nd in (1, 2, 3):
        if name.endswith(f"{nd}d"):
            if name.startswith("BatchNorm"):
                ok = (2, 3) if nd == 1 else (nd + 2,)
                return True if len(shape) in ok else None
            return len(shape) == nd + 2
    if name in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"):
        return True
    return len(shape) >= 2


from .solve import SolveResult, solve_for  # noqa: E402  (moved; kept importable from here)

__all__ = ["SolveResult", "apply_counts", "count", "input_sizes", "normalise_input_shape", "output_shape",
           "propagate", "solve_for"]
