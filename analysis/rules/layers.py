"""Module-level counting rules: conv, transposed conv, linear, pooling, upsampling, normalisation.

These rules take per-sample shapes (batch excluded) and are registered for the torch module
classes (and the functional forms that share their parameters).
"""
from __future__ import annotations

from typing import Any, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..shapes import out_len
from .core import (RULES, LayerCounts, LayerSpec, Rule, Shape, _is_num, _need_input, _num, _positive, _same,
                   _tuple, broadcast_shapes, prod)
from .taps import exact_taps_1d, exact_transposed_taps_1d, window_taps


# --------------------------------------------------------------------------- conv family

def _padding_pairs(padding: Any, K: tuple, d: tuple, n: int) -> tuple[tuple, tuple, bool]:
    """(left pads, right pads, same_mode) per spatial dim; handles 'same' and 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * n, (0,) * n, False
        if padding == "same":
            total = [di * (ki - 1) for ki, di in zip(K, d)]
            left = tuple(t // 2 if _is_num(t) else sp.floor(t / 2) for t in total)
            right = tuple(t - lft for t, lft in zip(total, left))
            return left, right, True
        raise ArchcountError(f"unknown padding mode {padding!r}", argument="padding")
    pads = _tuple(padding, n)
    return pads, pads, False


def _conv_geometry(spec: LayerSpec, in_shapes: Sequence[Shape], ndim: int) -> tuple[Any, ...]:
    """Checked input shape, channels and per-axis kernel/stride/dilation of a (transposed) conv."""
    p = spec.params
    shape = _need_input(spec, in_shapes, ndim + 1)
    cin, cout, groups = p["in_channels"], p["out_channels"], p.get("groups", 1)
    if _same(shape[0], cin) is False:
        raise ArchcountError(f"expects {cin} input channels, got {shape[0]}", layer=spec.path, argument="input",
                             shapes={"input": ("BS",) + shape})
    K = _tuple(p["kernel_size"], ndim)
    return p, shape, cin, cout, groups, K, _tuple(p.get("stride", 1), ndim), _tuple(p.get("dilation", 1), ndim)


def conv_rule_factory(ndim: int) -> Rule:
    """Rule for ConvNd: weights k^ndim*Cin/groups*Cout, bias Cout; connections with and without padding taps."""
    def conv_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        p, shape, cin, cout, groups, K, s, d = _conv_geometry(spec, in_shapes, ndim)
        pl, pr, _ = _padding_pairs(p.get("padding", 0), K, d, ndim)
        outs, exact_dims, n_mins, notes = [], [], [], []
        for i in range(ndim):
            n = shape[1 + i]
            o = _floor_out(n, K[i], s[i], pl[i], pr[i], d[i])
            _positive(o, f"output size along spatial dim {i}", spec, in_shapes)
            outs.append(o)
            taps, n_min = exact_taps_1d(n, o, K[i], s[i], pl[i], pr[i], d[i])
            exact_dims.append(taps)
            if n_min:
                n_mins.append(n_min)
        fan_in = sp.Rational(1, 1) * cin / groups
        kk = prod(K)
        out_shape = (cout, *outs)
        outputs = prod(out_shape)
        include = _num(sp.expand(outputs * kk * fan_in))
        exclude = None
        if all(t is not None for t in exact_dims):
            exclude = _num(sp.expand(cout * fan_in * prod(exact_dims)))
        else:
            notes.append("exact padding-tap counts need numeric kernel, stride, padding and dilation")
        if p.get("padding_mode", "zeros") != "zeros":
            exclude = include
            notes.append(f"padding_mode={p.get('padding_mode')}: padding taps read real inputs, so exclude = include")
        assumptions = ()
        if n_mins:
            assumptions = (f"exclude: {spec.path}: exact padding-tap formula holds for spatial sizes >= {max(n_mins)}",)
        return LayerCounts(
            "conv", out_shape, weight=_num(sp.expand(cout * fan_in * kk)), bias=cout if p.get("has_bias") else 0,
            outputs=outputs, connections={"include": include, "exclude": exclude}, notes=tuple(notes),
            assumptions=assumptions, domain={"exclude": max(n_mins)} if n_mins else {})
    conv_rule.__name__ = f"conv{ndim}d_rule"
    return conv_rule


def _floor_out(n: Any, K: Any, s: Any, pl: Any, pr: Any, d: Any) -> Any:
    span = n + pl + pr - d * (K - 1) - 1
    if _is_num(span) and _is_num(s):
        return int(span) // int(s) + 1
    if _is_num(s) and int(s) == 1:
        return sp.expand(span + 1)
    return sp.floor(span / s) + 1


def transposed_rule_factory(ndim: int) -> Rule:
    """Rule for ConvTransposeNd: scatter, exact and gather connection counts."""
    def transposed_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        p, shape, cin, cout, groups, K, s, d = _conv_geometry(spec, in_shapes, ndim)
        pad = _tuple(p.get("padding", 0), ndim)
        op = _tuple(p.get("output_padding", 0), ndim)
        outs, exact_dims, n_mins = [], [], []
        for i in range(ndim):
            n = shape[1 + i]
            o = _num(sp.expand((n - 1) * s[i] - 2 * pad[i] + d[i] * (K[i] - 1) + op[i] + 1))
            _positive(o, f"output size along spatial dim {i}", spec, in_shapes, argument="padding")
            outs.append(o)
            taps, n_min = exact_transposed_taps_1d(n, K[i], s[i], pad[i], op[i], d[i])
            exact_dims.append(taps)
            if n_min:
                n_mins.append(n_min)
        kk = prod(K)
        per_pair = sp.Rational(1, 1) * cin * cout / groups
        inputs_sp = prod(shape[1:])
        out_shape = (cout, *outs)
        notes: tuple[str, ...] = ()
        exact = None
        if all(t is not None for t in exact_dims):
            exact = _num(sp.expand(per_pair * prod(exact_dims)))
        else:
            notes = ("exact transposed counts need numeric kernel, stride, padding and dilation",)
        return LayerCounts(
            "transposed", out_shape, weight=_num(sp.expand(per_pair * kk)), bias=cout if p.get("has_bias") else 0,
            outputs=prod(out_shape),
            connections={"scatter": _num(sp.expand(inputs_sp * kk * per_pair)), "exact": exact,
                         "gather": _num(sp.expand(prod(outs) * kk * per_pair))},
            notes=notes,
            assumptions=(f"exact: {spec.path}: exact transposed formula holds for spatial sizes >= {max(n_mins)}",)
            if n_mins and max(n_mins) > 1 else (),
            domain={"exact": max(n_mins)} if n_mins and max(n_mins) > 1 else {})
    transposed_rule.__name__ = f"conv_transpose{ndim}d_rule"
    return transposed_rule


def linear_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Linear: in*out weights, out biases; one connection per weight per position."""
    p = spec.params
    shape = _need_input(spec, in_shapes)
    fin, fout = p["in_features"], p["out_features"]
    same = _same(shape[-1], fin)
    if same is False:
        raise ArchcountError(f"expects {fin} input features, got {shape[-1]}", layer=spec.path, argument="input",
                             shapes={"input": ("BS",) + shape})
    constraints = ((shape[-1], fin),) if same is None else ()
    lead = prod(shape[:-1])
    out_shape = (*shape[:-1], fout)
    conn = _num(sp.expand(lead * fin * fout))
    return LayerCounts("linear", out_shape, weight=_num(sp.expand(fin * fout)), bias=fout if p.get("has_bias") else 0,
                       outputs=prod(out_shape), connections={"include": conn, "exclude": conn},
                       constraints=constraints)


