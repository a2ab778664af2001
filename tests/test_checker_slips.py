"""Named slips (issue 15, item 3): every kind of slip, single and in pairs, with the layer names.

Each wrong answer is built by hand from the per-layer counts written out in test_checker.py (from the
architectures, not from archcount), by applying the slip to the layers named; the checker must name
that slip and those layers and reproduce the answer exactly.
"""
from __future__ import annotations

import pytest
import sympy as sp
import torch

from analysis.checker import check, check_scaled, check_shape, register_slip, unregister_slip
from analysis.checker.slips import SHAPE_SLIPS, SLIPS
from analysis.symbols import NC, NF, NIC, H, W, k
from test_checker import PU_BIASES, PU_BN, PU_CONN, PU_OUT, PU_POOL_OUT, PU_WEIGHTS, UN_WEIGHTS

A = H * W
# PoolUpsampleNet per layer (A = H W): conv NIC->NF at A, conv NF->2NF at A/4, conv 2NF->NF at A/16,
# conv NF->NC at A/4, conv NC->NC at A; BatchNorm after each block: NF at A/4, 2NF at A/16, NF at A/4, NC at A
PU_BN_OWN = NF * A / 4 + 2 * NF * A / 16 + NF * A / 4 + NC * A
PU_BN_FULL = NF * A + 2 * NF * A + NF * A + NC * A


def _slip(r, name):
    return next((s for s in r.slips if s.name == name), None)


@pytest.mark.parametrize("label,given,model,q,kw,slip,layers", [
    ("a layer omitted", UN_WEIGHTS - (NC**2 + NIC * NC) * k**2, "unet", "weights", {}, "layer-missing", ("final",)),
    ("a layer double counted", UN_WEIGHTS + 2 * NF**2 * k**2 + 0, "unet", "weights", {}, "layer-twice", None),
    ("NF for NC in one layer", UN_WEIGHTS - 2 * NF * NC * k**2 + 2 * NF**2 * k**2, "unet", "weights", {},
     "nf-for-nc", ("block4.0",)),
    ("NC for NF in one layer", PU_WEIGHTS - NIC * NF * k**2 + NIC * NC * k**2, "pool_upsample", "weights", {},
     "nc-for-nf", ("block1.0",)),
    ("BatchNorm counted (weights)", PU_WEIGHTS + PU_BN, "pool_upsample", "weights", {"convention": "weighted"},
     "batchnorm", ("block1.2", "block2.2", "block3.2", "block4.2")),
    # (BatchNorm outputs equal the pooling and upsampling outputs here, so connections tell them apart)
    ("BatchNorm counted as a layer (connections)", PU_CONN + PU_BN_OWN, "pool_upsample", "connections",
     {"convention": "weighted"}, "batchnorm-layer", ("block1.2", "block2.2", "block3.2", "block4.2")),
    ("pooling counted", PU_OUT + PU_POOL_OUT, "pool_upsample", "outputs", {"convention": "weighted"}, "pooling",
     ("block1.1", "block2.1")),
    ("output area forgotten", PU_CONN - NIC * NF * k**2 * A + NIC * NF * k**2, "pool_upsample", "connections", {},
     "connections-as-weights", ("block1.0",)),
    ("output area squared", PU_CONN + NIC * NF * k**2 * A * (A - 1), "pool_upsample", "connections", {},
     "area-squared", ("block1.0",)),
    ("bias in some layers only", PU_WEIGHTS + PU_BN + NF + 2 * NF, "pool_upsample", "weights",
     {"convention": "parameters"}, "bias", None),
    ("the wrong size after upsampling", PU_CONN - NC**2 * k**2 * A * sp.Rational(3, 4), "pool_upsample",
     "connections", {}, "area-x1/4", ("final",)),
    ("x4 on weights when the input doubles", 4 * UN_WEIGHTS, "unet", "weights", {"input_size": 64}, "whole-x4",
     ()),
])
def test_single_slips_are_named_with_their_layers(label, given, model, q, kw, slip, layers):
    r = check(given, model, q, **kw)
    assert not r.ok, label
    found = _slip(r, slip)
    assert found is not None, (label, r.slip_names, r.explanations)
    assert not found.partial and r.slip_names
    if layers is not None:
        assert found.layers == layers, (label, found.layers)
    assert r.search["complete"] and r.search["used"] <= r.search["budget"]


def test_bias_in_some_layers_names_those_layers():
    # parameters without the biases of block1.0 (NF) and block2.0 (2NF): unique coefficients
    r = check(PU_WEIGHTS + PU_BN + PU_BIASES - NF - 2 * NF, "pool_upsample", "weights", convention="parameters")
    assert _slip(r, "bias").layers == ("block1.0", "block2.0")
    assert r.explanations[0].startswith("missing the biases of block1.0, block2.0")


def test_only_the_nf_for_nc_slip_names_the_layer():
    # issue 15: the second upsampling block (block4: conv NF -> NC at H/4) written with NF
    given = PU_CONN - NF * NC * k**2 * A / 4 + NF**2 * k**2 * A / 4
    r = check(given, "pool_upsample", "connections")
    assert r.slip_names == ("nf-for-nc",) and r.layers == ("block4.0",)
    assert "not expected" not in " ".join(r.explanations)
    assert r.explanations[0].startswith("the connections of block4.0 (4th of 5 Conv2d) use NF where NC belongs")


