"""Per-layer counting rules: a registry keyed by layer type, resolved along the type's MRO.

A rule is a pure function ``rule(spec, in_shapes) -> LayerCounts`` returning every count of one
layer together as sympy expressions: its output shape, weights split into kernel weights, bias
and normalisation affine, outputs, and connections under each connection convention.  Which of
them a total uses is decided afterwards by a :class:`~analysis.conventions.Convention`.

Keys are strings: ``"module.QualName"`` of a layer class (``"torch.nn.modules.conv.Conv2d"``), or
a function key (``"torch.cat"``, ``"operator.add"``, ``"Tensor.flatten"``).  Nothing here imports
torch; classes passed to :func:`register_rule` are turned into their key.

>>> from analysis.rules import LayerSpec, apply_rule
>>> spec = LayerSpec("conv", "torch.nn.modules.conv.Conv2d", ("torch.nn.modules.conv.Conv2d",),
...     dict(in_channels=1, out_channels=8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1),
...          dilation=(1, 1), groups=1, has_bias=True))
>>> c = apply_rule(spec, [(1, 32, 32)])
>>> c.out_shape, c.weight, c.bias, c.connections["include"]
((8, 32, 32), 72, 8, 73728)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import sympy as sp

from .errors import ArchcountError
from .shapes import out_len

Shape = tuple  # per-sample shape, batch excluded: (C, H, W) or (F,)

CATEGORIES = ("conv", "transposed", "linear", "norm", "resample", "elementwise", "structural")


@dataclass(frozen=True)
class LayerSpec:
    """A torch-free description of one layer (or functional op) of a captured graph."""

    path: str                         #: module path ("block1.0") or fx node name ("cat")
    key: str                          #: the registry key of its exact type or function
    mro_keys: tuple[str, ...]         #: keys along the type's MRO, most specific first
    params: Mapping[str, Any]         #: hyperparameters (ints or sympy expressions)
    inputs: tuple[str, ...] = ()      #: names of the producing nodes
    type_name: str = ""               #: short type name ("Conv2d", "torch.cat")


@dataclass(frozen=True)
class LayerCounts:
    """Everything one layer contributes, before a convention picks what counts."""

    category: str
    out_shape: Shape
    weight: Any = 0          #: kernel / matrix weights
    bias: Any = 0            #: bias parameters
    affine: Any = 0          #: normalisation affine parameters (gamma, beta)
    outputs: Any = 0         #: output units per sample
    connections: Mapping[str, Any] = field(default_factory=dict)  #: by connection convention
    notes: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    constraints: tuple[tuple[Any, Any], ...] = ()  #: (a, b) pairs of sizes that must be equal


Rule = Callable[[LayerSpec, Sequence[Shape]], LayerCounts]


def type_key(obj: Any) -> str:
    """Registry key of a class, function or key string."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__name__", None) or getattr(obj, "__qualname__", None) or repr(obj)
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional",
              "torch._C._VariableFunctions": "torch", "torch.functional": "torch"}.get(module, module)
    return f"{module}.{name}" if module else name


class RuleRegistry:
    """Counting rules by layer type; lookup walks the MRO, then short names.

    >>> reg = RuleRegistry()
    >>> @reg.register("my.Layer")
    ... def my_layer(spec, in_shapes):
    ...     return LayerCounts("elementwise", in_shapes[0])
    >>> reg.resolve(("my.SubLayer", "my.Layer"))[0]
    'my.Layer'
    """

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(self, *keys: Any) -> Callable[[Rule], Rule]:
        def deco(fn: Rule) -> Rule:
            for key in keys:
                self._rules[type_key(key)] = fn
            return fn
        return deco

    def add(self, key: Any, rule: Rule) -> None:
        self._rules[type_key(key)] = rule

    def resolve(self, mro: Iterable[str]) -> tuple[str, Rule] | None:
        mro = tuple(mro)
        for key in mro:
            if key in self._rules:
                return key, self._rules[key]
        short = {k.rsplit(".", 1)[-1]: k for k in self._rules if "." in k and not k.startswith(("torch.", "operator."))}
        for key in mro:
            name = key.rsplit(".", 1)[-1]
            if name in short:
                return short[name], self._rules[short[name]]
        return None

    def keys(self) -> list[str]:
        return sorted(self._rules)

    def __contains__(self, key: Any) -> bool:
        return type_key(key) in self._rules