# --------------------------------------------------------------------------- pooling / resampling

def pool_rule_factory(ndim: int, kind: str) -> Rule:
    """Max/Avg pool: outputs; one connection per window tap (exclude: taps inside the input)."""
    def pool_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        p = spec.params
        shape = _need_input(spec, in_shapes)
        if len(shape) < ndim:
            raise ArchcountError(f"expects at least {ndim} spatial dims", layer=spec.path)
        K = _tuple(p["kernel_size"], ndim)
        stride = p.get("stride") or p["kernel_size"]
        s = _tuple(stride, ndim)
        pad = _tuple(p.get("padding", 0), ndim)
        d = _tuple(p.get("dilation", 1), ndim)
        ceil_mode = bool(p.get("ceil_mode", False))
        lead = shape[: len(shape) - ndim]
        outs, exact_dims, n_mins = [], [], []
        for i in range(ndim):
            n = shape[len(lead) + i]
            o = out_len("maxpool", n, K[i], s[i], pad[i], d[i], ceil_mode=ceil_mode)
            o = _num(o)
            _positive(o, f"output size along spatial dim {i}", spec, in_shapes)
            outs.append(o)
            if ceil_mode and not (_is_num(n) and _is_num(o)):
                exact_dims.append(None)
                continue
            if ceil_mode:
                taps = window_taps(int(n), int(o), int(K[i]), int(s[i]), int(pad[i]), int(d[i]))
                n_min = None
            else:
                taps, n_min = exact_taps_1d(n, o, K[i], s[i], pad[i], pad[i], d[i])
            exact_dims.append(taps)
            if n_min:
                n_mins.append(n_min)
        out_shape = (*lead, *outs)
        outputs = prod(out_shape)
        include = _num(sp.expand(outputs * prod(K)))
        exclude = _num(sp.expand(prod(lead) * prod(exact_dims))) if all(t is not None for t in exact_dims) else None
        return LayerCounts("resample", out_shape, outputs=outputs,
                           connections={"include": include, "exclude": exclude},
                           assumptions=(f"exclude: {spec.path}: exact window formula holds for spatial sizes >= "
                                        f"{max(n_mins)}",) if n_mins and max(n_mins) > 1 else (),
                           domain={"exclude": max(n_mins)} if n_mins and max(n_mins) > 1 else {})
    pool_rule.__name__ = f"{kind}pool{ndim}d_rule"
    return pool_rule


