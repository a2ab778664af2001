"""Operator-level counting rules: functional layers, tensor methods, indexing, arithmetic, attention.

These rules see **whole shapes**, batch included wherever it is (``full_shape=True`` in the
registry), and return counts for the whole batch; counting divides outputs and connections by
the batch size.  Functional forms of layers (``F.conv2d``, ``F.max_pool2d``, ``F.layer_norm``,
...) delegate to the module rules of :mod:`analysis.rules.layers`, so a layer counts the same
whether it is a module or a call in ``forward``.

Arguments are in ``spec.params["args"]`` / ``["kwargs"]`` as recorded, with tensors as
:class:`~analysis.graph.TensorRef` (their shapes come in ``in_shapes``, aligned with
``spec.refs``) and sizes read from tensors already resolved to expressions.

>>> from analysis.graph import TensorRef
>>> from analysis.rules.core import LayerSpec
>>> x = TensorRef("n0")
>>> spec = LayerSpec("view", "Tensor.view", ("Tensor.view",), {"args": (x, 2, -1), "kwargs": {}}, refs=(x,))
>>> RULES.resolve(("Tensor.view",))[1](spec, [(2, 8, 4, 4)]).out_shape
(2, 128)
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..graph import SliceArg, TensorRef
from .core import RULES, LayerCounts, LayerSpec, Shape, _is_num, _num, _same, _tuple, broadcast_shapes, prod
from .layers import (adaptive_pool_rule_factory, conv_rule_factory, linear_rule, pixel_shuffle_shape,
                     pool_rule_factory, transposed_rule_factory, upsample_rule)

_CONV = {nd: conv_rule_factory(nd) for nd in (1, 2, 3)}
_TCONV = {nd: transposed_rule_factory(nd) for nd in (1, 2, 3)}
_POOL = {(nd, kind): pool_rule_factory(nd, kind) for nd in (1, 2, 3) for kind in ("max", "avg")}
_ADAPTIVE = {nd: adaptive_pool_rule_factory(nd) for nd in (1, 2, 3)}


def op(*keys: str) -> Callable[[Callable[..., LayerCounts]], Callable[..., LayerCounts]]:
    """Register a full-shape operator rule for ``keys``."""
    def deco(fn: Callable[..., LayerCounts]) -> Callable[..., LayerCounts]:
        for key in keys:
            RULES.add(key, fn, full_shape=True)
        return fn
    return deco


# --------------------------------------------------------------------------- argument helpers

def _args(spec: LayerSpec) -> tuple[list[Any], dict[str, Any]]:
    return list(spec.params.get("args", ())), dict(spec.params.get("kwargs", {}))


def bind(spec: LayerSpec, names: Sequence[str], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Positional and keyword arguments by name (``defaults`` for the missing ones)."""
    args, kwargs = _args(spec)
    out = dict(defaults or {})
    for name, value in zip(names, args):
        out[name] = value
    out.update(kwargs)
    return out


def _shape(spec: LayerSpec, in_shapes: Sequence[Shape], value: Any, what: str = "input") -> Shape:
    if isinstance(value, TensorRef):
        return tuple(spec.shape_of(value, in_shapes))
    raise ArchcountError(f"expects a tensor as {what}", layer=spec.path, argument=what)


def _index(spec: LayerSpec, ref: Any) -> int | None:
    for i, r in enumerate(spec.refs):
        if r == ref:
            return i
    return None


def _is_param(spec: LayerSpec, value: Any) -> bool:
    return isinstance(value, TensorRef) and spec.kind_of(value) == "param"


def _dim(d: Any, ndim: int, spec: LayerSpec) -> int:
    if not _is_num(d):
        raise ArchcountError(f"dim {d} must be a number", layer=spec.path, argument="dim")
    d = int(d)
    if not -ndim <= d < max(ndim, 1):
        raise ArchcountError(f"dim {d} out of range for a {ndim}-d tensor", layer=spec.path, argument="dim")
    return d % ndim if ndim else 0


def _dims(value: Any, ndim: int, spec: LayerSpec) -> list[int]:
    if isinstance(value, (tuple, list)):
        return sorted({_dim(v, ndim, spec) for v in value})
    return [_dim(value, ndim, spec)]


def _scaled(counts: LayerCounts, factor: Any, claimed: Iterable[tuple[int, str]] = ()) -> LayerCounts:
    """Counts of a per-sample rule applied to every item of the leading dimension (full-shape result)."""
    f = sp.sympify(factor)

    def mul(v: Any) -> Any:
        return None if v is None else _num(sp.expand(f * v))

    return replace(counts, out_shape=(factor, *counts.out_shape), outputs=mul(counts.outputs),
                   connections={k: mul(v) for k, v in counts.connections.items()}, products=mul(counts.products),
                   claimed=tuple(claimed))


def _numel(shape: Sequence[Any]) -> Any:
    return prod(shape)


def _claims(spec: LayerSpec, fields: Mapping[str, Any]) -> list[tuple[int, str]]:
    out = []
    for field_name, value in fields.items():
        if _is_param(spec, value):
            idx = _index(spec, value)
            if idx is not None:
                out.append((idx, field_name))
    return out


def _param_numel(spec: LayerSpec, in_shapes: Sequence[Shape], value: Any) -> Any:
    if isinstance(value, TensorRef) and spec.kind_of(value) == "param":
        return _numel(spec.shape_of(value, in_shapes))
    return 0


# --------------------------------------------------------------------------- functional layers

