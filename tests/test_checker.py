"""The formula checker: right answers under every preset, realistic wrong answers with the expected
explanation, shapes, paddings, doubling claims and hostile input.

Every expected formula here is derived by hand from the architectures (not from archcount's output):

PoolUpsampleNet (paddings keep the size; A = H*W):
  conv NIC->NF at A, pool, conv NF->2NF at A/4, pool, conv 2NF->NF at A/16, up, conv NF->NC at A/4, up,
  conv NC->NC at A.  weights k^2 (NIC NF + 4 NF^2 + NF NC + NC^2); biases 4NF + 2NC; BN affine 8NF + 2NC;
  outputs NF A (1 + 1/2 + 1/16) + NC A (1/4 + 1); pools add NF A/4 + 2NF A/16 outputs (4 taps each);
  upsampling adds NF A/4 + NC A outputs (nearest: 1 tap each).
ConvTransposeNet: stride-2 convs to A/4 and A/16, transposed convs back to A/4 and A, conv NC->NC at A.
UNet: ConvTransposeNet with block4 reading cat(NF, NF) = 2NF channels and the final conv NC + NIC.
Transposed convs count connections input-based (scatter): inputs x k^2 x Cout.
"""
from __future__ import annotations

import time

import pytest
import sympy as sp

import models
from analysis import ArchcountError
from analysis.checker import check, check_padding, check_scaled, check_shape, formula_str
from analysis.symbols import NC, NF, NIC, H, W, k
from analysis.testing import assert_formula, assert_padding, assert_shape
from reports.checking import explain

A = H * W
# ----- hand-derived formulas
PU_WEIGHTS = k**2 * (NIC * NF + 4 * NF**2 + NF * NC + NC**2)
PU_BIASES = 4 * NF + 2 * NC
PU_BN = 8 * NF + 2 * NC
PU_OUT = NF * A + 2 * NF * A / 4 + NF * A / 16 + NC * A / 4 + NC * A
PU_POOL_OUT = NF * A / 4 + 2 * NF * A / 16
PU_UP_OUT = NF * A / 4 + NC * A
PU_CONN = k**2 * (NIC * NF * A + 2 * NF**2 * A / 4 + 2 * NF**2 * A / 16 + NF * NC * A / 4 + NC**2 * A)
PU_POOL_CONN = 4 * PU_POOL_OUT
PU_UP_CONN = PU_UP_OUT

CT_WEIGHTS = PU_WEIGHTS
CT_OUT = NF * A / 4 + 2 * NF * A / 16 + NF * A / 4 + NC * A + NC * A
CT_CONN = k**2 * (NIC * NF * A / 4 + 2 * NF**2 * A / 16 + 2 * NF * A / 16 * NF + NF * A / 4 * NC + NC**2 * A)

UN_WEIGHTS = k**2 * (NIC * NF + 2 * NF**2 + 2 * NF**2 + 2 * NF * NC + (NC + NIC) * NC)
UN_OUT = CT_OUT
UN_CONN = k**2 * (NIC * NF * A / 4 + 2 * NF**2 * A / 16 + 2 * NF * A / 16 * NF + 2 * NF * A / 4 * NC
                  + (NC + NIC) * NC * A)

HAND = {
    "pool_upsample": {"weights": PU_WEIGHTS, "outputs": PU_OUT, "connections": PU_CONN,
                      "params": PU_WEIGHTS + PU_BIASES + PU_BN,
                      "all_out": PU_OUT + PU_POOL_OUT + PU_UP_OUT,
                      "all_conn": PU_CONN + PU_POOL_CONN + PU_UP_CONN},
    "conv_transpose": {"weights": CT_WEIGHTS, "outputs": CT_OUT, "connections": CT_CONN,
                       "params": CT_WEIGHTS + 12 * NF + 4 * NC, "all_out": CT_OUT, "all_conn": CT_CONN},
    "unet": {"weights": UN_WEIGHTS, "outputs": UN_OUT, "connections": UN_CONN,
             "params": UN_WEIGHTS + 12 * NF + 4 * NC, "all_out": UN_OUT, "all_conn": UN_CONN},
}
MODELS = tuple(HAND)


# ============================================================================ right answers, every preset

