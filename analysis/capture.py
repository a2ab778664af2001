"""Capture the layer graph of a real torch model with torch.fx and lift its hyperparameters to formulas.

The factory is instantiated at several sample points of its hyperparameters; every integer
hyperparameter of every layer (channels, kernel, padding, ...) is fitted exactly, with rational
arithmetic, as an affine form in the lifted symbols (plus ``floor(k/2)`` when both kernel parities
are valid) and checked at further points.  A hyperparameter that is not of that form is an error
naming the layer.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from .errors import ArchcountError
from .rules import NON_LAYER_KEYS, RULES, RuleRegistry, type_key
from .symbols import HPARAM_SYMBOLS

#: Base values for factory hyperparameters that have no default.
FALLBACK_BASE = {"kernel": 3, "num_in_channels": 1, "num_filters": 32, "num_colours": 24}


@dataclass(frozen=True)
class NodeRef:
    """A reference to another graph node inside a function node's arguments."""

    name: str


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str                      #: placeholder | call_module | call_function | call_method | get_attr | output
    key: str
    mro_keys: tuple[str, ...]
    type_name: str
    path: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    n_params: int = 0


@dataclass(frozen=True)
class CapturedGraph:
    """A model's graph with symbolic hyperparameters."""

    model: str
    nodes: tuple[GraphNode, ...]
    hparams: Mapping[str, Any]           #: name -> value or symbol
    input_channels: Any
    symbols: Mapping[str, sp.Symbol] = field(default_factory=dict)
    kernel_parity: str | None = None      #: "odd"/"even" when only one parity builds
    assumptions: tuple[str, ...] = ()


# --------------------------------------------------------------------------- tracing

def mro_keys(cls: type) -> tuple[str, ...]:
    return tuple(type_key(c) for c in cls.__mro__ if c is not object)


def _tracer_cls(registry: RuleRegistry) -> type:
    import torch.fx as fx

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:  # noqa: D401
            if registry.resolve(mro_keys(type(m))) is not None:
                return True
            return super().is_leaf_module(m, qualname)

    return _Tracer


def _plain(value: Any) -> Any:
    import torch
    import torch.fx as fx
    if isinstance(value, fx.Node):
        return NodeRef(value.name)
    if isinstance(value, (list, tuple, torch.Size)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value)
    return value


def _refs(value: Any) -> list[str]:
    if isinstance(value, NodeRef):
        return [value.name]
    if isinstance(value, tuple):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def module_params(m: Any) -> dict[str, Any]:
    """Hyperparameters of a torch module from its ``__constants__`` (plus bias presence)."""
    params: dict[str, Any] = {}
    for name in getattr(type(m), "__constants__", ()):
        if hasattr(m, name):
            params[name] = _plain(getattr(m, name))
    if "bias" in dict(m.named_parameters(recurse=False)) or hasattr(m, "bias"):
        params["has_bias"] = getattr(m, "bias", None) is not None
    return params


def _wrap_layer(layer: Any) -> Any:
    import torch.nn as nn

    class SingleLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x: Any) -> Any:
            return self.layer(x)

    return SingleLayer()


def trace_module(module: Any, model: str = "model", registry: RuleRegistry = RULES) -> list[GraphNode]:
    """fx-trace ``module`` into :class:`GraphNode` s (numeric hyperparameters)."""
    tracer = _tracer_cls(registry)()
    if registry.resolve(mro_keys(type(module))) is not None:
        module = _wrap_layer(module)  # a bare layer: trace it as one leaf called "layer"
    try:
        graph = tracer.trace(module)
    except ArchcountError:
        raise
    except Exception as exc:  # fx cannot trace data-dependent control flow etc.
        raise ArchcountError(f"torch.fx could not trace the model: {type(exc).__name__}: {exc}", model=model,
                             hint="archcount needs a forward without data-dependent Python control flow") from None
    nodes = []
    for node in graph.nodes:
        if node.op == "call_module":
            sub = module.get_submodule(node.target)
            cls = type(sub)
            params = module_params(sub)
            n_params = sum(p.numel() for p in sub.parameters())
            key, mro, tname, path = type_key(cls), mro_keys(cls), cls.__name__, str(node.target)
        elif node.op == "call_function":
            key = type_key(node.target)
            mro, tname, path, n_params = (key,), key, node.name, 0
            params = {"args": _plain(node.args), "kwargs": _plain(dict(node.kwargs))}
        elif node.op == "call_method":
            key = f"Tensor.{node.target}"
            mro, tname, path, n_params = (key,), key, node.name, 0
            params = {"args": _plain(node.args), "kwargs": _plain(dict(node.kwargs))}
        else:
            key = node.op
            mro, tname, path, n_params = (key,), node.op, node.name, 0
            params = {"target": str(node.target)}
        inputs = tuple(_refs(_plain(node.args)) + _refs(_plain(dict(node.kwargs))))
        nodes.append(GraphNode(node.name, node.op, key, mro, tname, path, params, inputs, n_params))
    return nodes


