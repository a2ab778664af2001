"""Measure a real torch model, independently of archcount's formulas.

:func:`measure` runs the model once (batch 1) under :func:`analysis.trace.record`, so every record
is named like a :class:`~analysis.table.LayerRow` (the module path for modules, ``#n`` for the n-th
call of a module called several times, ``module:op`` for operations such as ``cat``), and records
for every layer:

- parameters, split into kernel ``weight``, ``bias`` and normalisation ``affine`` (gamma, beta)
  by the torch class of the module (never by archcount's rules);
- the output shape and ``numel`` per sample, for every node that yields a tensor (``cat``,
  pooling and upsampling included);
- fvcore's per-module flop count (one multiply-add = one flop) for conv, linear and transposed conv;
- **structural connection counts**: the number of (input unit, output unit) pairs joined by a
  weight (or a window tap), obtained by running the layer itself in float64 on all-ones inputs
  with all-ones weights and no bias and summing the output (see :func:`structural_connections`).
  By default the input channels of each group are pre-summed into the weights, which leaves the
  output tensor identical element for element (the input is all ones) and makes the cost
  independent of the input channel count; ``fold_channels=False`` runs the literal layer shapes.

Nothing here imports :mod:`analysis.rules`: the measurement never uses archcount's formulas.

>>> import torch.nn as nn
>>> structural_connections(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), (64, 8, 8))
{'scatter': 1179648, 'exact': 1083392, 'gather': 4718592}
>>> m = measure(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)), (1, 3, 10, 10))
>>> l0 = m.layer("0")
>>> l0.weight, l0.bias, l0.out_shape, l0.flops, l0.connections["exclude"]
(216, 8, (8, 10, 10), 21600, 18816)
>>> m.layer("1").connections
{'include': 800, 'exclude': 800}
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import ArchcountError

Shape = tuple[int, ...]

#: How each structural key is measured (the ``methods`` of a :class:`LayerMeasurement`).
METHODS: dict[str, str] = {
    "conv.exclude": "layer copy, float64, all-ones weights without bias on an all-ones input, summed",
    "conv.include": "same, on the input padded with ones instead of zeros (every padding tap reads a one)",
    "transposed.exact": "layer copy, float64, all-ones weights without bias on an all-ones input, summed",
    "transposed.scatter": "the same transposed conv with padding 0 and output_padding 0 (no crop), summed",
    "transposed.gather": "definition: stride-1 conv of an all-ones mask over the zero-inserted, padded "
                         "canvas ((n-1)s+1 + 2(d(k-1)-p) + output_padding), times the weight tensor's "
                         "channel pairs",
    "linear.include": "layer copy, float64, all-ones weights without bias on an all-ones input, summed",
    "pool.exclude": "stride-s, dilation-d conv with an all-ones window over the input zero-padded by p, "
                    "cropped to the pooling output size measured by running the pool",
    "pool.include": "same, padded with ones (every window tap counts)",
    "adaptive.include": "window bounds read from the layer's own adaptive max pooling indices on "
                        "arange/-arange inputs (first and last element of every window)",
    "upsample.nonzero": "interpolation of a 2-colouring per spatial axis: outputs with a nonzero weight on "
                        "each colour class, summed (one input of a class per output)",
    "upsample.taps": "definition: 1 tap per output (nearest), 2 per axis (linear), 4 per axis (cubic)",
    "norm.include": "definition: one connection per output",
    "matmul.include": "torch.utils.flop_counter.FlopCounterMode on the recorded call, divided by 2",
    "reduce.include": "definition: every input element read once (the input's numel)",
}


@dataclass(frozen=True)
class LayerMeasurement:
    """What was measured for one fx node of the model (per sample, batch 1)."""

    path: str                          #: the row path (module path, ``#n`` per call, ``module:op`` for ops)
    name: str                          #: the recorded node's name
    op: str                            #: call_module | call_function
    type: str                          #: class name, or the function/method name
    kind: str                          #: conv | transposed | linear | norm | pool | adaptive | upsample | other
    in_shapes: tuple[Shape, ...]       #: per-sample input shapes (tensor arguments)
    out_shape: Shape                   #: per-sample output shape
    outputs: int                       #: output numel per sample
    weight: int = 0                    #: kernel / matrix weight numel (conv, linear, transposed)
    bias: int = 0                      #: bias numel (conv, linear, transposed)
    affine: int = 0                    #: normalisation gamma + beta numel
    other_params: int = 0              #: parameters of the module not split above
    flops: int | None = None           #: fvcore's count for this module (None: not run / not a module)
    connections: Mapping[str, int] = field(default_factory=dict)   #: structural counts by key
    methods: Mapping[str, str] = field(default_factory=dict)       #: how each key was measured
    notes: tuple[str, ...] = ()
    full_shape: Shape = ()             #: the output shape with the batch (1) where torch put it

    @property
    def params(self) -> int:
        return self.weight + self.bias + self.affine + self.other_params

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "op": self.op, "type": self.type, "kind": self.kind,
                "in_shapes": [list(s) for s in self.in_shapes], "out_shape": list(self.out_shape),
                "outputs": self.outputs, "weight": self.weight, "bias": self.bias, "affine": self.affine,
                "other_params": self.other_params, "flops": self.flops, "connections": dict(self.connections),
                "methods": dict(self.methods), "notes": list(self.notes)}


@dataclass(frozen=True)
class Measurement:
    """Measurements of every layer of a model at one input shape."""

    model: str
    input_shape: Shape                 #: the input the model ran on (batch 1)
    output_shape: Shape                #: per-sample output shape of the real model's forward
    layers: tuple[LayerMeasurement, ...]
    total_params: int                  #: sum of p.numel() over model.parameters()
    fvcore_total: int | None = None
    fvcore_by_operator: Mapping[str, int] = field(default_factory=dict)
    fvcore_unsupported: Mapping[str, int] = field(default_factory=dict)  #: ops fvcore skipped (calls)
    seconds: Mapping[str, float] = field(default_factory=dict)          #: time per phase

    def layer(self, path: str) -> LayerMeasurement:
        for lm in self.layers:
            if lm.path == path:
                return lm
        raise ArchcountError(f"no measured layer {path!r}; layers: {', '.join(m.path for m in self.layers)}",
                             model=self.model)

    def total(self, attribute: str) -> int:
        """Sum of an integer attribute (``weight``, ``outputs``, ``flops``...) over the layers."""
        return sum(int(getattr(lm, attribute) or 0) for lm in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "total_params": self.total_params,
                "fvcore_total": self.fvcore_total, "fvcore_by_operator": dict(self.fvcore_by_operator),
                "fvcore_unsupported": dict(self.fvcore_unsupported), "seconds": dict(self.seconds),
                "layers": [lm.to_dict() for lm in self.layers]}


# --------------------------------------------------------------------------- classification by torch class

def layer_kind(module: Any) -> str:
    """The measurement kind of a module, from its torch base class.

    >>> import torch.nn as nn
    >>> [layer_kind(m) for m in (nn.ConvTranspose2d(1, 1, 2), nn.Conv1d(1, 1, 2), nn.MaxPool2d(2), nn.ReLU())]
    ['transposed', 'conv', 'pool', 'other']
    """
    import torch.nn as nn
    from torch.nn.modules import batchnorm, conv, pooling
    if isinstance(module, conv._ConvTransposeNd):
        return "transposed"
    if isinstance(module, conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    if isinstance(module, (pooling._MaxPoolNd, pooling._AvgPoolNd)):
        return "pool"
    if isinstance(module, (pooling._AdaptiveAvgPoolNd, pooling._AdaptiveMaxPoolNd)):
        return "adaptive"
    if isinstance(module, nn.Upsample):
        return "upsample"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, nn.Embedding):
        return "embedding"
    return "other"


def _split_params(module: Any, kind: str, skip: set[int] | None = None) -> tuple[int, int, int, int]:
    """(weight, bias, affine, other) numel of a leaf module's parameters (those not in ``skip``, by id)."""
    weight = bias = affine = other = 0
    for name, p in module.named_parameters():
        if skip is not None and id(p) in skip:
            continue
        n = p.numel()
        if kind in ("attention",) and name.endswith("weight") or kind == "embedding":
            weight += n
        elif kind == "attention" and name.endswith("bias") and name not in ("bias_k", "bias_v"):
            bias += n
        elif kind in ("conv", "transposed", "linear") and name == "weight":
            weight += n
        elif kind in ("conv", "transposed", "linear") and name == "bias":
            bias += n
        elif kind == "norm" and name in ("weight", "bias"):
            affine += n
        else:
            other += n
    return weight, bias, affine, other