@op("torch.conv1d", "torch.conv2d", "torch.conv3d")
def conv_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.convNd(input, weight, bias, stride, padding, dilation, groups)``: the conv rule."""
    b = bind(spec, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
             dict(bias=None, stride=1, padding=0, dilation=1, groups=1))
    x, w = _shape(spec, in_shapes, b["input"]), _shape(spec, in_shapes, b["weight"], "weight")
    nd = len(w) - 2
    groups = b["groups"]
    pad = b["padding"] if isinstance(b["padding"], str) else _tuple(b["padding"], nd)
    params = dict(in_channels=_num(w[1] * groups), out_channels=w[0], kernel_size=tuple(w[2:]),
                  stride=_tuple(b["stride"], nd), padding=pad, dilation=_tuple(b["dilation"], nd), groups=groups,
                  has_bias=b["bias"] is not None)
    inner = _CONV[nd](replace(spec, params=params), [x[1:]])
    return _weights_or_products(spec, _scaled(inner, x[0]), b)


@op("torch.conv_transpose1d", "torch.conv_transpose2d", "torch.conv_transpose3d")
def conv_transpose_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.conv_transposeNd(input, weight, bias, stride, padding, output_padding, groups, dilation)``."""
    b = bind(spec, ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
             dict(bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1))
    x, w = _shape(spec, in_shapes, b["input"]), _shape(spec, in_shapes, b["weight"], "weight")
    nd = len(w) - 2
    groups = b["groups"]
    params = dict(in_channels=w[0], out_channels=_num(w[1] * groups), kernel_size=tuple(w[2:]),
                  stride=_tuple(b["stride"], nd), padding=_tuple(b["padding"], nd),
                  output_padding=_tuple(b["output_padding"], nd), dilation=_tuple(b["dilation"], nd),
                  groups=groups, has_bias=b["bias"] is not None)
    inner = _TCONV[nd](replace(spec, params=params), [x[1:]])
    return _weights_or_products(spec, _scaled(inner, x[0]), b)


@op("torch.nn.functional.linear")
def linear_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.linear(input, weight, bias)``: the Linear rule on every leading position."""
    b = bind(spec, ("input", "weight", "bias"), dict(bias=None))
    x, w = _shape(spec, in_shapes, b["input"]), _shape(spec, in_shapes, b["weight"], "weight")
    params = dict(in_features=w[-1], out_features=w[0] if len(w) == 2 else 1, has_bias=b["bias"] is not None)
    if len(x) == 1:
        inner = linear_rule(replace(spec, params=params), [x])
        return _weights_or_products(spec, replace(inner, claimed=()), b)
    inner = linear_rule(replace(spec, params=params), [x[1:]])
    return _weights_or_products(spec, _scaled(inner, x[0]), b)


def _weights_or_products(spec: LayerSpec, counts: LayerCounts, b: Mapping[str, Any]) -> LayerCounts:
    """A layer whose weight is a parameter claims it; one whose weight is an activation is a product."""
    if _is_param(spec, b.get("weight")):
        return replace(counts, claimed=tuple(_claims(spec, {"weight": b.get("weight"), "bias": b.get("bias")})))
    conn = counts.connections.get("include")
    return replace(counts, category="matmul", weight=0, bias=0, connections={}, products=conn,
                   claimed=tuple(_claims(spec, {"bias": b.get("bias")})),
                   notes=counts.notes + ("its weight is an activation, not a parameter: an activation x "
                                         "activation product",))


def _norm(spec: LayerSpec, in_shapes: Sequence[Shape], x: Any, weight: Any, bias: Any,
          check: Callable[[Shape], None] | None = None) -> LayerCounts:
    shape = _shape(spec, in_shapes, x)
    if check is not None:
        check(shape)
    outputs = _numel(shape)
    affine = _num(_param_numel(spec, in_shapes, weight) + _param_numel(spec, in_shapes, bias))
    return LayerCounts("norm", shape, affine=affine, outputs=outputs,
                       connections={"include": outputs, "exclude": outputs},
                       claimed=tuple(_claims(spec, {"affine": weight, "affine_b": bias})))


@op("torch.nn.functional.batch_norm")
def batch_norm_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "running_mean", "running_var", "weight", "bias"), dict(weight=None, bias=None))
    return _norm(spec, in_shapes, b["input"], b["weight"], b["bias"])


@op("torch.nn.functional.instance_norm")
def instance_norm_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "running_mean", "running_var", "weight", "bias"), dict(weight=None, bias=None))
    return _norm(spec, in_shapes, b["input"], b["weight"], b["bias"])


@op("torch.nn.functional.group_norm")
def group_norm_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "num_groups", "weight", "bias"), dict(weight=None, bias=None))
    return _norm(spec, in_shapes, b["input"], b["weight"], b["bias"])


@op("torch.nn.functional.layer_norm", "torch.nn.functional.rms_norm")
def layer_norm_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.layer_norm(input, normalized_shape, weight, bias)`` in any layout (channels-last included)."""
    b = bind(spec, ("input", "normalized_shape", "weight", "bias"), dict(weight=None, bias=None))
    norm = _tuple(b["normalized_shape"], 1)

    def check(shape: Shape) -> None:
        if len(shape) < len(norm) or any(_same(a, c) is False for a, c in zip(shape[-len(norm):], norm)):
            raise ArchcountError(f"normalized_shape {tuple(norm)} does not match the input's last dims",
                                 layer=spec.path, argument="input", shapes={"input": shape})
    return _norm(spec, in_shapes, b["input"], b["weight"], b.get("bias"), check)


@op("torch.nn.functional.local_response_norm")
def lrn_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    return _norm(spec, in_shapes, bind(spec, ("input",))["input"], None, None)


# --------------------------------------------------------------------------- pooling and resampling

def _pool(kind: str, nd: int) -> Callable[[LayerSpec, Sequence[Shape]], LayerCounts]:
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices") if kind == "max" \
        else ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")

    def pool_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        b = bind(spec, names, dict(stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False))
        x = _shape(spec, in_shapes, b["input"])
        stride = b["stride"] if b["stride"] not in (None, (), []) else b["kernel_size"]
        params = dict(kernel_size=_tuple(b["kernel_size"], nd), stride=_tuple(stride, nd),
                      padding=_tuple(b["padding"], nd), dilation=_tuple(b.get("dilation", 1), nd),
                      ceil_mode=bool(b["ceil_mode"]))
        counts = _scaled(_POOL[(nd, kind)](replace(spec, params=params), [x[1:]]), x[0])
        if b.get("return_indices"):
            counts = replace(counts, out_shapes=(counts.out_shape, counts.out_shape))
        return counts

    pool_op.__name__ = f"{kind}_pool{nd}d_op"
    return pool_op


