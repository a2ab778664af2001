"""Named counting conventions: presets and switches.

Presets (each defaults to ``padding_taps=include`` and ``transposed=scatter``, the lecture conventions):

- ``weighted`` (default): only layers with weights contribute; biases and BatchNorm are ignored.
- ``all-layers``: adds pooling and upsampling layers (their outputs, and one connection per
  window tap; nearest upsampling 1 per output, bilinear 4), and activation x activation products
  (attention's q·kᵀ and attention·v, ``x @ y``), one connection per multiply-add.
- ``parameters``: weights are all trainable parameters (biases and BatchNorm affine), so the
  weight total equals ``sum(p.numel())``.

Switches: ``bias`` (bool), ``batchnorm`` (ignore | affine | layer), ``pooling`` (bool: pooling and
upsampling layers count), ``padding_taps`` (include | exclude), ``transposed`` (scatter | exact | gather).

Which tool uses what: fvcore counts one multiply-add per weight tap of conv/linear, including
padding taps (``include``), and transposed convs input-based (``scatter``); thop counts transposed
convs output-based (``gather``-like); torchinfo reports BatchNorm's parameter count as its MACs.

>>> get_convention("weighted").bias
False
>>> get_convention("parameters", ["padding_taps=exclude"]).label
'parameters[padding_taps=exclude]'
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable, Mapping, Sequence

from .errors import ArchcountError

SWITCH_VALUES: dict[str, tuple[Any, ...]] = {
    "bias": (False, True),
    "batchnorm": ("ignore", "affine", "layer"),
    "pooling": (False, True),
    "padding_taps": ("include", "exclude"),
    "transposed": ("scatter", "exact", "gather"),
    "products": (False, True),
}
#: switches every convention enumeration varies (``products`` matters only for attention/matmul models)
ENUMERATED_SWITCHES = ("bias", "batchnorm", "pooling", "padding_taps", "transposed")

SWITCH_DOCS: dict[str, str] = {
    "bias": "count conv/linear biases as weights",
    "batchnorm": "ignore: BatchNorm contributes nothing; affine: its gamma and beta are weights; "
                 "layer: also its outputs, with one connection per output",
    "pooling": "pooling and upsampling layers contribute their outputs and connections",
    "padding_taps": "include: every conv output has k^2*Cin/groups connections (lecture); "
                    "exclude: taps on zero padding are not connections (exact)",
    "transposed": "scatter: each input unit connects to k^2*Cout/groups outputs, cropped ones included; "
                  "exact: only pairs that survive the cropping; gather: output-based, inserted zeros included",
    "products": "activation x activation products (attention q·kᵀ and attention·v, x @ y) count as connections "
                "(one per multiply-add); never weighted connections: on only in all-layers",
}


@dataclass(frozen=True)
class Convention:
    """A counting convention: a preset name and its switches."""

    preset: str = "weighted"
    bias: bool = False
    batchnorm: str = "ignore"
    pooling: bool = False
    padding_taps: str = "include"
    transposed: str = "scatter"
    products: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESET_SWITCHES:
            raise ArchcountError(f"unknown convention {self.preset!r}; presets: {', '.join(PRESET_SWITCHES)}",
                                 argument="convention")
        for name, allowed in SWITCH_VALUES.items():
            if getattr(self, name) not in allowed:
                raise ArchcountError(f"switch {name} must be one of {', '.join(map(str, allowed))}, "
                                     f"got {getattr(self, name)!r}", argument="--set")

    @property
    def switches(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "preset"}

    @property
    def changed(self) -> dict[str, Any]:
        """Switches that differ from the preset's defaults."""
        base = PRESET_SWITCHES[self.preset]
        return {key: v for key, v in self.switches.items() if base[key] != v}

    @property
    def label(self) -> str:
        """``preset`` or ``preset[switch=value,...]`` for the switches changed from the preset."""
        changed = self.changed
        if not changed:
            return self.preset
        return self.preset + "[" + ",".join(f"{key}={_fmt(v)}" for key, v in changed.items()) + "]"

    def describe(self) -> str:
        """The convention in words."""
        parts = [f"preset {self.preset}"]
        parts.append("biases counted" if self.bias else "biases ignored")
        parts.append({"ignore": "BatchNorm ignored", "affine": "BatchNorm affine weights counted",
                      "layer": "BatchNorm counted as a layer"}[self.batchnorm])
        parts.append("pooling/upsampling layers counted" if self.pooling else "pooling/upsampling layers ignored")
        parts.append("padding taps " + ("included" if self.padding_taps == "include" else "excluded (exact)"))
        parts.append(f"transposed convs: {self.transposed}")
        if self.products:
            parts.append("activation x activation products counted as connections")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["label"] = self.label
        return out

    def with_switches(self, **switches: Any) -> "Convention":
        return replace(self, **switches)


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


_DEFAULTS = {"bias": False, "batchnorm": "ignore", "pooling": False, "padding_taps": "include",
             "transposed": "scatter", "products": False}