# --------------------------------------------------------------------------- structural counts

def _nd(module: Any) -> int:
    for cls in type(module).__mro__:
        tail = cls.__name__[-2:]
        if tail in ("1d", "2d", "3d"):
            return int(tail[0])
    raise ArchcountError(f"cannot tell the number of spatial dimensions of {type(module).__name__}")


def _tup(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) * (n if len(value) == 1 and n > 1 else 1)
    return (int(value),) * n


def _exact_sum(y: Any) -> int:
    """Sum of a float64 tensor of counts, checked to be an exact integer."""
    import torch
    total = float(y.sum(dtype=torch.float64))
    if total >= 2 ** 53:
        raise ArchcountError(f"structural count {total:.6g} is beyond float64's exact integer range")
    n = round(total)
    if abs(total - n) > 1e-6:
        raise ArchcountError(f"structural count {total!r} is not an integer")
    return int(n)


def _ones(shape: Sequence[int]) -> Any:
    import torch
    return torch.ones(tuple(shape), dtype=torch.float64)


def _with_weight(layer: Any, weight: Any) -> Any:
    """A shallow copy of ``layer`` whose weight is ``weight`` and whose bias is None (no hooks run)."""
    import torch.nn as nn
    new = copy.copy(layer)
    new._parameters = dict(layer._parameters)
    new._forward_hooks, new._forward_pre_hooks = {}, {}
    new.weight = nn.Parameter(weight, requires_grad=False)
    if "bias" in new._parameters:
        new.bias = None
    return new