def _adaptive(nd: int) -> Callable[[LayerSpec, Sequence[Shape]], LayerCounts]:
    def adaptive_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        b = bind(spec, ("input", "output_size", "return_indices"), dict(return_indices=False))
        x = _shape(spec, in_shapes, b["input"])
        counts = _scaled(_ADAPTIVE[nd](replace(spec, params={"output_size": b["output_size"]}), [x[1:]]), x[0])
        if b.get("return_indices"):
            counts = replace(counts, out_shapes=(counts.out_shape, counts.out_shape))
        return counts

    adaptive_op.__name__ = f"adaptive_pool{nd}d_op"
    return adaptive_op


for _nd in (1, 2, 3):
    for _k in (f"torch.nn.functional.max_pool{_nd}d", f"torch.max_pool{_nd}d",
               f"torch.nn.functional.max_pool{_nd}d_with_indices"):
        RULES.add(_k, _pool("max", _nd), full_shape=True)
    for _k in (f"torch.nn.functional.avg_pool{_nd}d", f"torch.avg_pool{_nd}d"):
        RULES.add(_k, _pool("avg", _nd), full_shape=True)
    for _k in (f"torch.nn.functional.adaptive_avg_pool{_nd}d", f"torch.adaptive_avg_pool{_nd}d",
               f"torch.nn.functional.adaptive_max_pool{_nd}d", f"torch.adaptive_max_pool{_nd}d",
               f"torch.nn.functional.adaptive_max_pool{_nd}d_with_indices"):
        RULES.add(_k, _adaptive(_nd), full_shape=True)


_REDUCTIONS = ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "logsumexp", "nansum",
               "nanmean", "median", "norm", "all", "any", "argmax", "argmin", "count_nonzero")


@op(*[f"Tensor.{n}" for n in _REDUCTIONS], *[f"torch.{n}" for n in _REDUCTIONS])
def reduction_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``x.mean((2, 3))``, ``torch.amax(x, dim=(-2, -1), keepdim=True)``, ``x.max(1)``...: a pooling.

    Every input element is read once (one connection per input element); the output is the
    reduced shape.  ``torch.max(a, b)`` with two tensors is elementwise.
    """
    args, kwargs = _args(spec)
    tensors = [a for a in args if isinstance(a, TensorRef)]
    if len(tensors) > 1 and spec.key.split(".")[-1] in ("max", "min"):
        return elementwise_op(spec, in_shapes)
    x = _shape(spec, in_shapes, args[0] if args else kwargs.get("input"))
    name = spec.key.split(".")[-1]
    dim = kwargs.get("dim", kwargs.get("axis"))
    rest = args[1:]
    if name == "norm":  # norm(input, p, dim, keepdim)
        dim = kwargs.get("dim", rest[1] if len(rest) > 1 else None)
        keepdim = kwargs.get("keepdim", rest[2] if len(rest) > 2 else False)
    else:
        if dim is None and rest and not isinstance(rest[0], bool) and not isinstance(rest[0], str):
            dim = rest[0]
        keepdim = kwargs.get("keepdim", next((r for r in rest[1:] if isinstance(r, bool)), False))
    if dim is None or dim == ():
        dims = list(range(len(x)))
    else:
        dims = _dims(dim, len(x), spec)
    out = tuple((1 if keepdim else None) if i in dims else s for i, s in enumerate(x))
    out = tuple(s for s in out if s is not None)
    counts = LayerCounts("resample", out, outputs=_numel(out),
                         connections={"include": _numel(x), "exclude": _numel(x)})
    if name in ("max", "min", "median") and dim is not None and dim != ():
        counts = replace(counts, out_shapes=(out, out))
    return counts


@op("torch.nn.functional.interpolate", "torch.nn.functional.upsample")
def interpolate_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.interpolate(x, size=..., scale_factor=..., mode=...)``; the size may come from another tensor."""
    b = bind(spec, ("input", "size", "scale_factor", "mode", "align_corners"),
             dict(size=None, scale_factor=None, mode="nearest", align_corners=None))
    return _resample(spec, in_shapes, b)


@op("torch.nn.functional.upsample_nearest")
def upsample_nearest_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "size", "scale_factor"), dict(size=None, scale_factor=None))
    return _resample(spec, in_shapes, dict(b, mode="nearest"))


@op("torch.nn.functional.upsample_bilinear")
def upsample_bilinear_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "size", "scale_factor"), dict(size=None, scale_factor=None))
    return _resample(spec, in_shapes, dict(b, mode="bilinear", align_corners=True))


def _resample(spec: LayerSpec, in_shapes: Sequence[Shape], b: Mapping[str, Any]) -> LayerCounts:
    x = _shape(spec, in_shapes, b["input"])
    params = {"size": b.get("size"), "scale_factor": b.get("scale_factor"), "mode": b.get("mode", "nearest"),
              "align_corners": b.get("align_corners")}
    return _scaled(upsample_rule(replace(spec, params=params), [x[1:]]), x[0])


# --------------------------------------------------------------------------- structure

def _structural(shape: Shape, *, shapes: Sequence[Shape] = (), notes: tuple[str, ...] = (),
                constraints: tuple = ()) -> LayerCounts:
    shape = tuple(_num(sp.expand(s)) if isinstance(s, sp.Basic) else s for s in shape)
    return LayerCounts("structural", shape, outputs=_numel(shape), out_shapes=tuple(tuple(s) for s in shapes),
                       notes=notes, constraints=constraints)


def _sizes_arg(args: Sequence[Any]) -> list[Any]:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return list(args[0])
    return list(args)


def _target(spec: LayerSpec, x: Shape, target: Sequence[Any]) -> Shape:
    target = list(target)
    numel = _numel(x)
    if sum(1 for t in target if _is_num(t) and int(t) == -1) > 1:
        raise ArchcountError("only one dimension can be -1", layer=spec.path)
    known = prod([t for t in target if not (_is_num(t) and int(t) == -1)])
    out = []
    for t in target:
        if _is_num(t) and int(t) == -1:
            v = sp.sympify(numel) / sp.sympify(known)
            v = sp.factor_terms(sp.cancel(v)) if not v.is_Integer and v.free_symbols else v
            out.append(_num(v))
        else:
            out.append(_num(t))
    return tuple(out)


