"""Receptive-field results: one :class:`LayerRF` per layer call, and the model's :class:`ReceptiveField`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Mapping

import sympy as sp

from ..errors import ArchcountError
from ..symbols import k as K_SYM


@dataclass(frozen=True)
class LayerRF:
    """The receptive field of one layer's output units (per spatial axis, in input pixels)."""

    path: str
    type_name: str
    op: str                               #: conv | transposed | pool | upsample | merge | identity | global
    inputs: tuple[str, ...]
    size: tuple[Any, ...] | None          #: largest window over positions (None after a drift)
    min_size: tuple[Any, ...] | None      #: smallest window over positions
    jump: tuple[Any, ...] | None          #: input pixels per output step (None for global layers)
    start: tuple[Any, ...] | None         #: centre of output unit 0's window (None for global layers)
    period: tuple[int, ...] | None        #: the windows repeat every ``period`` output positions
    varies: bool = False                  #: window size depends on the position (for some allowed k)
    is_global: bool = False               #: reads the whole input (no positions left)
    drift: bool = False                   #: a merge of branches with different jumps (or after one)
    visible: tuple[Any, ...] | None = None  #: largest window clipped to a numeric input (numeric k)
    notes: tuple[str, ...] = ()
    connected: tuple[Any, ...] | None = None  #: input positions the largest unit reads inside its span
    unknown: bool = False                 #: an operation before it has no receptive-field rule

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type_name, "op": self.op, "inputs": list(self.inputs),
                "size": _jlist(self.size), "min_size": _jlist(self.min_size), "jump": _jlist(self.jump),
                "start": _jlist(self.start), "period": None if self.period is None else list(self.period),
                "varies": self.varies, "global": self.is_global, "drift": self.drift,
                "visible": _jlist(self.visible), "connected": _jlist(self.connected), "unknown": self.unknown,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive fields of every layer of a model; ``size`` is that of the output.

    >>> from analysis import receptive_field
    >>> rf = receptive_field("unet", kernel=5)
    >>> rf.size, rf.layer("block3.0").size, rf.layer("block3.0").jump
    ((29, 29), (21, 21), (2, 2))
    """

    model: str
    hparams: Mapping[str, Any]
    input_size: tuple[Any, ...]
    layers: tuple[LayerRF, ...]
    output: str                           #: path of the output layer
    last_spatial: str | None              #: path of the last layer that has positions
    kernel_parity: str | None = None
    assumptions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def layer(self, path: str) -> LayerRF:
        for row in self.layers:
            if row.path == path:
                return row
        raise ArchcountError(f"no layer {path!r}; layers: {', '.join(r.path for r in self.layers)}",
                             model=self.model, argument="path")

    @property
    def size(self) -> tuple[Any, ...] | None:
        """The largest receptive field over output positions, per axis."""
        return self.layer(self.output).size

    @property
    def min_size(self) -> tuple[Any, ...] | None:
        return self.layer(self.output).min_size

    @property
    def varies(self) -> bool:
        """Whether the output's receptive field depends on the output position."""
        return self.layer(self.output).varies

    @property
    def spatial(self) -> LayerRF | None:
        """The last layer with positions (the output itself for dense-prediction models)."""
        return None if self.last_spatial is None else self.layer(self.last_spatial)

    def evaluate(self, **values: Any) -> "ReceptiveField":
        """Substitute symbols (``k=5``, ``H=64``) into every formula.

        >>> from analysis import receptive_field
        >>> receptive_field("pool_upsample").evaluate(k=7).size
        (66, 66)
        """
        from ..symbols import by_name
        subs = {by_name(name): v for name, v in values.items()}
        kv = subs.get(K_SYM)
        if isinstance(kv, int) and self.kernel_parity and kv % 2 != (self.kernel_parity == "odd"):
            raise ArchcountError(f"the model builds only with {self.kernel_parity} kernels", model=self.model,
                                 argument="k")

        def sub(t: Any) -> Any:
            return None if t is None else tuple(None if x is None else _num(sp.sympify(x).subs(subs)) for x in t)

        def row(r: LayerRF) -> LayerRF:
            size, small = sub(r.size), sub(r.min_size)
            varies = r.varies
            if size is not None and small is not None and all(isinstance(x, int) for x in size + small):
                varies = size != small  # now for this kernel, not for some kernel
            return replace(r, size=size, min_size=small, start=sub(r.start), varies=varies)

        layers = tuple(row(r) for r in self.layers)
        hp = {key: (_num(v.subs(subs)) if isinstance(v, sp.Basic) else v) for key, v in self.hparams.items()}
        return replace(self, layers=layers, hparams=hp, input_size=sub(self.input_size))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "model": self.model,
                "hparams": {key: _jval(v) for key, v in self.hparams.items()},
                "input_size": _jlist(self.input_size), "kernel_parity": self.kernel_parity,
                "output": self.output, "last_spatial": self.last_spatial,
                "size": _jlist(self.size), "min_size": _jlist(self.min_size), "varies": self.varies,
                "layers": [r.to_dict() for r in self.layers],
                "assumptions": list(self.assumptions), "notes": list(self.notes)}

    def _repr_markdown_(self) -> str:  # notebook display; rendering lives in reports.display
        from reports.display import receptive_markdown
        return receptive_markdown(self)

    def _repr_latex_(self) -> str:
        from reports.display import receptive_latex
        return receptive_latex(self)

    def _repr_html_(self) -> str:
        from reports.display import receptive_html
        return receptive_html(self)


def _jval(x: Any) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return sp.sstr(x)


def _jlist(t: Any) -> Any:
    return None if t is None else [_jval(x) for x in t]


def _num(x: Any) -> Any:
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else sp.Rational(x.numerator, x.denominator)
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return x
