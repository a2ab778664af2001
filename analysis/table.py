"""Count tables: per-layer rows and totals under a convention, exact sympy expressions.

>>> from analysis import count, NIC, NF, NC, k
>>> t = count("pool_upsample")
>>> (t.total("weights") - k**2 * (NIC*NF + 4*NF**2 + NF*NC + NC**2)).expand()
0
>>> t.under("parameters").evaluate(NIC=1, NF=32, NC=24, k=3).total("weights")
49728
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import sympy as sp

from .conventions import Convention, get_convention
from .errors import ArchcountError
from .rules import LayerCounts
from .symbols import ALIASES, STANDARD

QUANTITIES = ("weights", "outputs", "connections")
SCHEMA_VERSION = 1


def _q(quantity: str) -> str:
    q = quantity.strip().lower()
    q = {"weight": "weights", "params": "weights", "parameters": "weights", "output": "outputs",
         "units": "outputs", "connection": "connections", "macs": "connections"}.get(q, q)
    if q not in QUANTITIES:
        raise ArchcountError(f"unknown quantity {quantity!r}; valid: weights, outputs, connections",
                             argument="quantity")
    return q


def convention_values(counts: LayerCounts, conv: Convention, path: str = "") -> tuple[Any, Any, Any]:
    """(weights, outputs, connections) one layer contributes under ``conv``."""
    cat = counts.category
    if cat == "attention":
        conn = counts.connections.get("include", 0)
        if conv.products:
            conn = _add(conn, counts.products)
        return counts.weight + (counts.bias if conv.bias else 0), counts.outputs, conn
    if cat == "matmul":
        if not conv.products:
            return 0, 0, 0
        return 0, counts.outputs, counts.products
    if cat == "embedding":
        return counts.weight, counts.outputs, 0
    if cat == "parameter":
        return counts.weight, 0, 0
    if cat == "unused":
        return (counts.weight if conv.bias and conv.batchnorm != "ignore" else 0), 0, 0
    if cat in ("conv", "linear", "transposed"):
        weights = counts.weight + (counts.bias if conv.bias else 0)
        key = conv.transposed if cat == "transposed" else conv.padding_taps
        conn = counts.connections.get(key)
        if conn is None:
            raise ArchcountError(
                f"no {key} connection formula: {'; '.join(counts.notes) or 'not available'}; fix the kernel "
                f"(e.g. kernel=3) or use padding_taps=include / transposed=scatter", layer=path)
        return weights, counts.outputs, conn
    if cat == "norm":
        if conv.batchnorm == "ignore":
            return 0, 0, 0
        if conv.batchnorm == "affine":
            return counts.affine, 0, 0
        return counts.affine, counts.outputs, counts.connections.get("include", counts.outputs)
    if cat == "resample":
        if not conv.pooling:
            return 0, 0, 0
        conn = counts.connections.get(conv.padding_taps)
        if conn is None:
            raise ArchcountError(f"no {conv.padding_taps} window formula for symbolic ceil_mode pooling; "
                                 f"give a numeric input size", layer=path)
        return 0, counts.outputs, conn
    return 0, 0, 0


def _add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    out = sp.expand(sp.sympify(a) + sp.sympify(b))
    return int(out) if out.is_Integer else out


@dataclass(frozen=True)
class LayerRow:
    """One layer: where it is, its shapes, its raw counts and its values under the table's convention."""

    path: str
    type: str
    in_shapes: tuple[tuple[Any, ...], ...]
    out_shape: tuple[Any, ...]
    counts: LayerCounts
    weights: Any
    outputs: Any
    connections: Any
    inputs: tuple[str, ...] = ()
    source: str = ""                                                   #: "file.py:12" of the call
    spec: Any = field(default=None, compare=False, repr=False)         #: the rule's input, to recompute
    in_full: tuple = field(default=(), compare=False, repr=False)      #: whole input shapes (batch B)
    full_shape: bool = field(default=False, compare=False, repr=False)
    rule_key: str = field(default="", compare=False, repr=False)

    @property
    def in_shape(self) -> tuple[Any, ...]:
        return self.in_shapes[0] if self.in_shapes else ()

    @property
    def category(self) -> str:
        return self.counts.category

    @property
    def batched(self) -> bool:
        """False for a parameter read in forward and the unused-parameters row: no input, no batch axis."""
        return self.counts.category not in ("parameter", "unused")

    def value(self, quantity: str) -> Any:
        return getattr(self, _q(quantity))