@op("Tensor.view", "Tensor.reshape", "torch.reshape", "Tensor.view_as", "Tensor.reshape_as")
def view_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """view / reshape to any shape (``-1`` inferred); view_as / reshape_as take the other's shape."""
    args, kwargs = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    if spec.key.endswith("_as"):
        return _structural(_shape(spec, in_shapes, args[1] if len(args) > 1 else kwargs.get("other")))
    target = _sizes_arg(args[1:]) if len(args) > 1 else list(kwargs.get("shape", kwargs.get("size", ())))
    if len(target) == 1 and isinstance(target[0], str):  # view(dtype)
        return _structural(x, notes=(f"view as {target[0]}",))
    return _structural(_target(spec, x, target))


@op("torch.flatten", "Tensor.flatten")
def flatten_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "start_dim", "end_dim"), dict(start_dim=0, end_dim=-1))
    x = _shape(spec, in_shapes, b["input"])
    if not x:
        return _structural((1,))
    s, e = _dim(b["start_dim"], len(x), spec), _dim(b["end_dim"], len(x), spec)
    return _structural((*x[:s], prod(x[s:e + 1]), *x[e + 1:]))


@op("torch.unflatten", "Tensor.unflatten")
def unflatten_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim", "sizes"))
    x = _shape(spec, in_shapes, b["input"])
    d = _dim(b["dim"], len(x), spec)
    sizes = _target(spec, (x[d],), list(b["sizes"]))
    return _structural((*x[:d], *sizes, *x[d + 1:]))


@op("Tensor.permute", "torch.permute")
def permute_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, kwargs = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    dims = _sizes_arg(args[1:]) if len(args) > 1 else list(kwargs.get("dims", ()))
    dims = [_dim(d, len(x), spec) for d in dims]
    if sorted(dims) != list(range(len(x))):
        raise ArchcountError(f"permute dims {dims} are not a permutation of {len(x)} dims", layer=spec.path)
    return _structural(tuple(x[d] for d in dims))


@op("Tensor.transpose", "torch.transpose", "Tensor.swapaxes", "torch.swapaxes", "Tensor.swapdims",
    "torch.swapdims", "Tensor.transpose_")
def transpose_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim0", "dim1"))
    x = list(_shape(spec, in_shapes, b["input"]))
    a, c = _dim(b["dim0"], len(x), spec), _dim(b["dim1"], len(x), spec)
    x[a], x[c] = x[c], x[a]
    return _structural(tuple(x))


@op("Tensor.t", "torch.t", "Tensor.T", "Tensor.mT", "Tensor.H", "Tensor.mH", "Tensor.adjoint")
def t_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    x = list(_shape(spec, in_shapes, _args(spec)[0][0]))
    if spec.key.endswith(("mT", "mH", "adjoint")) or len(x) > 2 and spec.key.endswith(("t",)):
        x[-1], x[-2] = x[-2], x[-1]
        return _structural(tuple(x))
    return _structural(tuple(reversed(x)))


@op("Tensor.movedim", "torch.movedim", "Tensor.moveaxis", "torch.moveaxis")
def movedim_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "source", "destination"))
    x = _shape(spec, in_shapes, b["input"])
    n = len(x)
    src = [_dim(d, n, spec) for d in _tuple(b["source"], 1)]
    dst = [_dim(d, n, spec) for d in _tuple(b["destination"], 1)]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _structural(tuple(x[i] for i in order))


@op("Tensor.squeeze", "torch.squeeze", "Tensor.squeeze_")
def squeeze_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim"), dict(dim=None))
    x = _shape(spec, in_shapes, b["input"])
    if b["dim"] is None:
        return _structural(tuple(s for s in x if not (_is_num(s) and int(s) == 1)))
    dims = _dims(b["dim"], len(x), spec)
    return _structural(tuple(s for i, s in enumerate(x) if not (i in dims and _is_num(s) and int(s) == 1)))


@op("Tensor.unsqueeze", "torch.unsqueeze", "Tensor.unsqueeze_")
def unsqueeze_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim"))
    x = list(_shape(spec, in_shapes, b["input"]))
    d = _dim(b["dim"], len(x) + 1, spec)
    x.insert(d, 1)
    return _structural(tuple(x))


@op("Tensor.expand", "torch.broadcast_to", "Tensor.broadcast_to")
def expand_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, kwargs = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    sizes = _sizes_arg(args[1:]) if len(args) > 1 else list(kwargs.get("size", kwargs.get("shape", ())))
    lead = len(sizes) - len(x)
    out = []
    for i, s in enumerate(sizes):
        if _is_num(s) and int(s) == -1:
            out.append(x[i - lead])
        else:
            out.append(s)
    return _structural(tuple(out))


@op("Tensor.expand_as")
def expand_as_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, kwargs = _args(spec)
    return _structural(_shape(spec, in_shapes, args[1] if len(args) > 1 else kwargs.get("other")))


@op("Tensor.repeat", "torch.tile", "Tensor.tile")
def repeat_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, kwargs = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    reps = _sizes_arg(args[1:]) if len(args) > 1 else list(kwargs.get("dims", kwargs.get("repeats", ())))
    n = max(len(reps), len(x))
    x = (1,) * (n - len(x)) + tuple(x)
    reps = [1] * (n - len(reps)) + list(reps)
    return _structural(tuple(_num(a * r) for a, r in zip(x, reps)))


_IDENTITY_KEYS = [f"Tensor.{n}" for n in (
    "contiguous", "clone", "detach", "detach_", "to", "float", "double", "half", "bfloat16", "int", "long", "bool",
    "type", "type_as", "cpu", "cuda", "requires_grad_", "data", "__setitem__", "roll", "flip", "fliplr",
    "flipud", "masked_fill", "masked_fill_", "zero_", "fill_", "copy_", "retain_grad", "pin_memory", "coalesce",
    "channel_shuffle", "share_memory_", "record_stream", "__deepcopy__", "rot90")] + [
    "torch.clone", "torch.roll", "torch.flip", "torch.channel_shuffle", "torch.nn.functional.channel_shuffle",
    "torch.native_channel_shuffle", "torch.masked_fill", "torch.detach", "torch.rot90"]