def conv_connections(layer: Any, in_shape: Sequence[int], *, fold_channels: bool = True) -> dict[str, int]:
    """Structural connection counts of a ConvNd for a per-sample input ``(C, *spatial)``.

    ``exclude``: a copy of the layer (its own forward: stride, padding incl. 'same' and
    padding_mode, dilation, groups) with all-ones weights and no bias, run in float64 on an
    all-ones input and summed = the number of (input unit, output unit) pairs joined by a weight.
    ``include``: the same with the padding filled with ones, so every padding tap counts too.

    ``fold_channels`` (default) runs the identical computation with the input channels of each
    group pre-summed into the weights: ``conv(ones[Cin], ones[Cout, Cin/g]) ==
    conv(ones[g], full(Cin/g)[Cout, 1])`` element for element (the input is all ones), which makes
    the cost independent of Cin; ``fold_channels=False`` runs the literal layer shape.

    >>> import torch.nn as nn
    >>> conv_connections(nn.Conv2d(2, 3, 3, padding=1), (2, 4, 4))
    {'include': 864, 'exclude': 600}
    """
    import torch
    import torch.nn.functional as F
    nd = _nd(layer)
    cin, g = int(layer.in_channels), int(layer.groups)
    w_shape = tuple(layer.weight.shape)                       # (Cout, Cin/g, *k)
    if fold_channels:
        weight = torch.full((w_shape[0], 1, *w_shape[2:]), float(w_shape[1]), dtype=torch.float64)
        x = _ones((1, g, *in_shape[1:]))
    else:
        weight = _ones(w_shape)
        x = _ones((1, cin, *in_shape[1:]))
    probe = _with_weight(layer, weight)
    probe.in_channels = x.shape[1]
    with torch.no_grad():
        exclude = _exact_sum(probe.forward(x))
        if layer.padding_mode != "zeros" or not any(layer._reversed_padding_repeated_twice):
            include = exclude   # circular/reflect/replicate padding reads real inputs
        else:
            padded = F.pad(x, layer._reversed_padding_repeated_twice, value=1.0)
            conv = getattr(F, f"conv{nd}d")
            include = _exact_sum(conv(padded, weight, None, layer.stride, 0, layer.dilation, g))
    return {"include": include, "exclude": exclude}