@dataclass(frozen=True)
class Unsupported:
    """A layer archcount has no rule for: never counted as 0, always listed."""

    path: str
    type: str
    reason: str
    source: str = ""   #: "file.py:12" of the call, when known


def _sub(expr: Any, subs: Mapping[sp.Symbol, Any]) -> Any:
    if isinstance(expr, sp.Basic):
        subs = {key: sp.sympify(v) for key, v in subs.items()}
        out = expr.xreplace(subs) if subs else expr
        if out.free_symbols and out.free_symbols & set(subs):
            out = expr.subs(subs)
        if out.is_number:
            out = sp.nsimplify(out)
            if out.is_integer:
                return int(out)
        return out
    if isinstance(expr, tuple):
        return tuple(_sub(e, subs) for e in expr)
    return expr


def _sub_counts(c: LayerCounts, subs: Mapping[sp.Symbol, Any]) -> LayerCounts:
    return replace(c, out_shape=_sub(c.out_shape, subs), weight=_sub(c.weight, subs), bias=_sub(c.bias, subs),
                   affine=_sub(c.affine, subs), outputs=_sub(c.outputs, subs), products=_sub(c.products, subs),
                   out_shapes=tuple(_sub(x, subs) for x in c.out_shapes),
                   connections={k_: (None if v is None else _sub(v, subs)) for k_, v in c.connections.items()})


@dataclass(frozen=True)
class Scaling:
    """How one quantity changes under a substitution such as H -> 2H."""

    quantity: str
    before: Any
    after: Any
    ratio: Any
    constant: bool  #: False when the ratio still depends on the symbols (e.g. exact padding terms)
    ratio_assuming: Any = None   #: the ratio under ``assumption`` when the exact one is not constant
    assumption: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = _json
        return {"quantity": self.quantity, "before": s(self.before), "after": s(self.after),
                "ratio": s(self.ratio), "constant": self.constant, "ratio_assuming": s(self.ratio_assuming),
                "assumption": self.assumption}


@dataclass(frozen=True)
class ScalingReport:
    substitution: Mapping[str, Any]
    rows: tuple[Scaling, ...]

    def __getitem__(self, quantity: str) -> Scaling:
        q = _q(quantity)
        for row in self.rows:
            if row.quantity == q:
                return row
        raise KeyError(quantity)

    def to_dict(self) -> dict[str, Any]:
        return {"substitution": {k_: _json(v) for k_, v in self.substitution.items()},
                "rows": [r.to_dict() for r in self.rows]}


def _json(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, (tuple, list)):
        return [_json(x) for x in v]
    if isinstance(v, sp.Basic):
        if v.is_Integer:
            return int(v)
        return sp.sstr(v)
    return str(v)