@op(*_IDENTITY_KEYS)
def identity_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Copies, conversions, in-place fills, shuffles: the first tensor's shape (rot90 swaps two dims)."""
    args, _ = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    if spec.key.endswith("rot90"):
        k = args[1] if len(args) > 1 else 1
        dims = args[2] if len(args) > 2 else (0, 1)
        if int(k) % 2:
            x = list(x)
            a, c = (_dim(d, len(x), spec) for d in dims)
            x[a], x[c] = x[c], x[a]
            x = tuple(x)
    return _structural(x)


def _slice_len(n: Any, sl: SliceArg, spec: LayerSpec) -> Any:
    step = 1 if sl.step is None else sl.step
    if not _is_num(step) or int(step) <= 0:
        raise ArchcountError(f"slice step {step} must be a positive number", layer=spec.path)
    step = int(step)
    if _is_num(n) and (sl.start is None or _is_num(sl.start)) and (sl.stop is None or _is_num(sl.stop)):
        return len(range(*slice(None if sl.start is None else int(sl.start),
                                None if sl.stop is None else int(sl.stop), step).indices(int(n))))

    def bound(v: Any, default: Any) -> Any:
        if v is None:
            return default
        if _is_num(v) and int(v) < 0:
            return n + int(v)
        return v

    start, stop = bound(sl.start, 0), bound(sl.stop, n)
    if isinstance(stop, sp.Basic) and not _is_num(stop) and _is_num(n) is False:
        pass
    if _is_num(stop) and not _is_num(n):  # a fixed stop beyond nothing we know: assume it fits
        pass
    length = stop - start
    if step > 1:
        length = sp.ceiling(sp.sympify(length) / step)
    return _num(sp.expand(length)) if isinstance(length, sp.Basic) else length


def index_tuple(idx: Any, ndim: int) -> tuple:
    """An indexing argument as a tuple with ``...`` expanded to full slices."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_real = sum(1 for i in idx if i not in (None, "...") and not isinstance(i, bool))
    if "..." in idx:
        pos = idx.index("...")
        idx = idx[:pos] + (SliceArg(),) * (ndim - n_real) + idx[pos + 1:]
    return idx


@op("operator.getitem")
def getitem_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Indexing ``x[:, 0]``, slicing ``y[:, :4]``, ``x[..., None]``, index tensors on one axis."""
    args, _ = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    idx = index_tuple(args[1], len(x))
    out: list[Any] = []
    axis = 0
    tensor_shapes: list[Shape] = []
    tensor_at = None
    for i in idx:
        if i is None:
            out.append(1)
            continue
        if axis >= len(x):
            raise ArchcountError(f"too many indices for a {len(x)}-d tensor", layer=spec.path)
        if isinstance(i, SliceArg):
            out.append(_slice_len(x[axis], i, spec))
        elif isinstance(i, TensorRef):
            if tensor_at is None:
                tensor_at = len(out)
            tensor_shapes.append(_shape(spec, in_shapes, i, "index"))
        elif isinstance(i, bool):
            out.append(1)
            continue
        elif _is_num(i) or isinstance(i, sp.Basic):
            pass  # an integer index removes the axis
        elif isinstance(i, tuple):  # a list of indices
            if tensor_at is None:
                tensor_at = len(out)
            tensor_shapes.append((len(i),))
        else:
            raise ArchcountError(f"index {i!r} is not supported", layer=spec.path)
        axis += 1
    out.extend(x[axis:])
    if tensor_shapes:
        bshape = tensor_shapes[0]
        for s in tensor_shapes[1:]:
            bshape = broadcast_shapes(bshape, s, spec)
        out[tensor_at:tensor_at] = list(bshape)
    return _structural(tuple(out))


@op("Tensor.narrow", "torch.narrow")
def narrow_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim", "start", "length"))
    x = list(_shape(spec, in_shapes, b["input"]))
    x[_dim(b["dim"], len(x), spec)] = b["length"]
    return _structural(tuple(x))


@op("Tensor.select", "torch.select")
def select_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim", "index"))
    x = list(_shape(spec, in_shapes, b["input"]))
    del x[_dim(b["dim"], len(x), spec)]
    return _structural(tuple(x))


@op("Tensor.index_select", "torch.index_select")
def index_select_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim", "index"))
    x = list(_shape(spec, in_shapes, b["input"]))
    x[_dim(b["dim"], len(x), spec)] = _numel(_shape(spec, in_shapes, b["index"], "index"))
    return _structural(tuple(x))