def _adaptive_window_total(n: Any, o: int) -> Any:
    total: Any = 0
    for i in range(o):
        start = sp.floor(sp.Rational(i, o) * n)
        end = sp.ceiling(sp.Rational(i + 1, o) * n)
        total = total + end - start
    return _num(total)


def adaptive_pool_rule_factory(ndim: int) -> Rule:
    """AdaptiveAvg/MaxPool: windows of PyTorch's start/end rule; connections = total window sizes."""
    def adaptive_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        shape = _need_input(spec, in_shapes)
        target = _tuple(spec.params["output_size"], ndim)
        lead = shape[: len(shape) - ndim]
        outs, windows = [], []
        for i in range(ndim):
            n = shape[len(lead) + i]
            o = n if target[i] is None else target[i]
            if not _is_num(o):
                raise ArchcountError("adaptive pooling needs a numeric output_size", layer=spec.path)
            outs.append(o)
            windows.append(_adaptive_window_total(n, int(o)))
        out_shape = (*lead, *outs)
        conn = _num(sp.expand(prod(lead) * prod(windows)))
        return LayerCounts("resample", out_shape, outputs=prod(out_shape),
                           connections={"include": conn, "exclude": conn})
    adaptive_rule.__name__ = f"adaptive_pool{ndim}d_rule"
    return adaptive_rule


_TAPS_PER_DIM = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4,
                 "area": None}


def upsample_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Upsample / interpolate: outputs; nearest 1 connection per output, (bi/tri)linear 2 per dim, bicubic 4."""
    p = spec.params
    shape = _need_input(spec, in_shapes)
    nsp = len(shape) - 1
    mode = p.get("mode", "nearest")
    taps = _TAPS_PER_DIM.get(mode)
    if taps is None:
        raise ArchcountError(f"no counting rule for interpolation mode {mode!r}", layer=spec.path)
    need = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}.get(mode)
    if need is not None and nsp != need:
        raise ArchcountError(f"mode {mode!r} needs {need} spatial dim(s), got {nsp}", layer=spec.path,
                             argument="input", shapes={"input": ("BS",) + shape})
    size, sf = p.get("size"), p.get("scale_factor")
    outs = []
    for i in range(nsp):
        n = shape[1 + i]
        if size is not None:
            outs.append(_tuple(size, nsp)[i])
        elif sf is not None:
            raw = _tuple(sf, nsp)[i]
            if _is_num(n):  # torch computes floor(n * scale) in double precision
                outs.append(int(out_len("upsample", int(n), scale_factor=raw)))
                continue
            f = sp.nsimplify(raw)
            outs.append(_num(sp.expand(n * f)) if f.is_integer else _num(sp.floor(n * f)))
        else:
            raise ArchcountError("upsampling needs size or scale_factor", layer=spec.path)
    out_shape = (shape[0], *outs)
    outputs = prod(out_shape)
    conn = _num(outputs * taps ** nsp)
    note = () if taps == 1 else (f"{mode}: {taps ** nsp} taps per output; clamped border taps are counted "
                                 f"as connections under both padding conventions",)
    return LayerCounts("resample", out_shape, outputs=outputs, connections={"include": conn, "exclude": conn},
                       notes=note)


# --------------------------------------------------------------------------- normalisation

def norm_rule_factory(feature_attr: str) -> Rule:
    """Normalisation layers: affine weights (gamma, beta); as a layer, one connection per output."""
    def norm_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
        shape = _need_input(spec, in_shapes)
        p = spec.params
        affine = p.get("affine", p.get("elementwise_affine", True))
        feats = p.get(feature_attr)
        if feature_attr == "normalized_shape":
            norm = _tuple(feats, 1)
            if len(shape) < len(norm) or any(_same(a, b) is False for a, b in zip(shape[-len(norm):], norm)):
                raise ArchcountError(f"normalized_shape {tuple(norm)} does not match the input's last dims",
                                     layer=spec.path, argument="input", shapes={"input": ("BS",) + shape})
            feats = prod(norm)
        elif shape and _same(shape[0], feats) is False:
            raise ArchcountError(f"expects {feats} channels, got {shape[0]}", layer=spec.path, argument="input",
                                 shapes={"input": ("BS",) + shape})
        outputs = prod(shape)
        bias_too = p.get("has_bias", True)
        return LayerCounts("norm", shape, affine=(_num((2 if bias_too else 1) * feats) if affine else 0),
                           outputs=outputs, connections={"include": outputs, "exclude": outputs})
    norm_rule.__name__ = f"norm_{feature_attr}_rule"
    return norm_rule


# --------------------------------------------------------------------------- elementwise / structural

def elementwise_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Activations, dropout, identity and arithmetic: same shape, no weights, nothing counted."""
    shapes = [s for s in in_shapes if s is not None]
    if not shapes:
        raise ArchcountError("input shape unknown", layer=spec.path)
    shape = tuple(shapes[0])
    for other in shapes[1:]:
        shape = broadcast_shapes(shape, tuple(other), spec)
    return LayerCounts("elementwise", shape, outputs=prod(shape))


