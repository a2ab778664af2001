"""Receptive fields: formulas in k, an independent 1-d reference, and structural measurement on the real models."""
from __future__ import annotations

import functools
import json

import pytest
import sympy as sp
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models
from analysis import ArchcountError, H, W, k, receptive_field
from analysis.receptive import connectivity_copy, measure_receptive_field, verify_receptive_field
from reports.cli import main

ZOO = models.available()
MAIN = ("pool_upsample", "conv_transpose", "unet")


# --------------------------------------------------------------------------- an independent 1-d reference
# Each layer is a function: output position -> (first, last) input position read, or None; written from
# the PyTorch definitions (conv: taps o*s - p + t; transposed: u = o + p = i*s + j; nearest: o // f).

def _conv(f, K, s=1, p=0):
    @functools.lru_cache(maxsize=None)
    def g(o):
        got = [f(o * s - p + t) for t in range(K)]
        got = [w for w in got if w is not None]
        return (min(w[0] for w in got), max(w[1] for w in got)) if got else None
    return g


def _tconv(f, K, s, p):
    @functools.lru_cache(maxsize=None)
    def g(o):
        got = [f((o + p - j) // s) for j in range(K) if (o + p - j) % s == 0]
        got = [w for w in got if w is not None]
        return (min(w[0] for w in got), max(w[1] for w in got)) if got else None
    return g


def _up(f, factor):
    return lambda o: f(o // factor)


def _cat(*fs):
    return lambda o: (min(f(o)[0] for f in fs), max(f(o)[1] for f in fs))


def _ident(o):
    return (o, o)


def _reference(model: str, kv: int):
    p = (kv - 1) // 2
    if model == "pool_upsample":
        f = _conv(_ident, kv, 1, p)
        f = _conv(_conv(_conv(f, 2, 2), kv, 1, p), 2, 2)
        f = _up(_conv(f, kv, 1, p), 2)
        f = _up(_conv(f, kv, 1, p), 2)
        return _conv(f, kv, 1, p)
    b1 = _conv(_ident, kv, 2, p)
    b3 = _tconv(_conv(b1, kv, 2, p), kv, 2, p)
    if model == "conv_transpose":
        return _conv(_tconv(b3, kv, 2, p), kv, 1, p)
    b4 = _tconv(_cat(b3, b1), kv, 2, p)
    return _conv(_cat(b4, _ident), kv, 1, p)


def _ref_sizes(f, positions=range(100, 132)):
    sizes = [f(o)[1] - f(o)[0] + 1 for o in positions]
    return max(sizes), min(sizes)


# --------------------------------------------------------------------------- formulas

def test_main_formulas_symbolic_in_k():
    pu, ct, un = (receptive_field(m) for m in MAIN)
    mod4 = sp.Mod(k, 4)
    assert pu.kernel_parity == "odd" and "k odd" in pu.assumptions[0]
    assert sp.simplify(pu.size[0] - (10 * k - 7 + mod4)) == 0 and pu.size[0] == pu.size[1]
    assert sp.simplify(pu.min_size[0] - (10 * k - 5 - mod4)) == 0
    assert pu.varies
    # conv_transpose and unet: 7k - 6 at best, 7k - 10 at the worst output position (k >= 3)
    for rf in (ct, un):
        assert sp.simplify(rf.size[0] - (7 * k - 6)) == 0
        assert all(sp.sympify(rf.min_size[0]).subs(k, v) == 7 * v - 10 for v in (3, 5, 7, 9, 11))
        assert rf.varies and rf.output == "final"
    # k = 1 leaves every other transposed-conv output empty; unet's input skip still feeds them
    assert ct.min_size[0].subs(k, 1) == 0 and un.min_size[0].subs(k, 1) == 1


def test_plain_prefix_follows_the_standard_recurrence():
    # r_out = r_in + (K - 1) * j_in, j_out = j_in * s, start_out = start_in + ((K-1)/2 - p) * j_in
    pu = receptive_field("pool_upsample")
    r, j, start = sp.Integer(1), sp.Integer(1), sp.Integer(0)
    p = (k - 1) / 2
    for path, K, s, pad in (("block1.0", k, 1, p), ("block1.1", 2, 2, 0), ("block2.0", k, 1, p),
                            ("block2.1", 2, 2, 0), ("block3.0", k, 1, p)):
        r, start, j = r + (K - 1) * j, start + (sp.Rational(1, 2) * (K - 1) - pad) * j, j * s
        row = pu.layer(path)
        assert sp.simplify(row.size[0] - r) == 0 and row.jump[0] == j
        assert sp.simplify(row.start[0] - start) == 0 and not row.varies


@pytest.mark.parametrize("model", MAIN)
def test_formula_equals_independent_reference(model):
    rf = receptive_field(model)
    for kv in range(3, 18, 2):
        big, small = _ref_sizes(_reference(model, kv))
        at = rf.evaluate(k=kv)
        assert at.size == (big, big) and at.min_size == (small, small), kv


def test_evaluate_at_a_kernel_says_whether_that_kernel_varies():
    pu = receptive_field("pool_upsample")
    assert pu.evaluate(k=5).varies is False and pu.evaluate(k=5).size == (44, 44)  # k = 1 mod 4: uniform
    assert pu.evaluate(k=7).varies is True and pu.evaluate(k=7).min_size == (62, 62)


def test_numeric_kernel_matches_evaluated_formula():
    assert receptive_field("unet", kernel=5).size == receptive_field("unet").evaluate(k=5).size == (29, 29)
    row = receptive_field("conv_transpose", kernel=3).layer("block3.0")
    assert (row.size, row.min_size, row.jump, row.period, row.varies) == ((11, 11), (7, 7), (2, 2), (2, 2), True)


def test_transposed_conv_alone_alternates_two_and_one_taps():
    rf = receptive_field(nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1))
    row = rf.layer(rf.output)
    assert row.size == (2, 2) and row.min_size == (1, 1) and row.varies
    assert row.jump == (sp.Rational(1, 2),) * 2 and row.period == (2, 2)


def test_symbolic_transposed_conv_for_both_parities():
    def one_tconv(kernel: int = 3, num_in_channels: int = 1, num_filters: int = 1, num_colours: int = 1):
        return nn.ConvTranspose2d(num_in_channels, num_colours, kernel, stride=2, padding=kernel // 2)

    rf = receptive_field(one_tconv)
    assert rf.kernel_parity is None
    for kv in range(2, 11):
        at = rf.evaluate(k=kv)
        assert at.size[0] == (kv + 1) // 2 and at.min_size[0] == kv // 2, kv
        assert at.varies == (kv % 2 == 1), kv  # even kernels feed every output from k/2 inputs
    assert rf.varies  # for some k


def test_nearest_upsample_then_even_conv_varies():
    net = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 2))
    row = receptive_field(net).layer("1")
    assert row.size == (2, 2) and row.min_size == (1, 1) and row.jump == (sp.Rational(1, 2),) * 2


def test_cat_takes_the_union_of_branches():
    un = receptive_field("unet", kernel=3)
    cat = un.layer("cat")
    assert cat.inputs == ("block3.2", "block1.2")
    assert cat.size == un.layer("block3.2").size and un.layer("block1.2").size == (3, 3)
    assert un.layer("cat_1").size == un.layer("block4.2").size


class _Drift(nn.Module):
    """Valid only at 4x4: a stride-2 branch (jump 2) concatenated with a valid 3x3 conv (jump 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1, stride=2)
        self.b = nn.Conv2d(1, 1, 3)
        self.c = nn.Conv2d(2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.cat([self.a(x), self.b(x)], dim=1))


def test_branches_with_different_jumps_are_reported():
    net = _Drift()
    assert net(torch.zeros(1, 1, 4, 4)).shape == (1, 1, 2, 2)
    rf = receptive_field(net)
    assert rf.layer("cat").drift and rf.layer("cat").size is None
    assert "different jumps" in rf.layer("cat").notes[0]
    assert rf.layer("c").drift and rf.size is None


def test_global_layers_read_the_whole_input():
    g = receptive_field("mnist_global_pool")
    assert g.last_spatial == "features.7" and sp.simplify(g.spatial.size[0] - 4 * k) == 0
    assert g.size == (H, W) and g.layer("pool").is_global and g.layer("classifier").is_global
    fixed = receptive_field("mnist_fixed", kernel=3)  # fixed 28x28 input, numeric kernel: exact extent read
    assert fixed.input_size == (28, 28) and fixed.size == (28, 28)
    assert fixed.spatial.path == "features.8" and fixed.spatial.size == (22, 22)
    five = receptive_field("mnist_fixed", kernel=5)
    assert five.spatial.size == (36, 36) and five.spatial.visible == (28, 28)


def test_floor_mode_pooling_can_leave_input_rows_unread():
    # mnist_fixed at k = 1: 28 -> 14 -> 7 -> 3 drops the 7th unit of the last pool, i.e. input rows 24..27
    sym = receptive_field("mnist_fixed")
    assert sym.size == (sp.Piecewise((24, sp.Eq(k, 1)), (28, True)),) * 2
    one = receptive_field("mnist_fixed", kernel=1)
    assert one.size == (24, 24) and one.spatial.size == (8, 8)
    check = verify_receptive_field("mnist_fixed", kernels=(1,))
    assert check.ok and ("classifier", (24, 24)) in {(r.path, r.measured) for r in check.rows
                                                     if r.quantity == "coverage"}


def test_to_dict_is_json():
    data = json.loads(json.dumps(receptive_field("pool_upsample").to_dict()))
    assert data["size"] == ["10*k + Mod(k, 4) - 7"] * 2 and data["varies"] is True
    assert data["layers"][0]["path"] == "block1.0" and data["kernel_parity"] == "odd"


def test_errors_name_the_layer():
    class Side(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x], dim=2)

    side = receptive_field(Side())
    assert side.layer("cat").unknown and "concatenation along positions" in side.layer("cat").notes[0]
    with pytest.raises(ArchcountError, match="argument input_size"):
        receptive_field("unet", input_size=30)
    with pytest.raises(ArchcountError, match="only with odd kernels"):
        receptive_field("pool_upsample").evaluate(k=4)


def test_bilinear_upsampling_is_followed_exactly():
    # align_corners=False, x2: output 2q reads coarse q-1 and q, output 2q+1 reads q and q+1
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(1, 1, 3))
    rf = receptive_field(net)
    assert rf.layer("1").size == (4, 4) and rf.layer("1").jump == (sp.Rational(1, 2),) * 2
    check = verify_receptive_field(net)
    assert check.ok, check.failures()


# --------------------------------------------------------------------------- structural measurement

def test_connectivity_copy_replaces_what_hides_connections():
    from analysis.receptive import connectivity_substitutes
    net = connectivity_copy(models.build("pool_upsample", num_filters=2))
    assert all(p.dtype == torch.float64 and bool((p >= 0).all()) for p in net.parameters())
    subs = connectivity_substitutes()
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # max pooling becomes average pooling of the same geometry; norms and activations identity
    assert torch.equal(subs["torch.nn.functional.max_pool2d"](x, 2), torch.nn.functional.avg_pool2d(x, 2))
    assert subs["torch.nn.functional.relu"](-x) is not None and torch.equal(subs["torch.nn.functional.relu"](-x), -x)
    assert torch.equal(subs["torch.nn.functional.batch_norm"](x, None, None), x)


def test_measurement_sees_alternating_transposed_taps():
    m = measure_receptive_field("conv_transpose", kernel=3)
    final = m.layer("final")
    assert final.max_size == (15, 15) and final.interior_min == (11, 11)
    assert all(final.filled)  # every support is a full box: extent = number of rows read


@pytest.mark.parametrize("model,kernels", [(m, (3, 5, 7) if m in MAIN else (3, 5)) for m in ZOO])
def test_formulas_verified_on_real_models(model, kernels):
    check = verify_receptive_field(model, kernels=kernels)
    assert check.ok, [r.to_dict() for r in check.failures()[:3]]
    assert not check.skipped
    done = {(r.kernel, r.quantity) for r in check.rows}
    assert {(kv, q) for kv in kernels for q in ("size", "min_size", "start", "windows")} <= done
    if model.startswith("mnist"):
        assert {(kv, "coverage") for kv in kernels} <= done


_LAYERS = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2)),
    st.tuples(st.just("tconv"), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2)),
    st.tuples(st.just("maxpool"), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("up"), st.integers(2, 3), st.just(0), st.just(0), st.just(0)),
)


def _layer(spec):
    kind, a, b, c, d = spec
    if kind == "conv":
        return nn.Conv2d(1, 1, a, stride=b, padding=min(c, a // 2), dilation=d)
    if kind == "tconv":
        return nn.ConvTranspose2d(1, 1, a, stride=b, padding=min(c, (d * (a - 1)) // 2), dilation=d)
    if kind == "maxpool":
        return nn.MaxPool2d(a, stride=b, padding=min(c, a // 2), ceil_mode=d)
    return nn.Upsample(scale_factor=a)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LAYERS, min_size=1, max_size=4))
def test_random_chains_match_the_measurement(specs):
    net = nn.Sequential(*[_layer(s) for s in specs])
    try:
        out = net(torch.zeros(1, 1, 32, 32))
    except RuntimeError:
        return  # the chain shrinks a 32x32 input to nothing
    if min(out.shape[2:]) < 1 or max(out.shape[2:]) > 400:
        return
    check = verify_receptive_field(net, input_size=32, max_size=128)
    assert check.ok, (specs, [r.to_dict() for r in check.failures()[:2]])


# --------------------------------------------------------------------------- CLI

def test_cli_symbolic_table(capsys):
    assert main(["rf", "pool_upsample"]) == 0
    out = capsys.readouterr().out
    assert "10k + (k mod 4) - 7" in out and "varies with the output position" in out
    assert "at k = 3, 5, 7: 26, 44, 66" in out


def test_cli_json_and_verify(capsys):
    assert main(["rf", "conv_transpose", "--kernel", "3", "--json", "--verify"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == [15, 15] and data["min_size"] == [11, 11]
    assert data["verification"]["ok"] and data["verification"]["kernels"] == [3]


def test_cli_global_and_errors(capsys):
    assert main(["rf", "mnist_global_pool", "--kernel", "3", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "last spatial layer features.7: receptive field 12" in out and "whole input (32)" in out
    assert main(["rf", "pool_upsample", "--kernel", "4"]) == 2
    assert "--kernel" in capsys.readouterr().err
    assert main(["rf", "unet", "--size", "30"]) == 2
    assert "--size" in capsys.readouterr().err
