"""Verify archcount's formulas against the real torch models.

For every configuration (NIC, NF, NC, kernel, H, W, and any other lifted hyperparameter) the real
model is built and measured (:mod:`analysis.measure`: parameter numel, output numel and shapes
from the recorded forward, fvcore per-module counts, structural connection counts), and compared
with the symbolic :func:`~analysis.counting.count` table evaluated at that configuration, layer
by layer and in total, under every requested convention.

What is compared (``quantity`` of a :class:`VerificationRow`):

- convention-independent rows (``convention == "-"``): ``shape`` and ``outputs[numel]`` of every
  layer (cat, pooling, upsampling, activations included), ``weights[weight|bias|affine]``, and
  every connection key against every measurement source (``connections[include]`` vs fvcore and
  vs the structural count, ``connections[exclude]``, ``connections[scatter|exact|gather]``...);
- per convention: ``weights``, ``outputs`` and ``connections`` of each layer and their totals
  (layer ``TOTAL``), plus ``weights[sum numel]`` (the total against ``sum(p.numel())`` of the
  model) for conventions that count biases and BatchNorm affine weights.

The symbolic table is captured once per model (the capture is cached) and evaluated at every
configuration; exact connection counts (``padding_taps=exclude``, ``transposed=exact``) need a
numeric kernel, so those come from the table counted with the kernel fixed (also cached).

>>> report = verify("conv_transpose", configs=[dict(NIC=1, NF=4, NC=3, kernel=3, H=12, W=10)], n_random=0)
>>> report.ok, report.summary()["configs_checked"], len(report.mismatches)
(True, 1, 0)
>>> row = [r for r in report.rows if r.layer == "block3.0" and r.quantity == "connections[exact]"][0]
>>> row.formula == row.measured, row.source
(True, 'structural')
"""
from __future__ import annotations

import contextlib
import random
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import sympy as sp

from .conventions import Convention, all_conventions, get_convention
from .errors import ArchcountError
from .symbols import HPARAM_SYMBOLS

#: The conventions checked by default: the presets plus the exact and gather variants.
DEFAULT_CONVENTIONS: tuple[str, ...] = (
    "weighted", "all-layers", "parameters",
    "all-layers[padding_taps=exclude]",
    "all-layers[transposed=exact]",
    "all-layers[transposed=gather]",
    "parameters[batchnorm=layer,pooling=true,padding_taps=exclude,transposed=exact]",
)

#: Short config names of the standard hyperparameters.
SHORT = {"kernel": "k", "num_in_channels": "NIC", "num_filters": "NF", "num_colours": "NC"}
_LONG = {"k": "kernel", "K": "kernel", "NIC": "num_in_channels", "NF": "num_filters", "NC": "num_colours"}

#: Random hyperparameter ranges (inclusive) for random configurations.
RANDOM_RANGES = {"kernel": (1, 7), "num_in_channels": (1, 4), "num_filters": (1, 12), "num_colours": (1, 10)}
RANDOM_OTHER = (1, 16)


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class VerifyConfig:
    """One configuration: the factory's hyperparameters and the input size."""

    hparams: Mapping[str, int]
    size: tuple[int, int]
    origin: str = "given"            #: default | random | given

    @property
    def label(self) -> str:
        parts = [f"{SHORT.get(key, key)}={v}" for key, v in self.hparams.items()]
        return " ".join(parts + [f"{self.size[0]}x{self.size[1]}"])

    def to_dict(self) -> dict[str, Any]:
        return {"hparams": dict(self.hparams), "H": self.size[0], "W": self.size[1], "origin": self.origin,
                "label": self.label}


@dataclass(frozen=True)
class VerificationRow:
    """One comparison: a formula value next to a measured value."""

    model: str
    config: str
    convention: str          #: convention label, or "-" for convention-independent rows
    layer: str               #: layer path, or "TOTAL"
    quantity: str
    formula: Any
    measured: Any
    match: bool | None       #: None when there is nothing measured to compare with
    source: str = ""         #: how the measured value was obtained
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "config": self.config, "convention": self.convention, "layer": self.layer,
                "quantity": self.quantity, "formula": _json(self.formula), "measured": _json(self.measured),
                "match": self.match, "source": self.source, "note": self.note}


@dataclass(frozen=True)
class Skipped:
    """A configuration that could not be checked, with the reason."""

    model: str
    config: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "config": self.config, "reason": self.reason}


@dataclass(frozen=True)
class CheckedConfig:
    """A configuration that was checked."""

    model: str
    config: VerifyConfig
    rows: int
    mismatches: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **self.config.to_dict(), "rows": self.rows, "mismatches": self.mismatches,
                "seconds": round(self.seconds, 4)}