def transposed_connections(layer: Any, in_shape: Sequence[int], *, fold_channels: bool = True) -> dict[str, int]:
    """Structural scatter / exact / gather counts of a ConvTransposeNd for input ``(C, *spatial)``.

    ``exact``: a copy of the layer with all-ones weights and no bias, float64, on an all-ones
    input, summed = pairs that survive the cropping.  ``scatter``: the same transposed conv with
    padding 0 and output_padding 0 (nothing cropped, every tap lands).  ``gather`` (definition):
    a stride-1 conv with all-ones taps over an all-ones mask of the zero-inserted and padded
    canvas, inserted zeros and padding included, times the channel pairs of the weight tensor.

    >>> import torch.nn as nn
    >>> transposed_connections(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), (64, 8, 8))
    {'scatter': 1179648, 'exact': 1083392, 'gather': 4718592}
    """
    import torch
    import torch.nn.functional as F
    nd = _nd(layer)
    cin, g = int(layer.in_channels), int(layer.groups)
    w_shape = tuple(layer.weight.shape)                       # (Cin, Cout/g, *k)
    if fold_channels:
        weight = torch.full((g, *w_shape[1:]), float(cin // g), dtype=torch.float64)
        x = _ones((1, g, *in_shape[1:]))
    else:
        weight = _ones(w_shape)
        x = _ones((1, cin, *in_shape[1:]))
    probe = _with_weight(layer, weight)
    probe.in_channels = x.shape[1]
    tconv = getattr(F, f"conv_transpose{nd}d")
    with torch.no_grad():
        out = probe.forward(x)
        exact = _exact_sum(out)
        scatter = _exact_sum(tconv(x, weight, None, layer.stride, 0, 0, g, layer.dilation))
        # gather, by definition: the zero-inserted input conv, counting every canvas position
        k, s, p = _tup(layer.kernel_size, nd), _tup(layer.stride, nd), _tup(layer.padding, nd)
        d, op = _tup(layer.dilation, nd), _tup(layer.output_padding, nd)
        canvas = [(n - 1) * si + 1 + 2 * (di * (ki - 1) - pi) + opi
                  for n, ki, si, pi, di, opi in zip(in_shape[1:], k, s, p, d, op)]
        if min(canvas) < 1:
            raise ArchcountError("the zero-inserted canvas is empty", layer=type(layer).__name__)
        conv = getattr(F, f"conv{nd}d")
        taps = conv(_ones((1, 1, *canvas)), _ones((1, 1, *k)), None, 1, 0, d)
        if tuple(taps.shape[2:]) != tuple(out.shape[2:]):
            raise ArchcountError(f"gather canvas gives {tuple(taps.shape[2:])}, the layer "
                                 f"{tuple(out.shape[2:])}", layer=type(layer).__name__)
        gather = _exact_sum(taps) * w_shape[0] * w_shape[1]
    return {"scatter": scatter, "exact": exact, "gather": gather}


def linear_connections(layer: Any, in_shape: Sequence[int]) -> dict[str, int]:
    """A copy of the Linear layer with all-ones weights, no bias, float64, on an all-ones input, summed.

    >>> import torch.nn as nn
    >>> linear_connections(nn.Linear(5, 3), (4, 5))
    {'include': 60, 'exclude': 60}
    """
    import torch
    probe = _with_weight(layer, _ones(tuple(layer.weight.shape)))
    with torch.no_grad():
        n = _exact_sum(probe.forward(_ones((1, *in_shape))))
    return {"include": n, "exclude": n}


def pool_connections(layer: Any, in_shape: Sequence[int]) -> dict[str, int]:
    """Window taps of a Max/AvgPoolNd: ``exclude`` counts taps on input units, ``include`` every tap.

    The pool is run (float64, ones) for its output size; the taps are counted by a conv with an
    all-ones window of the pool's kernel, stride and dilation over the input padded by ``p`` with
    zeros (``exclude``) or ones (``include``), right-extended for ceil_mode and cropped to that size.

    >>> import torch.nn as nn
    >>> pool_connections(nn.MaxPool2d(3, stride=2, padding=1), (1, 5, 5))
    {'include': 81, 'exclude': 49}
    """
    import torch
    import torch.nn.functional as F
    nd = _nd(layer)
    k, s = _tup(layer.kernel_size, nd), _tup(layer.stride or layer.kernel_size, nd)
    p = _tup(layer.padding, nd)
    d = _tup(getattr(layer, "dilation", 1), nd)
    spatial = tuple(int(v) for v in in_shape[-nd:])
    lead = int(math.prod(in_shape[:-nd]))
    with torch.no_grad():  # the pool itself, on one channel, for its output size
        out = layer(torch.ones((1, 1, *spatial), dtype=torch.float64))
    outs = tuple(out.shape[-nd:])
    pads: list[int] = []
    for n, o, ki, si, pi, di in reversed(list(zip(spatial, outs, k, s, p, d))):
        need = (o - 1) * si + di * (ki - 1) + 1
        pads += [pi, max(0, need - n - pi)]
    conv = getattr(F, f"conv{nd}d")
    window = _ones((1, 1, *k))
    x = _ones((1, 1, *spatial))
    res = {}
    with torch.no_grad():
        for key, value in (("include", 1.0), ("exclude", 0.0)):
            y = conv(F.pad(x, pads, value=value), window, None, s, 0, d)
            y = y[(..., *[slice(0, o) for o in outs])]
            res[key] = _exact_sum(y) * lead
    return res


def adaptive_pool_connections(layer: Any, in_shape: Sequence[int]) -> dict[str, int]:
    """Total window size of an AdaptiveAvg/MaxPoolNd, from the layer's own window bounds.

    Adaptive max pooling with indices on ``arange`` returns each window's last element and on
    ``-arange`` its first; the window (a box) spans from one to the other.

    >>> import torch.nn as nn
    >>> adaptive_pool_connections(nn.AdaptiveAvgPool2d((2, 3)), (4, 5, 7))
    {'include': 216, 'exclude': 216}
    """
    import torch
    import torch.nn.functional as F
    nd = _nd(layer)
    spatial = tuple(int(v) for v in in_shape[-nd:])
    lead = int(math.prod(in_shape[:-nd]))
    fn = getattr(F, f"adaptive_max_pool{nd}d")
    size = layer.output_size
    idx = torch.arange(math.prod(spatial), dtype=torch.float64).reshape(1, 1, *spatial)
    with torch.no_grad():
        _, last = fn(idx, size, return_indices=True)
        _, first = fn(-idx, size, return_indices=True)
    total = torch.ones_like(last, dtype=torch.int64)
    rem_l, rem_f = last.to(torch.int64), first.to(torch.int64)
    for n in reversed(spatial):
        total = total * (rem_l % n - rem_f % n + 1)
        rem_l, rem_f = rem_l // n, rem_f // n
    n = int(total.sum()) * lead
    return {"include": n, "exclude": n}


_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


def interpolation_connections(fn: Callable[[Any], Any], in_shape: Sequence[int], mode: str) -> dict[str, int]:
    """Nonzero interpolation weights of ``fn`` (an upsampling), and taps by definition.

    Every spatial axis is coloured by position modulo ``m`` (the support width of the mode), so
    an output sees at most one input of each colour class; interpolating the indicator of each
    class and counting nonzero outputs counts the (input, output) pairs with a nonzero weight.
    ``taps`` (definition) is 1 per output for nearest, 2 per axis for linear modes, 4 for cubic.

    >>> import torch.nn as nn
    >>> interpolation_connections(nn.Upsample(scale_factor=2), (3, 4, 5), "nearest")
    {'nonzero': 240, 'taps': 240}
    """
    import itertools

    import torch
    nsp = len(in_shape) - 1
    taps_per_axis = _TAPS.get(mode)
    if taps_per_axis is None:
        raise ArchcountError(f"no structural measurement for interpolation mode {mode!r}")
    m = max(2, taps_per_axis)
    spatial = tuple(int(v) for v in in_shape[1:])
    grids = torch.meshgrid(*[torch.arange(n) % m for n in spatial], indexing="ij")
    nonzero = 0
    out_numel = None
    with torch.no_grad():
        for colour in itertools.product(range(m), repeat=nsp):
            mask = torch.ones(spatial, dtype=torch.bool)
            for grid, c in zip(grids, colour):
                mask &= grid == c
            x = mask.to(torch.float64).expand(1, int(in_shape[0]), *spatial).contiguous()
            y = fn(x)
            out_numel = y.numel()
            nonzero += int(torch.count_nonzero(y))
    return {"nonzero": nonzero, "taps": int(out_numel) * taps_per_axis ** nsp}


def structural_connections(layer: Any, in_shape: Sequence[int], *, fold_channels: bool = True) -> dict[str, int]:
    """Structural connection counts of one torch layer for a per-sample input shape.

    Keys: conv/linear/pool ``include`` and ``exclude``; transposed ``scatter``, ``exact``,
    ``gather``; upsampling ``nonzero`` and ``taps``; an empty dict for other layers.

    >>> import torch.nn as nn
    >>> structural_connections(nn.Conv2d(64, 32, 3, stride=2, padding=1), (64, 16, 16))
    {'include': 1179648, 'exclude': 1083392}
    """
    kind = layer_kind(layer)
    in_shape = tuple(int(v) for v in in_shape)
    if kind == "conv":
        return conv_connections(layer, in_shape, fold_channels=fold_channels)
    if kind == "transposed":
        return transposed_connections(layer, in_shape, fold_channels=fold_channels)
    if kind == "linear":
        return linear_connections(layer, in_shape)
    if kind == "pool":
        return pool_connections(layer, in_shape)
    if kind == "adaptive":
        return adaptive_pool_connections(layer, in_shape)
    if kind == "upsample":
        return interpolation_connections(layer, in_shape, layer.mode)
    return {}


def _method_keys(kind: str, keys: Iterable[str]) -> dict[str, str]:
    if kind == "upsample":
        return {key: METHODS[f"upsample.{key}"] for key in keys}
    if kind == "adaptive":
        return {key: METHODS["adaptive.include"] for key in keys}
    if kind == "linear":
        return {key: METHODS["linear.include"] for key in keys}
    return {key: METHODS.get(f"{kind}.{key}", "") for key in keys}


# --------------------------------------------------------------------------- the model measurement

def _per_sample(t: Any) -> Shape:
    return tuple(int(v) for v in t.shape[1:])


def _unique_params(module: Any) -> list[Any]:
    return list(module.parameters())  # torch deduplicates shared parameters by identity


def _real(value: Any, tensors: Mapping[Any, Any]) -> Any:
    """A recorded argument with its tensors, sizes and slices made real again."""
    from .graph import SizeExpr, SliceArg, TensorRef
    if isinstance(value, TensorRef):
        return tensors[value]
    if isinstance(value, SizeExpr):
        return int(value.value)
    if isinstance(value, SliceArg):
        return slice(_real(value.start, tensors), _real(value.stop, tensors), _real(value.step, tensors))
    if isinstance(value, tuple):
        return tuple(_real(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _real(v, tensors) for k, v in value.items()}
    if value == "...":
        return Ellipsis
    return value


#: functional ops measured through an equivalent module: key prefix -> kind
_FUNCTIONAL_KIND = (
    (("torch.conv_transpose",), "transposed"), (("torch.conv",), "conv"),
    (("torch.nn.functional.linear",), "linear"),
    (("torch.nn.functional.max_pool", "torch.max_pool", "torch.nn.functional.avg_pool", "torch.avg_pool"), "pool"),
    (("torch.nn.functional.adaptive_", "torch.adaptive_"), "adaptive"),
    (("torch.nn.functional.interpolate", "torch.nn.functional.upsample"), "upsample"),
    (("torch.nn.functional.batch_norm", "torch.nn.functional.layer_norm", "torch.nn.functional.group_norm",
      "torch.nn.functional.instance_norm"), "norm"),
    (tuple(f"{p}{n}" for p in ("Tensor.", "torch.") for n in (
        "mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "logsumexp", "nansum", "nanmean",
        "median", "norm")), "reduce"),
    (("torch.matmul", "Tensor.matmul", "operator.matmul", "Tensor.__matmul__", "Tensor.__rmatmul__", "torch.mm",
      "Tensor.mm", "torch.bmm", "Tensor.bmm", "torch.einsum", "torch.addmm", "torch.baddbmm",
      "torch.nn.functional.scaled_dot_product_attention"), "matmul"),
)


def functional_kind(key: str) -> str:
    """The measurement kind of a functional op, by its key (never by archcount's rules)."""
    for prefixes, kind in _FUNCTIONAL_KIND:
        if key.startswith(prefixes):
            return kind
    return "other"


def _flop_count(key: str, args: list[Any], kwargs: dict[str, Any]) -> int:
    """Multiply-adds of one product op, measured by torch's own flop counter (flops / 2)."""
    import operator

    import torch
    from torch.utils.flop_counter import FlopCounterMode
    name = key.split(".")[-1]
    if key.startswith("Tensor."):
        fn = getattr(torch.Tensor, name)
    elif key.startswith("operator."):
        fn = getattr(operator, name)
    elif key.startswith("torch.nn.functional."):
        fn = getattr(torch.nn.functional, name)
    else:
        fn = getattr(torch, name)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), _math_attention():
        fn(*args, **kwargs)
    return int(counter.get_total_flops()) // 2


def _math_attention() -> Any:
    """Attention through its math path: FlopCounterMode has no formula for the CPU flash kernel."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel([SDPBackend.MATH])
    except ImportError:  # pragma: no cover - torch < 2.3
        import contextlib
        return contextlib.nullcontext()


def _attention_flops(module: Any, args: tuple, kwargs: dict) -> dict[str, int]:
    """Weighted (projection) and product multiply-adds of one attention call, by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), _math_attention():
        module(*args, **kwargs)
    weighted = products = 0
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        name = str(op)
        if "bmm" in name or "attention" in name:
            products += int(n)
        else:
            weighted += int(n)
    return {"weighted": weighted // 2, "products": products // 2}


def parameter_layers(rec: Any, seen: set[int]) -> list[LayerMeasurement]:
    """Parameters the forward read that no conv, linear, norm or product used as its weight."""
    out = []
    for node in rec.nodes:
        if node.kind != "param" or node.name not in rec.values:
            continue
        t = rec.values[node.name][1][0]
        if id(t) in seen:
            continue
        seen.add(id(t))
        out.append(LayerMeasurement(node.path, node.name, "get_attr", "Parameter", "parameter", (),
                                    tuple(int(v) for v in t.shape), 0, weight=int(t.numel()),
                                    notes=("a parameter read in forward (numel)",)))
    return out


def _equivalent(node: Any, args: list[Any], kwargs: dict[str, Any], kind: str) -> Any:
    """An nn module doing what a functional conv / linear / pooling call did (for structural counts)."""
    import inspect

    import torch.nn as nn
    import torch.nn.functional as F

    def bound(fn: Any, names: Sequence[str]) -> dict[str, Any]:
        out = dict(zip(names, args))
        out.update(kwargs)
        return out

    key = node.key
    if kind in ("conv", "transposed"):
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups") if kind == "conv" else \
            ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
        b = bound(None, names)
        w = b["weight"]
        nd = w.dim() - 2
        groups = int(b.get("groups", 1))
        if kind == "conv":
            cls = getattr(nn, f"Conv{nd}d")
            m = cls(int(w.shape[1]) * groups, int(w.shape[0]), tuple(w.shape[2:]), stride=b.get("stride", 1),
                    padding=b.get("padding", 0), dilation=b.get("dilation", 1), groups=groups,
                    bias=b.get("bias") is not None)
        else:
            cls = getattr(nn, f"ConvTranspose{nd}d")
            m = cls(int(w.shape[0]), int(w.shape[1]) * groups, tuple(w.shape[2:]), stride=b.get("stride", 1),
                    padding=b.get("padding", 0), output_padding=b.get("output_padding", 0), groups=groups,
                    dilation=b.get("dilation", 1), bias=b.get("bias") is not None)
        return m
    if kind == "linear":
        b = bound(None, ("input", "weight", "bias"))
        w = b["weight"]
        return nn.Linear(int(w.shape[-1]), int(w.shape[0]), bias=b.get("bias") is not None)
    if kind == "pool":
        nd = int(key[-2]) if key[-2].isdigit() else int(key.rstrip("_with_indices")[-2])
        if "max" in key:
            b = bound(None, ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"))
            return getattr(nn, f"MaxPool{nd}d")(b["kernel_size"], stride=b.get("stride") or None,
                                               padding=b.get("padding", 0), dilation=b.get("dilation", 1),
                                               ceil_mode=bool(b.get("ceil_mode", False)))
        b = bound(None, ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"))
        return getattr(nn, f"AvgPool{nd}d")(b["kernel_size"], stride=b.get("stride") or None,
                                           padding=b.get("padding", 0), ceil_mode=bool(b.get("ceil_mode", False)))
    if kind == "adaptive":
        nd = int([c for c in key if c.isdigit()][-1])
        b = bound(None, ("input", "output_size"))
        return getattr(nn, f"AdaptiveAvgPool{nd}d")(b["output_size"])
    return None


def measure(module: Any, input_shape: Sequence[int], *, model: str | None = None, flops: bool = True,
            connections: bool = True, fold_channels: bool = True, seed: int = 0) -> Measurement:
    """Measure ``module`` on an input of ``input_shape`` = ``(BS, C, H, W)`` (run with batch 1).

    The forward is recorded (every leaf-module call and torch operation, named like the rows of
    :func:`analysis.count`; a module called twice is measured per call).  The model is put in
    eval mode for the run (and restored).  ``flops`` runs fvcore; ``connections`` runs the
    structural counts of every conv, transposed conv, linear, pooling and upsampling layer, module
    or functional.  Any failure of the model to run raises :class:`ArchcountError`.

    >>> import torch.nn as nn
    >>> m = measure(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()), (1, 1, 5, 5), flops=False)
    >>> [(lm.path, lm.out_shape, lm.outputs) for lm in m.layers]
    [('0', (4, 3, 3), 36), ('1', (36,), 36)]
    """
    import torch

    from .trace import forward_error, record
    name = model or type(module).__name__
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ArchcountError(f"expected an input shape (BS, C, ...) of positive sizes, got {shape}",
                             model=name, argument="input_shape")
    shape = (1, *shape[1:])
    seconds: dict[str, float] = {}
    was_training = module.training
    module.eval()
    try:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=gen)
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                rec = record(module, [x], keep_values=True)
        except Exception as exc:  # noqa: BLE001 - the model's own error, named
            raise forward_error(exc, name).with_context(shapes={"input": shape}) from None
        seconds["record"] = time.perf_counter() - t0
        by_module: Mapping[str, int] = {}
        fv_total, fv_ops, fv_unsup = None, {}, {}
        if flops:
            t0 = time.perf_counter()
            by_module, fv_total, fv_ops, fv_unsup = _fvcore(module, x, name)
            seconds["fvcore"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        calls: dict[str, int] = {}
        for node in rec.nodes:
            if node.kind == "module":
                calls[node.module] = calls.get(node.module, 0) + 1
        seen: set[int] = set()
        layers = []
        for node in rec.nodes:
            if node.kind not in ("module", "function") or node.name not in rec.values:
                continue
            ins, outs = rec.values[node.name]
            if not outs:
                continue
            layers.append(_layer(node, ins, outs, rec, by_module if flops else None, calls, seen, connections,
                                 fold_channels))
        layers.extend(parameter_layers(rec, seen))
        unused = sum(int(p.numel()) for p in _unique_params(module) if id(p) not in seen)
        if unused:
            layers.append(LayerMeasurement("(unused parameters)", "", "", "Parameter", "unused", (), (), 0,
                                           weight=unused, notes=("parameters the forward never read",)))
        seconds["structural" if connections else "layers"] = time.perf_counter() - t0
        outputs = [rec.values[r.node][1][r.index] for r in rec.outputs if r.node in rec.values]
        out_shape = _per_sample(outputs[0]) if outputs else ()
        total_params = sum(p.numel() for p in module.parameters())
        return Measurement(name, shape, out_shape, tuple(layers), int(total_params), fv_total, fv_ops, fv_unsup,
                           seconds)
    finally:
        module.train(was_training)


def _layer(node: Any, ins: Sequence[Any], outs: Sequence[Any], rec: Any, by_module: Mapping[str, int] | None,
           calls: Mapping[str, int], seen: set[int], connections: bool, fold_channels: bool) -> LayerMeasurement:
    import torch
    out = outs[0]
    full = tuple(int(v) for v in out.shape)
    in_shapes = tuple(_per_sample(t) for t in ins if isinstance(t, torch.Tensor) and t.dim() > 0)
    conn: dict[str, int] = {}
    methods: dict[str, str] = {}
    notes: list[str] = []
    weight = bias = affine = other = 0
    flops = None
    per_sample = full[1:] if full else ()
    outputs = int(out.numel())
    if node.kind == "module":
        sub = rec.modules[node.name]
        kind = layer_kind(sub)
        fresh = [p for p in sub.parameters() if id(p) not in seen]
        if fresh:
            weight, bias, affine, other = _split_params(sub, kind, skip=seen)
            if len(fresh) < len(list(sub.parameters())):
                notes.append("some parameters shared with an earlier call or layer: counted there")
        else:
            notes.append("parameters shared with an earlier call: counted there")
        seen.update(id(p) for p in sub.parameters())
        if by_module is not None and kind in ("conv", "transposed", "linear") and calls.get(node.module, 1) == 1:
            value = by_module.get(node.module, 0)
            if isinstance(value, tuple):
                notes.append(f"fvcore has no counter for {', '.join(value[1])} (e.g. padding='same'/'valid'); "
                             f"its count is not used")
            else:
                flops = int(value)
        elif by_module is not None and kind in ("conv", "transposed", "linear"):
            notes.append(f"called {calls.get(node.module)} times: fvcore sums the calls per module, so the "
                         f"structural count is compared per call")
        if connections and kind == "attention" and node.name in rec.calls:
            conn = _attention_flops(sub, *rec.calls[node.name])
            methods = {key: "torch.utils.flop_counter.FlopCounterMode on the module call: (mm + addmm) / 2 "
                            "weighted, (bmm + baddbmm) / 2 products" for key in conn}
        elif connections and in_shapes:
            try:
                if kind == "norm":
                    conn = {"include": outputs, "exclude": outputs}
                else:
                    conn = structural_connections(sub, in_shapes[0], fold_channels=fold_channels)
            except ArchcountError as exc:
                notes.append(f"not measured: {exc.reason}")
                conn = {}
            methods = (_method_keys(kind, conn) if kind != "norm" else {key: METHODS["norm.include"] for key in conn})
        tname = type(sub).__name__
    else:
        kind = functional_kind(node.key)
        tname = node.type_name
        refs = {ref: t for ref, t in zip(node.inputs, ins)}
        args = list(_real(node.params.get("args", ()), refs))
        kwargs = dict(_real(node.params.get("kwargs", {}), refs))
        for t in ins:
            if kind in ("conv", "transposed", "linear", "norm", "matmul") and isinstance(t, torch.nn.Parameter) \
                    and id(t) not in seen:
                seen.add(id(t))
                n = int(t.numel())
                if kind == "norm":
                    affine += n
                elif t.dim() == 1 and kind != "matmul":
                    bias += n
                else:
                    weight += n
        if connections and kind == "matmul":
            conn = {"include": _flop_count(node.key, args, kwargs)}
            methods = {"include": METHODS["matmul.include"]}
        if connections and kind in ("conv", "transposed", "linear", "pool", "adaptive") and in_shapes:
            try:
                eq = _equivalent(node, args, kwargs, kind)
                conn = structural_connections(eq, in_shapes[0], fold_channels=fold_channels) if eq is not None else {}
                methods = _method_keys(kind, conn)
            except (ArchcountError, TypeError, ValueError, RuntimeError) as exc:
                notes.append(f"not measured: {exc}")
        elif connections and kind == "upsample" and in_shapes:
            import torch.nn.functional as F
            target = {"torch.nn.functional.upsample": F.interpolate}.get(node.key, F.interpolate)
            mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
            if node.key.endswith("upsample_bilinear"):
                mode, kwargs = "bilinear", dict(kwargs, mode="bilinear", align_corners=True)

            def call(xx: Any, a: list = args, kw: dict = kwargs) -> Any:
                return target(xx, *a[1:], **kw)
            try:
                conn = interpolation_connections(call, in_shapes[0], mode or "nearest")
                methods = _method_keys("upsample", conn)
            except ArchcountError as exc:
                notes.append(f"not measured: {exc.reason}")
        elif connections and kind == "norm":
            conn = {"include": outputs, "exclude": outputs}
            methods = {key: METHODS["norm.include"] for key in conn}
        elif kind == "reduce":
            tensors = [t for t in ins if isinstance(t, torch.Tensor)]
            if len(tensors) > 1:  # torch.max(a, b): elementwise
                kind = "other"
            elif connections and tensors:
                n = int(tensors[0].numel())
                conn = {"include": n, "exclude": n}
                methods = {key: METHODS["reduce.include"] for key in conn}
    return LayerMeasurement(node.path, node.name, "call_module" if node.kind == "module" else "call_function",
                            tname, kind, in_shapes, per_sample, outputs, weight, bias, affine, other, flops, conn,
                            methods, tuple(notes), full)


#: op name fragments of weight layers; when fvcore has no counter for one, its module count is not a measurement
_FVCORE_WEIGHT_OPS = ("conv", "linear", "addmm", "matmul", "mm")


def _fvcore(module: Any, x: Any, name: str) -> tuple[Mapping[str, int], int, dict[str, int], dict[str, int]]:
    import logging
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = FlopCountAnalysis(module, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_module: dict[str, Any] = {key: int(v) for key, v in fa.by_module().items()}
            total = int(fa.total())
            ops = {key: int(v) for key, v in fa.by_operator().items()}
            unsupported = {key: int(v) for key, v in fa.unsupported_ops().items()}
            for path in list(by_module):
                skipped = [op for op in fa.unsupported_ops(path) if any(w in op for w in _FVCORE_WEIGHT_OPS)]
                if path and skipped:
                    by_module[path] = ("unsupported", skipped)
    except Exception as exc:
        raise ArchcountError(f"fvcore failed: {type(exc).__name__}: {exc}", model=name) from None
    finally:
        logger.setLevel(level)
    return by_module, total, ops, unsupported


__all__ = ["LayerMeasurement", "METHODS", "Measurement", "adaptive_pool_connections", "conv_connections",
           "functional_kind", "interpolation_connections", "layer_kind", "linear_connections", "measure",
           "pool_connections", "structural_connections", "transposed_connections"]