@pytest.mark.parametrize("bn_block4", ["NC", "NF"])
def test_the_messy_connection_answer_is_reproduced_by_a_pair(bn_block4):
    # issue 15: BatchNorm counted at the full input size H x W, and NF where NC belongs in block4
    # (in the conv, and with bn_block4 == "NF" also in block4's BatchNorm)
    bn = PU_BN_FULL if bn_block4 == "NC" else PU_BN_FULL - NC * A + NF * A
    given = PU_CONN + bn - NF * NC * k**2 * A / 4 + NF**2 * k**2 * A / 4
    r = check(given, "pool_upsample", "connections")
    assert set(r.slip_names) == {"nf-for-nc", "batchnorm-full-size"}, r.explanations
    assert r.reference == "weighted"
    assert _slip(r, "nf-for-nc").layers == ("block4.0",)
    assert _slip(r, "batchnorm-full-size").layers == ("block1.2", "block2.2", "block3.2", "block4.2")
    assert ("with NF where NC belongs" in r.explanations[0]) == (bn_block4 == "NF")
    assert sp.expand(r.difference - (given - PU_CONN)) == 0


def test_a_typo_is_not_dressed_up_as_a_pair():
    r = check(9 * NIC * NF + 27 * NF**2 + 9 * NF * NC + 9 * NC**2, "pool_upsample", "weights", kernel=3)
    assert r.slip_names == () and r.explanations[0].startswith("the NF^2 term is 27, expected 36")


def test_right_under_another_convention_names_the_switches():
    r = check(PU_WEIGHTS + PU_BIASES + PU_BN, "pool_upsample", "weights", convention="weighted")
    assert set(r.slip_names) == {"bias", "batchnorm"}


def test_doubled_input_weights():
    given = 4 * (9 * NIC * NF + 36 * NF**2 + 9 * NF * NC + 9 * NC**2)
    r = check_scaled(given, "pool_upsample", "weights", input_size=32, claim_kind="value")
    assert not r.ok and r.slips[0] == "scaled-x4"
    r = check_scaled("4x", "unet", "weights")
    assert not r.ok and r.slips == ("weights-scaled-x4",)


# ======================================================================================== shape slips

def _torch_conv(n_h, n_w, **kw):
    layer = torch.nn.Conv2d(3, 16, device="meta", **kw)
    return tuple(layer(torch.empty(1, 3, n_h, n_w, device="meta")).shape[1:])


def test_per_axis_shape_diagnosis():
    # issue 15: 961x641 against 959x539; H fits "kernel term missing", W looks like a typo
    expected = _torch_conv(1920, 1080, kernel_size=5, stride=2, padding=1)
    assert expected == (16, 959, 539)
    r = check_shape("16x961x641", "conv k=5 s=2 p=1 out=16", "3x1920x1080")
    assert not r.ok and r.expected == expected and r.mistakes == ()
    h, w = r.axes
    assert h.slips[0] == "kernel-term-missing" and (1920 + 2) // 2 == 961
    assert w.slips == () and w.note.startswith(f"looks like a typo of {(1080 + 2) // 2}")
    assert r.slip_names == ("H:kernel-term-missing",)


@pytest.mark.parametrize("claim,slips", [("16x513x385", ("kernel-term-missing",)),
                                         ("16x511.5x383.5", ("no-floor",)),
                                         ("16x1022x766", ("stride-ignored",))])
def test_shape_slips(claim, slips):
    r = check_shape(claim, "conv k=5 s=2 p=1 out=16", "3x1024x768")
    assert r.expected == _torch_conv(1024, 768, kernel_size=5, stride=2, padding=1)
    assert r.slip_names == slips


# ======================================================================================== the registry

def test_registry_holds_the_issue_slips():
    for name in ("layer-missing", "layer-twice", "nf-for-nc", "nc-for-nf", "nf-nc-swapped", "batchnorm",
                 "batchnorm-layer", "batchnorm-full-size", "pooling", "upsampling", "area-missing", "area-squared",
                 "bias", "area-x4", "area-x1/4", "whole-x4"):
        assert name in SLIPS, name
    for name in ("kernel-term-missing", "plus-one-forgotten", "padding-forgotten"):
        assert name in SHAPE_SLIPS


def test_a_teacher_slip():
    @register_slip("final-twice-kernel", quantities=("weights",), describe="final counted with 2k^2 ({layers})")
    def final_twice_kernel(ctx):
        for row in ctx.counted():
            if row.path == "final":
                yield ctx.change(row, 2 * ctx.value(row))
    try:
        r = check(UN_WEIGHTS + (NC**2 + NIC * NC) * k**2, "unet", "weights")
        assert "final-twice-kernel" in {s.name for s in r.slips} or "layer-twice" in r.slip_names
    finally:
        unregister_slip("final-twice-kernel")
    assert "final-twice-kernel" not in SLIPS


def test_the_budget_is_stated_and_respected():
    from analysis.checker import common as C
    from analysis.checker.slips import search
    from analysis.conventions import get_convention
    ctx = C.context("pool_upsample", {}, None)
    conv = get_convention("weighted")
    exact, expected = ctx.select(conv, "connections")
    bn = PU_BN_FULL
    diff = sp.expand(bn - NF * NC * k**2 * A / 4 + NF**2 * k**2 * A / 4)
    stats: dict = {}
    assert search(diff, ctx, ctx.reference(conv), "connections", conv, expected, budget=0, stats=stats) is None
    assert not stats["complete"]          # the pair needed was not tried
    found = search(diff, ctx, ctx.reference(conv), "connections", conv, expected, stats=stats)
    assert found is not None and stats["complete"] and 0 < stats["used"] <= 120_000