@dataclass(frozen=True)
class VerificationReport:
    """Every comparison of a verification run.

    ``ok`` is True when at least one configuration was checked and nothing mismatched; skipped
    configurations are listed with their reasons but do not fail the run.
    """

    models: tuple[str, ...]
    conventions: tuple[str, ...]
    configs: tuple[CheckedConfig, ...]
    rows: tuple[VerificationRow, ...]
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def mismatches(self) -> tuple[VerificationRow, ...]:
        return tuple(r for r in self.rows if r.match is False)

    @property
    def unmeasured(self) -> tuple[VerificationRow, ...]:
        return tuple(r for r in self.rows if r.match is None)

    @property
    def ok(self) -> bool:
        return bool(self.configs) and not self.mismatches

    def summary(self) -> dict[str, Any]:
        """Counts: configurations checked/skipped, quantities checked, mismatches."""
        return {"models": len(self.models), "configs_checked": len(self.configs), "configs_skipped": len(self.skipped),
                "conventions": len(self.conventions),
                "quantities_checked": sum(1 for r in self.rows if r.match is not None),
                "unmeasured": len(self.unmeasured), "mismatches": len(self.mismatches), "ok": self.ok,
                "seconds": round(self.seconds, 3)}

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per comparison."""
        import pandas as pd
        cols = ["model", "config", "convention", "layer", "quantity", "formula", "measured", "match", "source", "note"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rows], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "models": list(self.models), "conventions": list(self.conventions),
                "configs": [c.to_dict() for c in self.configs], "skipped": [s.to_dict() for s in self.skipped],
                "notes": list(self.notes), "mismatches": [r.to_dict() for r in self.mismatches],
                "rows": [r.to_dict() for r in self.rows]}

    @staticmethod
    def combine(reports: Sequence["VerificationReport"]) -> "VerificationReport":
        """One report from several (e.g. one per model)."""
        convs: list[str] = []
        for rep in reports:
            convs.extend(c for c in rep.conventions if c not in convs)
        return VerificationReport(tuple(m for rep in reports for m in rep.models), tuple(convs),
                                  tuple(c for rep in reports for c in rep.configs),
                                  tuple(r for rep in reports for r in rep.rows),
                                  tuple(s for rep in reports for s in rep.skipped),
                                  sum(rep.seconds for rep in reports),
                                  tuple(n for rep in reports for n in rep.notes))


def _json(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (tuple, list)):
        return [_json(x) for x in v]
    try:
        import sympy as sp
        if isinstance(v, sp.Basic):
            return int(v) if v.is_Integer else sp.sstr(v)
    except ImportError:  # pragma: no cover
        pass
    return str(v)


# --------------------------------------------------------------------------- conventions

def parse_convention(text: str | Convention) -> Convention:
    """A convention from its label: ``"all-layers[padding_taps=exclude,transposed=exact]"``.

    >>> parse_convention("weighted[transposed=gather]").transposed
    'gather'
    """
    if isinstance(text, Convention):
        return text
    m = re.fullmatch(r"\s*([\w-]+)\s*(?:\[(.*)\])?\s*", str(text))
    if not m:
        raise ArchcountError(f"cannot read convention {text!r}; write PRESET or PRESET[switch=value,...]",
                             argument="conventions")
    return get_convention(m.group(1), [m.group(2)] if m.group(2) else None)


def resolve_conventions(conventions: Iterable[str | Convention] | str | None) -> list[Convention]:
    """Default list, ``"all"`` (every distinct switch combination), or the given labels, deduplicated."""
    if conventions is None:
        conventions = DEFAULT_CONVENTIONS
    if isinstance(conventions, (str, Convention)):
        conventions = [conventions]
    out: list[Convention] = []
    for item in conventions:
        every = isinstance(item, str) and item.strip().lower() == "all"
        convs = all_conventions() if every else [parse_convention(item)]
        for conv in convs:
            if all(conv.switches != c.switches for c in out):
                out.append(conv)
    return out


def _needs_exact(conv: Convention) -> bool:
    return conv.padding_taps == "exclude" or conv.transposed == "exact"


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class _Subject:
    name: str
    count_target: Any                     #: what count() receives
    build: Callable[[Mapping[str, int]], Any]
    defaults: Mapping[str, Any]           #: factory hyperparameters
    valid_size: Callable[[int], bool]
    default_size: tuple[int, int]
    min_size: int = 1
    max_size: int | None = None
    size_multiple: int = 1
    concrete: bool = False


def _subject(model: Any) -> _Subject:
    import torch.nn as nn
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        size = spec.fixed_size or _first_valid(spec.valid_size, 32, spec.min_size, spec.max_size)
        if isinstance(size, int):
            size = (size, size)
        return _Subject(spec.name, spec.name, lambda hp, f=spec.factory: f(**hp), dict(spec.defaults),
                        spec.valid_size, tuple(size), spec.min_size, spec.max_size, spec.size_multiple)
    if isinstance(model, nn.Module):
        name = type(model).__name__
        return _Subject(name, model, lambda hp, m=model: m, {}, lambda n: n >= 1, (32, 32), concrete=True)
    if callable(model):
        from .capture import FALLBACK_BASE, _signature_defaults
        name = getattr(model, "__name__", type(model).__name__)
        defaults = {}
        for key, v in _signature_defaults(model).items():
            v = v if v is not None else FALLBACK_BASE.get(key)
            if v is None:
                raise ArchcountError("has no default; cannot build the model for verification", model=name,
                                     argument=key)
            defaults[key] = v
        return _Subject(name, model, lambda hp, f=model: f(**hp), defaults, lambda n: n >= 1, (32, 32))
    raise ArchcountError(f"expected a zoo model name, a factory or an nn.Module, got {type(model).__name__}",
                         argument="model")


def _first_valid(valid: Callable[[int], bool], near: int, lo: int, hi: int | None) -> int:
    top = hi if hi is not None else max(near * 4, lo + 64)
    for n in sorted(range(max(lo, 1), top + 1), key=lambda v: (abs(v - near), v)):
        if valid(n):
            return n
    return max(lo, 1)


def _builds(subject: _Subject, hp: Mapping[str, int]) -> bool:
    try:
        subject.build(hp)
        return True
    except Exception:
        return False


def _liftable(subject: _Subject) -> list[str]:
    """Hyperparameters a configuration may vary: integer ones."""
    return [key for key, v in subject.defaults.items() if isinstance(v, int) and not isinstance(v, bool)]


def _normalise_config(subject: _Subject, cfg: Mapping[str, Any] | VerifyConfig) -> VerifyConfig:
    if isinstance(cfg, VerifyConfig):
        return cfg
    hp = dict(subject.defaults)
    size = list(subject.default_size)
    for key, value in dict(cfg).items():
        if key in ("H", "h"):
            size[0] = int(value)
        elif key in ("W", "w"):
            size[1] = int(value)
        elif key in ("size", "input_size"):
            size = [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]
        else:
            name = _LONG.get(key, key)
            if name not in hp:
                raise ArchcountError(f"unknown configuration key {key!r}; this model takes "
                                     f"{', '.join(list(hp) + ['H', 'W']) or 'H, W'}", model=subject.name,
                                     argument="configs")
            hp[name] = value
    return VerifyConfig(hp, (size[0], size[1]), "given")


def default_configs(model: Any) -> list[VerifyConfig]:
    """The deterministic configurations checked for every model: its defaults at its default size,
    and a small odd-sized one with another kernel (sizes not divisible by 4 where the model allows).

    >>> [c.label for c in default_configs("unet")]
    ['k=3 NIC=1 NF=32 NC=24 32x32', 'k=5 NIC=2 NF=5 NC=3 28x20']
    """
    subject = model if isinstance(model, _Subject) else _subject(model)
    out = [VerifyConfig(dict(subject.defaults), subject.default_size, "default")]
    if subject.concrete:
        h = _first_valid(subject.valid_size, 30, subject.min_size, subject.max_size)
        w = _first_valid(subject.valid_size, 21, subject.min_size, subject.max_size)
        out.append(VerifyConfig({}, (h, w), "default"))
        return out
    hp = dict(subject.defaults)
    small = {"num_in_channels": 2, "num_filters": 5, "num_colours": 3}
    for key, v in small.items():
        if key in hp:
            hp[key] = v
    if "kernel" in hp:
        for kv in (5, 3, 4, 2, 1):
            if kv != subject.defaults["kernel"] and _builds(subject, dict(hp, kernel=kv)):
                hp["kernel"] = kv
                break
    h = _first_valid(subject.valid_size, 30, subject.min_size, subject.max_size)
    w = _first_valid(subject.valid_size, 21, subject.min_size, subject.max_size)
    if subject.max_size is not None:  # fixed-size models: two other valid sizes
        h = _first_valid(lambda n: subject.valid_size(n) and n != subject.default_size[0], subject.max_size - 4,
                         subject.min_size, subject.max_size)
        w = _first_valid(lambda n: subject.valid_size(n) and n != h, subject.min_size + 1, subject.min_size,
                         subject.max_size)
    out.append(VerifyConfig(hp, (h, w), "default"))
    return out


def random_configs(model: Any, n: int, seed: int = 0) -> list[VerifyConfig]:
    """``n`` random valid configurations (deterministic in ``seed`` and the model name); the first
    has a height not divisible by 4 where the model allows one.

    >>> [c.size for c in random_configs("unet", 3, seed=1)] == [c.size for c in random_configs("unet", 3, seed=1)]
    True
    """
    subject = model if isinstance(model, _Subject) else _subject(model)
    rng = random.Random(f"archcount-verify:{seed}:{subject.name}")
    lo = max(subject.min_size, 1)
    hi = subject.max_size if subject.max_size is not None else max(lo + 24, 40)
    sizes = [s for s in range(lo, hi + 1) if subject.valid_size(s)]
    if not sizes:
        return []
    odd = [s for s in sizes if s % 4]
    out = []
    for i in range(n):
        hp = dict(subject.defaults)
        for key in _liftable(subject):
            if key == "kernel":
                continue
            a, b = RANDOM_RANGES.get(key, RANDOM_OTHER)
            hp[key] = rng.randint(a, b)
        if "kernel" in hp:
            kernels = list(range(RANDOM_RANGES["kernel"][0], RANDOM_RANGES["kernel"][1] + 1))
            rng.shuffle(kernels)
            for kv in kernels:
                if _builds(subject, dict(hp, kernel=kv)):
                    hp["kernel"] = kv
                    break
        h = rng.choice(odd if (i == 0 and odd) else sizes)
        w = rng.choice(sizes)
        out.append(VerifyConfig(hp, (h, w), "random"))
    return out


# --------------------------------------------------------------------------- the formula side

#: Symbolic count tables of zoo models (immutable), by (name, factory, fixed hparams, lifted symbols).
_TABLES: dict[tuple, Any] = {}


def _table_key(target: Any, fixed: Mapping[str, Any], symbols: Mapping[str, Any]) -> tuple | None:
    if not isinstance(target, str):
        return None
    import models as zoo
    return (target, id(zoo.spec(target).factory), tuple(sorted(fixed.items())), tuple(sorted(symbols)))


class _Formulas:
    """The symbolic tables of one model: kernel lifted, and per kernel value for exact counts."""

    def __init__(self, subject: _Subject) -> None:
        from .counting import count
        from .symbols import positive_int_symbol
        self.subject = subject
        self._count = count
        extra = [key for key in _liftable(subject) if key not in HPARAM_SYMBOLS]
        self.lifted_symbols = {key: positive_int_symbol(key) for key in extra}
        self._by_kernel: dict[int, Any] = {}
        self._numeric: dict[tuple, Any] = {}
        self.symbolic_error: ArchcountError | None = None
        try:
            self.sym = self._table()
        except ArchcountError as exc:
            if not subject.concrete:
                raise
            self.sym = None  # e.g. a model that runs at one size only: counted at each configuration's size
            self.symbolic_error = exc

    def at(self, cfg: VerifyConfig) -> Any:
        """The table to compare at ``cfg``: the symbolic one evaluated, or the count at that size."""
        if self.sym is None:
            return self.numeric(cfg)
        return self.sym.evaluate(**self.values(cfg, self.sym))

    def _table(self, **fixed: Any) -> Any:
        target = self.subject.count_target
        if self.subject.concrete:
            return self._count(target)
        key = _table_key(target, fixed, self.lifted_symbols)
        if key is not None and key in _TABLES:
            return _TABLES[key]
        try:
            table = self._count(target, symbols=self.lifted_symbols or None, **fixed)
        except ArchcountError:
            if not self.lifted_symbols:
                raise
            self.lifted_symbols = {}
            return self._table(**fixed)
        if key is not None:
            if len(_TABLES) >= 128:
                _TABLES.pop(next(iter(_TABLES)))
            _TABLES[key] = table
        return table

    def lifted(self) -> set[str]:
        names = {key for key in HPARAM_SYMBOLS if key in self.subject.defaults}
        return (names | set(self.lifted_symbols)) if not self.subject.concrete else set()

    def for_kernel(self, kernel: int | None) -> Any:
        if kernel is None or "kernel" not in self.subject.defaults:
            return self.sym
        if kernel not in self._by_kernel:
            self._by_kernel[kernel] = self._table(kernel=kernel)
        return self._by_kernel[kernel]

    def numeric(self, cfg: VerifyConfig) -> Any:
        """The table counted at this input size (exact counts enumerated), channels evaluated."""
        key = (tuple(sorted(cfg.hparams.items())), cfg.size)
        if key not in self._numeric:
            fixed = {"kernel": cfg.hparams["kernel"]} if "kernel" in cfg.hparams else {}
            target = self.subject.count_target
            if self.subject.concrete:
                table = self._count(target, input_size=cfg.size)
            else:
                table = self._count(target, input_size=cfg.size, symbols=self.lifted_symbols or None, **fixed)
            self._numeric[key] = table.evaluate(**self.values(cfg, table))
        return self._numeric[key]

    def values(self, cfg: VerifyConfig, table: Any) -> dict[str, Any]:
        names = set(table.symbols)
        for v in table.input_shape:
            names |= {str(s) for s in getattr(v, "free_symbols", ())}
        out: dict[str, Any] = {}
        for key, v in cfg.hparams.items():
            sym = str(HPARAM_SYMBOLS[key]) if key in HPARAM_SYMBOLS else key
            if sym in names:
                out[sym] = v
        for axis, v in zip("HW", cfg.size):
            if axis in names:
                out[axis] = v
        return out


_DOMAIN = re.compile(r"^(?:(?:exclude|exact): )?(?P<path>.+?): exact .* holds for spatial sizes >= (?P<n>\d+)$")


def _domains(table: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for text in table.assumptions:
        m = _DOMAIN.match(text)
        if m:
            out[m.group("path")] = int(m.group("n"))
    return out


# --------------------------------------------------------------------------- comparing

def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    try:
        return int(a) == int(b) and float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _num(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return tuple(_num(x) for x in v)
    try:
        import sympy as sp
        if isinstance(v, sp.Basic):
            if v.is_Integer:
                return int(v)
            if v.is_number:
                f = sp.nsimplify(v)
                return int(f) if f.is_Integer else f
    except ImportError:  # pragma: no cover
        pass
    return v


#: measurement source of each connection key, per measured kind, under a convention
def _measured_connection(lm: Any, key: str) -> tuple[Any, str]:
    kind = lm.kind
    conn = lm.connections
    if kind in ("conv", "linear"):
        if key == "include":
            return (lm.flops, "fvcore") if lm.flops is not None else (conn.get("include"), "structural")
        return conn.get("exclude"), "structural"
    if kind == "transposed":
        if key == "scatter":
            return (lm.flops, "fvcore") if lm.flops is not None else (conn.get("scatter"), "structural")
        return conn.get(key), ("definition" if key == "gather" else "structural")
    if kind in ("pool", "adaptive"):
        return conn.get(key), "structural"
    if kind == "reduce":
        return conn.get(key), "definition"
    if kind == "upsample":
        if "nonzero" in conn and conn.get("nonzero") == conn.get("taps"):
            return conn.get("nonzero"), "structural"
        return conn.get("taps"), "definition"
    if kind == "norm":
        return conn.get(key, lm.outputs), "definition"
    return 0, "-"


def _shapes(row: Any, lm: Any) -> tuple[Any, Any]:
    """(formula, measured) output shapes; a shape whose batch is not first is compared whole (B = 1)."""
    from .capture import BATCH
    shape = tuple(row.out_shape)
    if any(isinstance(v, sp.Basic) and BATCH in v.free_symbols for v in shape):
        return tuple(_num(sp.sympify(v).subs(BATCH, 1)) for v in shape), tuple(lm.full_shape)
    return shape, tuple(lm.out_shape)


def measured_values(lm: Any, conv: Convention) -> tuple[Any, Any, Any, str]:
    """(weights, outputs, connections, source) a measured layer contributes under ``conv``.

    This is the definition of the conventions applied to raw measurements (parameter numel by
    torch class, output numel, fvcore, FlopCounterMode and structural counts), never archcount's
    formulas.
    """
    kind = lm.kind
    if kind == "parameter":
        return lm.weight, 0, 0, "parameter numel"
    if kind == "unused":
        return (lm.weight if conv.bias and conv.batchnorm != "ignore" else 0), 0, 0, "parameter numel"
    if kind == "embedding":
        return lm.weight, lm.outputs, 0, "-"
    if kind == "matmul":
        c = lm.connections.get("include")
        if lm.weight:
            return lm.weight + (lm.bias if conv.bias else 0), lm.outputs, c, "FlopCounterMode"
        return (0, lm.outputs, c, "FlopCounterMode") if conv.products else (0, 0, 0, "-")
    if kind == "attention":
        c = lm.connections.get("weighted")
        if conv.products and c is not None:
            c = c + lm.connections.get("products", 0)
        return lm.weight + (lm.bias if conv.bias else 0), lm.outputs, c, "FlopCounterMode"
    if kind in ("conv", "linear", "transposed"):
        key = conv.transposed if kind == "transposed" else conv.padding_taps
        c, src = _measured_connection(lm, key)
        return lm.weight + (lm.bias if conv.bias else 0), lm.outputs, c, src
    if kind == "norm":
        if conv.batchnorm == "ignore":
            return 0, 0, 0, "-"
        if conv.batchnorm == "affine":
            return lm.affine, 0, 0, "-"
        c, src = _measured_connection(lm, "include")
        return lm.affine, lm.outputs, c, src
    if kind in ("pool", "adaptive", "upsample", "reduce"):
        if not conv.pooling:
            return 0, 0, 0, "-"
        c, src = _measured_connection(lm, conv.padding_taps)
        return 0, lm.outputs, c, src
    return 0, 0, 0, "-"


def _match_layers(rows: Sequence[Any], layers: Sequence[Any]) -> tuple[list[tuple[Any, Any]], list[Any], list[Any]]:
    """Pair table rows with measured layers by path (in order, for modules called twice)."""
    pending: dict[str, list[Any]] = {}
    for lm in layers:
        pending.setdefault(lm.path, []).append(lm)
    pairs, missing = [], []
    for row in rows:
        queue = pending.get(row.path)
        if queue:
            pairs.append((row, queue.pop(0)))
        else:
            missing.append(row)
    extra = [lm for queue in pending.values() for lm in queue]
    return pairs, missing, extra


class _Rows:
    def __init__(self, model: str, config: str) -> None:
        self.model, self.config = model, config
        self.rows: list[VerificationRow] = []

    def add(self, convention: str, layer: str, quantity: str, formula: Any, measured: Any, source: str,
            note: str = "", match: bool | None | str = "auto") -> VerificationRow:
        formula, measured = _num(formula), _num(measured)
        if match == "auto":
            match = None if measured is None else (formula is not None and _eq(formula, measured))
        row = VerificationRow(self.model, self.config, convention, layer, quantity, formula, measured, match,
                              source, note)
        self.rows.append(row)
        return row


_RAW_SOURCES = {
    "conv": (("include", "fvcore"), ("include", "structural"), ("exclude", "structural")),
    "linear": (("include", "fvcore"), ("include", "structural"), ("exclude", "structural")),
    "transposed": (("scatter", "fvcore"), ("scatter", "structural"), ("exact", "structural"),
                   ("gather", "definition")),
    "pool": (("include", "structural"), ("exclude", "structural")),
    "adaptive": (("include", "structural"), ("exclude", "structural")),
}


def _raw_measured(lm: Any, key: str, source: str) -> Any:
    if source == "fvcore":
        return lm.flops
    return lm.connections.get(key)


def _compare(subject: _Subject, cfg: VerifyConfig, formulas: _Formulas, measurement: Any,
             conventions: Sequence[Convention]) -> list[VerificationRow]:
    out = _Rows(subject.name, cfg.label)
    try:
        e_sym = formulas.at(cfg)
    except ArchcountError as exc:
        out.add("-", "-", "evaluate", f"error: {exc}", "model runs", "torch", match=False)
        return out.rows
    need_exact = any(_needs_exact(c) for c in conventions)
    e_k = None
    if need_exact:
        tk = formulas.for_kernel(cfg.hparams.get("kernel"))
        try:
            e_k = formulas.numeric(cfg) if tk is None else tk.evaluate(**formulas.values(cfg, tk))
        except ArchcountError as exc:
            out.add("-", "-", "evaluate", f"error: {exc}", "model runs", "torch", match=False)
            return out.rows
    domains = _domains(e_k if e_k is not None else e_sym)

    def outside(row: Any, lm: Any) -> str:
        n_min = domains.get(row.path)
        if n_min is None or not lm.in_shapes:
            return ""
        spatial = [s for s in lm.in_shapes[0][1:]] or [0]
        return (f"outside the exact formula's stated domain (spatial sizes >= {n_min}, here "
                f"{min(spatial)})") if min(spatial) < n_min else ""

    def exact_value(row: Any, lm: Any, key: str, value: Any, measured: Any) -> tuple[Any, str]:
        """The exact formula value, or archcount's count at this size when the symbolic formula is
        outside its stated domain and disagrees."""
        why = outside(row, lm)
        if not why or measured is None or _eq(_num(value), _num(measured)):
            return value, ""
        numeric = formulas.numeric(cfg)
        try:
            nrow = numeric.row(row.path)
        except ArchcountError:
            return value, why
        return nrow.counts.connections.get(key), (f"{why}: compared archcount's count at this size; the "
                                                   f"symbolic formula gives {_num(value)}")

    def numeric_value(path: str, key: str) -> tuple[Any, str]:
        """archcount's count at this numeric size, where no symbolic formula exists."""
        try:
            nrow = formulas.numeric(cfg).row(path)
        except ArchcountError as exc:
            return None, f"no formula: {exc.reason}"
        return nrow.counts.connections.get(key), ("no symbolic formula (e.g. ceil_mode pooling); compared "
                                                  "archcount's count at this input size")

    sym_pairs, missing, extra = _match_layers(e_sym.rows, measurement.layers)
    k_rows = {}
    if e_k is not None:
        for row, lm in _match_layers(e_k.rows, measurement.layers)[0]:
            k_rows[id(lm)] = row

    # ---- convention-independent rows
    for row, lm in sym_pairs:
        out.add("-", row.path, "shape", *_shapes(row, lm), "recorded forward")
        out.add("-", row.path, "outputs[numel]", row.counts.outputs, lm.outputs, "recorded forward")
        c = row.counts
        for part, fval, mval in (("weight", c.weight, lm.weight), ("bias", c.bias, lm.bias),
                                 ("affine", c.affine, lm.affine)):
            if fval or mval:
                out.add("-", row.path, f"weights[{part}]", fval, mval, "parameter numel")
        if lm.other_params:
            out.add("-", row.path, "weights[other]", 0, lm.other_params, "parameter numel",
                    note="parameters archcount's rule does not count (not weight/bias/affine)")
        for key, source in _RAW_SOURCES.get(lm.kind, ()):
            measured = _raw_measured(lm, key, source)
            if key in ("exclude", "exact"):
                krow = k_rows.get(id(lm))
                if krow is None:
                    continue
                value = krow.counts.connections.get(key)
                if value is None:
                    value, note = numeric_value(row.path, key)
                else:
                    value, note = exact_value(krow, lm, key, value, measured)
            else:
                value, note = c.connections.get(key), ""
            if source == "fvcore" and measured is None and lm.notes:
                note = "; ".join(lm.notes)
            out.add("-", row.path, f"connections[{key}]", value, measured, source, note)
        if lm.kind == "upsample" and lm.connections:
            nz, taps = lm.connections.get("nonzero"), lm.connections.get("taps")
            for key in ("include", "exclude"):
                if nz == taps:
                    out.add("-", row.path, f"connections[{key}]", c.connections.get(key), nz, "structural")
                else:
                    out.add("-", row.path, f"connections[{key}]", c.connections.get(key), taps, "definition",
                            note=f"nonzero interpolation weights measured: {nz} (zero weights and clamped "
                                 f"border taps are counted as taps by the convention)")
    for row in missing:
        out.add("-", row.path, "shape", tuple(row.out_shape), None, "recorded forward", match=False,
                note="layer in the count table but not found in the traced model")
    unsupported = {u.path: u for u in e_sym.unsupported}
    for lm in extra:
        if lm.path in unsupported:
            harmless = lm.params == 0 and lm.kind == "other"
            out.add("-", lm.path, "rule", f"unsupported: {unsupported[lm.path].reason}", lm.type, "recorded forward",
                    match=harmless, note="" if harmless else "archcount does not count this layer")
        elif lm.params or lm.kind != "other":
            out.add("-", lm.path, "rule", None, lm.type, "recorded forward", match=False,
                    note="measured layer missing from the count table")

    # ---- per convention
    for conv in conventions:
        label = conv.label
        fallback = ""
        try:
            table = (e_k if _needs_exact(conv) else e_sym).under(conv)
        except ArchcountError as exc:
            table = formulas.numeric(cfg).under(conv)
            fallback = f"no symbolic formula ({exc.reason.split(';')[0]}); compared archcount's count at this size"
        pairs, _, _ = _match_layers(table.rows, measurement.layers)
        totals_f = {"weights": 0, "outputs": 0, "connections": 0}
        totals_m: dict[str, Any] = {"weights": 0, "outputs": 0, "connections": 0}
        sources: dict[str, set[str]] = {"connections": set()}
        for row, lm in pairs:
            w, o, cm, src = measured_values(lm, conv)
            fconn, note = row.connections, fallback
            key = conv.transposed if row.category == "transposed" else conv.padding_taps
            if not fallback and key in ("exclude", "exact") and row.category in ("conv", "transposed", "resample"):
                fconn, note = exact_value(row, lm, key, row.connections, cm)
            for q, fval, mval, source, nt in (("weights", row.weights, w, "parameter numel", ""),
                                              ("outputs", row.outputs, o, "recorded forward", ""),
                                              ("connections", fconn, cm, src, note)):
                fval = _num(fval)
                totals_f[q] = None if totals_f[q] is None or fval is None else totals_f[q] + fval
                if totals_m[q] is not None:
                    totals_m[q] = None if mval is None else totals_m[q] + mval
                if q == "connections" and source != "-":
                    sources[q].add(source)
                if fval or mval:
                    out.add(label, row.path, q, fval, mval, source, nt)
        # layers measured but not in the table still count in the measured totals
        for lm in extra:
            w, o, cm, src = measured_values(lm, conv)
            for q, mval in (("weights", w), ("outputs", o), ("connections", cm)):
                if totals_m[q] is not None:
                    totals_m[q] = None if mval is None else totals_m[q] + mval
        for q in ("weights", "outputs", "connections"):
            src = "+".join(sorted(sources.get(q, set()))) or ("parameter numel" if q == "weights" else
                                                              "recorded forward")
            out.add(label, "TOTAL", q, totals_f[q], totals_m[q], src)
        if conv.bias and conv.batchnorm != "ignore":
            out.add(label, "TOTAL", "weights[sum numel]", totals_f["weights"], measurement.total_params,
                    "sum(p.numel() for p in model.parameters())")
    return out.rows