@op("Tensor.chunk", "torch.chunk")
def chunk_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``x.chunk(c, dim)``: pieces of ceil(n/c) (the last one smaller); as many as the forward returned."""
    b = bind(spec, ("input", "chunks", "dim"), dict(dim=0))
    x = _shape(spec, in_shapes, b["input"])
    d = _dim(b["dim"], len(x), spec)
    n, c = x[d], int(b["chunks"])
    size = -(-int(n) // c) if _is_num(n) else sp.ceiling(sp.sympify(n) / c)
    pieces = spec.n_outputs if spec.n_outputs else c
    sizes = [size] * (pieces - 1) + [_num(sp.expand(n - size * (pieces - 1)))]
    shapes = [tuple(s if i == d else v for i, v in enumerate(x)) for s in sizes]
    return _structural(shapes[0], shapes=shapes)


@op("Tensor.split", "torch.split", "Tensor.split_with_sizes", "torch.split_with_sizes")
def split_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "split_size_or_sections", "dim"), dict(dim=0))
    if "split_size" in b:
        b["split_size_or_sections"] = b["split_size"]
    if "split_sizes" in b:
        b["split_size_or_sections"] = b["split_sizes"]
    x = _shape(spec, in_shapes, b["input"])
    d = _dim(b["dim"], len(x), spec)
    n, size = x[d], b["split_size_or_sections"]
    if isinstance(size, (tuple, list)):
        sizes = list(size)
    else:
        pieces = spec.n_outputs or 1
        sizes = [size] * (pieces - 1) + [_num(sp.expand(n - size * (pieces - 1)))]
    shapes = [tuple(s if i == d else v for i, v in enumerate(x)) for s in sizes]
    return _structural(shapes[0], shapes=shapes)


@op("Tensor.unbind", "torch.unbind")
def unbind_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim"), dict(dim=0))
    x = list(_shape(spec, in_shapes, b["input"]))
    d = _dim(b["dim"], len(x), spec)
    del x[d]
    return _structural(tuple(x), shapes=[tuple(x)] * (spec.n_outputs or 1))


@op("torch.cat", "torch.concat", "torch.concatenate")
def cat_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """torch.cat: concatenate along ``dim`` (any dim, batch counted); the other dims must agree."""
    b = bind(spec, ("tensors", "dim"), dict(dim=0))
    if "axis" in b:
        b["dim"] = b["axis"]
    shapes = [_shape(spec, in_shapes, t) for t in b["tensors"]]
    shapes = [s for s in shapes if not (len(s) == 1 and _is_num(s[0]) and int(s[0]) == 0)]  # torch skips empty
    if not shapes:
        raise ArchcountError("nothing to concatenate", layer=spec.path)
    d = _dim(b["dim"], len(shapes[0]), spec)
    out = list(shapes[0])
    constraints = []
    for other in shapes[1:]:
        if len(other) != len(out):
            raise ArchcountError("inputs have different numbers of dimensions", layer=spec.path, shapes=shapes)
        for i, (a, c) in enumerate(zip(out, other)):
            if i == d:
                continue
            same = _same(a, c)
            if same is False:
                raise ArchcountError(f"inputs disagree in dim {i} ({a} vs {c})", layer=spec.path, shapes=shapes)
            if same is None:
                constraints.append((a, c))
        out[d] = out[d] + other[d]
    return _structural(tuple(out), constraints=tuple(constraints))


@op("torch.stack")
def stack_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("tensors", "dim"), dict(dim=0))
    shapes = [_shape(spec, in_shapes, t) for t in b["tensors"]]
    out = list(shapes[0])
    d = _dim(b["dim"], len(out) + 1, spec)
    out.insert(d, len(shapes))
    constraints = tuple((a, c) for s in shapes[1:] for a, c in zip(shapes[0], s) if _same(a, c) is None)
    return _structural(tuple(out), constraints=constraints)


@op("torch.nn.functional.pad", "torch.constant_pad_nd")
def pad_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.pad(x, (left, right, top, bottom, ...))``: pairs from the last dim backwards."""
    b = bind(spec, ("input", "pad", "mode", "value"), dict(mode="constant"))
    x = list(_shape(spec, in_shapes, b["input"]))
    pads = list(b["pad"])
    for i in range(len(pads) // 2):
        axis = len(x) - 1 - i
        x[axis] = _num(sp.expand(x[axis] + pads[2 * i] + pads[2 * i + 1]))
    return _structural(tuple(x))


@op("torch.pixel_shuffle", "torch.nn.functional.pixel_shuffle", "torch.pixel_unshuffle",
    "torch.nn.functional.pixel_unshuffle")
def pixel_shuffle_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, kwargs = _args(spec)
    x = _shape(spec, in_shapes, args[0])
    r = args[1] if len(args) > 1 else kwargs.get("upscale_factor", kwargs.get("downscale_factor"))
    return _structural(pixel_shuffle_shape(x, int(r), "unshuffle" in spec.key, spec))


_CREATION = ("zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange", "linspace", "logspace", "eye",
             "tensor", "as_tensor", "scalar_tensor", "zeros_like", "ones_like", "empty_like", "full_like",
             "rand_like", "randn_like", "randint_like")


@op(*[f"torch.{n}" for n in _CREATION], "Tensor.new_zeros", "Tensor.new_ones", "Tensor.new_empty",
    "Tensor.new_full", "Tensor.new_tensor")
def creation_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Tensors made in forward (``torch.zeros(B, 1, C)``, ``torch.arange(n)``, ``zeros_like(x)``): no counts."""
    args, kwargs = _args(spec)
    name = spec.key.split(".")[-1]
    if name.endswith("_like"):
        shape = _shape(spec, in_shapes, args[0])
    elif name == "arange":
        nums = [a for a in args if not isinstance(a, (str, TensorRef))]
        start, end, step = (0, nums[0], 1) if len(nums) == 1 else (nums + [1])[:3]
        shape = (_num(sp.ceiling((sp.sympify(end) - start) / step)),)
    elif name in ("linspace", "logspace"):
        shape = (args[2] if len(args) > 2 else kwargs.get("steps"),)
    elif name == "eye":
        n = args[0]
        shape = (n, args[1] if len(args) > 1 and not isinstance(args[1], str) else n)
    elif name in ("tensor", "as_tensor", "new_tensor", "scalar_tensor"):
        shape = _literal_shape(args[1] if name == "new_tensor" else (args[0] if args else kwargs.get("data")))
    elif name == "randint":
        shape = tuple(kwargs.get("size") or args[-1])
    else:
        sizes = args[1:] if spec.key.startswith("Tensor.new_") else args
        if name in ("full", "new_full"):
            sizes = sizes[:1]
        shape = tuple(_sizes_arg(sizes) if sizes else list(kwargs.get("size", ())))
    return LayerCounts("structural", tuple(shape), outputs=0, notes=("a tensor made in forward",))


def _literal_shape(data: Any) -> Shape:
    if isinstance(data, TensorRef):
        return tuple(data.shape or ())
    if isinstance(data, (tuple, list)):
        return (len(data), *(_literal_shape(data[0]) if data else ()))
    return ()


# --------------------------------------------------------------------------- elementwise

_UNARY = ("relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_", "celu", "celu_",
          "gelu", "silu", "mish", "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "softplus", "softsign",
          "softshrink", "hardshrink", "tanhshrink", "threshold", "threshold_", "rrelu", "logsigmoid", "sigmoid",
          "sigmoid_", "tanh", "tanh_", "softmax", "log_softmax", "softmin", "dropout", "dropout1d", "dropout2d",
          "dropout3d", "alpha_dropout", "feature_alpha_dropout", "exp", "exp_", "log", "log_", "log2", "log10",
          "log1p", "expm1", "sqrt", "sqrt_", "rsqrt", "abs", "abs_", "neg", "neg_", "sin", "cos", "tan", "asin",
          "acos", "atan", "sinh", "cosh", "erf", "erfc", "reciprocal", "square", "sign", "floor", "ceil", "round",
          "trunc", "frac", "clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_max", "normalize", "gumbel_softmax",
          "glu_", "nan_to_num", "logit", "sgn", "positive", "square_", "cumsum", "cumprod", "silu_", "mish_",
          "hardswish_", "hardsigmoid_", "gelu_", "dropout_", "isnan", "isinf", "isfinite", "logical_not")
_BINARY = ("add", "add_", "sub", "sub_", "subtract", "mul", "mul_", "multiply", "div", "div_", "divide",
           "true_divide", "floor_divide", "remainder", "fmod", "pow", "pow_", "maximum", "minimum", "fmax", "fmin",
           "eq", "ne", "lt", "gt", "le", "ge", "logical_and", "logical_or", "logical_xor", "where", "lerp", "lerp_",
           "addcmul", "addcmul_", "addcdiv", "addcdiv_", "rsub", "atan2", "hypot", "copysign", "xlogy",
           "bitwise_and", "bitwise_or", "bitwise_xor", "masked_scatter", "prelu", "heaviside")
_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "iadd", "isub", "imul",
              "itruediv", "eq", "ne", "lt", "gt", "le", "ge", "and_", "or_", "xor", "invert", "abs")
_DUNDERS = ("add", "radd", "iadd", "sub", "rsub", "isub", "mul", "rmul", "imul", "truediv", "rtruediv", "itruediv",
            "div", "rdiv", "idiv", "floordiv", "rfloordiv", "ifloordiv", "mod", "rmod", "imod", "pow", "rpow", "ipow",
            "neg", "pos", "abs", "eq", "ne", "lt", "gt", "le", "ge", "and", "or", "xor", "rand", "ror", "rxor",
            "invert", "iand", "ior", "ixor", "lshift", "rshift")
ELEMENTWISE_KEYS = sorted(set(
    [f"torch.nn.functional.{n}" for n in _UNARY + _BINARY] + [f"torch.{n}" for n in _UNARY + _BINARY]
    + [f"Tensor.{n}" for n in _UNARY + _BINARY] + [f"operator.{n}" for n in _OPERATORS]
    + [f"Tensor.__{n}__" for n in _DUNDERS] + ["torch.nn.functional.glu"]))


@op(*[k for k in ELEMENTWISE_KEYS if not k.endswith(".glu")])
def elementwise_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Activations, arithmetic and comparisons: the broadcast of every tensor argument; nothing counted.

    A parameter used here (a layer scale ``gamma * x``, a position embedding ``x + pos``) is
    counted once as weights in its own row; elementwise use adds no connections.
    """
    shapes = [tuple(s) for s in in_shapes if s is not None]
    if not shapes:
        raise ArchcountError("no tensor argument", layer=spec.path)
    out = shapes[0]
    for other in shapes[1:]:
        out = broadcast_shapes(out, other, spec)
    return LayerCounts("elementwise", out, outputs=_numel(out))


@op("torch.nn.functional.glu", "torch.glu")
def glu_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "dim"), dict(dim=-1))
    x = list(_shape(spec, in_shapes, b["input"]))
    d = _dim(b["dim"], len(x), spec)
    x[d] = _num(sp.sympify(x[d]) / 2)
    return LayerCounts("elementwise", tuple(x), outputs=_numel(x))