@dataclass(frozen=True)
class CountTable:
    """Per-layer rows and totals of one model under one convention.

    Totals are sympy expressions (or ints).  :meth:`under` re-applies another convention without
    capturing the model again; :meth:`evaluate` substitutes numbers; :meth:`simplified` applies a
    stated divisibility assumption.
    """

    model: str
    convention: Convention
    hparams: Mapping[str, Any]
    input_shape: tuple[Any, ...]
    rows: tuple[LayerRow, ...]
    unsupported: tuple[Unsupported, ...] = ()
    assumptions: tuple[str, ...] = ()
    symbols: Mapping[str, sp.Symbol] = field(default_factory=dict)
    inputs: tuple[tuple[Any, ...], ...] = ()     #: every input's per-sample shape (several for multi-input)
    registry: Any = field(default=None, compare=False, repr=False)

    # -- totals
    @property
    def partial(self) -> bool:
        """True when some operations are unsupported, so the totals miss their share."""
        return bool(self.unsupported)

    @property
    def activation_products(self) -> Any:
        """Activation x activation multiply-adds (attention, ``x @ y``), per sample: never in the
        weighted connections; counted as connections only with the ``products`` switch."""
        out: Any = sp.Integer(0)
        for row in self.rows:
            if row.counts.products is None:
                return None
            out = out + row.counts.products
        out = sp.expand(out)
        return int(out) if out.is_Integer else out

    @property
    def input_size(self) -> tuple[Any, ...]:
        return tuple(self.input_shape[1:])

    def total(self, quantity: str) -> Any:
        """The total of ``weights``, ``outputs`` or ``connections``; with unsupported operations it is
        partial (a :class:`PartialWarning` says so, and :attr:`partial` is True).
        """
        q = _q(quantity)
        if self.unsupported:
            import warnings
            warnings.warn(PartialWarning(f"{self.model}: the {q} total is partial: {len(self.unsupported)} "
                                         f"unsupported operation(s) ({', '.join(u.path for u in self.unsupported[:3])}"
                                         f"{', ...' if len(self.unsupported) > 3 else ''}) are not counted"),
                          stacklevel=2)
        return self._sum(q)

    def _sum(self, q: str) -> Any:
        """The total of quantity ``q`` (already normalised), without the partial warning."""
        out: Any = sp.Integer(0)
        for row in self.rows:
            value = getattr(row, q)
            if value is None:
                raise ArchcountError(f"{row.path} has no {q} formula under {self.convention.label}",
                                     model=self.model, layer=row.path)
            out = out + value
        out = sp.expand(out)
        return int(out) if out.is_Integer else out

    def totals(self) -> dict[str, Any]:
        return {q: self.total(q) for q in QUANTITIES}

    def row(self, path: str) -> LayerRow:
        for r in self.rows:
            if r.path == path:
                return r
        raise ArchcountError(f"no layer {path!r}; layers: {', '.join(r.path for r in self.rows)}", model=self.model)

    @property
    def active_assumptions(self) -> tuple[str, ...]:
        """Assumptions that matter under this table's convention (``exclude:``/``exact:`` ones only
        when padding taps are excluded / transposed convs counted exactly)."""
        out = []
        for a in self.assumptions:
            tag, _, text = a.partition(": ")
            if tag == "exclude":
                if self.convention.padding_taps == "exclude":
                    out.append(text)
            elif tag == "exact":
                if self.convention.transposed == "exact":
                    out.append(text)
            else:
                out.append(a)
        return tuple(out)

    def counted_rows(self) -> tuple[LayerRow, ...]:
        """Rows that contribute something under this convention."""
        return tuple(r for r in self.rows if any(getattr(r, q) != 0 for q in QUANTITIES))

    # -- transformations
    def under(self, convention: str | Convention, switches: Iterable[str] | Mapping[str, Any] | None = None
              ) -> "CountTable":
        """The same model under another convention."""
        conv = get_convention(convention, switches)
        rows = tuple(replace(r, **dict(zip(QUANTITIES, convention_values(r.counts, conv, r.path)))) for r in self.rows)
        return replace(self, convention=conv, rows=rows)

    def _symbol_map(self, values: Mapping[str, Any]) -> dict[sp.Symbol, Any]:
        subs: dict[sp.Symbol, Any] = {}
        known = dict(ALIASES)
        known.update(self.symbols)
        for name, value in values.items():
            sym = name if isinstance(name, sp.Symbol) else known.get(name)
            if sym is None:
                raise ArchcountError(f"unknown symbol {name!r}; this table uses "
                                     f"{', '.join(sorted(str(s) for s in self.free_symbols())) or 'none'}",
                                     argument=str(name), model=self.model)
            subs[sym] = value
        return subs

    def substitute(self, **values: Any) -> "CountTable":
        """Substitute numbers or expressions for symbols (by name: NIC, NF, NC, k, H, W, N, ...)."""
        subs = self._symbol_map(values)
        for sym, value in subs.items():
            if isinstance(value, (int,)) and not isinstance(value, bool) and value < 1:
                raise ArchcountError(f"must be a positive integer, got {value}", argument=str(sym), model=self.model)
        rows = []
        for r in self.rows:
            counts = _sub_counts(r.counts, subs)
            spec = r.spec
            if spec is not None:
                spec = replace(spec, params=_sub_params(spec.params, subs))
            rows.append(replace(r, in_shapes=tuple(_sub(s, subs) for s in r.in_shapes),
                                out_shape=_sub(r.out_shape, subs), counts=counts,
                                weights=_sub(r.weights, subs), outputs=_sub(r.outputs, subs),
                                connections=_sub(r.connections, subs), spec=spec,
                                in_full=tuple(_sub(tuple(s), subs) for s in r.in_full)))
        hp = {name: _sub(v, subs) for name, v in self.hparams.items()}
        return replace(self, rows=tuple(rows), hparams=hp, input_shape=_sub(self.input_shape, subs))

    def evaluate(self, **values: Any) -> "CountTable":
        """Substitute numbers; totals become exact integers.

        A row whose exact formula holds only from some input size on (excluded padding taps, exact
        transposed counts), or that has no formula for a symbolic kernel, is recomputed by its rule
        at the numbers given: ``evaluate`` never returns a formula outside its domain.

        >>> import torch.nn as nn
        >>> from analysis import count, H, W
        >>> t = count(nn.Conv2d(1, 1, 3, padding=18, dilation=18), input_shape=(1, H, W), convention="weighted",
        ...           switches=["padding_taps=exclude"])
        >>> t.evaluate(H=16, W=16).total("connections")   # every tap but the centre reads padding
        256
        """
        out = self.substitute(**values)
        return out._recompute()

    def _recompute(self) -> "CountTable":
        from .counting import apply_counts
        from .rules import RULES
        registry = self.registry or RULES
        rows = []
        changed = False
        for r in self.rows:
            if r.spec is None or not r.in_full or not _all_numeric(r.in_full) or not _needs_recompute(r):
                rows.append(r)
                continue
            found = registry.resolve(r.spec.mro_keys or (r.spec.key,))
            if found is None:  # pragma: no cover - the rule was there when counted
                rows.append(r)
                continue
            kinds = r.spec.input_kinds or ("activation",) * len(r.in_full)
            counts, _ = apply_counts(r.spec, found[1], r.full_shape, r.in_full, kinds)
            counts = replace(counts, weight=r.counts.weight, bias=r.counts.bias, affine=r.counts.affine,
                             notes=r.counts.notes + ("recomputed at this size: the symbolic exact formula holds "
                                                     "only for larger inputs",))
            w, o, c = convention_values(counts, self.convention, r.path)
            rows.append(replace(r, counts=counts, weights=w, outputs=o, connections=c))
            changed = True
        return replace(self, rows=tuple(rows)) if changed else self

    def free_symbols(self) -> set[sp.Symbol]:
        out: set[sp.Symbol] = set()
        for q in QUANTITIES:
            v = self.total(q)
            if isinstance(v, sp.Basic):
                out |= v.free_symbols
        return out

    def scaled(self, **values: Any) -> ScalingReport:
        """Ratios after a substitution such as ``H=2*H, W=2*W``.

        >>> from analysis import count, H, W
        >>> r = count("unet", kernel=3).scaled(H=2*H, W=2*W)
        >>> r["weights"].ratio, r["outputs"].constant, r["outputs"].ratio_assuming
        (1, False, 4)
        >>> r["outputs"].assumption
        'assuming H and W multiples of 4'
        """
        from .simplify import auto_multiple, exact_ratio
        subs = self._symbol_map(values)
        names = tuple(str(sym) for sym in subs if str(sym) in ("H", "W"))
        m = auto_multiple(self)
        rows = []
        for q in QUANTITIES:
            before = self.total(q)
            after = sp.expand(sp.sympify(before).subs(subs, simultaneous=True))
            after = int(after) if after.is_Integer else after
            if before == 0:
                ratio, constant, on_mult = (sp.nan if after != 0 else 1), after == 0, None
            elif names and len(subs) == len(names):
                ratio, constant, on_mult = exact_ratio(after, before, m, names, self.symbols)
            else:
                ratio = sp.simplify(sp.sympify(after) / before)
                constant, on_mult = not ratio.free_symbols, None
            ratio = int(ratio) if isinstance(ratio, sp.Basic) and ratio.is_Integer else ratio
            assuming, text = None, ""
            if not constant and on_mult is not None and m > 1:
                assuming = int(on_mult) if on_mult.is_Integer else on_mult
                text = f"assuming {' and '.join(names)} multiples of {m}"
            rows.append(Scaling(q, before, after, ratio, bool(constant), assuming, text))
        return ScalingReport({str(k_): v for k_, v in subs.items()}, tuple(rows))

    def simplified(self, multiple: int | Mapping[str, int] | None = None) -> "CountTable":
        """Expressions simplified assuming H and W are multiples of ``multiple`` (auto: the smallest
        power of two that removes every floor)."""
        from .simplify import auto_multiple, simplify_multiple
        if multiple is None:
            multiple = auto_multiple(self)
        mults = multiple if isinstance(multiple, Mapping) else {"H": multiple, "W": multiple}
        mults = {str(k_): int(v) for k_, v in mults.items() if int(v) > 1}
        if not mults:
            return self
        fn = lambda e: simplify_multiple(e, mults, self.symbols)  # noqa: E731
        rows = []
        for r in self.rows:
            c = r.counts
            counts = replace(c, out_shape=tuple(fn(x) for x in c.out_shape), weight=fn(c.weight), bias=fn(c.bias),
                             affine=fn(c.affine), outputs=fn(c.outputs),
                             connections={k_: (None if v is None else fn(v)) for k_, v in c.connections.items()})
            rows.append(replace(r, in_shapes=tuple(tuple(fn(x) for x in s) for s in r.in_shapes),
                                out_shape=counts.out_shape, counts=counts, weights=fn(r.weights),
                                outputs=fn(r.outputs), connections=fn(r.connections)))
        text = ", ".join(f"{n} a multiple of {m}" for n, m in mults.items())
        return replace(self, rows=tuple(rows), assumptions=self.assumptions + (f"assuming {text}",))

    # -- export
    def to_frame(self, latex: bool = False) -> Any:
        """A pandas DataFrame, one row per layer (LaTeX strings with ``latex=True``)."""
        import pandas as pd
        fmt = (lambda v: sp.latex(sp.sympify(v))) if latex else (lambda v: v)
        return pd.DataFrame([{
            "layer": r.path, "type": r.type, "input shape": _shape_str(r.in_shape, r.batched),
            "output shape": _shape_str(r.out_shape, r.batched),
            "weights": fmt(r.weights), "outputs": fmt(r.outputs), "connections": fmt(r.connections),
        } for r in self.rows])

    def latex(self) -> dict[str, Any]:
        """LaTeX of every entry: totals and per-layer values."""
        lx = lambda v: sp.latex(sp.sympify(v))  # noqa: E731
        return {"totals": {q: lx(self.total(q)) for q in QUANTITIES},
                "layers": [{"path": r.path, **{q: lx(getattr(r, q)) for q in QUANTITIES}} for r in self.rows]}

    def to_dict(self) -> dict[str, Any]:
        s = _json
        return {"quantity": self.quantity, "before": s(self.before), "after": s(self.after),
                "ratio": s(self.ratio), "constant": self.constant, "ratio_assuming": s(self.ratio_assuming),
                "assumption": self.assumption}