@pytest.mark.parametrize("model", MODELS)
def test_weighted_formulas_are_right_and_named(model):
    for q in ("weights", "outputs", "connections"):
        r = check(HAND[model][q], model, q)
        assert r.ok, explain(r)
        assert r.matches[0] == "weighted" and r.verdict.startswith("right (weighted")
        assert r.difference == 0 and r.explanations == () or r.condition


@pytest.mark.parametrize("model", MODELS)
def test_all_layers_and_parameters_presets_are_accepted_and_named(model):
    for q, key in (("outputs", "all_out"), ("connections", "all_conn")):
        r = check(HAND[model][key], model, q, convention="all-layers")
        assert r.ok and "all-layers" in r.matches, explain(r)
    r = check(HAND[model]["params"], model, "weights")
    assert r.ok and "parameters" in r.verdict and "weighted" not in r.matches, explain(r)
    assert check(HAND[model]["params"], model, "weights", convention="parameters").ok


def test_text_and_latex_formulas_with_aliases():
    for text in ("9*NIC*NF + 36 NF^2 + 9 NF NC + 9NC^2",
                 "9 N_IC N_F + 36 N_F^2 + 9 N_F × N_C + 9 N_C**2",
                 r"9 N_{IC} \cdot N_F + 36 N_F^{2} + 9 N_F \times N_C + 9 N_C^2",
                 r"K^{2}\left(N_{IC} N_F + 4 N_F^2 + N_F N_C + N_C^2\right)",
                 r"\frac{18}{2} NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2"):
        assert check(text, "pool_upsample", "weights").ok, text


