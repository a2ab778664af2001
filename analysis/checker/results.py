"""The checker's results: frozen dataclasses that go to dict/JSON.  Rendering lives in
:mod:`reports.checking` (the notebook reprs below only delegate to it).

>>> TermRow("NF^2", 36, 27, ("block2.0",)).to_dict()["differs"]
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import sympy as sp

from .common import jsonable


class Displayed:
    """What every result shares: the explanations in one line, the slip names, and the Jupyter
    display (Markdown, LaTeX and HTML come from :mod:`reports.checking`)."""

    @property
    def explanation(self) -> str:
        """The explanations in one line."""
        return "; ".join(getattr(self, "explanations", ()))

    @property
    def slip_names(self) -> tuple[str, ...]:
        """The names of the slips that reproduce the answer."""
        return tuple(getattr(self, "slips", ()))

    def _repr_markdown_(self) -> str:
        from reports.checking import markdown
        return markdown(self)

    def _repr_latex_(self) -> str:
        from reports.checking import latex
        return latex(self)

    def _repr_html_(self) -> str:
        from reports.checking import html
        return html(self)


def _dicts(items: Any) -> list[Any]:
    return [i.to_dict() for i in items]


@dataclass(frozen=True)
class TermRow:
    """One monomial: its expected and given coefficients and the layers that contribute it."""

    term: str
    expected: Any
    given: Any
    layers: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        return sp.sympify(self.expected) != sp.sympify(self.given)

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "expected": jsonable(self.expected), "given": jsonable(self.given),
                "differs": self.differs, "layers": list(self.layers)}


@dataclass(frozen=True)
class Step:
    """One link ``left = right`` of chained working, judged."""

    index: int                 #: 1-based
    left: str
    right: str
    holds: bool                #: left and right are equal
    difference: Any = 0        #: right - left
    right_is_answer: bool = False   #: the right side is the expected count

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "left": self.left, "right": self.right, "holds": self.holds,
                "difference": jsonable(self.difference), "right_is_answer": self.right_is_answer}


@dataclass(frozen=True)
class Alternative:
    """One alternative of ``a or b`` (or of ``p ∈ {1, 2}``), judged on its own."""

    text: str
    ok: bool
    verdict: str
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "ok": self.ok, "verdict": self.verdict, "explanation": self.explanation}


@dataclass(frozen=True)
class SlipFound:
    """A named slip (from :data:`analysis.checker.slips.SLIPS`) and the layers it touches."""

    name: str
    layers: tuple[str, ...]
    text: str
    partial: bool = False     #: explains only part of the difference (the rest is per term)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layers": list(self.layers), "text": self.text, "partial": self.partial}


@dataclass(frozen=True)
class CheckResult(Displayed):
    """The verdict on one formula for one quantity of one model.

    ``ok`` is True when the formula is exactly right under the requested convention (or, with no
    convention requested, under one of the presets).  ``matches`` lists every convention (presets
    first) under which it is right; ``reference`` is the convention the difference, the per-term
    table and the explanations refer to (the closest one when none matches).  ``slips`` are the
    named slips that reproduce the answer exactly; ``search`` says how much of the slip-search
    budget was used.  Chained working (``a = b = c``) has ``steps``; alternatives (``a or b``)
    have ``alternatives``.
    """

    formula: str
    model: str
    quantity: str
    requested: str | None             #: the convention asked for (None: any preset)
    ok: bool
    verdict: str
    given: Any                        #: the formula as compared (after substituting fixed values)
    expected: Any                     #: under ``reference``
    reference: str                    #: convention label of ``expected``
    matches: tuple[str, ...] = ()
    condition: str = ""               #: e.g. "for H, W multiples of 4"
    closest: str | None = None        #: when nothing matches
    difference: Any = 0               #: given - expected (under ``reference``)
    terms: tuple[TermRow, ...] = ()
    explanations: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()      #: layers whose terms account for the difference
    assumptions: tuple[str, ...] = ()
    hparams: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    form: str = "expression"          #: expression, chain or alternatives
    steps: tuple[Step, ...] = ()
    first_wrong_step: int | None = None
    alternatives: tuple[Alternative, ...] = ()
    slips: tuple[SlipFound, ...] = ()
    search: Mapping[str, Any] = field(default_factory=dict)

    kind = "formula"

    @property
    def slip_names(self) -> tuple[str, ...]:
        """The named slips that reproduce the answer exactly (empty when only part is explained)."""
        if any(s.partial for s in self.slips):
            return ()
        return tuple(dict.fromkeys(s.name for s in self.slips))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "formula": self.formula, "model": self.model, "quantity": self.quantity,
                "requested": self.requested, "ok": self.ok, "verdict": self.verdict,
                "given": jsonable(self.given), "expected": jsonable(self.expected), "reference": self.reference,
                "matches": list(self.matches), "condition": self.condition, "closest": self.closest,
                "difference": jsonable(self.difference), "terms": _dicts(self.terms),
                "explanations": list(self.explanations), "layers": list(self.layers),
                "assumptions": list(self.assumptions), "hparams": jsonable(dict(self.hparams)),
                "input_size": list(self.input_size) if self.input_size else None, "form": self.form,
                "steps": _dicts(self.steps), "first_wrong_step": self.first_wrong_step,
                "alternatives": _dicts(self.alternatives), "slips": _dicts(self.slips),
                "search": dict(self.search)}


@dataclass(frozen=True)
class AxisDiagnosis:
    """One spatial axis of a shape claim: claimed and expected size, and what reproduces the claim."""

    axis: str
    claimed: Any
    expected: int
    mistakes: tuple[str, ...] = ()    #: the slips reproducing this axis alone, in words
    slips: tuple[str, ...] = ()       #: their names (see :data:`analysis.checker.slips.SHAPE_SLIPS`)
    note: str = ""                    #: e.g. "looks like a typo of 541"

    @property
    def ok(self) -> bool:
        return self.claimed == self.expected

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "claimed": jsonable(self.claimed), "expected": self.expected, "ok": self.ok,
                "mistakes": list(self.mistakes), "slips": list(self.slips), "note": self.note}


@dataclass(frozen=True)
class ShapeCheck(Displayed):
    """A claimed output shape of one layer against the exact one, with the likely mistake."""

    claimed: tuple[Any, ...]
    layer: str
    input_shape: tuple[Any, ...]
    expected: tuple[Any, ...]
    ok: bool
    verdict: str
    arithmetic: tuple[str, ...]       #: per spatial axis, e.g. "floor((1024 + 2 - 5)/2) + 1 = 511"
    mistakes: tuple[str, ...] = ()    #: the slips reproducing the whole claim exactly, in words
    explanations: tuple[str, ...] = ()
    axes: tuple[AxisDiagnosis, ...] = ()   #: per spatial axis (when the claim is wrong)
    slips: tuple[str, ...] = ()       #: names of the slips in ``mistakes``

    kind = "shape"

    @property
    def slip_names(self) -> tuple[str, ...]:
        """The slips of the first combination that reproduces the claim (``+`` joins a combination);
        per axis (``H:...``) when no combination fits both axes."""
        if self.slips:
            return tuple(self.slips[0].split(" + "))
        names = []
        for a in self.axes:
            names += [f"{a.axis}:{n}" for n in a.slips[:1]]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claimed": [jsonable(v) for v in self.claimed], "layer": self.layer,
                "input": [jsonable(v) for v in self.input_shape], "expected": [jsonable(v) for v in self.expected],
                "ok": self.ok, "verdict": self.verdict, "arithmetic": list(self.arithmetic),
                "mistakes": list(self.mistakes), "explanations": list(self.explanations),
                "axes": _dicts(self.axes), "slips": list(self.slips)}


@dataclass(frozen=True)
class PaddingCheck(Displayed):
    """A claimed padding (and output padding), or a relation between them, against the solver.

    ``kernel`` is an int or the symbol k (then ``failing_kernels`` lists kernels where the claim fails).
    """

    claimed: tuple[Any, Any]          #: (padding, output_padding); formulas for a relation
    kernel: Any
    stride: int
    dilation: int
    transposed: bool
    goal: str                         #: e.g. "out = in/2"
    ok: bool
    verdict: str
    solutions: tuple[tuple[Any, Any], ...]
    gives: tuple[str, ...] = ()       #: what the claimed padding gives, per residue class of the input
    failures: tuple[tuple[int, int, Any], ...] = ()  #: (input size, output, wanted) examples
    explanations: tuple[str, ...] = ()
    form: str = "value"               #: value, relation, system or alternatives
    answer: str = ""                  #: the claim as written
    alternatives: tuple[Alternative, ...] = ()
    admitted: tuple[tuple[int, int], ...] = ()   #: the (p, op) a relation admits (numeric kernel)
    failing_kernels: tuple[int, ...] = ()
    slips: tuple[str, ...] = ()

    kind = "padding"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claimed": {"padding": jsonable(self.claimed[0]),
                                               "output_padding": jsonable(self.claimed[1])},
                "kernel": jsonable(self.kernel), "stride": self.stride, "dilation": self.dilation,
                "transposed": self.transposed, "goal": self.goal, "ok": self.ok, "verdict": self.verdict,
                "solutions": [[jsonable(p), jsonable(o)] for p, o in self.solutions], "gives": list(self.gives),
                "failures": [[n, o, jsonable(w)] for n, o, w in self.failures],
                "explanations": list(self.explanations), "form": self.form, "answer": self.answer,
                "alternatives": _dicts(self.alternatives), "admitted": [list(a) for a in self.admitted],
                "failing_kernels": list(self.failing_kernels), "slips": list(self.slips)}


@dataclass(frozen=True)
class ScalingCheck(Displayed):
    """A claim about the input size scaled by ``factor`` (e.g. 'connections at 64 = 4x those at 32')."""

    claim: str
    model: str
    quantity: str
    factor: int
    requested: str | None
    ok: bool
    verdict: str
    ratio: Any                               #: the actual ratio under ``reference``
    reference: str
    holds_under: tuple[str, ...] = ()
    fails_under: tuple[tuple[str, Any], ...] = ()   #: (convention, actual ratio)
    explanations: tuple[str, ...] = ()
    formula_check: CheckResult | None = None
    assumptions: tuple[str, ...] = ()
    slips: tuple[str, ...] = ()

    kind = "scaled"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claim": self.claim, "model": self.model, "quantity": self.quantity,
                "factor": self.factor, "requested": self.requested, "ok": self.ok, "verdict": self.verdict,
                "ratio": jsonable(self.ratio), "reference": self.reference, "holds_under": list(self.holds_under),
                "fails_under": [[c, jsonable(r)] for c, r in self.fails_under],
                "explanations": list(self.explanations),
                "formula_check": self.formula_check.to_dict() if self.formula_check else None,
                "assumptions": list(self.assumptions), "slips": list(self.slips)}


__all__ = ["Alternative", "AxisDiagnosis", "CheckResult", "Displayed", "PaddingCheck", "ScalingCheck",
           "ShapeCheck", "SlipFound", "Step", "TermRow"]
