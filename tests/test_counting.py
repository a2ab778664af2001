"""count(): formulas against independent measurements (parameter numel, hook numel, fvcore),
example identities, conventions, lifting, errors."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import sympy as sp
import torch
import torch.nn as nn

import models
from analysis import NC, NF, NIC, H, W, k
from analysis.conventions import PRESETS, get_convention
from analysis.counting import count, output_shape, solve_for
from analysis.errors import ArchcountError

COLOUR = [n for n in models.available() if models.spec(n).task == "colourization"]


def _configs(name, n=3, seed=0):
    """Random valid (hparams, size) points for a zoo model."""
    spec = models.spec(name)
    rng = random.Random(f"{name}-{seed}")
    out = []
    for _ in range(n):
        hp = {"kernel": rng.choice([1, 3, 5]), "num_in_channels": rng.randint(1, 3),
              "num_filters": rng.randint(1, 6), "num_colours": rng.randint(2, 7)}
        if "N" in spec.defaults:
            hp["N"] = rng.randint(1, 9)
        if spec.fixed_size:
            size = (rng.randint(spec.min_size, spec.max_size), rng.randint(spec.min_size, spec.max_size))
        else:
            m = spec.size_multiple
            size = (m * rng.randint(max(1, -(-spec.min_size // m)), 40 // m),
                    m * rng.randint(max(1, -(-spec.min_size // m)), 40 // m))
        out.append((hp, size))
    return out


def _values(hp, size):
    return dict(NIC=hp["num_in_channels"], NF=hp["num_filters"], NC=hp["num_colours"], k=hp["kernel"],
                H=size[0], W=size[1], **({"N": hp["N"]} if "N" in hp else {}))


def _symbolic_table(name, convention):
    symbols = {"N": sp.Symbol("N", positive=True, integer=True)} if "N" in models.spec(name).defaults else None
    return count(name, convention=convention, symbols=symbols)


@pytest.mark.parametrize("name", models.available())
def test_formulas_equal_measurements(name):
    """parameters weights = sum(numel) per layer; outputs = hook numel; include connections = fvcore."""
    from fvcore.nn import FlopCountAnalysis
    table = _symbolic_table(name, "parameters")
    for hp, size in _configs(name):
        net = models.build(name, **hp).eval()
        values = _values(hp, size)
        ev = table.evaluate(**values)
        x = torch.randn(1, hp["num_in_channels"], *size)
        seen = {}
        hooks = [m.register_forward_hook(lambda mod, i, o, p=path: seen.__setitem__(p, o.numel()))
                 for path, m in net.named_modules() if path]
        with torch.no_grad():
            net(x)
        for h in hooks:
            h.remove()
        flops = FlopCountAnalysis(net, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_module()
        modules = dict(net.named_modules())
        for row in ev.rows:
            if row.path in modules:
                mod = modules[row.path]
                assert row.weights == sum(p.numel() for p in mod.parameters(recurse=False)), (row.path, hp)
                assert row.counts.outputs == seen[row.path], (row.path, hp, size)
                if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    conn = row.counts.connections["scatter" if isinstance(mod, nn.ConvTranspose2d) else "include"]
                    assert conn == flops[row.path], (row.path, hp, size)
        assert ev.total("weights") == sum(p.numel() for p in net.parameters())


def test_pool_upsample_weighted_weights_identity():
    expected = k**2 * (NIC * NF + 4 * NF**2 + NF * NC + NC**2)
    assert sp.simplify(count("pool_upsample").total("weights") - expected) == 0


def test_pool_upsample_parameters_at_defaults():
    net = models.build("pool_upsample", kernel=3, num_in_channels=1, num_filters=32, num_colours=24)
    measured = sum(p.numel() for p in net.parameters())
    total = count("pool_upsample", convention="parameters").evaluate(NIC=1, NF=32, NC=24, k=3).total("weights")
    assert total == measured == 49_728


def test_fixed_hyperparameters_and_numeric_size():
    t = count("unet", kernel=3, input_size=(32, 32))
    assert t.hparams["kernel"] == 3
    assert k not in sp.sympify(t.total("connections")).free_symbols
    assert not ({H, W} & sp.sympify(t.total("outputs")).free_symbols)


@pytest.mark.parametrize("name", COLOUR)
def test_divisibility_simplification_matches_exact_formula(name):
    exact = count(name, kernel=3)
    simple = exact.simplified(4)
    assert any("multiple of 4" in a for a in simple.assumptions)
    for size in [(32, 32), (8, 12), (64, 20)]:
        for q in ("outputs", "connections"):
            a = sp.sympify(exact.total(q)).subs({H: size[0], W: size[1]})
            b = sp.sympify(simple.total(q)).subs({H: size[0], W: size[1]})
            assert sp.simplify(a - b) == 0


def test_conventions_switch_biases_batchnorm_and_pooling():
    base = count("pool_upsample", kernel=3)
    with_bias = base.under("weighted", ["bias=true"])
    conv_out = NF + 2 * NF + NF + NC + NC  # one bias per conv output channel, written by hand
    assert sp.simplify(with_bias.total("weights") - base.total("weights") - conv_out) == 0
    bn = base.under("weighted", ["batchnorm=affine"])
    assert sp.simplify(bn.total("weights") - base.total("weights") - 2 * (NF + 2 * NF + NF + NC)) == 0
    all_layers = base.under("all-layers").simplified(4)
    weighted = base.simplified(4)
    # two max-pools (NF*H/2*W/2, 2NF*H/4*W/4) and two upsamplings (NF*H/2*W/2, NC*H*W) add their outputs
    pool_up_outputs = NF * H * W / 4 + 2 * NF * H * W / 16 + NF * H * W / 4 + NC * H * W
    assert sp.simplify(all_layers.total("outputs") - weighted.total("outputs") - pool_up_outputs) == 0
    # pooling 2x2: 4 connections per output; nearest upsampling: 1 per output
    extra = 4 * (NF * H * W / 4 + 2 * NF * H * W / 16) + NF * H * W / 4 + NC * H * W
    assert sp.simplify(all_layers.total("connections") - weighted.total("connections") - extra) == 0


def test_transposed_anchor_values():
    layer = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
    t = count(layer, input_size=(8, 8))
    counts = t.rows[0].counts
    assert counts.connections == {"scatter": 1_179_648, "exact": 1_083_392, "gather": 4_718_592}
    assert t.under("weighted", ["transposed=exact"]).total("connections") == 1_083_392


def test_concrete_module_has_numeric_channels_and_symbolic_size():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    t = count(net, convention="all-layers")
    assert t.input_shape == (3, H, W)
    assert sp.simplify(t.total("weights") - 3 * 8 * 9) == 0
    assert sp.simplify(t.total("outputs") - (8 * H * W + 8 * sp.floor(H / 2) * sp.floor(W / 2))) == 0


def test_user_factory_gets_formulas():
    def factory(kernel=3, num_in_channels=1, num_filters=8, num_colours=4):
        return nn.Sequential(nn.Conv2d(num_in_channels, num_filters, kernel, padding=kernel // 2), nn.ReLU(),
                             nn.Conv2d(num_filters, num_colours, 1))
    t = count(factory)
    assert sp.simplify(t.total("weights") - (k**2 * NIC * NF + NF * NC)) == 0


def test_non_affine_hyperparameter_names_the_layer():
    def factory(kernel=3, num_in_channels=1, num_filters=8, num_colours=4):
        return nn.Sequential(nn.Conv2d(num_in_channels, num_filters * num_filters, 1),
                             nn.Conv2d(num_filters * num_filters, num_colours, 1))
    with pytest.raises(ArchcountError, match=r"layer 0: out_channels is not affine"):
        count(factory)


def test_unsupported_layers_are_listed_never_zero():
    class Spectral(nn.Module):  # a layer archcount has no rule for, with parameters
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return torch.fft.fft2(x).abs() * self.scale

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.odd = Spectral()
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(self.odd(self.conv(x)))

    t = count(Odd(), input_shape=(1, H, W))
    assert t.partial
    paths = [u.path for u in t.unsupported]
    assert paths == ["odd:fft2"], paths
    assert "no counting rule for torch.fft.fft2" in t.unsupported[0].reason
    # the layers after it are still counted: fft2 keeps the shape at every recorded size
    head = t.row("head")
    assert head.in_shape == (4, H, W) and sp.expand(head.weights - 8) == 0
    assert "odd.scale" in [r.path for r in t.rows]
    with pytest.warns(UserWarning, match="partial"):
        t.total("weights")
    assert t.to_dict()["partial"] is True
    with pytest.raises(ArchcountError, match="layer odd:fft2: no counting rule for torch.fft.fft2"):
        count(Odd(), input_shape=(1, H, W), strict=True)


def test_input_too_small_names_layer_and_shapes():
    with pytest.raises(ArchcountError, match=r"layer 1: .*Kernel size can't be greater.*shapes: input=\[BS, 2, 2, 2\]"):
        count(nn.Sequential(nn.Conv2d(1, 2, 5), nn.Conv2d(2, 2, 5)), input_size=(6, 6))
    with pytest.raises(ArchcountError, match="unet.*input H=30"):
        count("unet", input_size=(30, 32))


def test_contradictory_switches_rejected():
    with pytest.raises(ArchcountError, match="contradictory switches"):
        get_convention("weighted", ["padding_taps=include", "padding_taps=exclude"])
    with pytest.raises(ArchcountError, match="unknown switch"):
        get_convention("weighted", ["biases=true"])


def test_lifting_any_hyperparameter_and_solving():
    N = sp.Symbol("N", positive=True, integer=True)
    t = count("mnist_global_pool", symbols={"N": N}, convention="parameters", kernel=3, num_in_channels=1,
              num_filters=16, num_colours=10)
    # hand formula: convs 1->16->32->N (3x3, bias), Linear(N->10)
    hand = (9 * 16 + 16) + (9 * 16 * 32 + 32) + (9 * 32 * N + N) + (10 * N + 10)
    assert sp.simplify(t.total("weights") - hand) == 0
    r = solve_for("N", "mnist_global_pool", "weights", "mnist_fixed", convention="parameters")
    fixed = sum(p.numel() for p in models.build("mnist_fixed").parameters())
    x = sp.Symbol("x", real=True)
    root = sp.solve(sp.Eq(hand.subs(N, x), fixed), x)[0]
    assert r.roots == (root,)
    assert [c[0] for c in r.candidates] == [int(sp.floor(root)), int(sp.ceiling(root))]
    for value, total, diff in r.candidates:
        assert total == sum(p.numel() for p in models.build("mnist_global_pool", N=value).parameters())
        assert diff == total - fixed


def test_scaling_ratios():
    r = count("unet", kernel=3).scaled(H=2 * H, W=2 * W)
    assert r["weights"].ratio == 1 and r["weights"].constant
    assert r["outputs"].ratio_assuming == 4 and r["connections"].ratio_assuming == 4
    exact = count("conv_transpose", kernel=3, switches=["padding_taps=exclude"]).scaled(H=2 * H, W=2 * W)
    assert not exact["connections"].constant and exact["connections"].ratio_assuming is None


def test_json_round_trip():
    t = count("unet", kernel=3)
    data = json.loads(json.dumps(t.to_dict()))
    assert data["schema_version"] == 1 and data["model"] == "unet"
    assert set(data["totals"]) == {"weights", "outputs", "connections"}
    for q in ("weights", "outputs", "connections"):
        back = sp.sympify(data["totals"][q], locals={"NIC": NIC, "NF": NF, "NC": NC, "k": k, "H": H, "W": W})
        assert sp.simplify(back - t.total(q)) == 0
    assert len(data["layers"]) == len(t.rows)
    frame = t.to_frame(latex=True)
    assert list(frame["layer"]) == [r.path for r in t.rows]


def test_output_shape_of_a_layer():
    assert output_shape(nn.Conv2d(3, 16, 5, stride=2, padding=1), (1, 3, 1024, 768)) == (1, 16, 511, 383)
    assert output_shape(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (8, H, W)) == (4, 2 * H, 2 * W)


def test_every_preset_evaluates_on_every_model():
    for name in models.available():
        t = count(name)
        for preset in PRESETS:
            assert t.under(preset).convention.preset == preset


def test_analysis_core_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import analysis, analysis.conventions, analysis.table, analysis.rules, analysis.shapes, analysis.simplify\n"
            "from analysis import NIC, NF, solve_padding, Convention\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_hyperparameter_that_differs_only_at_kernel_1_is_caught():
    def factory(kernel=3, num_in_channels=1, num_filters=4, num_colours=2):
        return nn.Sequential(nn.Conv2d(num_in_channels, num_filters, kernel, padding=min(1, (kernel - 1) // 2)),
                             nn.Conv2d(num_filters, num_colours, 1))
    with pytest.raises(ArchcountError, match="layer 0: padding.*not affine"):
        count(factory)


@pytest.mark.parametrize("equation, shapes", [
    ("bchw,bdhw->bcd", [(2, 3, 4, 5), (2, 6, 4, 5)]),
    ("bhwc", [(2, 4, 5, 3)]),                    # implicit output: the letters in alphabetical order
    ("ij,jk", [(3, 4), (4, 5)]),                 # implicit: the letters that occur once
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),         # implicit: b occurs twice, so it is summed out
])
def test_einsum_output_letters_match_torch(equation: str, shapes: list[tuple[int, ...]]) -> None:
    """einsum_parts gives the output torch computes, explicit or implicit (measured: torch.einsum)."""
    from analysis.rules.ops import einsum_parts
    tensors = [torch.zeros(s) for s in shapes]
    terms, rhs, _ = einsum_parts([equation, *tensors])
    sizes = {c: n for term, s in zip(terms, shapes) for c, n in zip(term, s)}
    assert tuple(sizes[c] for c in rhs) == tuple(torch.einsum(equation, *tensors).shape)