# --------------------------------------------------------------------------- products and attention

def _matmul_shape(a: Shape, b: Shape, spec: LayerSpec) -> tuple[Shape, Any]:
    """numpy matmul semantics: (out shape, inner size)."""
    if not a or not b:
        raise ArchcountError("matmul of a 0-d tensor", layer=spec.path)
    a1, b1 = len(a) == 1, len(b) == 1
    A = (1, *a) if a1 else tuple(a)
    B = (*b, 1) if b1 else tuple(b)
    if _same(A[-1], B[-2]) is False:
        raise ArchcountError(f"matmul shapes {tuple(a)} and {tuple(b)} do not match", layer=spec.path)
    batch = broadcast_shapes(A[:-2], B[:-2], spec)
    out = (*batch, A[-2], B[-1])
    if a1:
        out = out[:-2] + out[-1:]
    if b1:
        out = out[:-1]
    return out, A[-1]


def _product_counts(spec: LayerSpec, in_shapes: Sequence[Shape], left: Any, right: Any, out: Shape, inner: Any,
                    bias: Any = None) -> LayerCounts:
    products = _num(sp.expand(_numel(out) * inner))
    for side in (left, right):
        if _is_param(spec, side):
            w = _param_numel(spec, in_shapes, side)
            bias_n = _param_numel(spec, in_shapes, bias)
            return LayerCounts("linear", out, weight=w, bias=bias_n, outputs=_numel(out),
                               connections={"include": products, "exclude": products},
                               claimed=tuple(_claims(spec, {"weight": side, "bias": bias})),
                               notes=("a product with a parameter: a linear layer",))
    return LayerCounts("matmul", out, outputs=_numel(out), products=products,
                       claimed=tuple(_claims(spec, {"bias": bias})))


@op("torch.matmul", "Tensor.matmul", "operator.matmul", "Tensor.__matmul__", "torch.mm", "Tensor.mm", "torch.bmm",
    "Tensor.bmm", "torch.mv", "Tensor.mv", "torch.inner", "torch.dot", "Tensor.dot")