#: The default rule registry; users extend it with :func:`register_rule`.
RULES = RuleRegistry()


def register_rule(*layer_types: Any) -> Callable[[Rule], Rule]:
    """Register a counting rule for layer classes (or key strings) in the default registry.

    >>> @register_rule("mypkg.Scale")
    ... def scale_rule(spec, in_shapes):
    ...     return LayerCounts("elementwise", in_shapes[0], outputs=prod(in_shapes[0]))
    """
    return RULES.register(*layer_types)


def apply_rule(spec: LayerSpec, in_shapes: Sequence[Shape], registry: RuleRegistry = RULES) -> LayerCounts:
    found = registry.resolve(spec.mro_keys or (spec.key,))
    if found is None:
        raise ArchcountError(f"no counting rule for {spec.type_name or spec.key}", layer=spec.path)
    return found[1](spec, in_shapes)


# --------------------------------------------------------------------------- helpers

def prod(values: Iterable[Any]) -> Any:
    out: Any = sp.Integer(1)
    for v in values:
        out = out * v
    return _num(out)


def _num(x: Any) -> Any:
    """Plain int for numeric sympy values (keeps tables readable and JSON-able)."""
    if isinstance(x, sp.Basic) and x.is_number and x.is_integer:
        return int(x)
    return x


def _is_num(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) or (isinstance(x, sp.Basic) and x.is_number)


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and n > 1:
            return tuple(value) * n
        return tuple(value)
    return (value,) * n


def _positive(value: Any, what: str, spec: LayerSpec, in_shapes: Sequence[Shape], argument: str = "kernel") -> Any:
    if _is_num(value) and int(value) < 1:
        raise ArchcountError(f"{what} would be {value}: the input is too small for this layer", argument=argument,
                             layer=spec.path, shapes={"input": ("BS",) + tuple(in_shapes[0]) if in_shapes else None})
    return value


def _need_input(spec: LayerSpec, in_shapes: Sequence[Shape], ndim: int | None = None) -> Shape:
    if not in_shapes or in_shapes[0] is None:
        raise ArchcountError("input shape unknown", layer=spec.path, argument="input")
    shape = tuple(in_shapes[0])
    if ndim is not None and len(shape) != ndim:
        raise ArchcountError(f"expects a {ndim + 1}-d input [BS, ...], got {len(shape) + 1}-d", layer=spec.path,
                             argument="input", shapes={"input": ("BS",) + shape})
    return shape


def _same(a: Any, b: Any) -> bool | None:
    """True/False when decidable, None when it depends on the symbols."""
    diff = sp.simplify(sp.sympify(a) - sp.sympify(b))
    if diff == 0:
        return True
    if diff.is_number:
        return False
    return None


# --------------------------------------------------------------------------- exact tap counts

def _brute_taps(n: int, out: int, K: int, s: int, pl: int, d: int) -> int:
    total = 0
    for o in range(out):
        base = o * s - pl
        for j in range(K):
            if 0 <= base + j * d < n:
                total += 1
    return total