PRESET_SWITCHES: dict[str, dict[str, Any]] = {
    "weighted": dict(_DEFAULTS),
    "all-layers": dict(_DEFAULTS, pooling=True, products=True),
    "parameters": dict(_DEFAULTS, bias=True, batchnorm="affine"),
}
PRESETS: dict[str, Convention] = {}
for _name, _sw in PRESET_SWITCHES.items():
    PRESETS[_name] = Convention(_name, **_sw)
PRESET_ALIASES = {"all_layers": "all-layers", "alllayers": "all-layers", "all": "all-layers",
                  "params": "parameters", "default": "weighted"}

_TRUE = {"true", "1", "yes", "on", "y"}
_FALSE = {"false", "0", "no", "off", "n"}


def _parse_value(key: str, raw: Any) -> Any:
    allowed = SWITCH_VALUES[key]
    if isinstance(raw, str):
        text = raw.strip().lower()
        if allowed == (False, True):
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        elif text in allowed:
            return text
    elif raw in allowed and type(raw) is type(allowed[0]):
        return raw
    raise ArchcountError(f"switch {key} must be one of {', '.join(_fmt(a) for a in allowed)}, got {raw!r}",
                         argument="--set")


def parse_switches(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse ``["bias=true", "padding_taps=exclude"]``, ``"bias=true"`` or a mapping; contradictions are rejected.

    >>> parse_switches("bias=true, pooling=yes")
    {'bias': True, 'pooling': True}
    >>> parse_switches(5)
    Traceback (most recent call last):
        ...
    analysis.errors.ArchcountError: argument switches: must be NAME=VALUE text, a list of such texts or a mapping such as {'bias': True}, got int 5
    """
    if items is None or (isinstance(items, (str, list, tuple, Mapping)) and not items):
        return {}
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple, Mapping)) or (
            not isinstance(items, Mapping) and not all(isinstance(i, str) for i in items)) or (
            isinstance(items, Mapping) and not all(isinstance(key, str) for key in items)):
        shown = repr(items)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ArchcountError(f"must be NAME=VALUE text, a list of such texts or a mapping such as "
                             f"{{'bias': True}}, got {type(items).__name__} {shown}", argument="switches")
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        for item in items:
            for piece in str(item).split(","):
                piece = piece.strip()
                if not piece:
                    continue
                if "=" not in piece:
                    raise ArchcountError(f"expected SWITCH=VALUE, got {piece!r}; switches: "
                                         f"{', '.join(SWITCH_VALUES)}", argument="--set")
                key, _, value = piece.partition("=")
                pairs.append((key.strip(), value))
    out: dict[str, Any] = {}
    for key, raw in pairs:
        key = key.replace("-", "_")
        if key not in SWITCH_VALUES:
            raise ArchcountError(f"unknown switch {key!r}; switches: {', '.join(SWITCH_VALUES)}", argument="--set")
        value = _parse_value(key, raw)
        if key in out and out[key] != value:
            raise ArchcountError(f"contradictory switches: {key}={_fmt(out[key])} and {key}={_fmt(value)}",
                                 argument="--set")
        out[key] = value
    return out


def get_convention(convention: str | Convention | None = None,
                   switches: Iterable[str] | Mapping[str, Any] | None = None) -> Convention:
    """A preset by name (or a Convention) with switches applied.

    >>> get_convention("all-layers").pooling
    True
    """
    if isinstance(convention, Convention):
        base = convention
    elif convention is not None and not isinstance(convention, str):
        shown = repr(convention)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ArchcountError(f"must be a preset name ({', '.join(PRESETS)}) or a Convention, got "
                             f"{type(convention).__name__} {shown}", argument="convention")
    else:
        name = (convention or "weighted").strip().lower()
        name = PRESET_ALIASES.get(name.replace(" ", "-"), name)
        if name not in PRESETS:
            raise ArchcountError(f"unknown convention {convention!r}; presets: {', '.join(PRESETS)}",
                                 argument="convention")
        base = PRESETS[name]
    parsed = parse_switches(switches)
    return replace(base, **parsed) if parsed else base


def all_conventions(presets: Sequence[str] | None = None) -> list[Convention]:
    """Every distinct switch combination, each under the first preset (in order) it extends.

    Presets come first, then the other combinations (``products`` follows ``pooling``: both count
    layers without weights; it matters only for models with attention or activation products).
    """
    order = list(presets or PRESETS)
    seen: dict[tuple, Convention] = {}
    for name in order:
        conv = PRESETS[name]
        seen.setdefault(tuple(conv.switches.values()), conv)
    for combo in itertools.product(*(SWITCH_VALUES[name] for name in ENUMERATED_SWITCHES)):
        combo = combo + (combo[ENUMERATED_SWITCHES.index("pooling")],)  # products go with the weightless layers
        if combo in seen:
            continue
        sw = dict(zip(tuple(ENUMERATED_SWITCHES) + ("products",), combo))
        # attach to the preset sharing the most switches
        best = max(order, key=lambda n: sum(PRESET_SWITCHES[n][key] == v for key, v in sw.items()))
        seen[combo] = Convention(best, **sw)
    return list(seen.values())