@dataclass(frozen=True)
class ScalingReport:
    substitution: Mapping[str, Any]
    rows: tuple[Scaling, ...]

    def __getitem__(self, quantity: str) -> Scaling:
        q = _q(quantity)
        for row in self.rows:
            if row.quantity == q:
                return row
        raise KeyError(quantity)

    def to_dict(self) -> dict[str, Any]:
        return {"substitution": {k_: _json(v) for k_, v in self.substitution.items()},
                "rows": [r.to_dict() for r in self.rows]}


def _json(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, (tuple, list)):
        return [_json(x) for x in v]
    if isinstance(v, sp.Basic):
        if v.is_Integer:
            return int(v)
        return sp.sstr(v)
    return str(v)


@dataclass(frozen=True)
class CountTable:
    """Per-layer rows and totals of one model under one convention.

    Totals are sympy expressions (or ints).  :meth:`under` re-applies another convention without
    capturing the model again; :meth:`evaluate` substitutes numbers; :meth:`simplified` applies a
    stated divisibility assumption.
    """

    model: str
    convention: Convention
    hparams: Mapping[str, Any]
    input_shape: tuple[Any, ...]
    rows: tuple[LayerRow, ...]
    unsupported: tuple[Unsupported, ...] = ()
    assumptions: tuple[str, ...] = ()
    symbols: Mapping[str, sp.Symbol] = field(default_factory=dict)
    inputs: tuple[tuple[Any, ...], ...] = ()     #: every input's per-sample shape (several for multi-input)
    registry: Any = field(default=None, compare=False, repr=False)

    # -- totals
    @property
    def partial(self) -> bool:
        """True when some operations are unsupported, so the totals miss their share."""
        return bool(self.unsupported)

    @property
    def activation_products(self) -> Any:
        """Activation x activation multiply-adds (attention, ``x @ y``), per sample: never in the
        weighted connections; counted as connections only with the ``products`` switch."""
        out: Any = sp.Integer(0)
        for row in self.rows:
            if row.counts.products is None:
                return None
            out = out + row.counts.products
        out = sp.expand(out)
        return int(out) if out.is_Integer else out

    @property
    def input_size(self) -> tuple[Any, ...]:
        return tuple(self.input_shape[1:])

    def total(self, quantity: str) -> Any:
        """The total of ``weights``, ``outputs`` or ``connections``; with unsupported operations it is
        partial (a :class:`PartialWarning` says so, and :attr:`partial` is True).
        """
        q = _q(quantity)
        if self.unsupported:
            import warnings
            warnings.warn(PartialWarning(f"{self.model}: the {q} total is partial: {len(self.unsupported)} "
                                         f"unsupported operation(s) ({', '.join(u.path for u in self.unsupported[:3])}"
                                         f"{', ...' if len(self.unsupported) > 3 else ''}) are not counted"),
                          stacklevel=2)
        return self._sum(q)

    def _sum(self, q: str) -> Any:
        """The total of quantity ``q`` (already normalised), without the partial warning."""
        out: Any = sp.Integer(0)
        for row in self.rows:
            value = getattr(row, q)
            if value is None:
                raise ArchcountError(f"{row.path} has no {q} formula under {self.convention.label}",
                                     model=self.model, layer=row.path)
            out = out + value
        out = sp.expand(out)
        return int(out) if out.is_Integer else out

    def totals(self) -> dict[str, Any]:
        return {q: self.total(q) for q in QUANTITIES}

    def row(self, path: str) -> LayerRow:
        for r in self.rows:
            if r.path == path:
                return r
        raise ArchcountError(f"no layer {path!r}; layers: {', '.join(r.path for r in self.rows)}", model=self.model)

    @property
    def active_assumptions(self) -> tuple[str, ...]:
        """Assumptions that matter under this table's convention (``exclude:``/``exact:`` ones only
        when padding taps are excluded / transposed convs counted exactly)."""
        out = []
        for a in self.assumptions:
            tag, _, text = a.partition(": ")
            if tag == "exclude":
                if self.convention.padding_taps == "exclude":
                    out.append(text)
            elif tag == "exact":
                if self.convention.transposed == "exact":
                    out.append(text)
            else:
                out.append(a)
        return tuple(out)

    def counted_rows(self) -> tuple[LayerRow, ...]:
        """Rows that contribute something under this convention."""
        return tuple(r for r in self.rows if any(getattr(r, q) != 0 for q in QUANTITIES))

    # -- transformations
    def under(self, convention: str | Convention, switches: Iterable[str] | Mapping[str, Any] | None = None
              ) -> "CountTable":
        """The same model under another convention."""
        conv = get_convention(convention, switches)
        rows = tuple(replace(r, **dict(zip(QUANTITIES, convention_values(r.counts, conv, r.path)))) for r in self.rows)
        return replace(self, convention=conv, rows=rows)

    def _symbol_map(self, values: Mapping[str, Any]) -> dict[sp.Symbol, Any]:
        subs: dict[sp.Symbol, Any] = {}
        known = dict(ALIASES)
        known.update(self.symbols)
        for name, value in values.items():
            sym = name if isinstance(name, sp.Symbol) else known.get(name)
            if sym is None:
                raise ArchcountError(f"unknown symbol {name!r}; this table uses "
                                     f"{', '.join(sorted(str(s) for s in self.free_symbols())) or 'none'}",
                                     argument=str(name), model=self.model)
            subs[sym] = value
        return subs

    def substitute(self, **values: Any) -> "CountTable":
        """Substitute numbers or expressions for symbols (by name: NIC, NF, NC, k, H, W, N, ...)."""
        subs = self._symbol_map(values)
        for sym, value in subs.items():
            if isinstance(value, (int,)) and not isinstance(value, bool) and value < 1:
                raise ArchcountError(f"must be a positive integer, got {value}", argument=str(sym), model=self.model)
        rows = []
        for r in self.rows:
            counts = _sub_counts(r.counts, subs)
            spec = r.spec
            if spec is not None:
                spec = replace(spec, params=_sub_params(spec.params, subs))
            rows.append(replace(r, in_shapes=tuple(_sub(s, subs) for s in r.in_shapes),
                                out_shape=_sub(r.out_shape, subs), counts=counts,
                                weights=_sub(r.weights, subs), outputs=_sub(r.outputs, subs),
                                connections=_sub(r.connections, subs), spec=spec,
                                in_full=tuple(_sub(tuple(s), subs) for s in r.in_full)))
        hp = {name: _sub(v, subs) for name, v in self.hparams.items()}
        return replace(self, rows=tuple(rows), hparams=hp, input_shape=_sub(self.input_shape, subs))

    def evaluate(self, **values: Any) -> "CountTable":
        """Substitute numbers; totals become exact integers.

        A row whose exact formula holds only from some input size on (excluded padding taps, exact
        transposed counts), or that has no formula for a symbolic kernel, is recomputed by its rule
        at the numbers given: ``evaluate`` never returns a formula outside its domain.

        >>> import torch.nn as nn
        >>> from analysis import count, H, W
        >>> t = count(nn.Conv2d(1, 1, 3, padding=18, dilation=18), input_shape=(1, H, W), convention="weighted",
        ...           switches=["padding_taps=exclude"])
        >>> t.evaluate(H=16, W=16).total("connections")   # every tap but the centre reads padding
        256
        """
        out = self.substitute(**values)
        return out._recompute()

    def _recompute(self) -> "CountTable":
        from .counting import apply_counts
        from .rules import RULES
        registry = self.registry or RULES
        rows = []
        changed = False
        for r in self.rows:
            if r.spec is None or not r.in_full or not _all_numeric(r.in_full) or not _needs_recompute(r):
                rows.append(r)
                continue
            found = registry.resolve(r.spec.mro_keys or (r.spec.key,))
            if found is None:  # pragma: no cover - the rule was there when counted
                rows.append(r)
                continue
            kinds = r.spec.input_kinds or ("activation",) * len(r.in_full)
            counts, _ = apply_counts(r.spec, found[1], r.full_shape, r.in_full, kinds)
            counts = replace(counts, weight=r.counts.weight, bias=r.counts.bias, affine=r.counts.affine,
                             notes=r.counts.notes + ("recomputed at this size: the symbolic exact formula holds "
                                                     "only for larger inputs",))
            w, o, c = convention_values(counts, self.convention, r.path)
            rows.append(replace(r, counts=counts, weights=w, outputs=o, connections=c))
            changed = True
        return replace(self, rows=tuple(rows)) if changed else self

    def free_symbols(self) -> set[sp.Symbol]:
        out: set[sp.Symbol] = set()
        for q in QUANTITIES:
            v = self.total(q)
            if isinstance(v, sp.Basic):
                out |= v.free_symbols
        return out

    def scaled(self, **values: Any) -> ScalingReport:
        """Ratios after a substitution such as ``H=2*H, W=2*W``.

        >>> from analysis import count, H, W
        >>> r = count("unet", kernel=3).scaled(H=2*H, W=2*W)
        >>> r["weights"].ratio, r["outputs"].constant, r["outputs"].ratio_assuming
        (1, False, 4)
        >>> r["outputs"].assumption
        'assuming H and W multiples of 4'
        """
        from .simplify import auto_multiple, exact_ratio
        subs = self._symbol_map(values)
        names = tuple(str(sym) for sym in subs if str(sym) in ("H", "W"))
        m = auto_multiple(self)
        rows = []
        for q in QUANTITIES:
            before = self.total(q)
            after = sp.expand(sp.sympify(before).subs(subs, simultaneous=True))
            after = int(after) if after.is_Integer else after
            if before == 0:
                ratio, constant, on_mult = (sp.nan if after != 0 else 1), after == 0, None
            elif names and len(subs) == len(names):
                ratio, constant, on_mult = exact_ratio(after, before, m, names, self.symbols)
            else:
                ratio = sp.simplify(sp.sympify(after) / before)
                constant, on_mult = not ratio.free_symbols, None
            ratio = int(ratio) if isinstance(ratio, sp.Basic) and ratio.is_Integer else ratio
            assuming, text = None, ""
            if not constant and on_mult is not None and m > 1:
                assuming = int(on_mult) if on_mult.is_Integer else on_mult
                text = f"assuming {' and '.join(names)} multiples of {m}"
            rows.append(Scaling(q, before, after, ratio, bool(constant), assuming, text))
        return ScalingReport({str(k_): v for k_, v in subs.items()}, tuple(rows))

    def simplified(self, multiple: int | Mapping[str, int] | None = None) -> "CountTable":
        """Expressions simplified assuming H and W are multiples of ``multiple`` (auto: the smallest
        power of two that removes every floor)."""
        from .simplify import auto_multiple, simplify_multiple
        if multiple is None:
            multiple = auto_multiple(self)
        mults = multiple if isinstance(multiple, Mapping) else {"H": multiple, "W": multiple}
        mults = {str(k_): int(v) for k_, v in mults.items() if int(v) > 1}
        if not mults:
            return self
        fn = lambda e: simplify_multiple(e, mults, self.symbols)  # noqa: E731
        rows = []
        for r in self.rows:
            c = r.counts
            counts = replace(c, out_shape=tuple(fn(x) for x in c.out_shape), weight=fn(c.weight), bias=fn(c.bias),
                             affine=fn(c.affine), outputs=fn(c.outputs),
                             connections={k_: (None if v is None else fn(v)) for k_, v in c.connections.items()})
            rows.append(replace(r, in_shapes=tuple(tuple(fn(x) for x in s) for s in r.in_shapes),
                                out_shape=counts.out_shape, counts=counts, weights=fn(r.weights),
                                outputs=fn(r.outputs), connections=fn(r.connections)))
        text = ", ".join(f"{n} a multiple of {m}" for n, m in mults.items())
        return replace(self, rows=tuple(rows), assumptions=self.assumptions + (f"assuming {text}",))

    # -- export
    def to_frame(self, latex: bool = False) -> Any:
        """A pandas DataFrame, one row per layer (LaTeX strings with ``latex=True``)."""
        import pandas as pd
        fmt = (lambda v: sp.latex(sp.sympify(v))) if latex else (lambda v: v)
        return pd.DataFrame([{
            "layer": r.path, "type": r.type, "input shape": _shape_str(r.in_shape, r.batched),
            "output shape": _shape_str(r.out_shape, r.batched),
            "weights": fmt(r.weights), "outputs": fmt(r.outputs), "connections": fmt(r.connections),
        } for r in self.rows])

    def latex(self) -> dict[str, Any]:
        """LaTeX of every entry: totals and per-layer values."""
        lx = lambda v: sp.latex(sp.sympify(v))  # noqa: E731
        return {"totals": {q: lx(self.total(q)) for q in QUANTITIES},
                "layers": [{"path": r.path, **{q: lx(getattr(r, q)) for q in QUANTITIES}} for r in self.rows]}

    def _quiet_totals(self) -> dict[str, Any]:
        """The totals as JSON; a partial table says so in ``partial``, not in a warning."""
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialWarning)
            return {q: _json(self.total(q)) for q in QUANTITIES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; formulas are ``sympy.sstr`` strings that ``sympy.sympify`` reads back."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "convention": self.convention.to_dict(),
            "hparams": {k_: _json(v) for k_, v in self.hparams.items()},
            "input_size": [_json(v) for v in self.input_size],
            "input_shape": [_json(v) for v in self.input_shape],
            "totals": {q: _json(self._sum(q)) for q in QUANTITIES},   # "partial" says if they are partial
            "partial": self.partial,
            "activation_products": _json(self.activation_products),
            "inputs": [[_json(v) for v in shape] for shape in self.inputs],
            "unsupported": [{"path": u.path, "type": u.type, "reason": u.reason, "source": u.source}
                            for u in self.unsupported],
            "assumptions": list(self.active_assumptions),
            "layers": [{
                "path": r.path, "type": r.type, "category": r.category, "inputs": list(r.inputs),
                "input_shapes": [[_json(x) for x in s] for s in r.in_shapes],
                "output_shape": [_json(x) for x in r.out_shape],
                "weights": _json(r.weights), "outputs": _json(r.outputs), "connections": _json(r.connections),
                "notes": list(r.counts.notes),
            } for r in self.rows],
        }

    def _repr_markdown_(self) -> str:  # notebook display; rendering lives in reports.display
        from reports.display import count_markdown
        return count_markdown(self)

    def _repr_latex_(self) -> str:
        from reports.display import count_latex
        return count_latex(self)

    def _repr_html_(self) -> str:
        from reports.display import count_html
        return count_html(self)