def matmul_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``a @ b``: activation x activation products, or weighted connections when one side is a parameter."""
    args, kwargs = _args(spec)
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2", kwargs.get("vec")))
    sa, sb = _shape(spec, in_shapes, a), _shape(spec, in_shapes, b)
    out, inner = _matmul_shape(sa, sb, spec)
    return _product_counts(spec, in_shapes, a, b, out, inner)


@op("Tensor.__rmatmul__")
def rmatmul_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    args, _ = _args(spec)
    sa, sb = _shape(spec, in_shapes, args[1]), _shape(spec, in_shapes, args[0])
    out, inner = _matmul_shape(sa, sb, spec)
    return _product_counts(spec, in_shapes, args[1], args[0], out, inner)


@op("torch.addmm", "Tensor.addmm", "torch.baddbmm", "Tensor.baddbmm", "torch.addbmm", "torch.addmv")
def addmm_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "mat1", "mat2"))
    m1 = b.get("mat1", b.get("batch1", b.get("mat")))
    m2 = b.get("mat2", b.get("batch2", b.get("vec")))
    out, inner = _matmul_shape(_shape(spec, in_shapes, m1), _shape(spec, in_shapes, m2), spec)
    if spec.key.endswith("addbmm"):
        out = out[1:]
    return _product_counts(spec, in_shapes, m1, m2, out, inner, bias=b["input"])


_EINSUM_TERM = re.compile(r"^[a-zA-Z.]*$")


def einsum_parts(args: Sequence[Any], path: str = "") -> tuple[list[str], str, list[Any]]:
    """``torch.einsum``'s arguments as (operand terms, output letters, operands); an implicit output is
    torch's: the letters that occur once, in alphabetical order."""
    eq = str(args[0]).replace(" ", "")
    operands = list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if "..." in eq or len(terms) != len(operands) or not all(_EINSUM_TERM.match(t) for t in terms):
        raise ArchcountError(f"einsum equation {eq!r} is not supported (no ellipsis, one term per operand)",
                             layer=path)
    if not arrow:
        letters = lhs.replace(",", "")
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return terms, rhs, operands


@op("torch.einsum")
def einsum_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``torch.einsum("bhqd,bhkd->bhqk", q, k)``: output by letter; products = every letter's size multiplied."""
    args, _ = _args(spec)
    terms, rhs, operands = einsum_parts(args, spec.path)
    sizes: dict[str, Any] = {}
    for term, operand in zip(terms, operands):
        shape = _shape(spec, in_shapes, operand)
        for letter, s in zip(term, shape):
            if letter in sizes and _is_num(sizes[letter]) and int(sizes[letter]) == 1:
                sizes[letter] = s
            else:
                sizes.setdefault(letter, s)
    out = tuple(sizes[c] for c in rhs)
    products = prod(sizes.values())
    params = [o for o in operands if _is_param(spec, o)]
    if params and len(operands) == 2:
        return LayerCounts("linear", out, weight=_param_numel(spec, in_shapes, params[0]), outputs=_numel(out),
                           connections={"include": products, "exclude": products},
                           claimed=tuple(_claims(spec, {"weight": params[0]})))
    return LayerCounts("matmul", out, outputs=_numel(out), products=products)


@op("torch.nn.functional.scaled_dot_product_attention")
def sdpa_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """``F.scaled_dot_product_attention(q, k, v)``: q·kᵀ and attn·v, activation x activation products."""
    b = bind(spec, ("query", "key", "value"))
    q, k, v = (_shape(spec, in_shapes, b[n], n) for n in ("query", "key", "value"))
    L, E, S, Ev = q[-2], q[-1], k[-2], v[-1]
    lead = broadcast_shapes(q[:-2], k[:-2], spec)
    out = (*lead, L, Ev)
    n = prod(lead)
    products = _num(sp.expand(n * L * S * (E + Ev)))
    return LayerCounts("matmul", out, outputs=_numel(out), products=products,
                       notes=("q·kᵀ (L·S·E) and attention·v (L·S·Ev) per batch and head",))


@op("torch.nn.functional.embedding", "torch.embedding")
def embedding_op(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    b = bind(spec, ("input", "weight"))
    if spec.key == "torch.embedding":  # torch.embedding(weight, indices)
        b = bind(spec, ("weight", "input"))
    idx, w = _shape(spec, in_shapes, b["input"]), _shape(spec, in_shapes, b["weight"], "weight")
    out = (*idx, w[-1])
    return LayerCounts("embedding", out, weight=_param_numel(spec, in_shapes, b["weight"]), outputs=_numel(out),
                       claimed=tuple(_claims(spec, {"weight": b["weight"]})))


def multihead_attention_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """nn.MultiheadAttention (full shapes): projections are weighted connections, q·kᵀ and attn·v products.

    Weights: q, k, v projections (E·E, E·kdim, E·vdim) and the output projection E·E; biases 3E + E.
    """
    p = spec.params
    E, heads = p["embed_dim"], p["num_heads"]
    kdim, vdim = p.get("kdim") or E, p.get("vdim") or E
    q = in_shapes[0]
    k = in_shapes[1] if len(in_shapes) > 1 else q
    v = in_shapes[2] if len(in_shapes) > 2 else k
    batch_first = bool(p.get("batch_first"))
    if len(q) == 2:  # unbatched (L, E)
        N, L, S = 1, q[0], k[0]
        out = (L, E)
    elif batch_first:
        N, L, S = q[0], q[1], k[1]
        out = (N, L, E)
    else:
        L, N, S = q[0], q[1], k[0]
        out = (L, N, E)
    if _same(q[-1], E) is False:
        raise ArchcountError(f"expects query features {E}, got {q[-1]}", layer=spec.path, argument="input")
    weight = _num(sp.expand(E * E + E * kdim + E * vdim + E * E))
    bias = (_num(3 * E) if p.get("in_proj_bias", True) else 0) + (E if p.get("out_proj_bias", True) else 0)
    extra = _num(2 * E) if p.get("bias_kv") else 0
    conn = _num(sp.expand(N * (L * E * E + S * E * kdim + S * E * vdim + L * E * E)))
    products = _num(sp.expand(2 * N * L * S * E))
    weights_shape = (N, L, S) if len(q) > 2 else (L, S)
    return LayerCounts("attention", out, weight=_num(weight + extra), bias=bias, outputs=_numel(out),
                       connections={"include": conn, "exclude": conn}, products=products,
                       out_shapes=(out, weights_shape),
                       notes=(f"{heads} heads: projections are weighted connections; q·kᵀ and attention·v are "
                              f"activation x activation products",))


RULES.add("torch.nn.modules.activation.MultiheadAttention", multihead_attention_rule, full_shape=True)


__all__ = ["ELEMENTWISE_KEYS", "bind", "elementwise_op", "multihead_attention_rule", "op"]
