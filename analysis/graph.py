"""The captured graph of a real forward, torch-free: what :mod:`analysis.trace` records.

A :class:`CapturedGraph` is a list of :class:`OpNode` in execution order.  Every node is one of

- ``input``: a tensor argument of the model's forward;
- ``module``: a call of a module that has a counting rule (a *leaf*: conv, BatchNorm, pooling,
  linear, attention, ...), recorded with the module's hyperparameters;
- ``function``: any other torch operation (``F.max_pool2d``, ``x.mean((2, 3))``, ``torch.cat``,
  ``x[:, :4]``, ``x * s``, ...), recorded with its arguments;
- ``param`` / ``buffer`` / ``const``: a tensor read in forward that no recorded op produced (a
  parameter such as a cls token, a registered buffer, a tensor created outside the forward).

Tensor arguments are :class:`TensorRef` (which node produced them, and which of its outputs);
integers computed from tensor sizes (``x.shape[-2:]``, ``x.size(0) // 2``) are :class:`SizeExpr`
(the expression in *dimension symbols* :func:`dim_symbol` and its value at capture time), so that
counting can follow them symbolically.

>>> ref = TensorRef("n3", 0)
>>> dim_symbol("n3", 0, 2)
_d_n3_0_2
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import sympy as sp


@dataclass(frozen=True)
class TensorRef:
    """A tensor argument: output ``index`` of node ``node`` (``shape`` only for param/buffer/const)."""

    node: str
    index: int = 0
    shape: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class SizeExpr:
    """An integer computed from tensor sizes: ``expr`` in dimension symbols, ``value`` when captured."""

    expr: Any
    value: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SliceArg:
    """A ``slice`` inside an indexing argument (bounds may be ints, SizeExpr or None)."""

    start: Any = None
    stop: Any = None
    step: Any = None


@dataclass(frozen=True)
class OpNode:
    """One recorded step of the forward."""

    name: str                              #: unique id in execution order ("n0", "n1", ...)
    kind: str                              #: input | module | function | param | buffer | const | output
    key: str                               #: rule-registry key of the type or function
    mro_keys: tuple[str, ...]              #: keys along the MRO (modules); (key,) otherwise
    type_name: str                         #: "Conv2d", "max_pool2d", "Tensor.view", ...
    path: str                              #: display path ("layer1.0.relu#2", "layer1.0:add", "cat_1")
    params: Mapping[str, Any]              #: module hyperparameters, or {"args": ..., "kwargs": ...}
    inputs: tuple[TensorRef, ...] = ()     #: tensor arguments in order (activations, params, consts)
    out_shapes: tuple[tuple[int, ...], ...] = ()   #: concrete output shapes at capture (batch included)
    module: str = ""                       #: path of the module the op runs in ("" = the root)
    call: int = 0                          #: 1-based call index of that module (leaf modules: their own)
    source: str = ""                       #: "file.py:123" of the user code that issued the op
    param_names: tuple[str, ...] = ()      #: parameters a leaf module owns (qualified, deduplicated)
    param_numel: tuple[int, ...] = ()      #: their numel at capture
    n_params: int = 0

    @property
    def op(self) -> str:
        """The fx-style op name (kept for code written against the fx capture)."""
        return {"input": "placeholder", "module": "call_module", "function": "call_function",
                "param": "get_attr", "buffer": "get_attr", "const": "get_attr"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class InputSpec:
    """One tensor input of the model: its full symbolic shape (batch first) and capture sizes."""

    shape: tuple[Any, ...]                 #: symbolic, batch included: (B, C, H, W)
    dtype: str = "float32"


@dataclass(frozen=True)
class CapturedGraph:
    """A model's forward with symbolic hyperparameters."""

    model: str
    nodes: tuple[OpNode, ...]
    hparams: Mapping[str, Any]             #: name -> value or symbol
    input_channels: Any
    symbols: Mapping[str, sp.Symbol] = field(default_factory=dict)
    kernel_parity: str | None = None       #: "odd"/"even" when only one parity builds
    assumptions: tuple[str, ...] = ()
    inputs: tuple[InputSpec, ...] = ()     #: the inputs counting starts from (symbolic shapes)
    captures: tuple[Mapping[str, Any], ...] = ()   #: per capture: {"sizes": {...}, "shapes": {node: shapes}}
    outputs: tuple[TensorRef, ...] = ()    #: the tensors the forward returned
    unused_params: tuple[tuple[str, Any], ...] = ()  #: parameters the forward never read: (name, numel)
    notes: tuple[str, ...] = ()
    conditions: tuple[tuple[str, Any, Any, bool, str], ...] = ()  #: size comparisons the forward branched on

    def node(self, name: str) -> OpNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def __iter__(self) -> Iterator[OpNode]:
        return iter(self.nodes)


def dim_symbol(node: str, index: int, axis: int) -> sp.Symbol:
    """The symbol for axis ``axis`` of output ``index`` of ``node`` (positive integer)."""
    return sp.Symbol(f"_d_{node}_{index}_{axis}", integer=True, positive=True)


def parse_dim_symbol(sym: sp.Symbol) -> tuple[str, int, int] | None:
    name = sym.name
    if not name.startswith("_d_"):
        return None
    node, index, axis = name[3:].rsplit("_", 2)
    return node, int(index), int(axis)


def resolve_sizes(value: Any, shape_of: Any) -> Any:
    """Replace every :class:`SizeExpr` in ``value`` by its expression in the shapes ``shape_of(node, index)``."""
    if isinstance(value, SizeExpr):
        expr = sp.sympify(value.expr)
        subs = {}
        for sym in expr.free_symbols:
            parsed = parse_dim_symbol(sym)
            if parsed is None:
                continue
            shape = shape_of(parsed[0], parsed[1])
            subs[sym] = shape[parsed[2]]
        out = expr.xreplace(subs) if subs else expr
        if isinstance(out, sp.Basic) and out.is_Integer:
            return int(out)
        return out
    if isinstance(value, tuple):
        return tuple(resolve_sizes(v, shape_of) for v in value)
    if isinstance(value, list):
        return [resolve_sizes(v, shape_of) for v in value]
    if isinstance(value, dict):
        return {k: resolve_sizes(v, shape_of) for k, v in value.items()}
    if isinstance(value, SliceArg):
        return SliceArg(resolve_sizes(value.start, shape_of), resolve_sizes(value.stop, shape_of),
                        resolve_sizes(value.step, shape_of))
    return value


__all__ = ["CapturedGraph", "InputSpec", "OpNode", "SizeExpr", "SliceArg", "TensorRef", "dim_symbol",
           "parse_dim_symbol", "resolve_sizes"]
