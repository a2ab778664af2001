"""A small text syntax for one layer and for tensor shapes, and the exact output shape (torch-free).

>>> layer = parse_layer("conv k=5 s=2 p=1 out=16")
>>> answer = layer_output_shape(layer, parse_shape("3x1024x768"))
>>> format_shape(answer.output_shape)
'16x511x383'
>>> answer.axes[0].arithmetic
'floor((1024 + 2 - 5)/2) + 1 = 511'

The syntax (also shown by ``archcount shape --help``) is :data:`SYNTAX_HELP`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence, Union

import sympy as sp

from .errors import ArchcountError
from .shapes import KIND_ALIASES, Size, SizeResult, output_size
from .symbols import ALIASES

#: One value per spatial axis, or one value for every axis.
AxisValue = Union[Size, tuple[Size, ...]]
Scale = Union[int, float, sp.Rational]

SYNTAX_HELP = """\
Layer syntax:  KIND [KEY=VALUE | FLAG] ...
  kinds   conv (conv2d), tconv (transposed, deconv, convtranspose2d), maxpool (max),
          avgpool (avg), upsample (up); shape-keeping: relu, bn, sigmoid, tanh, ...
  keys    k/kernel  s/stride  p/padding  d/dilation  op/output_padding (tconv)
          g/groups  in/in_channels  out/out_channels (conv, tconv)  scale/scale_factor  mode (upsample)
  flags   ceil (maxpool, avgpool: ceil_mode)   xN (upsample: x2, x1.5, x3/2)
  values  integers or the symbols NIC, NF, NC, k, H, W; k, s, p, d and op also take
          one value per axis as HxW, e.g. k=3x1
  defaults  s=1 (conv, tconv), s=k (pools), p=0, d=1, op=0, g=1;
            without out= a conv keeps the channel count; in= is checked against the input's channels