def flatten_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """nn.Flatten (start_dim=1, end_dim=-1 by default; dims count the batch)."""
    shape = _need_input(spec, in_shapes)
    p = spec.params
    start, end = p.get("start_dim", 1), p.get("end_dim", -1)
    ndim = len(shape) + 1
    start = start + ndim if start < 0 else start
    end = end + ndim if end < 0 else end
    if start == 0:
        raise ArchcountError("flattens the batch dimension, which archcount does not count", layer=spec.path)
    s0, e0 = start - 1, end - 1
    out = (*shape[:s0], prod(shape[s0:e0 + 1]), *shape[e0 + 1:])
    return LayerCounts("structural", out, outputs=prod(out))


def pixel_shuffle_shape(x: Shape, r: int, down: bool, spec: LayerSpec) -> Shape:
    """(…, C, H, W) -> (…, C/r², rH, rW) for a pixel shuffle; the inverse for an unshuffle."""
    if len(x) < 3:
        raise ArchcountError("expects a (C, H, W) input", layer=spec.path, argument="input")
    *lead, c, h, w = x
    if down:
        return (*lead, _num(c * r * r), _num(sp.floor(sp.sympify(h) / r)), _num(sp.floor(sp.sympify(w) / r)))
    if _is_num(c) and int(c) % (r * r):
        raise ArchcountError(f"pixel shuffle by {r} needs channels divisible by {r * r}, got {c}", layer=spec.path,
                             argument="input")
    return (*lead, _num(sp.sympify(c) / (r * r)), _num(h * r), _num(w * r))


def pixel_shuffle_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """PixelShuffle(r): (C, H, W) -> (C/r², rH, rW); PixelUnshuffle the inverse."""
    p = spec.params
    down = "downscale_factor" in p
    r = int(p["downscale_factor"] if down else p["upscale_factor"])
    out = pixel_shuffle_shape(_need_input(spec, in_shapes), r, down, spec)
    return LayerCounts("structural", out, outputs=prod(out))


