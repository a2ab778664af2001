"""``count()``: exact per-layer formulas of a real model, and ``solve_for()``.

>>> from analysis import count, NIC, NF, NC, k, H, W
>>> t = count("pool_upsample")
>>> t.total("weights")
NC**2*k**2 + NC*NF*k**2 + 4*NF**2*k**2 + NF*NIC*k**2
>>> count("unet", kernel=3, input_size=(32, 32)).evaluate(NIC=1, NF=32, NC=24).total("outputs")
69632
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from .capture import CapturedGraph, GraphNode, capture
from .conventions import Convention, get_convention
from .errors import ArchcountError
from .rules import NON_LAYER_KEYS, RULES, LayerCounts, LayerSpec, RuleRegistry
from .simplify import simplify_parity
from .symbols import H, W, k
from .table import CountTable, LayerRow, Unsupported, convention_values

_NONTENSOR = object()


def _cache_key(model: Any, hparams: Mapping[str, Any], symbols: Mapping[str, Any] | None) -> Any:
    if isinstance(model, str):
        import models as zoo
        ident: Any = ("zoo", model, id(zoo.spec(model).factory))
    elif callable(model) and not hasattr(model, "parameters"):
        ident = ("factory", id(model))
    else:
        return None
    try:
        return (ident, tuple(sorted(hparams.items())), tuple(sorted((symbols or {}).items(), key=str)))
    except TypeError:
        return None


@functools.lru_cache(maxsize=64)
def _cached_capture(key: Any, model: Any, hparams: tuple, symbols: tuple) -> CapturedGraph:
    return capture(model, hparams=dict(hparams), symbols=dict(symbols))


def _capture(model: Any, hparams: Mapping[str, Any], symbols: Mapping[str, Any] | None,
             registry: RuleRegistry) -> CapturedGraph:
    key = _cache_key(model, hparams, symbols) if registry is RULES else None
    if key is None:
        return capture(model, hparams=hparams, symbols=symbols, registry=registry)
    return _cached_capture(key, model, tuple(sorted(hparams.items())), tuple(sorted((symbols or {}).items(), key=str)))


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
        if isinstance(s, bool) or not isinstance(s, (int, sp.Basic)):
            raise ArchcountError(f"sizes must be integers or sympy expressions, got {s!r}", argument="input_size")
        if isinstance(s, int) or (isinstance(s, sp.Basic) and s.is_number):
            if int(s) < 1:
                raise ArchcountError(f"sizes must be >= 1, got {s}", argument="input_size")
            s = int(s)
            if spec is not None and not spec.valid_size(s):
                raise ArchcountError(f"input {axis}={s} is not valid for this model's depth; {axis} must be "
                                     f"{spec.size_rule()}", model=model, argument="input_size")
        out.append(s)
    return tuple(out)


def count(model: Any, *, convention: str | Convention = "weighted", input_size: Any = (H, W),
          switches: Any = None, symbols: Mapping[str, Any] | None = None, strict: bool = False,
          registry: RuleRegistry = RULES, **hparams: Any) -> CountTable:
    """Exact weights, outputs and connections of every layer of ``model``.

    ``model`` is a zoo name, a factory taking the zoo hyperparameters (``kernel``,
    ``num_in_channels``, ``num_filters``, ``num_colours``), or a concrete ``nn.Module`` (channel
    counts are then numbers).  Hyperparameters not fixed in ``hparams`` become the symbols k,
    NIC, NF, NC; ``symbols={"N": sympy.Symbol("N", positive=True, integer=True)}`` lifts others.
    Unknown layers are listed in ``table.unsupported`` (and raise with ``strict=True``).

    >>> from analysis import count, H, W
    >>> count("conv_transpose", kernel=3).simplified(4).row("block1.0").out_shape
    (NF, H/2, W/2)
    """
    graph = _capture(model, hparams, symbols, registry)
    conv = get_convention(convention, switches)
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        sizes = input_sizes(input_size, spec=spec, model=model)
        return propagate(graph, sizes, conv, strict=strict, registry=registry, size_multiple=spec.size_multiple)
    return propagate(graph, input_sizes(input_size), conv, strict=strict, registry=registry)


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


def propagate(graph: CapturedGraph, sizes: Sequence[Any], conv: Convention, *, strict: bool = False,
              registry: RuleRegistry = RULES, size_multiple: int = 1) -> CountTable:
    """Apply the rules along the graph from an input of spatial ``sizes``."""
    env: dict[str, Any] = {}
    paths: dict[str, str] = {}
    rows: list[LayerRow] = []
    unsupported: list[Unsupported] = []
    assumptions: list[str] = list(graph.assumptions)
    constraints: list[tuple[str, Any, Any]] = []
    input_shape = (graph.input_channels, *sizes)
    parity = graph.kernel_parity if k in _free(graph.hparams.values()) else None

    def tidy(x: Any) -> Any:
        if parity and isinstance(x, sp.Basic) and k in x.free_symbols:
            x = simplify_parity(x, parity)
        if isinstance(x, sp.Basic) and x.is_Integer:
            return int(x)
        return x

    for node in graph.nodes:
        paths[node.name] = node.path
        if node.op == "placeholder":
            env[node.name] = tuple(input_shape)
            continue
        if node.op == "output":
            continue
        if node.key in NON_LAYER_KEYS:
            env[node.name] = _NONTENSOR
            continue
        in_names = [n for n in node.inputs if env.get(n) is not _NONTENSOR]
        in_shapes = [env.get(n) for n in in_names]
        found = registry.resolve(node.mro_keys)
        if found is None:
            reason = f"no counting rule for {node.type_name}"
            if node.n_params:
                reason += f" (it has {node.n_params} parameters, not counted)"
            if node.op == "get_attr":
                reason = f"reads a parameter or buffer directly ({node.params.get('target')})"
            if strict:
                raise ArchcountError(reason + "; register one with analysis.rules.register_rule", model=graph.model,
                                     layer=node.path)
            unsupported.append(Unsupported(node.path, node.type_name, reason))
            env[node.name] = None
            continue
        missing = [paths.get(n, n) for n, s in zip(in_names, in_shapes) if s is None]
        if missing:
            reason = f"its input comes from unsupported layer {', '.join(missing)}"
            if strict:
                raise ArchcountError(reason, model=graph.model, layer=node.path)
            unsupported.append(Unsupported(node.path, node.type_name, reason))
            env[node.name] = None
            continue
        spec = LayerSpec(node.path, node.key, node.mro_keys, node.params, tuple(in_names), node.type_name)
        try:
            counts = found[1](spec, in_shapes)
        except ArchcountError as exc:
            raise exc.with_context(model=graph.model, layer=node.path,
                                   shapes={"input": [("BS",) + tuple(s) for s in in_shapes]}) from None
        if parity:
            counts = replace(counts, out_shape=tuple(tidy(x) for x in counts.out_shape), weight=tidy(counts.weight),
                             bias=tidy(counts.bias), affine=tidy(counts.affine), outputs=tidy(counts.outputs),
                             connections={key: (None if v is None else tidy(v)) for key, v in counts.connections.items()})
        for s in counts.out_shape:
            if isinstance(s, int) and s < 1:
                raise ArchcountError(f"output size {s}: the input is too small for this layer", model=graph.model,
                                     layer=node.path, shapes={"input": [("BS",) + tuple(x) for x in in_shapes]})
        env[node.name] = tuple(counts.out_shape)
        assumptions.extend(a for a in counts.assumptions if a not in assumptions)
        constraints.extend((node.path, tidy(a), tidy(b)) for a, b in counts.constraints)
        w, o, c = _values(counts, conv, node.path)
        rows.append(LayerRow(node.path, node.type_name, tuple(tuple(s) for s in in_shapes), tuple(counts.out_shape),
                             counts, w, o, c, tuple(paths.get(n, n) for n in in_names)))
    assumptions.extend(_constraint_text(constraints, size_multiple, graph.symbols))
    if unsupported:
        assumptions.append(f"partial: {len(unsupported)} unsupported layer(s) not counted")
    return CountTable(graph.model, conv, dict(graph.hparams), tuple(input_shape), tuple(rows), tuple(unsupported),
                      tuple(assumptions), dict(graph.symbols))


def _values(counts: LayerCounts, conv: Convention, path: str) -> tuple[Any, Any, Any]:
    """Convention values; a missing exact formula is deferred (None) until that convention is asked for."""
    try:
        return convention_values(counts, conv, path)
    except ArchcountError:
        raise


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
    from .capture import mro_keys, module_params
    from .rules import type_key
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
    found = registry_resolve(mro_keys(cls))
    if found is None:
        if not list(layer.children()):
            raise fail(f"no counting rule for {name}; register one with analysis.rules.register_rule", "layer")
        if len(shape) < 3:
            raise fail("a container needs a batched input [BS, C, ...]")
        table = count(layer, input_size=shape[2:], strict=True)
        if _same_size(table.input_shape[0], shape[1]) is False:
            raise fail(f"expects {table.input_shape[0]} input channels, got {shape[1]}")
        return (shape[0], *table.rows[-1].out_shape)
    spec = LayerSpec(name, type_key(cls), mro_keys(cls), module_params(layer), (), name)
    batched = _batched(name, shape)
    if batched is None:
        raise fail(f"{name} needs a batch dimension; got a {len(shape)}-d input")
    per_sample = shape[1:] if batched else shape
    try:
        counts = found[1](spec, [tuple(per_sample)])
    except ArchcountError as exc:
        raise ArchcountError(exc.reason, layer=name, argument=exc.argument or "input", shapes={"input": shape},
                             hint=exc.hint) from None
    return (shape[0], *counts.out_shape) if batched else tuple(counts.out_shape)


def registry_resolve(keys: Sequence[str]) -> Any:
    return RULES.resolve(keys)


def _same_size(a: Any, b: Any) -> bool | None:
    diff = sp.sympify(a) - sp.sympify(b)
    return True if diff == 0 else (False if diff.is_number else None)


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

__all__ = ["SolveResult", "count", "input_sizes", "output_shape", "propagate", "solve_for"]
