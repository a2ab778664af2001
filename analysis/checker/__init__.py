"""Check hand-written answers: count formulas, output shapes, paddings, scaling claims, whole classes.

A grader needs more than "wrong": :func:`check` says under which counting conventions a formula
is exactly right, and otherwise which convention is closest, which named slip (or pair of slips)
reproduces the answer, with the layer names, and the difference per term.

>>> from analysis.checker import check
>>> from analysis.symbols import NIC, NF, NC, k
>>> r = check(k**2 * (NIC*NF + 4*NF**2 + NF*NC + NC**2), "pool_upsample", "weights")
>>> r.ok, r.matches[:2]
(True, ('weighted', 'all-layers'))

Answers are read as people write them: relations and alternatives for paddings, chained working
for counts, a symbolic kernel:

>>> check_padding("2p - op = 2", 4, stride=2, transposed=True).ok
True
>>> check("32*32*NC = 1024 NC", "conv_transpose", "outputs", input_size=32).steps[0].holds
True
>>> check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768").mistakes[0]
'kernel term missing: out = (n + 2p)/s, without the -k and the +1'
>>> check_padding("p=2", 4, stride=2).ok
False
>>> check_scaled("4x", "unet", "weights", kernel=3).explanations[0]
'weights do not depend on the input size: the ratio is 1, not 4'

Modules: :mod:`.common` (arguments, formulas, cached tables), :mod:`.slips` (the registry of named
slips and the search), :mod:`.formula` (``check``), :mod:`.shape`, :mod:`.padding`, :mod:`.scaling`,
:mod:`.batch` (entries and ``check_many`` with the conventions per student), :mod:`.loaders` (safe
YAML/CSV/JSON files), :mod:`.grading` (``grade`` against a key).  Rendering lives in
:mod:`reports.checking`.  String formulas are read by :mod:`analysis.parsing` (safe: never ``eval``).
"""
from __future__ import annotations

from .common import QUANTITIES, cache_clear, conv_from_label, formula_str, mono_str, summarize_matches
from .formula import check
from .padding import check_padding
from .results import (Alternative, AxisDiagnosis, CheckResult, PaddingCheck, ScalingCheck, ShapeCheck, SlipFound,
                      Step, TermRow)
from .scaling import check_scaled
from .shape import check_shape
from .slips import SHAPE_SLIPS, SLIP_BUDGET, SLIPS, register_shape_slip, register_slip, unregister_slip

__all__ = ["Alternative", "AxisDiagnosis", "CheckResult", "PaddingCheck", "QUANTITIES", "SHAPE_SLIPS",
           "SLIPS", "SLIP_BUDGET", "ScalingCheck", "ShapeCheck", "SlipFound", "Step", "TermRow", "cache_clear",
           "check", "check_padding", "check_scaled", "check_shape", "conv_from_label", "formula_str", "mono_str",
           "register_shape_slip", "register_slip", "summarize_matches", "unregister_slip"]
