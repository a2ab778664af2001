"""The formula presentation layer: exact layouts of every zoo formula, read back by the safe parser."""
from __future__ import annotations

import random

import pytest
import sympy as sp

import models
from analysis import count
from analysis.parsing import parse_formula
from analysis.symbols import H, NC, NF, NIC, W, k
from reports import formulas as F
from reports.render import compile_typst, typst_display

COLOUR = [n for n in models.available() if models.spec(n).task == "colourization"]


def _points(expr: sp.Basic, case: str | None, n: int = 12, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pts = []
    for _ in range(n):
        kv = rng.choice([1, 3, 5, 7]) if case == "k odd" else rng.choice([2, 4, 6]) if case == "k even" \
            else rng.randint(1, 7)
        pts.append({NIC: rng.randint(1, 4), NF: rng.randint(1, 40), NC: rng.randint(1, 30), k: kv,
                    H: rng.randint(1, 70), W: rng.randint(1, 70), sp.Symbol("N", positive=True, integer=True):
                    rng.randint(1, 9)})
    return pts


def _same_values(a: sp.Basic, b: sp.Basic, case: str | None) -> None:
    for pt in _points(a, case):
        subs = {s: pt[s] for s in pt if s in a.free_symbols | b.free_symbols}
        for s in a.free_symbols | b.free_symbols:
            if s.name in ("N",):
                subs[s] = 5
        assert sp.Integer(a.subs(subs)) == sp.Integer(b.subs(subs)) if a.subs(subs).is_Integer else \
            sp.nsimplify(a.subs(subs) - b.subs(subs)) == 0, (a, b, subs)


def _zoo_expressions():
    for name in COLOUR:
        exact = count(name)
        for table in (exact, exact.simplified()):
            for preset in ("weighted", "all-layers", "parameters"):
                t = table.under(preset)
                for q in ("weights", "outputs", "connections"):
                    flow = [getattr(r, q) for r in t.counted_rows()]
                    yield f"{name}-{preset}-{q}", sp.sympify(t.total(q)), flow
                    for r in t.counted_rows()[:3]:
                        yield f"{name}-{preset}-{q}-{r.path}", sp.sympify(getattr(r, q)), None


CASES = list(_zoo_expressions())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layout_is_exact_and_reads_back(case):
    """The laid-out formula equals the counted one at random integer points (floors included), and
    the printed text, read by the safe parser written for users' answers, gives the same values."""
    _, expr, flow = case
    for label, part in F.parity_cases(expr):
        f = F.humanize(part, flow=flow)
        text = f.text()
        back = parse_formula(text)
        for pt in _points(expr, label):
            subs = {s: v for s, v in pt.items() if s in expr.free_symbols}
            want = expr.subs(subs)
            assert f.sympy().subs(subs) == want, (text, subs)
            assert back.subs({s: pt[s] for s in pt if s in back.free_symbols}) == want, (text, subs)


def test_textbook_forms_of_the_exercise():
    t = count("pool_upsample").simplified()
    flow = [r.weights for r in t.counted_rows()]
    assert F.text(t.total("weights"), flow=flow) == "k²(NIC·NF + 4NF² + NF·NC + NC²)"
    assert F.text(t.total("connections")) == "HW·k²(NIC·NF + 5NF²/8 + NF·NC/4 + NC²)"
    p = t.under("parameters")
    assert F.text(p.total("weights"), flow=[r.weights for r in p.counted_rows()]) == \
        "k²(NIC·NF + 4NF² + NF·NC + NC²) + 12NF + 4NC"
    u = count("unet").simplified()
    assert F.text(u.total("weights"), flow=[r.weights for r in u.counted_rows()]) == \
        "k²(NIC·NF + 4NF² + 2NF·NC + NIC·NC + NC²)"


def test_exact_floors_are_simplified_and_correct():
    # ConvTransposeNet at k=3: ⌊(H-1)/2⌋ + 1 = ⌈H/2⌉ and the second halving ⌈H/4⌉
    t = count("conv_transpose", kernel=3)
    text = F.text(t.total("outputs"), flow=[r.outputs for r in t.counted_rows()])
    assert text == "NF·⌈H/2⌉⌈W/2⌉ + ⌈H/4⌉⌈W/4⌉(6NF + 32NC)"
    for h in range(1, 40):
        x = models.build("conv_transpose", num_filters=2)
        import torch
        shapes = {}
        for b in ("block1", "block2"):
            getattr(x, b).register_forward_hook(lambda m, i, o, b=b: shapes.__setitem__(b, o.shape[-1]))
        x.eval()(torch.zeros(1, 1, h, h))
        assert shapes["block1"] == -(-h // 2) and shapes["block2"] == -(-h // 4)


def test_parity_cases_split_even_kernels():
    t = count("conv_transpose")
    cases = F.case_text(t.total("outputs"))
    assert [c[0] for c in cases] == ["k odd", "k even"]
    assert "⌊H/2⌋" in cases[1][1] and "⌈H/2⌉" in cases[0][1]


@pytest.mark.parametrize("expr", [NF * NIC * k**2 + 4 * NF**2 * k**2, H * W * NC * sp.Rational(5, 4),
                                  sp.floor(sp.floor(H / 2) / 2) * NF - NC, sp.Integer(7), sp.Rational(3, 4)])
def test_every_target_renders(expr, tmp_path):
    f = F.humanize(expr)
    assert f.text() and f.latex()
    compile_typst(f"$ {F.display_typst(expr)} $ and ${F.typst(expr)}$", tmp_path / "x.pdf", root=tmp_path)


def test_negative_terms_and_numbers():
    assert F.text(NF - NC) == "NF − NC"
    assert F.text(sp.Integer(12)) == "12"
    assert F.text(-2 * NF) == "−2NF"