Chains:  layers joined by ';' or '->', e.g. "conv k=3 s=2 p=1 out=16 -> relu -> maxpool k=2"
Shapes:  HxW, CxHxW or NxCxHxW, e.g. 3x1024x768 (also 3,1024,768 or NICxHxW)
Examples:
  conv k=5 s=2 p=1 out=16      tconv k=4 s=2 p=1 op=0 out=8      conv k=3 in=3 out=16
  maxpool k=2                  avgpool k=3 s=2 p=1 ceil
  upsample x2                  upsample scale=1.5"""

KEYS: dict[str, str] = {
    "k": "kernel", "kernel": "kernel", "kernel_size": "kernel",
    "s": "stride", "stride": "stride",
    "p": "padding", "pad": "padding", "padding": "padding",
    "d": "dilation", "dilation": "dilation",
    "op": "output_padding", "output_padding": "output_padding",
    "g": "groups", "groups": "groups",
    "in": "in_channels", "in_channels": "in_channels",
    "out": "out_channels", "out_channels": "out_channels",
    "scale": "scale_factor", "scale_factor": "scale_factor",
    "mode": "mode",
}
SHORT = {"kernel": "k", "stride": "s", "padding": "p", "dilation": "d", "output_padding": "op",
         "groups": "g", "in_channels": "in", "out_channels": "out", "scale_factor": "scale", "mode": "mode"}
MINIMUM = {"kernel": 1, "stride": 1, "padding": 0, "dilation": 1, "output_padding": 0, "groups": 1,
           "in_channels": 1, "out_channels": 1}
PER_AXIS = ("kernel", "stride", "padding", "dilation", "output_padding")
ALLOWED: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "stride", "padding", "dilation", "groups", "in_channels", "out_channels"),
    "transposed": ("kernel", "stride", "padding", "dilation", "output_padding", "groups", "in_channels",
                   "out_channels"),
    "maxpool": ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    "avgpool": ("kernel", "stride", "padding", "ceil_mode"),
    "upsample": ("scale_factor", "mode"),
    "identity": (),
}
#: Layers that keep the shape, accepted in chains.
IDENTITY_KINDS = frozenset({
    "relu", "relu6", "leakyrelu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "swish", "mish",
    "sigmoid", "tanh", "softmax", "logsoftmax", "log_softmax", "hardtanh", "softplus",
    "bn", "batchnorm", "batchnorm2d", "batch_norm", "instancenorm", "groupnorm", "dropout", "dropout2d",
    "identity", "id",
})
UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
CANONICAL_NAME = {"conv": "conv", "transposed": "tconv", "maxpool": "maxpool", "avgpool": "avgpool",
                  "upsample": "upsample"}
_INT = re.compile(r"^[+-]?\d+$")
_SCALE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+|\d+/\d+)$")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return sp.sstr(value)


def format_value(value: Any) -> str:
    """A size, a per-axis tuple (``3x1``) or a scale, as the syntax writes it."""
    if isinstance(value, tuple):
        return "x".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return sp.sstr(value) if isinstance(value, sp.Basic) else str(value)


def format_shape(shape: Iterable[Any]) -> str:
    """``(16, 511, 383)`` -> ``'16x511x383'``; compound expressions get parentheses.

    >>> from analysis.symbols import H
    >>> format_shape((16, H / 2, sp.floor(H / 2) + 1))
    '16x(H/2)x(floor(H/2) + 1)'
    """
    def one(v: Any) -> str:
        text = format_value(v)
        if isinstance(v, sp.Basic) and not (v.is_Atom or v.is_Function):
            return f"({text})"
        return text
    return "x".join(one(v) for v in shape)


# ----------------------------------------------------------------------------- the layer

@dataclass(frozen=True)
class LayerText:
    """One parsed layer.  Per-axis values are a single value (every axis) or a tuple (H, W).

    ``kind`` is ``conv``, ``transposed``, ``maxpool``, ``avgpool``, ``upsample`` or ``identity``;
    ``name`` is the canonical word (``conv``, ``tconv``, ...; for shape-keeping layers the word
    written, e.g. ``relu``), and ``text`` what was written.  ``stride`` is
    already defaulted (1 for convs, the kernel for pools).

    >>> parse_layer("tconv k=4 s=2 p=1 out=8")
    LayerText(kind='transposed', name='tconv', kernel=4, stride=2, padding=1, dilation=1, output_padding=0, \
groups=1, out_channels=8, ceil_mode=False, scale_factor=None, mode=None, in_channels=None)
    """

    kind: str
    name: str
    kernel: AxisValue | None = None
    stride: AxisValue | None = None
    padding: AxisValue = 0
    dilation: AxisValue = 1
    output_padding: AxisValue = 0
    groups: Size = 1
    out_channels: Size | None = None
    ceil_mode: bool = False
    scale_factor: Scale | None = None
    mode: str | None = None
    in_channels: Size | None = None
    text: str = field(default="", compare=False, repr=False)  #: the text as written

    def axis_value(self, name: str, axis: int, naxes: int) -> Any:
        """The value of ``name`` (``kernel``, ``stride`` ...) on spatial axis ``axis`` of ``naxes``."""
        value = getattr(self, name)
        if not isinstance(value, tuple):
            return value
        if len(value) != naxes:
            raise ArchcountError(
                f"gives {len(value)} values ({format_value(value)}) for an input with {naxes} spatial axes",
                argument=name, layer=str(self))
        return value[axis]

    def __str__(self) -> str:
        """The canonical text: ``parse_layer(str(layer)) == layer``."""
        if self.kind == "identity":
            return self.name
        parts = [CANONICAL_NAME[self.kind]]
        if self.kind == "upsample":
            parts.append(f"x{format_value(self.scale_factor)}")
            if self.mode:
                parts.append(f"mode={self.mode}")
            return " ".join(parts)
        parts.append(f"k={format_value(self.kernel)}")
        pool = self.kind in ("maxpool", "avgpool")
        if self.stride != (self.kernel if pool else 1):
            parts.append(f"s={format_value(self.stride)}")
        for name, default in (("padding", 0), ("dilation", 1), ("output_padding", 0), ("groups", 1)):
            value = getattr(self, name)
            if value != default:
                parts.append(f"{SHORT[name]}={format_value(value)}")
        if self.in_channels is not None:
            parts.append(f"in={format_value(self.in_channels)}")
        if self.out_channels is not None:
            parts.append(f"out={format_value(self.out_channels)}")
        if self.ceil_mode:
            parts.append("ceil")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "text": str(self),
                **{name: _jsonable(getattr(self, name)) for name in (
                    "kernel", "stride", "padding", "dilation", "output_padding", "groups", "in_channels",
                    "out_channels", "ceil_mode", "scale_factor", "mode")}}


def _parse_size(raw: str, argument: str, token: str, context: str) -> Size:
    """One integer or known symbol; ranges are checked by the caller."""
    if _INT.match(raw):
        return int(raw)
    if raw in ALIASES:
        return ALIASES[raw]
    raise ArchcountError(f"{raw!r} in {token!r} is not an integer or a known symbol "
                         f"(NIC, NF, NC, k, H, W)", argument=argument, layer=context)


def _check_minimum(value: AxisValue, argument: str, token: str, context: str) -> None:
    values = value if isinstance(value, tuple) else (value,)
    minimum = MINIMUM[argument]
    for v in values:
        if isinstance(v, int) and v < minimum:
            what = "positive" if minimum == 1 else "non-negative"
            raise ArchcountError(f"must be {what} (>= {minimum}), got {v} in {token!r}",
                                 argument=argument, layer=context)


def _parse_scale(raw: str, token: str, context: str) -> Scale:
    if not _SCALE.match(raw):
        raise ArchcountError(f"{raw!r} in {token!r} is not a positive number such as 2, 1.5 or 3/2",
                             argument="scale_factor", layer=context)
    if "/" in raw:
        num, den = (int(x) for x in raw.split("/"))
        if den == 0:
            raise ArchcountError(f"division by zero in {token!r}", argument="scale_factor", layer=context)
        value: Scale = sp.Rational(num, den)
        if value.is_integer:
            value = int(value)
    elif "." in raw:
        value = float(raw)  # a decimal is a float, as nn.Upsample(scale_factor=1.5) gets it
    else:
        value = int(raw)
    if value <= 0:
        raise ArchcountError(f"must be positive, got {raw} in {token!r}", argument="scale_factor",
                             layer=context)
    return value


def parse_layer(text: str) -> LayerText:
    """Parse one layer such as ``"conv k=5 s=2 p=1 out=16"`` or ``"avgpool k=3 s=2 p=1 ceil"``.

    Errors name the argument and the offending token.

    >>> str(parse_layer("maxpool kernel=2"))
    'maxpool k=2'
    >>> parse_layer("upsample x1.5").scale_factor
    1.5
    >>> parse_layer("conv k=3 s=0")
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: layer conv k=3 s=0: argument stride: must be positive (>= 1), got 0 in 's=0'
    """
    if not isinstance(text, str):
        raise ArchcountError(f"a layer must be given as text, got {type(text).__name__}", argument="layer")
    context = " ".join(text.split())
    tokens = context.split(" ") if context else []
    if not tokens:
        raise ArchcountError("empty layer; write e.g. 'conv k=3 s=1 p=1 out=16'", argument="layer")
    word = tokens[0].lower().replace("-", "_")
    if word in KIND_ALIASES:
        kind = KIND_ALIASES[word]
    elif word in IDENTITY_KINDS:
        kind = "identity"
    else:
        raise ArchcountError(f"unknown layer kind {tokens[0]!r}; valid: conv, tconv, maxpool, avgpool, "
                             f"upsample, or a shape-keeping layer such as relu or bn", argument="kind",
                             layer=context)
    allowed = ALLOWED[kind]
    values: dict[str, Any] = {}

    def put(name: str, value: Any, token: str) -> None:
        if name not in allowed:
            valid = ", ".join(f"{SHORT.get(a, a)}" if a != "ceil_mode" else "ceil" for a in allowed) or "none"
            raise ArchcountError(f"{token!r} does not apply to {tokens[0]}; its keys: {valid}",
                                 argument=name, layer=context)
        if name in values:
            raise ArchcountError(f"given twice ({token!r})", argument=name, layer=context)
        values[name] = value

    for token in tokens[1:]:
        low = token.lower()
        if "=" in token:
            key, _, raw = token.partition("=")
            name = KEYS.get(key.lower())
            if name is None:
                raise ArchcountError(f"unknown key {key!r} in {token!r}; valid keys: k, s, p, d, op, g, in, out, "
                                     f"scale, mode", argument=key or token, layer=context)
            if not raw:
                raise ArchcountError(f"missing value in {token!r}", argument=name, layer=context)
            if name == "scale_factor":
                put(name, _parse_scale(raw, token, context), token)
            elif name == "mode":
                if raw.lower() not in UPSAMPLE_MODES:
                    raise ArchcountError(f"unknown mode {raw!r}; valid: {', '.join(UPSAMPLE_MODES)}",
                                         argument="mode", layer=context)
                put(name, raw.lower(), token)
            else:
                parts = re.split(r"[x×]", raw) if name in PER_AXIS else [raw]
                if any(not part for part in parts):
                    raise ArchcountError(f"malformed value in {token!r}", argument=name, layer=context)
                sizes = tuple(_parse_size(part, name, token, context) for part in parts)
                value: AxisValue = sizes[0] if len(sizes) == 1 else sizes
                _check_minimum(value, name, token, context)
                put(name, value, token)
        elif low in ("ceil", "ceil_mode"):
            put("ceil_mode", True, token)
        elif low[:1] in ("x", "×") and kind == "upsample":
            put("scale_factor", _parse_scale(token[1:], token, context), token)
        else:
            hint = " (write key=value, e.g. k=3)" if _INT.match(token) else \
                " (chains of layers go through parse_layers)" if token in ("->", "→") else ""
            raise ArchcountError(f"cannot read token {token!r}{hint}; write key=value with the keys k, s, p, d, "
                                 f"op, g, out, scale, mode, or the flags ceil and xN", argument=token,
                                 layer=context)

    if kind == "identity":
        return LayerText(kind, word, text=text)
    if kind == "upsample":
        if "scale_factor" not in values:
            raise ArchcountError("upsample needs a scale, e.g. 'upsample x2' or 'upsample scale=1.5'",
                                 argument="scale_factor", layer=context)
        return LayerText(kind, CANONICAL_NAME[kind], scale_factor=values["scale_factor"], mode=values.get("mode"),
                         text=text)
    if "kernel" not in values:
        raise ArchcountError(f"{tokens[0]} needs a kernel size, e.g. k=3", argument="kernel", layer=context)
    pool = kind in ("maxpool", "avgpool")
    values.setdefault("stride", values["kernel"] if pool else 1)
    layer = LayerText(kind, CANONICAL_NAME[kind], text=text, **values)
    _check_layer(layer, context)
    return layer


def _axes(layer: LayerText) -> list[dict[str, Any]]:
    """The per-axis values, one dict per axis (one axis when nothing is given per axis)."""
    given = {n: len(v) for n in PER_AXIS if isinstance(v := getattr(layer, n), tuple)}
    lengths = set(given.values())
    if len(lengths) > 1:
        first = next(iter(given))
        odd = next(n for n, length in given.items() if length != given[first])
        raise ArchcountError(f"has {given[odd]} per-axis values but {first} has {given[first]}",
                             argument=odd, layer=str(layer))
    naxes = lengths.pop() if lengths else 1
    return [{n: layer.axis_value(n, i, naxes) for n in PER_AXIS} for i in range(naxes)]


def _check_layer(layer: LayerText, context: str) -> None:
    """Checks that need no input shape."""
    for v in _axes(layer):
        k, s, p, d, op = (v[n] for n in PER_AXIS)
        if layer.kind == "transposed" and all(isinstance(x, int) for x in (op, s, d)) and op >= max(s, d):
            raise ArchcountError(f"must be smaller than max(stride, dilation) = {max(s, d)}, got {op}",
                                 argument="output_padding", layer=context)
        if layer.kind in ("maxpool", "avgpool") and isinstance(p, int) and isinstance(k, int) and 2 * p > k:
            raise ArchcountError(f"pool padding must be at most kernel/2 = {k // 2}, got {p}",
                                 argument="padding", layer=context)
    if layer.kind in ("conv", "transposed") and isinstance(layer.groups, int) \
            and isinstance(layer.out_channels, int) and layer.out_channels % layer.groups:
        raise ArchcountError(f"out_channels {layer.out_channels} is not divisible by groups {layer.groups}",
                             argument="groups", layer=context)
    if layer.kind in ("conv", "transposed") and isinstance(layer.groups, int) \
            and isinstance(layer.in_channels, int) and layer.in_channels % layer.groups:
        raise ArchcountError(f"in_channels {layer.in_channels} is not divisible by groups {layer.groups}",
                             argument="groups", layer=context)


def split_layers(text: str) -> list[str]:
    """Split a chain at ``;`` or ``->`` (empty parts are an error).

    >>> split_layers("conv k=3 -> relu; maxpool k=2")
    ['conv k=3', 'relu', 'maxpool k=2']
    """
    parts = [p.strip() for p in re.split(r"->|→|;", text)]
    if not any(parts):
        raise ArchcountError("no layer given; write e.g. 'conv k=3 p=1 -> maxpool k=2'", argument="layers")
    for i, part in enumerate(parts):
        if not part:
            raise ArchcountError(f"layer {i + 1} of {text!r} is empty (doubled ';' or '->'?)",
                                 argument="layers")
    return parts


def parse_layers(text: str) -> tuple[LayerText, ...]:
    """Parse a chain such as ``"conv k=3 s=2 p=1 out=16 -> maxpool k=2"``."""
    return tuple(parse_layer(part) for part in split_layers(text))


# ----------------------------------------------------------------------------- shapes

def parse_shape(text: str | Sequence[Any]) -> tuple[Size, ...]:
    """Parse ``"3x1024x768"`` (also ``3,1024,768``, ``[1, 3, 32, 32]``, ``NICxHxW``).

    >>> parse_shape("16x513x385")
    (16, 513, 385)
    >>> parse_shape("1024x0")
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: argument input: dimension 2 of '1024x0' must be >= 1, got 0
    """
    if not isinstance(text, str):
        dims = tuple(text)
        for i, d in enumerate(dims):
            if isinstance(d, bool) or not (isinstance(d, int) or isinstance(d, sp.Basic)):
                raise ArchcountError(f"dimension {i + 1} must be an integer or a symbol, got {d!r}",
                                     argument="input")
            if isinstance(d, int) and d < 1:
                raise ArchcountError(f"dimension {i + 1} must be >= 1, got {d}", argument="input")
        if not dims:
            raise ArchcountError("empty shape", argument="input")
        return dims
    body = text.strip().strip("()[]").strip()
    parts = [p.strip() for p in re.split(r"[x×X*,]", body)] if body else []
    if not parts or any(not p for p in parts):
        raise ArchcountError(f"cannot read shape {text!r}; write e.g. 3x1024x768 (CxHxW) or 1024x768 (HxW)",
                             argument="input")
    dims = []
    for i, part in enumerate(parts):
        if _INT.match(part):
            value: Size = int(part)
            if value < 1:
                raise ArchcountError(f"dimension {i + 1} of {text!r} must be >= 1, got {value}",
                                     argument="input")
        elif part in ALIASES:
            value = ALIASES[part]
        else:
            raise ArchcountError(f"dimension {i + 1} of {text!r} is {part!r}: not an integer or a known "
                                 f"symbol (NIC, NF, NC, k, H, W)", argument="input")
        dims.append(value)
    return tuple(dims)


@dataclass(frozen=True)
class AxisStep:
    """One spatial axis: the size result and the arithmetic shown, e.g. ``floor((1024 + 2 - 5)/2) + 1 = 511``."""

    axis: str
    result: SizeResult
    arithmetic: str

    @property
    def dropped(self) -> Size | None:
        return self.result.dropped

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "arithmetic": self.arithmetic, **self.result.to_dict()}


@dataclass(frozen=True)
class ShapeAnswer:
    """The output shape of one layer, with the arithmetic per spatial axis and what floors dropped."""

    layer: LayerText
    input_shape: tuple[Size, ...]
    output_shape: tuple[Size, ...]
    axes: tuple[AxisStep, ...]
    notes: tuple[str, ...] = ()

    @property
    def dropped(self) -> tuple[Size | None, ...]:
        """Input rows/columns per spatial axis that no output reads (``None``: unknown)."""
        return tuple(a.dropped for a in self.axes)

    def explain(self) -> str:
        """Lines for the terminal."""
        lines = [f"{self.layer}: {format_shape(self.input_shape)} -> {format_shape(self.output_shape)}"]
        for step in self.axes:
            line = f"  {step.axis}: {step.arithmetic}"
            d = step.dropped
            if d is not None and d != 0:
                what = "row" if step.axis == "H" else "column"
                what += "" if d == 1 else "s"
                them, their = ("it", "its") if d == 1 else ("them", "their")
                why = f"all {their} outputs are cropped" if self.layer.kind == "transposed" \
                    else f"no window reads {them}"
                line += f"   ({format_value(d)} input {what} dropped: {why})"
            lines.append(line)
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": str(self.layer), "spec": self.layer.to_dict(),
                "input": [_jsonable(v) for v in self.input_shape],
                "output": [_jsonable(v) for v in self.output_shape],
                "axes": [a.to_dict() for a in self.axes],
                "dropped": [_jsonable(d) for d in self.dropped], "notes": list(self.notes)}


def _plus(value: Any) -> str:
    """`` + 2`` / `` - 2`` / ``""`` for a term."""
    if value == 0:
        return ""
    if isinstance(value, int) or (isinstance(value, sp.Basic) and value.is_number):
        return f" + {value}" if value > 0 else f" - {-value}"
    if value.could_extract_minus_sign():
        return f" - {_paren(-value)}"
    return f" + {_paren(value)}"


def _paren(value: Any) -> str:
    text = sp.sstr(value)
    return f"({text})" if isinstance(value, sp.Add) else text


def arithmetic(layer: LayerText, n: Size, result: SizeResult, k: Any = None, s: Any = None, p: Any = 0,
               d: Any = 1, op: Any = 0) -> str:
    """The formula with the numbers put in, ending in ``= result``."""
    out = format_value(result.size)
    nn = format_value(n)
    if layer.kind == "identity":
        return f"{nn} = {out}"
    if layer.kind == "upsample":
        sf = format_value(layer.scale_factor)
        if isinstance(layer.scale_factor, int):
            return f"{nn}*{sf} = {out}"
        return f"floor({nn}*{sf}) = {out}"
    eff = sp.expand(d * (k - 1) + 1)
    eff = int(eff) if eff.is_number else eff
    if layer.kind == "transposed":
        return f"({nn} - 1)*{format_value(s)}{_plus(-2 * p)}{_plus(eff)}{_plus(op)} = {out}"
    span = f"{nn}{_plus(2 * p)}{_plus(-eff)}"
    if s == 1:
        return f"{span} + 1 = {out}"
    rounding = "ceil" if layer.ceil_mode else "floor"
    text = f"{rounding}(({span})/{format_value(s)}) + 1"
    if layer.ceil_mode and all(isinstance(v, int) for v in (n, k, s, p, d)):
        raw = -((-(n + 2 * p - eff)) // s) + 1
        if raw != result.size:
            text += " - 1 (the last window would start in the right padding)"
    return f"{text} = {out}"


def layer_output_shape(layer: LayerText | str, input_shape: str | Sequence[Any]) -> ShapeAnswer:
    """The exact output shape of one layer for an ``HxW``, ``CxHxW`` or ``NxCxHxW`` input.

    >>> a = layer_output_shape("maxpool k=2", "16x513x385")
    >>> format_shape(a.output_shape), a.dropped
    ('16x256x192', (1, 1))
    """
    if isinstance(layer, str):
        layer = parse_layer(layer)
    shape = parse_shape(input_shape)
    context = dict(layer=str(layer), shapes={"input": shape})
    if not 2 <= len(shape) <= 4:
        raise ArchcountError(f"needs HxW, CxHxW or NxCxHxW, got {len(shape)} dimension(s)",
                             argument="input", **context)
    spatial = shape[-2:]
    naxes = len(spatial)
    notes: list[str] = []
    steps = []
    for axis, (name, n) in enumerate(zip("HW", spatial)):
        vals = {key: layer.axis_value(key, axis, naxes) for key in PER_AXIS}
        k, s, p, d, op = (vals[key] for key in PER_AXIS)
        try:
            if layer.kind == "identity":
                res = SizeResult("identity", n, n, 0, "n")
            elif layer.kind == "upsample":
                res = output_size("upsample", n, scale_factor=layer.scale_factor)
            else:
                res = output_size(layer.kind, n, k, s, p, d, op if layer.kind == "transposed" else 0,
                                  ceil_mode=layer.ceil_mode)
        except ArchcountError as exc:
            argument = "input" if exc.argument == "size" else exc.argument
            raise ArchcountError(f"{name}={format_value(n)}: {exc.reason}", argument=argument,
                                 **context) from None
        steps.append(AxisStep(name, res, arithmetic(layer, n, res, k, s, p, d, op)))
    out = list(shape[:-2]) + [st.result.size for st in steps]
    if layer.kind in ("conv", "transposed"):
        if len(shape) >= 3:
            channels = shape[-3]
            want = layer.in_channels
            if want is not None and isinstance(channels, int) and isinstance(want, int) and channels != want:
                raise ArchcountError(f"the layer takes in={want} channels, but the input has {channels} "
                                     f"(channel axis of {format_shape(shape)})", argument="in", **context)
            if want is not None and isinstance(channels, sp.Basic) and isinstance(want, sp.Basic) \
                    and sp.simplify(channels - want) != 0:
                raise ArchcountError(f"the layer takes in={format_value(want)} channels, but the input has "
                                     f"{format_value(channels)}", argument="in", **context)
            g = layer.groups
            if isinstance(channels, int) and isinstance(g, int) and channels % g:
                raise ArchcountError(f"the input's {channels} channels are not divisible by groups {g}",
                                     argument="groups", **context)
            if layer.out_channels is not None:
                out[-3] = layer.out_channels
            else:
                notes.append(f"out= not given: the channel count {format_value(channels)} is kept")
        elif layer.out_channels is not None:
            notes.append("the input has no channel axis (HxW), so out= is not shown")
        if len(shape) < 3 and layer.in_channels is not None:
            notes.append("the input has no channel axis (HxW), so in= is not checked")
    if layer.kind == "upsample" and any(st.result.dropped is None for st in steps):
        notes.append("a fractional scale repeats some rows and may skip others, depending on the mode; "
                     "skipped rows are not counted")
    return ShapeAnswer(layer, tuple(shape), tuple(out), tuple(steps), tuple(notes))


def chain_output_shape(layers: str | Sequence[LayerText | str], input_shape: str | Sequence[Any]
                       ) -> tuple[ShapeAnswer, ...]:
    """Each step of a chain (``"conv k=3 s=2 p=1 out=16 -> maxpool k=2"``); an error names the step.

    >>> [format_shape(a.output_shape) for a in chain_output_shape("conv k=3 s=2 p=1 out=16 -> maxpool k=2",
    ...                                                           "3x64x64")]
    ['16x32x32', '16x16x16']
    """
    if isinstance(layers, str):
        items: Sequence[LayerText | str] = split_layers(layers)
    else:
        items = layers
    shape = parse_shape(input_shape)
    answers = []
    for i, item in enumerate(items):
        try:
            answer = layer_output_shape(item if isinstance(item, LayerText) else parse_layer(item), shape)
        except ArchcountError as exc:
            if len(items) == 1:
                raise
            raise ArchcountError(f"step {i + 1} of {len(items)}: {exc.reason}", argument=exc.argument,
                                 layer=exc.layer, shapes=exc.shapes) from None
        answers.append(answer)
        shape = answer.output_shape
    return tuple(answers)
