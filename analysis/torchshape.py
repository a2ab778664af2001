"""The exact output shape of a real torch layer, from its attributes, without running it.

Layers are recognised by class name (the first known name in the class's MRO, so subclasses
work) and read through their attributes; this module does not import torch.  Spatial sizes may
be ints or sympy expressions; the formulas are those of :mod:`analysis.shapes`.

>>> import torch.nn as nn
>>> output_shape(nn.Conv2d(3, 16, 5, stride=2, padding=1), (1, 3, 1024, 768))
(1, 16, 511, 383)
>>> from analysis.symbols import H, W
>>> output_shape(nn.MaxPool2d(2), (16, H, W))
(16, floor(H/2), floor(W/2))
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import sympy as sp

from .errors import ArchcountError
from .shapes import Size, output_size

Shape = tuple[Any, ...]

ELEMENTWISE = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Hardshrink", "Softshrink", "Softplus",
    "Softsign", "Tanhshrink", "LogSigmoid", "Threshold",
    "Softmax", "LogSoftmax", "Softmax2d", "Softmin",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity",
})


def _name(layer: Any) -> str:
    return type(layer).__name__


def _tuple(value: Any, nd: int, argument: str, layer: str) -> tuple[Any, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and nd > 1:
            return tuple(value) * nd
        if len(value) != nd:
            raise ArchcountError(f"has {len(value)} values for {nd} spatial axes", argument=argument, layer=layer)
        return tuple(value)
    return (value,) * nd


def _known(a: Any, b: Any) -> bool:
    """True when ``a != b`` is certain (both numbers, or a nonzero numeric difference)."""
    diff = sp.sympify(a) - sp.sympify(b)
    return bool(diff.is_number and diff != 0)


def _spatial_rank(layer: Any, shape: Shape, nd: int, *, batched_only: bool = False) -> None:
    ranks = (nd + 2,) if batched_only else (nd + 1, nd + 2)
    if len(shape) not in ranks:
        want = " or ".join(f"{r}-d" for r in ranks)
        raise ArchcountError(f"expects a {want} input, got {len(shape)}-d", argument="input")


def _axis(kind: str, shape: Shape, nd: int, per_axis: Callable[[int], dict[str, Any]]) -> Shape:
    """Replace the last ``nd`` sizes by :func:`output_size` of each."""
    out = list(shape)
    for i in range(nd):
        pos = len(shape) - nd + i
        try:
            out[pos] = output_size(kind, shape[pos], **per_axis(i)).size
        except ArchcountError as exc:
            argument = "input" if exc.argument == "size" else exc.argument
            raise ArchcountError(f"spatial axis {i} (size {shape[pos]}): {exc.reason}", argument=argument) from None
    return tuple(out)


def _nd(layer: Any, default: int = 2) -> int:
    for cls in type(layer).__mro__:
        tail = cls.__name__[-2:]
        if tail in ("1d", "2d", "3d"):
            return int(tail[0])
    return default


def _conv(layer: Any, shape: Shape, nd: int) -> Shape:
    name = _name(layer)
    _spatial_rank(layer, shape, nd)
    channels = shape[-nd - 1]
    if _known(channels, layer.in_channels):
        raise ArchcountError(f"input has {channels} channels but in_channels={layer.in_channels}",
                             argument="input")
    transposed = bool(getattr(layer, "transposed", False))
    k = _tuple(layer.kernel_size, nd, "kernel_size", name)
    s = _tuple(layer.stride, nd, "stride", name)
    d = _tuple(layer.dilation, nd, "dilation", name)
    op = _tuple(getattr(layer, "output_padding", 0), nd, "output_padding", name)
    if isinstance(layer.padding, str):
        if layer.padding == "same":  # torch pads d(k-1) in total (more on the right when odd)
            out = list(shape)
            out[-nd - 1] = layer.out_channels
            return tuple(out)
        if layer.padding != "valid":
            raise ArchcountError(f"unknown padding {layer.padding!r}", argument="padding")
        p: tuple[Any, ...] = (0,) * nd
    else:
        p = _tuple(layer.padding, nd, "padding", name)
    kind = "transposed" if transposed else "conv"
    out = list(_axis(kind, shape, nd, lambda i: dict(
        kernel=k[i], stride=s[i], padding=p[i], dilation=d[i], output_padding=op[i] if transposed else 0)))
    out[-nd - 1] = layer.out_channels
    return tuple(out)


def _pool(kind: str) -> Callable[[Any, Shape, int], Shape]:
    def rule(layer: Any, shape: Shape, nd: int) -> Shape:
        name = _name(layer)
        _spatial_rank(layer, shape, nd)
        k = _tuple(layer.kernel_size, nd, "kernel_size", name)
        s = _tuple(layer.stride if layer.stride is not None else layer.kernel_size, nd, "stride", name)
        p = _tuple(layer.padding, nd, "padding", name)
        d = _tuple(getattr(layer, "dilation", 1), nd, "dilation", name)
        ceil = bool(getattr(layer, "ceil_mode", False))
        return _axis(kind, shape, nd, lambda i: dict(kernel=k[i], stride=s[i], padding=p[i], dilation=d[i],
                                                     ceil_mode=ceil))
    return rule


def _adaptive(layer: Any, shape: Shape, nd: int) -> Shape:
    _spatial_rank(layer, shape, nd)
    target = _tuple(layer.output_size, nd, "output_size", _name(layer))
    return tuple(shape[:-nd]) + tuple(n if t is None else t for n, t in zip(shape[-nd:], target))


_UPSAMPLE_RANK = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _upsample(layer: Any, shape: Shape, nd: int) -> Shape:
    mode = getattr(layer, "mode", "nearest")
    if not 3 <= len(shape) <= 5 or (mode in _UPSAMPLE_RANK and len(shape) != _UPSAMPLE_RANK[mode]):
        want = f"{_UPSAMPLE_RANK[mode]}-d" if mode in _UPSAMPLE_RANK else "3-d, 4-d or 5-d (batched)"
        raise ArchcountError(f"mode {mode!r} expects a {want} input, got {len(shape)}-d", argument="input")
    nd = len(shape) - 2
    size, scale = getattr(layer, "size", None), getattr(layer, "scale_factor", None)
    if size is not None:
        return tuple(shape[:2]) + _tuple(size, nd, "size", _name(layer))
    if scale is None:
        raise ArchcountError("neither size nor scale_factor is set", argument="scale_factor")
    sf = _tuple(scale, nd, "scale_factor", _name(layer))
    return _axis("upsample", shape, nd, lambda i: dict(scale_factor=sf[i]))


def _batchnorm(layer: Any, shape: Shape, nd: int) -> Shape:
    ranks = {1: (2, 3), 2: (4,), 3: (5,)}[nd]
    if len(shape) not in ranks:
        raise ArchcountError(f"expects a {' or '.join(f'{r}-d' for r in ranks)} input, got {len(shape)}-d",
                             argument="input")
    if _known(shape[1], layer.num_features):
        raise ArchcountError(f"input has {shape[1]} channels but num_features={layer.num_features}",
                             argument="input")
    return tuple(shape)


def _groupnorm(layer: Any, shape: Shape, nd: int) -> Shape:
    if len(shape) < 2 or _known(shape[1], layer.num_channels):
        raise ArchcountError(f"expects [N, {layer.num_channels}, *], got {list(shape)}", argument="input")
    return tuple(shape)


def _layernorm(layer: Any, shape: Shape, nd: int) -> Shape:
    norm = tuple(layer.normalized_shape)
    if len(shape) < len(norm) or any(_known(a, b) for a, b in zip(shape[-len(norm):], norm)):
        raise ArchcountError(f"the last dims must be {list(norm)}, got {list(shape)}", argument="input")
    return tuple(shape)


def _elementwise(layer: Any, shape: Shape, nd: int) -> Shape:
    return tuple(shape)


def _linear(layer: Any, shape: Shape, nd: int) -> Shape:
    if not shape or _known(shape[-1], layer.in_features):
        raise ArchcountError(f"the last dim must be in_features={layer.in_features}, got {list(shape)}",
                             argument="input")
    return tuple(shape[:-1]) + (layer.out_features,)


def _flatten(layer: Any, shape: Shape, nd: int) -> Shape:
    rank = len(shape)
    start = layer.start_dim + rank if layer.start_dim < 0 else layer.start_dim
    end = layer.end_dim + rank if layer.end_dim < 0 else layer.end_dim
    if not 0 <= start <= end < rank:
        raise ArchcountError(f"start_dim={layer.start_dim}, end_dim={layer.end_dim} do not fit a {rank}-d input",
                             argument="input")
    size: Size = 1
    for v in shape[start:end + 1]:
        size = size * v
    return tuple(shape[:start]) + (size,) + tuple(shape[end + 1:])


def _sequential(layer: Any, shape: Shape, nd: int) -> Shape:
    for index, child in enumerate(layer):
        try:
            shape = output_shape(child, shape)
        except ArchcountError as exc:
            raise ArchcountError(exc.reason, layer=f"{_name(layer)}[{index}] {exc.layer}", argument=exc.argument,
                                 shapes=exc.shapes) from None
    return shape


RULES: dict[str, Callable[[Any, Shape, int], Shape]] = {
    **{f"Conv{n}d": _conv for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": _conv for n in (1, 2, 3)},
    **{f"MaxPool{n}d": _pool("maxpool") for n in (1, 2, 3)},
    **{f"AvgPool{n}d": _pool("avgpool") for n in (1, 2, 3)},
    **{f"Adaptive{t}Pool{n}d": _adaptive for n in (1, 2, 3) for t in ("Avg", "Max")},
    **{f"BatchNorm{n}d": _batchnorm for n in (1, 2, 3)},
    "Upsample": _upsample,
    "GroupNorm": _groupnorm,
    "LayerNorm": _layernorm,
    "Linear": _linear,
    "Flatten": _flatten,
    "Sequential": _sequential,
    **{name: _elementwise for name in ELEMENTWISE},
}


def _as_shape(input_shape: Any) -> Shape:
    if isinstance(input_shape, str):
        from .layertext import parse_shape
        return parse_shape(input_shape)
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise ArchcountError(f"must be a sequence of sizes, got {input_shape!r}", argument="input") from None
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, sp.Basic):
            if d.is_number and not (d.is_integer and d >= 1):
                raise ArchcountError(f"dimension {i} must be an integer >= 1, got {d}", argument="input",
                                     shapes={"input": dims})
            out.append(int(d) if d.is_number else d)
            continue
        try:
            value = int(d)
        except (TypeError, ValueError):
            raise ArchcountError(f"dimension {i} must be an integer or a sympy expression, got {d!r}",
                                 argument="input", shapes={"input": dims}) from None
        if isinstance(d, bool) or value != d or value < 1:
            raise ArchcountError(f"dimension {i} must be an integer >= 1, got {d!r}", argument="input",
                                 shapes={"input": dims})
        out.append(value)
    return tuple(out)


def rule_for(layer: Any) -> tuple[str, Callable[[Any, Shape, int], Shape]] | None:
    """The (class name, rule) used for ``layer``: the first known name in its MRO, else ``None``."""
    for cls in type(layer).__mro__:
        if cls.__name__ in RULES:
            return cls.__name__, RULES[cls.__name__]
    return None


def output_shape(layer: Any, input_shape: Sequence[Any] | str) -> tuple:
    """The output shape of ``layer`` (an ``nn.Module``) for ``input_shape`` (ints or sympy), exactly.

    Impossible inputs raise :class:`ArchcountError` naming the layer class, the argument and the
    input shape.

    >>> import torch.nn as nn
    >>> output_shape(nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), (1, 16, 32, 32))
    (1, 8, 64, 64)
    >>> output_shape(nn.Conv2d(3, 8, 7), (1, 3, 5, 5))
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: layer Conv2d: argument kernel: spatial axis 0 (size 5): kernel extent 7 \
is larger than the padded input 5 (size 5 + 2*padding 0); the input must be at least 7 (shapes: input=[1, 3, 5, 5])
    """
    shape = _as_shape(input_shape)
    found = rule_for(layer)
    name = _name(layer)
    if found is None:
        raise ArchcountError(f"no shape rule for {name}; known: Conv, ConvTranspose, MaxPool, AvgPool, "
                             f"AdaptivePool (1-3d), Upsample, BatchNorm, GroupNorm, LayerNorm, Linear, Flatten, "
                             f"Sequential and element-wise layers", layer=name, shapes={"input": shape})
    _, rule = found
    try:
        return rule(layer, shape, _nd(layer))
    except ArchcountError as exc:
        if name == "Sequential" or (exc.layer and exc.layer != name):
            raise
        raise ArchcountError(exc.reason, layer=name, argument=exc.argument, model=exc.model,
                             shapes={"input": shape}, hint=exc.hint) from None