# --------------------------------------------------------------------------- running

@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (small runs are fastest on one thread)."""
    import torch
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _progress(total: int, enabled: bool | None, desc: str) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def verify(model: Any, configs: Sequence[Mapping[str, Any] | VerifyConfig] | None = None,
           conventions: Iterable[str | Convention] | str | None = None, *, n_random: int = 2, seed: int = 0,
           fold_channels: bool = True, threads: int | None = 1, progress: bool | None = None) -> VerificationReport:
    """Verify ``model``'s formulas against the real model at several configurations.

    ``model`` is a zoo name, a factory taking hyperparameters (``kernel``, ``num_in_channels``,
    ``num_filters``, ``num_colours``, ...), a concrete ``nn.Module`` (only H, W vary), or a list
    of these.  ``configs`` are mappings such as ``{"NIC": 1, "NF": 8, "NC": 4, "kernel": 3,
    "H": 30, "W": 22}`` (missing keys: the model's defaults); without them the
    :func:`default_configs` and ``n_random`` :func:`random_configs` are used.
    ``conventions``: labels (``"all-layers[padding_taps=exclude]"``), ``"all"``, or the default
    :data:`DEFAULT_CONVENTIONS`.  A configuration the model cannot run at is listed in
    ``report.skipped`` with the reason; it never stops the run.

    >>> r = verify("pool_upsample", configs=[{"NF": 3, "NC": 2, "H": 9, "W": 14}], conventions=["all-layers"])
    >>> r.ok, r.summary()["mismatches"]
    (True, 0)
    >>> print(verify("unet", configs=[{"H": 30}], n_random=0).skipped[0].reason)  # doctest: +ELLIPSIS
    unet: argument input: input H=30 is not valid for this model's depth; H must be >= 4 and a multiple of 4 ...
    """
    if isinstance(model, (list, tuple)):
        return VerificationReport.combine([verify(m, configs, conventions, n_random=n_random, seed=seed,
                                                  fold_channels=fold_channels, threads=threads, progress=progress)
                                           for m in model])
    t_start = time.perf_counter()
    convs = resolve_conventions(conventions)
    labels = tuple(c.label for c in convs)
    subject = _subject(model)
    if configs is None:
        cfgs = default_configs(subject) + random_configs(subject, n_random, seed)
    else:
        cfgs = [_normalise_config(subject, c) for c in configs]
    rows: list[VerificationRow] = []
    checked: list[CheckedConfig] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    bar = _progress(len(cfgs), progress, f"verify {subject.name}")
    with torch_threads(threads):
        try:
            formulas = _Formulas(subject)
        except ArchcountError as exc:
            for cfg in cfgs:
                skipped.append(Skipped(subject.name, cfg.label, f"count() failed: {exc}"))
            if bar is not None:
                bar.close()
            return VerificationReport((subject.name,), labels, (), (), tuple(skipped),
                                      time.perf_counter() - t_start)
        for cfg in cfgs:
            t0 = time.perf_counter()
            reason = _check_config(subject, formulas, cfg)
            if reason:
                skipped.append(Skipped(subject.name, cfg.label, reason))
            else:
                try:
                    module = subject.build(cfg.hparams)
                    channels = _input_channels(subject, formulas, cfg, module)
                    from .measure import measure
                    m = measure(module, (1, channels, *cfg.size), model=subject.name, fold_channels=fold_channels)
                except ArchcountError as exc:
                    skipped.append(Skipped(subject.name, cfg.label, str(exc)))
                except Exception as exc:  # the factory itself failed
                    skipped.append(Skipped(subject.name, cfg.label,
                                           f"{subject.name}: the model cannot be built: {type(exc).__name__}: {exc}"))
                else:
                    new = _compare(subject, cfg, formulas, m, convs)
                    rows.extend(new)
                    checked.append(CheckedConfig(subject.name, cfg, len(new), sum(1 for r in new if r.match is False),
                                                 time.perf_counter() - t0))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if formulas.sym is not None and formulas.sym.unsupported:
        notes.append(f"{subject.name}: unsupported layers (not counted): "
                     + ", ".join(f"{u.path} ({u.type})" for u in formulas.sym.unsupported))
    if formulas.symbolic_error is not None and checked:
        notes.append(f"{subject.name}: no formula in H, W ({formulas.symbolic_error.reason.split('(')[0].strip()}); "
                     f"compared archcount's count at each configuration's size")
    return VerificationReport((subject.name,), labels, tuple(checked), tuple(rows), tuple(skipped),
                              time.perf_counter() - t_start, tuple(notes))


def _check_config(subject: _Subject, formulas: _Formulas, cfg: VerifyConfig) -> str:
    """A reason not to run this configuration, or ''."""
    lifted = formulas.lifted()
    for key, v in cfg.hparams.items():
        if key not in subject.defaults:
            return f"{subject.name}: unknown hyperparameter {key}"
        if key not in lifted and v != subject.defaults[key]:
            return (f"{subject.name}: hyperparameter {key}={v} differs from the counted value "
                    f"{subject.defaults[key]} and archcount could not lift it to a symbol")
    for axis, v in zip("HW", cfg.size):
        if not isinstance(v, int) or v < 1:
            return f"{subject.name}: input {axis}={v} must be a positive integer"
    return ""


def _input_channels(subject: _Subject, formulas: _Formulas, cfg: VerifyConfig, module: Any) -> int:
    if "num_in_channels" in cfg.hparams:
        return int(cfg.hparams["num_in_channels"])
    c = (formulas.sym if formulas.sym is not None else formulas.numeric(cfg)).input_shape[0]
    try:
        return int(c)
    except TypeError:
        raise ArchcountError("cannot tell the number of input channels", model=subject.name) from None


__all__ = ["CheckedConfig", "DEFAULT_CONVENTIONS", "Skipped", "VerificationReport", "VerificationRow",
           "VerifyConfig", "default_configs", "measured_values", "parse_convention", "random_configs",
           "resolve_conventions", "torch_threads", "verify"]