def _loss(v: int, K: int, d: int) -> int:
    """Taps lost by a window overshooting the input edge by v positions."""
    if v <= 0:
        return 0
    return min(K, -((-v) // d))


def exact_taps_1d(n: Any, out: Any, K: Any, s: Any, pl: Any, pr: Any, d: Any) -> tuple[Any, int | None]:
    """Number of (output, tap) pairs whose tap reads an input position (not padding), floor mode.

    Returns ``(count, n_min)``; ``count`` is exact for all ``n >= n_min`` (``n_min`` is None when
    ``n`` is numeric and the count was enumerated).  ``None`` count when a parameter is symbolic.
    """
    if not all(_is_num(v) for v in (K, s, pl, pr, d)):
        return None, None
    K, s, pl, pr, d = (int(v) for v in (K, s, pl, pr, d))
    if _is_num(n) and _is_num(out):
        return _brute_taps(int(n), int(out), K, s, pl, d), None
    left = 0
    o = 0
    while o * s < pl:
        left += _loss(pl - o * s, K, d)
        o += 1
    n_left = o
    m = n + pl + pr - d * (K - 1) - 1
    residues = []
    n_right = 0
    for r in range(s):
        v = pr - r
        lost, t = 0, 0
        while v - t * s > 0:
            lost += _loss(v - t * s, K, d)
            t += 1
        n_right = max(n_right, t)
        residues.append(lost)
    if len(set(residues)) == 1:
        right: Any = residues[0]
    else:
        mod = sp.Mod(m, s)
        right = sp.Piecewise(*[(residues[r], sp.Eq(mod, r)) for r in range(s - 1)], (residues[-1], True))
    # exact once the left- and right-cropped windows are distinct and the windows fit
    n_min = max(1, (n_left + n_right) * s + d * (K - 1) + 1 - pl - pr)
    # only worth stating when it is stricter than "the window fits in the padded input"
    return out * K - left - right, (n_min if n_min > max(1, d * (K - 1) + 1 - pl - pr) else None)


def exact_transposed_taps_1d(n: Any, K: Any, s: Any, p: Any, op: Any, d: Any) -> tuple[Any, int | None]:
    """(input, tap) pairs of a transposed conv whose target survives the cropping."""
    if not all(_is_num(v) for v in (K, s, p, op, d)):
        return None, None
    K, s, p, op, d = (int(v) for v in (K, s, p, op, d))
    out = (n - 1) * s - 2 * p + d * (K - 1) + op + 1
    if _is_num(n):
        n = int(n)
        total = sum(1 for i in range(n) for j in range(K) if 0 <= i * s + j * d - p < out)
        return total, None
    left = sum(1 for i in range(p // s + 1) for j in range(K) if i * s + j * d < p)
    right, t = 0, 0
    while True:
        lost = sum(1 for j in range(K) if j * d > d * (K - 1) + op - p + t * s)
        if lost == 0:
            break
        right += lost
        t += 1
    n_min = max(1, p // s + 1 + t)
    return n * K - left - right, n_min


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
            assumptions=assumptions)
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
            if n_mins and max(n_mins) > 1 else ())
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
                taps = _brute_taps(int(n), int(o), int(K[i]), int(s[i]), int(pad[i]), int(d[i]))
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
                                        f"{max(n_mins)}",) if n_mins and max(n_mins) > 1 else ())
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


def interpolate_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """torch.nn.functional.interpolate(x, size=None, scale_factor=None, mode='nearest', ...)."""
    args = list(spec.params.get("args", ()))
    kwargs = dict(spec.params.get("kwargs", {}))
    names = ["input", "size", "scale_factor", "mode"]
    for name, value in zip(names[1:], args[1:]):
        kwargs.setdefault(name, value)
    params = {"size": kwargs.get("size"), "scale_factor": kwargs.get("scale_factor"),
              "mode": kwargs.get("mode", "nearest")}
    return upsample_rule(LayerSpec(spec.path, spec.key, spec.mro_keys, params, spec.inputs, spec.type_name), in_shapes)


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
        shape = _broadcast(shape, tuple(other), spec)
    return LayerCounts("elementwise", shape, outputs=prod(shape))


def _broadcast(a: Shape, b: Shape, spec: LayerSpec) -> Shape:
    if len(b) > len(a):
        a, b = b, a
    b = (1,) * (len(a) - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if _is_num(y) and int(y) == 1:
            out.append(x)
        elif _is_num(x) and int(x) == 1:
            out.append(y)
        elif _same(x, y) is False:
            raise ArchcountError(f"shapes {a} and {b} do not broadcast", layer=spec.path)
        else:
            out.append(x)
    return tuple(out)


def _dim_index(dim: int, ndim_with_batch: int, spec: LayerSpec) -> int:
    dim = dim + ndim_with_batch if dim < 0 else dim
    if dim == 0:
        raise ArchcountError("operates on the batch dimension, which archcount does not count", layer=spec.path)
    if not 0 < dim < ndim_with_batch:
        raise ArchcountError(f"dim {dim} out of range for a {ndim_with_batch}-d tensor", layer=spec.path)
    return dim - 1


def cat_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """torch.cat: concatenate along ``dim``; other dims must agree."""
    args = spec.params.get("args", ())
    kwargs = spec.params.get("kwargs", {})
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    shapes = [tuple(s) for s in in_shapes if s is not None]
    if len(shapes) != len(in_shapes) or not shapes:
        raise ArchcountError("input shape unknown", layer=spec.path)
    idx = _dim_index(int(dim), len(shapes[0]) + 1, spec)
    constraints = []
    out = list(shapes[0])
    for other in shapes[1:]:
        if len(other) != len(out):
            raise ArchcountError("inputs have different numbers of dimensions", layer=spec.path,
                                 shapes=[("BS",) + s for s in shapes])
        for i, (x, y) in enumerate(zip(out, other)):
            if i == idx:
                continue
            same = _same(x, y)
            if same is False:
                raise ArchcountError(f"inputs disagree in dim {i + 1} ({x} vs {y})", layer=spec.path,
                                     shapes=[("BS",) + s for s in shapes])
            if same is None:
                constraints.append((x, y))
        out[idx] = out[idx] + other[idx]
    out = [_num(sp.expand(v)) for v in out]
    return LayerCounts("structural", tuple(out), outputs=prod(out), constraints=tuple(constraints))


def flatten_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Flatten (module: start_dim=1; torch.flatten / Tensor.flatten with explicit dims)."""
    shape = _need_input(spec, in_shapes)
    p = spec.params
    if "args" in p:  # functional or method form
        args = list(p.get("args", ()))[1:]
        kwargs = p.get("kwargs", {})
        start = kwargs.get("start_dim", args[0] if args else 0)
        end = kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    else:
        start, end = p.get("start_dim", 1), p.get("end_dim", -1)
    ndim = len(shape) + 1
    start = start + ndim if start < 0 else start
    end = end + ndim if end < 0 else end
    if start == 0:
        raise ArchcountError("flattens the batch dimension, which archcount does not count", layer=spec.path)
    s0, e0 = start - 1, end - 1
    out = (*shape[:s0], prod(shape[s0:e0 + 1]), *shape[e0 + 1:])
    return LayerCounts("structural", out, outputs=prod(out))


def view_rule(spec: LayerSpec, in_shapes: Sequence[Shape]) -> LayerCounts:
    """Tensor.view / reshape of the form ``x.view(x.size(0), -1)``: a flatten."""
    shape = _need_input(spec, in_shapes)
    args = list(spec.params.get("args", ()))[1:]
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = list(args[0])
    if len(args) == 2 and args[1] == -1:
        out = (prod(shape),)
        return LayerCounts("structural", out, outputs=prod(out))
    raise ArchcountError("only view/reshape to [BS, -1] is supported", layer=spec.path)


_ELEMENTWISE_MODULES = [
    f"torch.nn.modules.activation.{n}" for n in (
        "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
        "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Tanhshrink", "Softmax", "LogSoftmax",
        "Threshold")
] + [f"torch.nn.modules.dropout.{n}" for n in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")] \
  + ["torch.nn.modules.linear.Identity"]
_ELEMENTWISE_FUNCS = [
    "torch.relu", "torch.sigmoid", "torch.tanh", "torch.add", "torch.mul", "torch.sub",
    "torch.nn.functional.relu", "torch.nn.functional.relu6", "torch.nn.functional.leaky_relu",
    "torch.nn.functional.gelu", "torch.nn.functional.silu", "torch.nn.functional.elu",
    "torch.nn.functional.sigmoid", "torch.nn.functional.tanh", "torch.nn.functional.dropout",
    "torch.nn.functional.softmax", "torch.nn.functional.log_softmax",
    "operator.add", "operator.mul", "operator.sub", "operator.truediv", "operator.iadd", "operator.neg",
    "Tensor.relu", "Tensor.sigmoid", "Tensor.tanh", "Tensor.contiguous", "Tensor.add", "Tensor.mul",
    "Tensor.clone", "Tensor.float", "Tensor.to",
]

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
RULES.add("torch.nn.functional.interpolate", interpolate_rule)
RULES.add("torch.nn.modules.flatten.Flatten", flatten_rule)
RULES.add("torch.flatten", flatten_rule)
RULES.add("Tensor.flatten", flatten_rule)
RULES.add("Tensor.view", view_rule)
RULES.add("Tensor.reshape", view_rule)
RULES.add("torch.reshape", view_rule)
RULES.add("torch.cat", cat_rule)
RULES.add("torch.concat", cat_rule)
RULES.add("torch.concatenate", cat_rule)
for _key in _ELEMENTWISE_MODULES + _ELEMENTWISE_FUNCS:
    RULES.add(_key, elementwise_rule)

#: Function/method nodes that produce no tensor and are not layers (sizes, attribute reads).
NON_LAYER_KEYS = frozenset({"builtins.getattr", "Tensor.size", "Tensor.dim", "operator.getitem", "Tensor.numel"})