def test_assert_formula_helper_passes_and_reports():
    r = assert_formula("unet", "weights", "k^2 (NIC NF + 4NF^2 + 2 NF NC + NC^2 + NIC NC)")
    assert r.reference == "weighted"
    with pytest.raises(AssertionError) as info:
        assert_formula("unet", "weights", "k^2 (NIC NF + 4NF^2 + NF NC + NC^2 + NIC NC)")
    msg = str(info.value)
    assert "verdict: wrong" in msg and "per-term table:" in msg and "block4.0" in msg
    assert "NF*NC*k^2  2" in msg.replace("   ", "  ").replace("  2 ", "  2") or "NF*NC*k^2" in msg
    assert_shape("16x511x383", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert_padding("p=1", 3, 2)


def test_exact_floor_form_and_simplified_form():
    # ConvTransposeNet: the stride-2 convs give ceil(H/2) and ceil(H/4) for every H >= 1
    exact = "NF ceil(H/2) ceil(W/2) + 2 NF ceil(H/4) ceil(W/4) + NF (2 ceil(H/4)) (2 ceil(W/4)) + " \
            "2 NC (4 ceil(H/4)) (4 ceil(W/4))"
    r = check(exact, "conv_transpose", "outputs")
    assert r.ok and r.condition == "", explain(r)
    r = check(CT_OUT, "conv_transpose", "outputs")
    assert r.ok and r.condition == "for H, W multiples of 4"
    assert "for other sizes the exact count" in r.explanations[0]
    # unet only accepts multiples of 4: the simplified form is exact for every accepted size
    r = check(UN_OUT, "unet", "outputs")
    assert r.ok and r.condition == "" and r.explanations == ()


def test_numeric_answers():
    measured = sum(p.numel() for p in models.build("pool_upsample").parameters())
    r = check(str(measured), "pool_upsample", "weights", input_size=32, NIC=1, NF=32, NC=24, kernel=3)
    assert r.ok and "parameters" in r.verdict
    # a plain number without the channel counts: the model's defaults are assumed and said so
    r = check(measured, "pool_upsample", "weights")
    assert r.ok and any("NIC=1, NF=32, NC=24" in a for a in r.assumptions)
    # a formula still in H, W is evaluated at the size
    r = check(PU_OUT, "pool_upsample", "outputs", input_size=32)
    assert r.ok and r.given == (PU_OUT.subs({H: 32, W: 32}))


def test_kernel_assumption_and_mismatch_hint():
    r = check("9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights")
    assert r.ok and r.hparams["kernel"] == 3
    assert r.assumptions[0].startswith("the formula has no k: compared with kernel=3")
    r = check("25 NIC NF + 100 NF^2 + 25 NF NC + 25 NC^2", "pool_upsample", "weights", kernel=5)
    assert r.ok
    # numeric outputs without a size: the size that makes it right is found
    r = check(sp.Rational(25, 16) * 32 * 32 * NF + sp.Rational(5, 4) * 32 * 32 * NC, "pool_upsample", "outputs")
    assert not r.ok and any("input size 32x32" in e for e in r.explanations)


# ================================================================================= wrong answers

def test_missing_biases_of_all_conv_layers():
    given = PU_WEIGHTS + PU_BN  # parameters without the biases
    r = check(given, "pool_upsample", "weights", convention="parameters")
    assert not r.ok and r.verdict == "wrong under parameters (right under weighted[batchnorm=affine])"
    assert any("missing the biases of all conv layers (block1.0, block2.0, block3.0, block4.0, final)" in e
               for e in r.explanations), r.explanations
    assert set(r.layers) == {"block1.0", "block2.0", "block3.0", "block4.0", "final"}
    assert r.difference == sp.expand(-PU_BIASES)


def test_missing_one_bias_names_the_layer():
    given = UN_WEIGHTS + 12 * NF + 4 * NC - NC  # one NC bias forgotten: block4.0 or final
    r = check(given, "unet", "weights", convention="parameters")
    assert not r.ok and r.closest == "parameters"
    text = " ".join(r.explanations)
    assert "missing the biases of block4.0" in text and "or: missing the biases of final" in text


def test_batchnorm_included():
    r = check(PU_WEIGHTS + PU_BN, "pool_upsample", "weights", convention="weighted")
    assert not r.ok
    assert any(e.startswith("BatchNorm affine weights included (all BatchNorm layers (block1.2, block2.2, "
                            "block3.2, block4.2)") for e in r.explanations), r.explanations
    assert "batchnorm=affine" in r.matches[0]


def test_pooling_outputs_omitted():
    given = PU_OUT + PU_UP_OUT  # all-layers, but the max-pool outputs left out
    r = check(given, "pool_upsample", "outputs", convention="all-layers")
    assert not r.ok and r.reference == "all-layers"
    assert r.explanations[0].startswith("pooling outputs omitted (all pooling layers (block1.1, block2.1)")
    assert r.difference == sp.expand(-PU_POOL_OUT)
    assert r.layers == ("block1.1", "block2.1")


def test_nf_where_nc_belongs_in_one_term():
    # the second upsampling layer's connections (NC*A) written with NF
    given = PU_CONN + PU_POOL_CONN + (NF * A / 4 + NF * A)
    r = check(given, "pool_upsample", "connections", convention="all-layers")
    assert not r.ok
    assert r.explanations[0].startswith("the connections of block4.1 (2nd of 2 Upsample) use NF where NC belongs")
    # unet: block4's weights 2 NF NC k^2 written as 2 NF^2 k^2
    given = UN_WEIGHTS - 2 * NF * NC * k**2 + 2 * NF**2 * k**2
    r = check(given, "unet", "weights")
    assert r.closest == "weighted" and r.layers == ("block4.0",)
    assert "block4.0 (2nd of 2 ConvTranspose2d) use NF where NC belongs" in r.explanations[0]


def test_wrong_coefficient():
    given = 9 * NIC * NF + 27 * NF**2 + 9 * NF * NC + 9 * NC**2  # 3 NF^2 k^2 instead of 4
    r = check(given, "pool_upsample", "weights", kernel=3)
    assert not r.ok
    assert r.explanations[0] == ("the NF^2 term is 27, expected 36 (from block2.0: 18*NF^2, block3.0: 18*NF^2)")
    row = next(t for t in r.terms if t.term == "NF^2")
    assert (row.expected, row.given, row.differs, row.layers) == (36, 27, True, ("block2.0", "block3.0"))
    assert [t.term for t in r.terms if t.differs] == ["NF^2"]


def test_linear_terms_not_scaled_by_the_area():
    # block1's connections written as its weights (no output area)
    given = PU_CONN - NIC * NF * k**2 * A + NIC * NF * k**2
    r = check(given, "pool_upsample", "connections")
    assert not r.ok and r.layers == ("block1.0",)
    assert "block1.0 (1st of 5 Conv2d) are written as their weights" in r.explanations[0]
    assert "multiply by the output area" in r.explanations[0]
    # every term without its area: the weights formula given for the connections
    r = check(PU_WEIGHTS, "pool_upsample", "connections")
    assert r.explanations[0].startswith("the formula counts the weights, not the connections")
    # one layer at the wrong resolution: final at H/2 x W/2 instead of H x W
    r = check(PU_CONN - NC**2 * k**2 * A * sp.Rational(3, 4), "pool_upsample", "connections")
    assert "final" in r.explanations[0] and "area 1/4x the layer's output area" in r.explanations[0]


def test_two_mistakes_one_named_and_the_rest_per_term():
    given = 9 * NIC * NF + 27 * NF**2 + 9 * NF * NC + 9 * NC**2 + PU_BN  # BatchNorm in, and a typo
    r = check(given, "pool_upsample", "weights", convention="weighted")
    assert r.explanations[0].startswith("BatchNorm affine weights included")
    assert r.explanations[1] == "in addition, the NF^2 term is 27, expected 36 (from block2.0: 18*NF^2, " \
                                "block3.0: 18*NF^2)"
    # nonsense is described term by term, not "explained"
    r = check("NF", "pool_upsample", "weights")
    assert all(e.startswith("the ") for e in r.explanations)


def test_tables_and_modules_as_models():
    import torch.nn as nn

    from analysis import count
    r = check("9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2", count("pool_upsample", kernel=3), "weights")
    assert r.ok
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    assert check("3*8*9 + 8*4*9", net, "weights").ok
    assert check("(3*8*9 + 8*4*9) H W", net, "connections").ok
    r = check("(3*8*9 + 8*4*9) H W + 12 H W", net, "connections")
    assert r.explanations[0].startswith("one bias connection per output counted for all conv layers")


def test_weights_that_depend_on_the_input_size():
    r = check(PU_WEIGHTS * A / 1024, "pool_upsample", "weights")
    assert not r.ok
    assert any("weights do not depend on the input size" in e for e in r.explanations)


def test_doubled_size_answers_that_scale_weights():
    r = check_scaled("4x", "unet", "weights")
    assert not r.ok and r.ratio == 1
    assert r.explanations[0] == "weights do not depend on the input size: the ratio is 1, not 4"
    r = check_scaled(4 * (9 * NIC * NF + 36 * NF**2 + 9 * NF * NC + 9 * NC**2), "pool_upsample", "weights",
                     input_size=32, claim_kind="value")
    assert not r.ok and r.explanations[0].startswith("the claim is 4 x the weights at 32x32, but weights do not "
                                                     "depend on the input size")
    r = check(4 * UN_WEIGHTS, "unet", "weights", input_size=64)
    assert "weights do not depend on the input size" in r.explanations[0]


def test_doubled_size_connections_and_the_exact_convention():
    r = check_scaled("4x", "unet", "connections", kernel=3)
    assert r.ok and r.ratio == 4 and {"weighted", "all-layers", "parameters"} <= set(r.holds_under)
    assert "weighted[padding_taps=exclude]" in dict(r.fails_under)
    r = check_scaled("4x", "unet", "connections", kernel=3, convention="weighted[padding_taps=exclude]")
    assert not r.ok and r.ratio == "not constant"
    assert "block1.0, block2.0, final are not exactly proportional to the area" in r.explanations[0]
    r = check_scaled("2x", "pool_upsample", "outputs", input_size=32)
    assert not r.ok and r.ratio == 4


# ======================================================================================= shapes

def test_shape_kernel_term_missing():
    r = check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert not r.ok and r.expected == (16, 511, 383)
    assert r.arithmetic == ("H: floor((1024 + 2 - 5)/2) + 1 = 511", "W: floor((768 + 2 - 5)/2) + 1 = 383")
    assert r.mistakes == ("kernel term missing: out = (n + 2p)/s, without the -k and the +1",)
    assert "1021/2" not in r.explanation and "(1024 + 2 - 5)/2 = 510.5 is rounded down" in r.explanation


def test_shapes_ignoring_the_floor():
    r = check_shape("16x510.5x382.5", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert all("floor division ignored" in m for m in r.mistakes) and r.mistakes
    r = check_shape("16x17x17", "maxpool k=2", "16x33x33")
    assert "rounded up instead of down (ceil)" in r.mistakes
    r = check_shape("16x512x383", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert r.mistakes == () and "no single known mistake reproduces" in r.explanation


def test_shape_other_mistakes():
    assert check_shape("8x63x63", "tconv k=4 s=2 p=1 out=8", "16x32x32").mistakes == ("+1 forgotten",)
    assert check_shape("16x383x511", "conv k=5 s=2 p=1 out=16", "3x1024x768").mistakes == ("H and W swapped",)
    r = check_shape("3x511x383", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert "out=16 sets the output channels" in r.explanation
    r = check_shape("16x1022x766", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert "stride ignored" in r.mistakes
    assert check_shape("16x16x16", "maxpool k=2", "16x33x33").ok


# ===================================================================================== paddings

def test_off_by_one_paddings():
    r = check_padding("p=2", 4, stride=2)
    assert not r.ok and r.gives[0] == "H divisible by 2: out = H/2 + 1 (wanted H/2)"
    assert r.failures[:2] == ((2, 2, 1), (4, 3, 2))
    r = check_padding("p=1", 4, stride=1)
    assert not r.ok and r.explanations[0].startswith("p=1 gives H - 1 for every H: no padding keeps the size")
    r = check_padding("p=1 op=0", 3, stride=2, transposed=True)
    assert not r.ok and "output_padding must be 1" in r.explanation
    r = check_padding("p=1", 3, stride=2)
    assert r.ok and "odd H: out = (H + 1)/2" in r.explanation
    assert check_padding(1, 4, stride=2, transposed=True).ok


# ========================================================================= errors and hostile input

HOSTILE = ["__import__('os').system('touch {marker}')", "open('{marker}', 'w')", "9**9**9**9",
           "().__class__.__bases__[0].__subclasses__()", "lambda: 0", "NF" * 3000, "(" * 400 + "NF" + ")" * 400,
           "exec('import os')", "NF; import os", "NF\x00", "{marker}"]


def test_hostile_formulas_are_rejected_safely(tmp_path):
    marker = tmp_path / "pwned"
    for text in HOSTILE:
        t0 = time.perf_counter()
        with pytest.raises(ArchcountError):
            check(text.format(marker=marker), "pool_upsample", "weights")
        assert time.perf_counter() - t0 < 2, text[:40]
    assert not marker.exists()


def test_usage_errors():
    with pytest.raises(ArchcountError, match="quantity"):
        check("NF", "unet", "flops")
    with pytest.raises(ArchcountError, match="unknown symbol"):
        check("9 NIC NX", "unet", "weights")
    with pytest.raises(ArchcountError, match="convention"):
        check("NF", "unet", "weights", convention="nope")
    with pytest.raises(ArchcountError):
        check("NF", "unet", "weights", input_size=30)  # unet needs multiples of 4
    with pytest.raises(ArchcountError, match="shape"):
        check_shape("16xfoo", "conv k=3", "3x8x8")
    with pytest.raises(ArchcountError):
        check_padding("p=-1", 3)


def test_to_dict_and_formula_str():
    r = check(PU_WEIGHTS + PU_BN, "pool_upsample", "weights", convention="weighted")
    d = r.to_dict()
    assert d["ok"] is False and d["reference"] == "weighted" and d["terms"][0]["term"] == "NIC*NF*k^2"
    assert formula_str(9 * NIC * NF - 2 * NC + sp.Rational(5, 8) * NF * A) == "5*NF*H*W/8 + 9*NIC*NF - 2*NC"
    for res in (check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768"), check_padding("p=2", 4, 2),
                check_scaled("4x", "unet", "weights")):
        assert res.to_dict()["ok"] is False and res.to_dict()["kind"] == res.kind


def test_typical_checks_are_fast():
    check(PU_CONN, "pool_upsample", "connections")  # warm
    for args, kw in (((PU_CONN + 1, "pool_upsample", "connections"), {}),
                     (("9 NIC NF + 18 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights"), {})):
        t0 = time.perf_counter()
        check(*args, **kw)
        assert time.perf_counter() - t0 < 2


def test_docstring_examples():
    import doctest

    import analysis.checker
    import analysis.testing
    for module in (analysis.checker, analysis.testing):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
