"""Capture a real model's forward and lift its hyperparameters to formulas.

:func:`capture` records the forward with :func:`analysis.trace.record` (on the ``meta`` device,
so nothing is allocated; on real CPU tensors when the forward needs values) and returns a
:class:`~analysis.graph.CapturedGraph`.

- **Hyperparameters.** A zoo name or a factory is instantiated at several sample points of its
  hyperparameters; every integer hyperparameter of every node (channels, kernel, padding, ...)
  is fitted exactly, with rational arithmetic, as an affine form in the lifted symbols (plus
  ``floor(k/2)`` when both kernel parities build) and checked at further points.  A value that
  is not of that form is an error naming the layer.
- **Input sizes.** With symbolic sizes the forward is recorded at two concrete sizes; the two
  recordings must have the same operations (a forward whose operations depend on the size is an
  error naming the line), and counting later checks its symbolic shapes against both.
- **Input channels** come from ``input_shape`` when given, else from ``num_in_channels``, else
  from the first layer with ``in_channels`` / ``in_features`` / ``num_features``.

>>> g = capture("pool_upsample")
>>> [n.path for n in g.nodes][:4]
['x', 'block1.0', 'block1.1', 'block1.2']
>>> g.node("n1").params["out_channels"]
NF
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from .errors import ArchcountError
from .graph import CapturedGraph, InputSpec, OpNode, TensorRef
from .rules import RULES, RuleRegistry
from .symbols import HPARAM_SYMBOLS
from .trace import forward_error, module_params, mro_keys, record

#: Base values for factory hyperparameters that have no default.
FALLBACK_BASE = {"kernel": 3, "num_in_channels": 1, "num_filters": 32, "num_colours": 24}
#: The batch symbol: every count is divided by it (per sample).
BATCH = sp.Symbol("B", integer=True, positive=True)
#: Concrete sizes tried for a symbolic input size, first that runs wins.
SIZE_CANDIDATES = (224, 64, 32, 28, 16, 96, 128, 256, 512, 8, 4, 2, 1)
SECOND_SIZE_STEPS = (1, 2, 3, 4, 8, 16, 32)
CAPTURE_BATCH = (2, 3)


# --------------------------------------------------------------------------- the subject

@dataclass(frozen=True)
class Subject:
    """What to capture: a zoo name, a factory, or a concrete module."""

    name: str
    factory: Callable[..., Any] | None     #: None for a concrete module
    module: Any = None                     #: the concrete module
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    spec: Any = None                       #: the zoo ModelSpec


def subject(model: Any) -> Subject:
    """Resolve ``model`` (zoo name, factory or nn.Module); a bad argument is a clear error."""
    try:
        import torch.nn as nn
    except ImportError as exc:  # pragma: no cover
        raise ArchcountError(f"capturing a model needs torch: {exc}") from None
    if isinstance(model, nn.Module):
        return Subject(type(model).__name__, None, model)
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        return Subject(spec.name, spec.factory, None, dict(spec.defaults), spec)
    if callable(model):
        return Subject(getattr(model, "__name__", type(model).__name__), model, None, _signature_defaults(model))
    raise ArchcountError(f"expected a zoo model name, a factory or an nn.Module, got {type(model).__name__}",
                         argument="model")


def _signature_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    out = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


# --------------------------------------------------------------------------- one recording

@dataclass
class _Run:
    nodes: list[OpNode]
    outputs: tuple[TensorRef, ...]
    unused: tuple[tuple[str, int], ...]
    device: str
    note: str = ""
    conditions: tuple = ()


def _build(subj: Subject, point: Mapping[str, Any], device: str) -> Any:
    import torch
    if subj.module is not None:
        return subj.module
    assert subj.factory is not None
    if device == "meta":
        with torch.device("meta"):
            return subj.factory(**point)
    return subj.factory(**point)


def _record_once(subj: Subject, point: Mapping[str, Any], shapes: Sequence[tuple[int, ...]], device: str,
                 registry: RuleRegistry, dtypes: Sequence[str]) -> _Run:
    import torch
    module = _build(subj, point, device)
    if device == "meta" and subj.module is not None and _has_real_tensors(module):
        return _record_functional(subj, module, shapes, registry, dtypes)
    inputs = [_make_input(s, device, d) for s, d in zip(shapes, dtypes)]
    was = module.training
    module.eval()
    try:
        rec = record(module, inputs, registry=registry)
    finally:
        module.train(was)
    return _Run(rec.nodes, rec.outputs, rec.unused_params, device, conditions=rec.conditions)


def _has_real_tensors(module: Any) -> bool:
    for t in list(module.parameters()) + list(module.buffers()):
        return not t.is_meta
    return False


def _record_functional(subj: Subject, module: Any, shapes: Sequence[tuple[int, ...]], registry: RuleRegistry,
                       dtypes: Sequence[str]) -> _Run:
    """A concrete module on meta: swap meta copies of its tensors in for the duration of the forward."""
    import torch
    from torch.nn.utils.stateless import _reparametrize_module
    state: dict[str, Any] = {}
    by_id: dict[int, Any] = {}
    for name, t in list(module.named_parameters(remove_duplicate=False)) + \
            list(module.named_buffers(remove_duplicate=False)):
        if id(t) not in by_id:
            meta = torch.empty_like(t, device="meta")
            if isinstance(t, torch.nn.Parameter):
                meta = torch.nn.Parameter(meta, requires_grad=t.requires_grad)
            by_id[id(t)] = meta
        state[name] = by_id[id(t)]
    inputs = [_make_input(s, "meta", d) for s, d in zip(shapes, dtypes)]
    was = module.training
    module.eval()
    try:
        with _reparametrize_module(module, state, tie_weights=True, strict=False):
            rec = record(module, inputs, registry=registry)
    finally:
        module.train(was)
    return _Run(rec.nodes, rec.outputs, rec.unused_params, "meta", conditions=rec.conditions)


def _make_input(shape: Sequence[int], device: str, dtype: str) -> Any:
    import torch
    dt = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64, "long": torch.long,
          "int64": torch.long, "int": torch.long}.get(dtype, torch.float32)
    if dt.is_floating_point:
        if device == "meta":
            return torch.empty(tuple(shape), dtype=dt, device="meta")
        g = torch.Generator().manual_seed(0)
        return torch.randn(tuple(shape), generator=g, dtype=dt)
    return torch.zeros(tuple(shape), dtype=dt, device=device)


def record_at(subj: Subject, point: Mapping[str, Any], shapes: Sequence[tuple[int, ...]],
              registry: RuleRegistry = RULES, dtypes: Sequence[str] | None = None) -> _Run:
    """Record on meta; fall back to real CPU tensors when the forward needs values."""
    dtypes = list(dtypes or ["float32"] * len(shapes))
    try:
        return _record_once(subj, point, shapes, "meta", registry, dtypes)
    except ArchcountError:
        raise
    except Exception as meta_exc:  # noqa: BLE001 - retried on real tensors, whose error is the one reported
        try:
            run = _record_once(subj, point, shapes, "cpu", registry, dtypes)
        except ArchcountError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise forward_error(exc, subj.name) from None
        err = forward_error(meta_exc, subj.name)
        run.note = (f"recorded on real CPU tensors: the forward does not run on the meta device "
                    f"({err.reason.removeprefix('the forward raised ')}); counts hold for this input")
        return run


# --------------------------------------------------------------------------- structure and lifting

def _structure(nodes: Sequence[OpNode]) -> list[tuple]:
    return [(n.name, n.kind, n.key, n.inputs, n.param_names) for n in nodes]


def _first_difference(a: Sequence[OpNode], b: Sequence[OpNode]) -> str:
    for x, y in zip(a, b):
        if (x.kind, x.key, x.inputs) != (y.kind, y.key, y.inputs):
            return f"{x.path} ({x.type_name}) against {y.path} ({y.type_name})" + (f" at {x.source}" if x.source
                                                                                    else "")
    if len(a) != len(b):
        extra = (a if len(a) > len(b) else b)[min(len(a), len(b))]
        return f"{extra.path} ({extra.type_name}) runs in one recording only" + (
            f" at {extra.source}" if extra.source else "")
    return ""


def _alt_values(name: str, base: int, kernel_like: bool) -> list[int]:
    if kernel_like:
        return [base + 2, base + 4, base + 6, base - 2]
    return [base + 1, base + 2, base + 3, base + 5, base + 7, max(1, base - 1)]


class _Fitter:
    """Exact least-squares fit on fixed sample points; the pseudo-inverse is computed once."""

    def __init__(self, rows: list[list[int]], basis: list[Any], model: str) -> None:
        from fractions import Fraction
        self.rows, self.basis, self.model = rows, basis, model
        A = sp.Matrix(rows)
        pinv = (A.T * A).inv() * A.T
        self.pinv = [[Fraction(int(sp.fraction(x)[0]), int(sp.fraction(x)[1])) for x in pinv.row(i)]
                     for i in range(pinv.rows)]

    def fit(self, values: list[Any], where: str) -> Any:
        first = values[0]
        if all(v == first and type(v) is type(first) for v in values):
            if isinstance(first, tuple):
                return tuple(self.fit([v[i] for v in values], f"{where}[{i}]") for i in range(len(first)))
            if isinstance(first, dict):
                return {key: self.fit([v[key] for v in values], f"{where}.{key}") for key in first}
            return first
        if dataclasses.is_dataclass(first) and all(type(v) is type(first) for v in values):
            changes = {}
            for f in dataclasses.fields(first):
                if not f.compare:
                    continue
                changes[f.name] = self.fit([getattr(v, f.name) for v in values], f"{where}.{f.name}")
            return dataclasses.replace(first, **changes)
        if all(isinstance(v, dict) for v in values) and len({tuple(v) for v in values}) == 1:
            return {key: self.fit([v[key] for v in values], f"{where}.{key}") for key in first}
        if all(isinstance(v, tuple) for v in values):
            if len({len(v) for v in values}) != 1:
                raise ArchcountError(f"{where} changes its length with the hyperparameters", model=self.model)
            return tuple(self.fit([v[i] for v in values], f"{where}[{i}]") for i in range(len(first)))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ArchcountError(f"{where} changes with the hyperparameters but is not an integer "
                                 f"({', '.join(map(repr, values[:3]))}); archcount cannot lift it", model=self.model)
        coeffs = [sum(p * v for p, v in zip(prow, values)) for prow in self.pinv]
        for r, v in zip(self.rows, values):
            if sum(c * x for c, x in zip(coeffs, r)) != v:
                raise ArchcountError(
                    f"{where} is not affine in the lifted hyperparameters (values {values}); archcount lifts "
                    f"channel counts and kernel sizes of the form a + b*NIC + c*NF + d*NC + e*k + f*floor(k/2)",
                    model=self.model)
        expr = sum((sp.Rational(c.numerator, c.denominator) * e for c, e in zip(coeffs, self.basis) if c),
                   sp.Integer(0))
        expr = sp.expand(expr)
        return int(expr) if expr.is_Integer else expr


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class InputRequest:
    """The input shapes asked for (per sample, batch excluded): channels may be None (infer)."""

    shapes: tuple[tuple[Any, ...], ...]
    dtypes: tuple[str, ...] = ()
    default_channels: int | None = None    #: channels to use when they cannot be inferred (receptive fields)

    @property
    def symbolic(self) -> bool:
        return any(isinstance(v, sp.Basic) and not v.is_number for s in self.shapes for v in s[1:])


def _infer_channels(subj: Subject, point: Mapping[str, Any]) -> int:
    if "num_in_channels" in point:
        return int(point["num_in_channels"])
    module = subj.module if subj.module is not None else _build(subj, point, "meta")
    for m in module.modules():
        for attr in ("in_channels", "in_features", "num_features", "num_channels"):
            v = getattr(m, attr, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
    raise ArchcountError("cannot infer the input channels: no layer has in_channels/in_features/num_features",
                         model=subj.name, argument="input_shape",
                         hint="give the input shape, e.g. count(model, input_shape=(3, 224, 224)) or "
                              "--input 3x224x224")


def _size_symbols(req: InputRequest) -> list[sp.Symbol]:
    out: list[sp.Symbol] = []
    for shape in req.shapes:
        for v in shape[1:]:
            if isinstance(v, sp.Basic):
                for s in sorted(v.free_symbols, key=str):
                    if s not in out:
                        out.append(s)
    return out


def _capture_sizes(subj: Subject, req: InputRequest, point: Mapping[str, Any], channels: Sequence[int],
                   registry: RuleRegistry) -> tuple[list[list[tuple[int, ...]]], list[_Run], list[str],
                                                    list[dict[sp.Symbol, int]]]:
    """Concrete per-sample shapes to record at (one or two), the runs at the base point, notes, and the
    value each size symbol had in each recording."""
    notes: list[str] = []
    syms = _size_symbols(req)

    def concrete(values: Mapping[sp.Symbol, int]) -> list[tuple[int, ...]]:
        out = []
        for shape, c in zip(req.shapes, channels):
            dims = [c]
            for v in shape[1:]:
                e = sp.sympify(v).xreplace(dict(values)) if isinstance(v, sp.Basic) else v
                dims.append(int(e))
            out.append(tuple(dims))
        return out

    def attempt(values: Mapping[sp.Symbol, int], batch: int) -> _Run:
        shapes = [(batch, *s) for s in concrete(values)]
        if any(d < 1 for s in shapes for d in s):
            raise ArchcountError(f"size {dict(values)} gives a non-positive input dimension", argument="input_shape")
        return record_at(subj, point, shapes, registry, req.dtypes or None)

    if not syms:
        run = attempt({}, CAPTURE_BATCH[0])
        return [concrete({})], [run], notes, [{}]
    spec = subj.spec
    if spec is not None:
        first = spec.fixed_size[0] if spec.fixed_size else _valid_near(spec, 32)
        candidates = [first] + [v for v in SIZE_CANDIDATES if spec.valid_size(v) and v != first]
    else:
        candidates = list(SIZE_CANDIDATES)
    run1 = vals1 = None
    errors: list[str] = []
    for v in candidates:
        values = {sym: v for sym in syms}
        try:
            run1 = attempt(values, CAPTURE_BATCH[0])
            vals1 = values
            break
        except ArchcountError as exc:
            errors.append(f"{v}: {exc.reason}")
            if len(errors) >= 3 and spec is None and "channels" in exc.reason:
                break
    if run1 is None or vals1 is None:
        raise ArchcountError("the forward did not run at any of the sizes tried (" + "; ".join(errors[:3]) + ")",
                             model=subj.name, argument="input_shape",
                             hint="give a numeric input shape the model accepts, e.g. input_shape=(3, 224, 224)")
    size1 = next(iter(vals1.values()))
    if spec is not None:
        steps = [spec.size_multiple * m for m in (1, 2, 3)]
        plans = [{sym: size1 + steps[i % len(steps)] for i, sym in enumerate(syms)}] + \
            [{sym: size1 + st for sym in syms} for st in steps]
        plans = [pl for pl in plans if all(spec.valid_size(v) for v in pl.values())]
        if not plans:
            lower = [v for v in range(spec.min_size, size1) if spec.valid_size(v)][-1:]
            plans = [{sym: lower[0] for sym in syms}] if lower else []
    else:
        plans = [{sym: size1 + 1 + i for i, sym in enumerate(syms)}]
        plans += [{sym: size1 + d for sym in syms} for d in SECOND_SIZE_STEPS] + [{sym: 2 * size1 for sym in syms}]
    for values in plans:
        try:
            run2 = attempt(values, CAPTURE_BATCH[1])
        except ArchcountError:
            continue
        return [concrete(vals1), concrete(values)], [run1, run2], notes, [vals1, values]
    notes.append(f"the forward runs at size {size1} but at no other size tried: the formulas in the input "
                 f"size are checked at {size1} only")
    return [concrete(vals1)], [run1], notes, [vals1]


def _valid_near(spec: Any, near: int) -> int:
    for d in range(0, 512):
        for s in (near + d, near - d):
            if s >= 1 and spec.valid_size(s):
                return s
    return max(spec.min_size, 1)


# --------------------------------------------------------------------------- the public function

def capture(model: Any, *, hparams: Mapping[str, Any] | None = None,
            symbols: Mapping[str, sp.Symbol] | None = None, registry: RuleRegistry = RULES,
            inputs: InputRequest | None = None) -> CapturedGraph:
    """Capture ``model`` (zoo name, factory or nn.Module) with its hyperparameters lifted to symbols.

    ``inputs`` gives the per-sample input shapes (channels may be None: inferred); by default one
    input of symbolic size ``(C, H, W)``.
    """
    from .symbols import H, W
    hparams = dict(hparams or {})
    symbols = dict(symbols or {})
    subj = subject(model)
    name = subj.name
    if subj.module is not None and hparams:
        raise ArchcountError("hyperparameters cannot be set on a concrete nn.Module; pass a factory",
                             argument=", ".join(hparams))
    defaults = dict(subj.defaults)
    if subj.spec is not None or defaults:
        unknown = sorted(set(hparams) - set(defaults))
        if unknown:
            raise ArchcountError(f"unknown hyperparameter(s) {', '.join(unknown)}; this model takes "
                                 f"{', '.join(defaults)}", model=name, argument=unknown[0])
    bad_syms = sorted(set(symbols) - set(defaults))
    if bad_syms:
        raise ArchcountError(f"cannot lift {', '.join(bad_syms)}: not a hyperparameter of the model "
                             f"(it takes {', '.join(defaults) or 'nothing'})", model=name, argument="symbols")
    base: dict[str, Any] = {}
    for key, default in defaults.items():
        base[key] = hparams.get(key, default if default is not None else FALLBACK_BASE.get(key))
        if base[key] is None:
            raise ArchcountError("has no default; pass a value", model=name, argument=key)
    lift: dict[str, sp.Symbol] = {}
    if subj.module is None:
        for key, sym in HPARAM_SYMBOLS.items():
            if key in defaults and key not in hparams:
                lift[key] = sym
        for key, sym in symbols.items():
            if key in hparams:
                raise ArchcountError("is both fixed and lifted to a symbol", model=name, argument=key)
            if isinstance(sym, str):
                from .symbols import positive_int_symbol
                sym = positive_int_symbol(sym)
            lift[key] = sym
        for key in lift:
            if not isinstance(base[key], int) or isinstance(base[key], bool):
                raise ArchcountError(f"only integer hyperparameters can be lifted, default is {base[key]!r}",
                                     model=name, argument=key)
    if subj.factory is not None:
        _check_factory(subj, base)

    req = inputs or InputRequest(((None, H, W),))
    # channels: given, the lifted num_in_channels, or inferred
    def channels_at(point: Mapping[str, Any]) -> list[int]:
        out = []
        for shape in req.shapes:
            c = shape[0]
            if c is None:
                try:
                    out.append(_infer_channels(subj, point))
                except ArchcountError:
                    if req.default_channels is None:
                        raise
                    out.append(req.default_channels)
            elif isinstance(c, sp.Basic) and not c.is_number:
                out.append(int(c.xreplace({lift[k]: point[k] for k in lift})))
            else:
                out.append(int(c))
        return out

    base_channels = channels_at(base)
    size_shapes, base_runs, notes, size_values = _capture_sizes(subj, req, base, base_channels, registry)
    base_nodes = base_runs[0].nodes
    if len(base_runs) > 1:
        diff = _first_difference(base_nodes, base_runs[1].nodes)
        if diff:
            raise ArchcountError(f"the forward runs different operations at input sizes "
                                 f"{_fmt_sizes(size_shapes[0])} and {_fmt_sizes(size_shapes[1])}: {diff}",
                                 model=name, argument="input_shape",
                                 hint="count at one numeric input size (input_shape=(C, H, W) with numbers)")
    notes.extend(r.note for r in base_runs if r.note)

    def run_at(point: Mapping[str, Any]) -> _Run | None:
        try:
            ch = channels_at(point)
            shapes = [(CAPTURE_BATCH[0], *s) for s in _with_channels(size_shapes[0], ch)]
            return record_at(subj, point, shapes, registry, req.dtypes or None)
        except ArchcountError:
            return None

    points: list[dict[str, Any]] = [dict(base)]
    graphs: list[list[OpNode]] = [base_nodes]
    parity = None
    if lift:
        names = list(lift)
        kernel_key = "kernel" if "kernel" in lift else None

        def try_point(point: dict[str, Any]) -> bool:
            run = run_at(point)
            if run is None:
                return False
            if _structure(run.nodes) != _structure(base_nodes):
                changed = [k for k in names if point[k] != base[k]]
                raise ArchcountError(f"the layer graph changes when {', '.join(changed)} changes "
                                     f"({_first_difference(base_nodes, run.nodes)}); archcount can lift only "
                                     f"hyperparameters that keep the structure", model=name,
                                     argument=", ".join(changed))
            points.append(point)
            graphs.append(run.nodes)
            return True

        for key in names:
            for v in _alt_values(key, base[key], key == kernel_key):
                if v >= 1 and try_point(dict(base, **{key: v})):
                    break
            else:
                raise ArchcountError("no second value of this hyperparameter builds the model, so it cannot be "
                                     "lifted", model=name, argument=key)
        if kernel_key:
            k0 = base[kernel_key]
            other_ok = [v for v in (k0 + 1, k0 + 3, k0 - 1) if v >= 1 and try_point(dict(base, **{kernel_key: v}))]
            if not other_ok:
                parity = "odd" if k0 % 2 else "even"
        n_fit = len(points)
        for step in (2, 3):
            point = dict(base)
            for key in names:
                point[key] = base[key] + (2 * step if key == kernel_key else step + (1 if key == "num_colours"
                                                                                     else 0))
            try_point(point)
        if kernel_key and base[kernel_key] != 1 and parity in (None, "odd"):
            try_point(dict(base, **{kernel_key: 1}))
        if len(points) == n_fit:
            raise ArchcountError("could not build the model at extra check points", model=name)
        basis: list[Any] = [sp.Integer(1)] + [lift[key] for key in names]
        use_floor = kernel_key is not None and parity is None
        if use_floor:
            basis.append(sp.floor(lift[kernel_key] / 2))

        def row(p: Mapping[str, Any]) -> list[int]:
            r = [1] + [p[key] for key in names]
            if use_floor:
                r.append(p[kernel_key] // 2)
            return r

        fitter = _Fitter([row(p) for p in points], basis, name)
        lifted = []
        for idx, node in enumerate(base_nodes):
            params = {pname: fitter.fit([g[idx].params[pname] for g in graphs], f"layer {node.path}: {pname}")
                      for pname in node.params}
            lifted.append(dataclasses.replace(node, params=params))
        nodes = lifted
        unused = tuple(base_runs[0].unused)  # reported at the base point (their numel is concrete)
    else:
        nodes = list(base_nodes)
        unused = tuple(base_runs[0].unused)

    hp = {key: (lift[key] if key in lift else base[key]) for key in base}
    in_specs = []
    for shape, c in zip(req.shapes, base_channels):
        chan: Any = shape[0] if shape[0] is not None else c
        if chan is None:
            chan = c
        if "num_in_channels" in lift and shape[0] is None:
            chan = lift["num_in_channels"]
        in_specs.append(InputSpec((BATCH, chan, *shape[1:]), (req.dtypes or ("float32",) * len(req.shapes))[0]))
    captures = []
    for sizes, run, batch, values in zip(size_shapes, base_runs, CAPTURE_BATCH, size_values):
        captures.append({"hparams": dict(base), "batch": batch, "sizes": dict(values),
                         "inputs": [(batch, *s) for s in _with_channels(sizes, base_channels)],
                         "shapes": {n.name: n.out_shapes for n in run.nodes}})
    assumptions = ()
    if parity:
        assumptions = (f"k {parity} (the model builds only with {parity} kernels)",)
    return CapturedGraph(name, tuple(nodes), hp, in_specs[0].shape[1] if in_specs else None,
                         {str(s): s for s in lift.values()}, parity, assumptions, tuple(in_specs), tuple(captures),
                         base_runs[0].outputs, unused, tuple(notes), tuple(base_runs[0].conditions))


def _with_channels(shapes: Sequence[tuple[int, ...]], channels: Sequence[int]) -> list[tuple[int, ...]]:
    return [(c, *s[1:]) for s, c in zip(shapes, channels)]


def _fmt_sizes(shapes: Sequence[tuple[int, ...]]) -> str:
    return ", ".join("x".join(str(v) for v in s[1:]) for s in shapes)


def _check_factory(subj: Subject, base: Mapping[str, Any]) -> None:
    """Build the model once on meta to turn a bad hyperparameter into the factory's own clear error."""
    try:
        _build(subj, base, "meta")
    except ArchcountError as exc:
        raise exc.with_context(model=subj.name) from None
    except Exception:  # noqa: BLE001 - the factory may need real tensors; the real build decides
        try:
            _build(subj, base, "cpu")
        except ArchcountError as exc:
            raise exc.with_context(model=subj.name) from None
        except Exception as exc:  # noqa: BLE001
            raise ArchcountError(f"the factory failed at {dict(base)}: {type(exc).__name__}: {exc}",
                                 model=subj.name) from None


__all__ = ["BATCH", "CapturedGraph", "InputRequest", "OpNode", "Subject", "capture", "module_params", "mro_keys",
           "record_at", "subject"]