def embedding_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Embedding(n, d): indices (L,) -> (L, d); n·d weights; a lookup has no connections."""
    shape = tuple(in_shapes[0]) if in_shapes and in_shapes[0] is not None else ()
    p = spec.params
    out = (*shape, p["embedding_dim"])
    return LayerCounts("embedding", out, weight=_num(p["num_embeddings"] * p["embedding_dim"]), outputs=prod(out))


def pad_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """ZeroPad2d / ConstantPad / ReflectionPad / ReplicationPad / CircularPad: pads the last dims."""
    shape = list(_need_input(spec, in_shapes))
    pads = list(_tuple(spec.params["padding"], 2))
    for i in range(len(pads) // 2):
        axis = len(shape) - 1 - i
        shape[axis] = _num(sp.expand(shape[axis] + pads[2 * i] + pads[2 * i + 1]))
    return LayerCounts("structural", tuple(shape), outputs=prod(shape))


def unflatten_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    shape = list(_need_input(spec, in_shapes))
    d = int(spec.params["dim"])
    d = d + len(shape) + 1 if d < 0 else d
    if d == 0:
        raise ArchcountError("unflattens the batch dimension", layer=spec.path)
    sizes = list(spec.params["unflattened_size"])
    out = shape[:d - 1] + sizes + shape[d:]
    return LayerCounts("structural", tuple(out), outputs=prod(out))


def prelu_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """PReLU: an activation with num_parameters slopes (counted once as weights)."""
    shape = _need_input(spec, in_shapes)
    return LayerCounts("parameter", shape, weight=spec.params.get("num_parameters", 1), outputs=prod(shape))


def glu_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    shape = list(_need_input(spec, in_shapes))
    d = int(spec.params.get("dim", -1))
    d = d if d < 0 else d - 1
    shape[d] = _num(sp.sympify(shape[d]) / 2)
    return LayerCounts("elementwise", tuple(shape), outputs=prod(shape))


def lrn_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    shape = _need_input(spec, in_shapes)
    outputs = prod(shape)
    return LayerCounts("norm", shape, outputs=outputs, connections={"include": outputs, "exclude": outputs})


_ELEMENTWISE_MODULES = [
    f"torch.nn.modules.activation.{n}" for n in (
        "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
        "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Tanhshrink", "Softmax", "LogSoftmax",
        "Threshold", "Softmax2d", "Softmin", "LogSigmoid", "Hardshrink", "Softshrink", "RReLU")
] + [f"torch.nn.modules.channelshuffle.ChannelShuffle"] + [f"torch.nn.modules.dropout.{n}" for n in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")] \
  + ["torch.nn.modules.linear.Identity"]
for _nd in (1, 2, 3):
    RULES.add(f"torch.nn.modules.conv.Conv{_nd}d", conv_rule_factory(_nd))
    RULES.add(f"torch.nn.modules.conv.ConvTranspose{_nd}d", transposed_rule_factory(_nd))
    RULES.add(f"torch.nn.modules.pooling.MaxPool{_nd}d", pool_rule_factory(_nd, "max"))
    RULES.add(f"torch.nn.modules.pooling.AvgPool{_nd}d", pool_rule_factory(_nd, "avg"))
    RULES.add(f"torch.nn.modules.pooling.AdaptiveAvgPool{_nd}d", adaptive_pool_rule_factory(_nd))
    RULES.add(f"torch.nn.modules.pooling.AdaptiveMaxPool{_nd}d", adaptive_pool_rule_factory(_nd))
    RULES.add(f"torch.nn.modules.batchnorm.BatchNorm{_nd}d", norm_rule_factory("num_features"))
    RULES.add(f"torch.nn.modules.instancenorm.InstanceNorm{_nd}d", norm_rule_factory("num_features"))
RULES.add("torch.nn.modules.normalization.GroupNorm", norm_rule_factory("num_channels"))
RULES.add("torch.nn.modules.normalization.LayerNorm", norm_rule_factory("normalized_shape"))
RULES.add("torch.nn.modules.linear.Linear", linear_rule)
RULES.add("torch.nn.modules.upsampling.Upsample", upsample_rule)
RULES.add("torch.nn.modules.upsampling.UpsamplingNearest2d", upsample_rule)
RULES.add("torch.nn.modules.upsampling.UpsamplingBilinear2d", upsample_rule)
RULES.add("torch.nn.modules.flatten.Flatten", flatten_rule)
for _key in _ELEMENTWISE_MODULES:
    RULES.add(_key, elementwise_rule)
RULES.add("torch.nn.modules.pixelshuffle.PixelShuffle", pixel_shuffle_rule)
RULES.add("torch.nn.modules.pixelshuffle.PixelUnshuffle", pixel_shuffle_rule)
RULES.add("torch.nn.modules.sparse.Embedding", embedding_rule)
RULES.add("torch.nn.modules.flatten.Unflatten", unflatten_rule)
RULES.add("torch.nn.modules.activation.PReLU", prelu_rule)
RULES.add("torch.nn.modules.activation.GLU", glu_rule)
RULES.add("torch.nn.modules.normalization.LocalResponseNorm", lrn_rule)
for _nd in (1, 2, 3):
    for _kind in ("Zero", "Constant", "Reflection", "Replication", "Circular"):
        if _kind == "Zero" and _nd == 0:
            continue
        RULES.add(f"torch.nn.modules.padding.{_kind}Pad{_nd}d", pad_rule)