# --------------------------------------------------------------------------- lifting

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


def _alt_values(name: str, base: int, kernel_like: bool) -> list[int]:
    if kernel_like:
        return [base + 2, base + 4, base + 6, base - 2]
    return [base + 1, base + 2, base + 3, base + 5, base + 7, max(1, base - 1)]


def _structure(nodes: Sequence[GraphNode]) -> list[tuple]:
    return [(n.name, n.op, n.key, n.inputs) for n in nodes]


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
            return first
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


def capture(model: Any, *, hparams: Mapping[str, Any] | None = None,
            symbols: Mapping[str, sp.Symbol] | None = None, registry: RuleRegistry = RULES) -> CapturedGraph:
    """Capture ``model`` (zoo name, factory or nn.Module) with its hyperparameters lifted to symbols."""
    import torch.nn as nn

    hparams = dict(hparams or {})
    symbols = dict(symbols or {})
    if isinstance(model, nn.Module):
        if hparams:
            raise ArchcountError("hyperparameters cannot be set on a concrete nn.Module; pass a factory",
                                 argument=", ".join(hparams))
        name = type(model).__name__
        nodes = trace_module(model, name, registry)
        return CapturedGraph(name, tuple(nodes), {}, _infer_input_channels(nodes, name))

    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        name, factory = spec.name, spec.factory
        defaults = dict(spec.defaults)
        unknown = sorted(set(hparams) - set(defaults))
        if unknown:
            raise ArchcountError(f"unknown hyperparameter(s) {', '.join(unknown)}; this model takes "
                                 f"{', '.join(defaults)}", model=name, argument=unknown[0])
    elif callable(model):
        factory = model
        name = getattr(model, "__name__", type(model).__name__)
        defaults = _signature_defaults(factory)
        unknown = sorted(set(hparams) - set(defaults)) if defaults else []
        if unknown:
            raise ArchcountError(f"unknown hyperparameter(s) {', '.join(unknown)}", model=name, argument=unknown[0])
    else:
        raise ArchcountError(f"expected a zoo model name, a factory or an nn.Module, got {type(model).__name__}",
                             argument="model")

    bad_syms = sorted(set(symbols) - set(defaults))
    if bad_syms:
        raise ArchcountError(f"cannot lift {', '.join(bad_syms)}: not a hyperparameter of the model "
                             f"(it takes {', '.join(defaults)})", model=name, argument="symbols")
    base: dict[str, Any] = {}
    for key, default in defaults.items():
        base[key] = hparams.get(key, default if default is not None else FALLBACK_BASE.get(key))
        if base[key] is None:
            raise ArchcountError("has no default; pass a value", model=name, argument=key)
    lift: dict[str, sp.Symbol] = {}
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

    def build(point: Mapping[str, Any]) -> list[GraphNode] | None:
        try:
            module = factory(**point)
        except Exception:
            return None
        return trace_module(module, name, registry)

    base_nodes = build(base)
    if base_nodes is None:
        try:
            factory(**base)
        except ArchcountError as exc:
            raise exc.with_context(model=name) from None
        except Exception as exc:
            raise ArchcountError(f"the factory failed at {base}: {type(exc).__name__}: {exc}", model=name) from None
    if not lift:
        return CapturedGraph(name, tuple(base_nodes), dict(base), _input_channels(base, base_nodes, name))

    names = list(lift)
    kernel_key = "kernel" if "kernel" in lift else None
    points: list[dict[str, Any]] = [dict(base)]
    graphs: list[list[GraphNode]] = [base_nodes]

    def try_point(point: dict[str, Any]) -> bool:
        nodes = build(point)
        if nodes is None:
            return False
        if _structure(nodes) != _structure(base_nodes):
            changed = [k for k in names if point[k] != base[k]]
            raise ArchcountError(f"the layer graph changes when {', '.join(changed)} changes; archcount can lift "
                                 f"only hyperparameters that keep the structure", model=name,
                                 argument=", ".join(changed))
        points.append(point)
        graphs.append(nodes)
        return True

    for key in names:
        for v in _alt_values(key, base[key], key == kernel_key):
            if v >= 1 and try_point(dict(base, **{key: v})):
                break
        else:
            raise ArchcountError("no second value of this hyperparameter builds the model, so it cannot be lifted",
                                 model=name, argument=key)
    parity = None
    if kernel_key:
        k0 = base[kernel_key]
        other_ok = [v for v in (k0 + 1, k0 + 3, k0 - 1) if v >= 1 and try_point(dict(base, **{kernel_key: v}))]
        if not other_ok:
            parity = "odd" if k0 % 2 else "even"
    # check points: every lifted symbol changed together
    n_fit = len(points)
    for step in (2, 3):
        point = dict(base)
        for key in names:
            point[key] = base[key] + (2 * step if key == kernel_key else step + (1 if key == "num_colours" else 0))
        try_point(point)
    if kernel_key and base[kernel_key] != 1 and (parity in (None, "odd")):
        try_point(dict(base, **{kernel_key: 1}))  # k=1 is where floor-based paddings differ most
    if len(points) == n_fit:
        raise ArchcountError("could not build the model at extra check points", model=name)

    basis: list[Any] = [sp.Integer(1)] + [lift[key] for key in names]
    use_floor = kernel_key is not None and parity is None
    if use_floor:
        basis.append(sp.floor(lift[kernel_key] / 2))

    def row(point: Mapping[str, Any]) -> list[int]:
        r = [1] + [point[key] for key in names]
        if use_floor:
            r.append(point[kernel_key] // 2)
        return r

    fitter = _Fitter([row(p) for p in points], basis, name)
    lifted_nodes = []
    for idx, node in enumerate(base_nodes):
        params = {}
        for pname in node.params:
            values = [g[idx].params[pname] for g in graphs]
            params[pname] = fitter.fit(values, f"layer {node.path}: {pname}")
        lifted_nodes.append(GraphNode(node.name, node.op, node.key, node.mro_keys, node.type_name, node.path, params,
                                      node.inputs, node.n_params))
    hp = {key: (lift[key] if key in lift else base[key]) for key in base}
    assumptions = ()
    if parity:
        assumptions = (f"k {parity} (the model builds only with {parity} kernels)",)
    return CapturedGraph(name, tuple(lifted_nodes), hp, _input_channels(hp, lifted_nodes, name),
                         {str(s): s for s in lift.values()}, parity, assumptions)


def _input_channels(hp: Mapping[str, Any], nodes: Sequence[GraphNode], name: str) -> Any:
    if "num_in_channels" in hp:
        return hp["num_in_channels"]
    return _infer_input_channels(nodes, name)


def _infer_input_channels(nodes: Sequence[GraphNode], name: str) -> Any:
    placeholders = [n.name for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ArchcountError(f"expects a model with one tensor input, found {len(placeholders)}", model=name)
    for node in nodes:
        if placeholders[0] in node.inputs:
            for attr in ("in_channels", "num_features", "num_channels", "in_features"):
                if attr in node.params:
                    return node.params[attr]
    raise ArchcountError("cannot infer the input channels: the first layer reading the input has no channel "
                         "count (in_channels/num_features/in_features)", model=name,
                         hint="count a factory taking num_in_channels, or start the model with such a layer")


__all__ = ["CapturedGraph", "GraphNode", "NodeRef", "NON_LAYER_KEYS", "capture", "module_params", "trace_module"]