class PartialWarning(UserWarning):
    """A total was asked of a table with unsupported operations."""


def _all_numeric(shapes: Any) -> bool:
    from .capture import BATCH
    for s in shapes:
        for v in s:
            if isinstance(v, sp.Basic) and (v.free_symbols - {BATCH}):
                return False
    return True


def _needs_recompute(r: LayerRow) -> bool:
    c = r.counts
    if any(v is None for v in c.connections.values()):
        return True
    if not c.domain:
        return False
    spatial = [v for v in (r.in_shape[1:] if len(r.in_shape) > 1 else ()) if isinstance(v, int)]
    return bool(spatial) and min(spatial) < min(int(n) for n in c.domain.values())


def _sub_params(value: Any, subs: Mapping[sp.Symbol, Any]) -> Any:
    if isinstance(value, sp.Basic):
        return _sub(value, subs)
    if isinstance(value, tuple):
        return tuple(_sub_params(v, subs) for v in value)
    if isinstance(value, list):
        return [_sub_params(v, subs) for v in value]
    if isinstance(value, dict):
        return {k_: _sub_params(v, subs) for k_, v in value.items()}
    return value


def _shape_str(shape: Sequence[Any], batch: bool = True) -> str:
    if not shape:
        return ""
    inner = ", ".join(sp.sstr(s) for s in shape)
    return f"[BS, {inner}]" if batch else f"[{inner}]"


__all__ = ["CountTable", "LayerRow", "PartialWarning", "QUANTITIES", "SCHEMA_VERSION", "Scaling", "ScalingReport",
           "Unsupported", "convention_values"]
