"""verify(): every registered model against its real torch model, plus the report, the CLI and
the cross-tool comparison."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import models
from analysis.errors import ArchcountError
from analysis.measure import measure, transposed_connections
from analysis.rules import LayerSpec, apply_rule, register_rule
from analysis.verify import (DEFAULT_CONVENTIONS, VerificationReport, default_configs, parse_convention,
                             random_configs, verify)
from reports.cli import main

@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small layers run fastest on one thread (and the CI machine has two shared cores)."""
    from analysis.verify import torch_threads
    with torch_threads(1):
        yield


ANCHOR = {"scatter": 1_179_648, "exact": 1_083_392, "gather": 4_718_592}


# --------------------------------------------------------------------------- every registered model

@pytest.mark.parametrize("name", models.available())
def test_every_registered_model_verifies(name):
    report = verify(name, n_random=2, seed=0, progress=False)
    spec = models.spec(name)
    assert not report.mismatches, "\n".join(map(str, report.mismatches[:20]))
    assert not report.skipped, report.skipped
    assert len(report.configs) == 4
    labels = {c.config.label for c in report.configs}
    assert len(labels) == 4
    sizes = [c.config.size for c in report.configs]
    if spec.size_multiple % 4 and spec.max_size is None:
        assert any(h % 4 or w % 4 for h, w in sizes), "a size not divisible by 4 must be checked"
    # every requested convention, every quantity, layer by layer and in total
    for conv in DEFAULT_CONVENTIONS:
        label = parse_convention(conv).label
        totals = [r for r in report.rows if r.convention == label and r.layer == "TOTAL"]
        assert {r.quantity for r in totals} >= {"weights", "outputs", "connections"}
    quantities = {r.quantity for r in report.rows if r.convention == "-"}
    assert {"shape", "outputs[numel]", "weights[weight]", "connections[include]"} <= quantities
    sources = {r.source for r in report.rows}
    assert {"fvcore", "structural", "recorded forward", "parameter numel"} <= sources
    # the parameters convention equals sum(p.numel()) of the model
    numel = [r for r in report.rows if r.quantity == "weights[sum numel]" and r.convention == "parameters"]
    assert numel and all(r.match for r in numel)


def test_anchor_values_from_formulas_and_measurement():
    """ConvTranspose2d(64->32, k=3, s=2, p=1, op=1) on 1x64x8x8: unet's block3.0 at NF=32, 32x32."""
    report = verify("unet", configs=[dict(NIC=1, NF=32, NC=24, kernel=3, H=32, W=32)], n_random=0,
                    conventions=["all-layers[transposed=exact]"])
    got = {r.quantity: (r.formula, r.measured) for r in report.rows
           if r.layer == "block3.0" and r.convention == "-" and r.quantity.startswith("connections[")}
    assert got["connections[scatter]"] == (ANCHOR["scatter"], ANCHOR["scatter"])
    assert got["connections[exact]"] == (ANCHOR["exact"], ANCHOR["exact"])
    assert got["connections[gather]"] == (ANCHOR["gather"], ANCHOR["gather"])
    layer = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
    assert transposed_connections(layer, (64, 8, 8)) == ANCHOR
    m = measure(nn.Sequential(layer), (1, 64, 8, 8))
    assert m.layer("0").flops == ANCHOR["scatter"]          # fvcore: input-based
    assert dict(m.layer("0").connections) == ANCHOR


# --------------------------------------------------------------------------- the report

def test_report_api_and_json():
    report = verify("conv_transpose", configs=[{"NF": 3, "NC": 2, "H": 9, "W": 7}], n_random=0,
                    conventions=["weighted", "all-layers[transposed=gather]"])
    assert report.ok and report.mismatches == ()
    s = report.summary()
    assert s["configs_checked"] == 1 and s["quantities_checked"] == sum(1 for r in report.rows if r.match is not None)
    frame = report.to_frame()
    assert list(frame.columns)[:7] == ["model", "config", "convention", "layer", "quantity", "formula", "measured"]
    assert len(frame) == len(report.rows)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["summary"]["ok"] is True and data["configs"][0]["H"] == 9
    with pytest.raises(Exception):
        report.rows[0].match = False  # frozen


def test_invalid_configuration_is_skipped_with_the_reason():
    report = verify("unet", configs=[{"H": 30, "W": 32}, {"NF": 2, "H": 8, "W": 12}], n_random=0,
                    conventions=["weighted"])
    assert len(report.skipped) == 1 and len(report.configs) == 1
    skip = report.skipped[0]
    assert skip.model == "unet" and "30x32" in skip.config
    assert "H=30" in skip.reason and "multiple of 4" in skip.reason
    assert report.ok


def test_model_failing_at_some_sizes_does_not_stop_the_run():
    def even_width(module, args):
        if args[0].shape[-1] % 2:
            raise ValueError("needs an even width")

    class EvenOnly(nn.Module):
        def __init__(self, num_filters: int = 4) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, num_filters, 3, padding=1)
            self.register_forward_pre_hook(even_width)

        def forward(self, x):
            return self.conv(x)

    def even_only(num_filters: int = 4) -> nn.Module:
        return EvenOnly(num_filters)

    report = verify(even_only, configs=[{"W": 7}, {"W": 8, "NF": 3}], n_random=0, conventions=["weighted"])
    (reason,) = [s.reason for s in report.skipped]
    assert reason.startswith("even_only: the forward raised ValueError: needs an even width at ")
    assert "test_verify.py" in reason and reason.endswith("(shapes: input=[1, 1, 32, 7])")
    assert len(report.configs) == 1 and report.ok


def test_factory_module_and_functional_ops():
    """A user factory with cat, functional bilinear interpolation, pooling and a transposed conv."""
    class Net(nn.Module):
        def __init__(self, kernel: int = 3, num_in_channels: int = 2, num_filters: int = 4) -> None:
            super().__init__()
            self.down = nn.Conv2d(num_in_channels, num_filters, kernel, stride=2, padding=kernel // 2)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ConvTranspose2d(2 * num_filters, num_filters, 4, stride=2, padding=1)

        def forward(self, x):
            y = self.down(x)
            z = F.interpolate(self.pool(y), scale_factor=2, mode="bilinear")
            return self.up(torch.cat([y, z], dim=1))

    def net(kernel: int = 3, num_in_channels: int = 2, num_filters: int = 4) -> nn.Module:
        return Net(kernel, num_in_channels, num_filters)

    report = verify(net, configs=[{"H": 16, "W": 16}, {"NF": 3, "H": 12, "W": 20}, {"H": 14}],
                    n_random=0, conventions=["all-layers", "all-layers[padding_taps=exclude,transposed=exact]"])
    assert report.ok, report.mismatches[:5]
    assert len(report.configs) == 2
    # H=14: the cat does not fit (7 vs 6 rows): the model cannot run there, reported as skipped
    assert len(report.skipped) == 1 and "14x32" in report.skipped[0].config
    interp = [r for r in report.rows if r.layer == "interpolate" and r.quantity == "connections[include]"]
    assert interp and "nonzero interpolation weights" in interp[0].note and interp[0].source == "definition"
    cat = [r for r in report.rows if r.layer == "cat" and r.quantity == "shape"]
    assert cat and all(r.match for r in cat)


def plain(kernel: int = 3, num_in_channels: int = 2, num_filters: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(num_in_channels, num_filters, kernel, padding=1),
                         nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                         nn.Upsample(scale_factor=2, mode="bilinear"), nn.Flatten())


def test_ceil_mode_pooling_and_bilinear_module():
    report = verify(plain, configs=[{"H": 13, "W": 10}, {"kernel": 3, "NF": 2, "H": 16, "W": 16}], n_random=0,
                    conventions=["all-layers", "all-layers[padding_taps=exclude]"])
    assert report.ok, report.mismatches[:5]
    bilinear = [r for r in report.rows if r.layer == "2" and r.quantity == "connections[include]"]
    assert bilinear and "nonzero interpolation weights" in bilinear[0].note


def test_concrete_module():
    module = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                           nn.Linear(20, 4))
    report = verify(module, n_random=1, conventions=["parameters", "all-layers[padding_taps=exclude]"])
    assert report.ok and len(report.configs) == 3
    assert all(not c.config.hparams for c in report.configs)


def test_exact_formula_outside_its_domain_is_compared_with_the_count_at_that_size():
    """Conv(k=5, d=2, p=2): the symbolic exact padding-tap formula is stated for sizes >= 9."""
    def dilated(num_filters: int = 2) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, num_filters, 5, padding=2, dilation=2))

    report = verify(dilated, configs=[{"H": 5, "W": 5}, {"H": 12, "W": 10}], n_random=0,
                    conventions=["weighted[padding_taps=exclude]"])
    assert report.ok, report.mismatches
    rows = [r for r in report.rows if r.quantity == "connections[exclude]" and r.config.endswith("5x5")]
    # 3 of the 5 dilated taps read the input along each axis: 3 * 3 * (1 x 2 channel pairs) = 18
    assert rows[0].formula == rows[0].measured == 18
    # evaluate() itself recomputes a row outside its exact formula's domain instead of returning the formula
    from analysis import count
    t = count(dilated, num_filters=2, input_size=(5, 5), switches=["padding_taps=exclude"])
    assert t.total("connections") == 18
    sym = count(dilated, num_filters=2, switches=["padding_taps=exclude"])
    assert sym.evaluate(H=5, W=5).total("connections") == 18


# --------------------------------------------------------------------------- a wrong formula is caught

class MiscountedConv(nn.Conv2d):
    """A conv whose (deliberately wrong) rule miscounts weights and exact connections."""


@register_rule(MiscountedConv)
def _miscounted_rule(spec, in_shapes):
    spec2 = LayerSpec(spec.path, "torch.nn.modules.conv.Conv2d", ("torch.nn.modules.conv.Conv2d",), spec.params)
    good = apply_rule(spec2, in_shapes)
    exclude = good.connections["exclude"]
    conn = dict(good.connections, exclude=None if exclude is None else exclude - 1)
    return replace(good, weight=good.weight + 1, connections=conn)


def _miscounted(kernel: int = 3, num_in_channels: int = 1, num_filters: int = 4, num_colours: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(num_in_channels, num_filters, kernel, padding=kernel // 2), nn.ReLU(),
                         MiscountedConv(num_filters, num_colours, kernel, padding=kernel // 2))


@pytest.fixture
def miscounted_model():
    models.register("miscounted_test", description="test model with a wrong rule", min_size=3)(_miscounted)
    yield "miscounted_test"
    models.registry.unregister("miscounted_test")


def test_mismatch_reported_with_both_values_and_layer(miscounted_model):
    report = verify(miscounted_model, configs=[{"H": 6, "W": 5}], n_random=0,
                    conventions=["weighted", "weighted[padding_taps=exclude]"])
    assert not report.ok
    by_q = {(r.convention, r.layer, r.quantity): r for r in report.mismatches}
    weight = by_q[("-", "2", "weights[weight]")]
    assert (weight.formula, weight.measured) == (4 * 3 * 9 + 1, 4 * 3 * 9)
    assert ("weighted", "2", "weights") in by_q and ("weighted", "TOTAL", "weights") in by_q
    exact = by_q[("weighted[padding_taps=exclude]", "2", "connections")]
    assert exact.formula == exact.measured - 1 and exact.source == "structural"
    # the layers that are right still match
    assert all(r.match for r in report.rows if r.layer == "0")


def test_cli_exit_status_and_mismatches_first(miscounted_model, capsys):
    assert main(["verify", miscounted_model, "--config", "H=6,W=5", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("MISMATCHES (")
    first = out.splitlines()[3]
    assert "miscounted_test" in first and " 2 " in first and "109" in first and "108" in first


def test_cli_ok_json_and_errors(capsys):
    assert main(["verify", "mnist_global_pool", "--configs", "0", "--quiet", "--conventions",
                 "weighted;all-layers[padding_taps=exclude]"]) == 0
    out = capsys.readouterr().out
    assert "all match" in out and "mnist_global_pool" in out
    assert main(["verify", "pool_upsample", "--config", "NF=3,NC=2,kernel=5,H=13,W=9", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["ok"] and data["summary"]["configs_checked"] == 1
    assert main(["verify", "nonexistent_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["verify"]) == 2
    assert main(["verify", "unet", "--config", "H=abc"]) == 2


def test_default_and_random_configs():
    assert [c.size for c in default_configs("mnist_fixed")][0] == (28, 28)
    for name in models.available():
        spec = models.spec(name)
        for cfg in default_configs(name) + random_configs(name, 3, seed=5):
            assert spec.valid_size(cfg.size[0]) and spec.valid_size(cfg.size[1]), (name, cfg)
    assert random_configs("unet", 2, seed=1) == random_configs("unet", 2, seed=1)
    assert random_configs("unet", 2, seed=1) != random_configs("unet", 2, seed=2)


def test_conventions_all_and_labels():
    report = verify("mnist_fixed", configs=[{}], n_random=0, conventions="all")
    assert len(report.conventions) == 72 and report.ok
    with pytest.raises(ArchcountError):
        parse_convention("weighted[bias=maybe]")


def test_combine_reports():
    a = verify("mnist_fixed", configs=[{}], n_random=0, conventions=["weighted"])
    b = verify(["mnist_fixed", "conv_transpose"], configs=[{}], n_random=0, conventions=["weighted"])
    assert b.models == ("mnist_fixed", "conv_transpose") and len(b.configs) == 2
    assert VerificationReport.combine([a]).rows == a.rows


# --------------------------------------------------------------------------- the other tools

def test_compare_tools_fvcore_explanations_are_checked():
    from analysis.compare_tools import compare_tools
    cmp = compare_tools("pool_upsample", {"NF": 4, "NC": 3, "H": 12, "W": 10}, tools=["fvcore"])
    fv = cmp.tool("fvcore")
    assert fv.available
    lines = {e.group: e for e in cmp.explanations if e.tool == "fvcore"}
    # fvcore ignores max pooling ...
    assert lines["MaxPool2d"].tool_value == 0 and lines["MaxPool2d"].quantity == "nothing (ignored)"
    # ... and counts nearest upsampling as 1 per output
    assert lines["Upsample(nearest)"].quantity == "1 per output" and lines["Upsample(nearest)"].holds
    # the total is archcount weighted/include connections + upsampling outputs + BatchNorm terms
    assert lines["total"].holds
    bn = lines["BatchNorm2d"].tool_value
    assert fv.total == cmp.archcount["weighted"]["connections"] + lines["Upsample(nearest)"].tool_value + bn
    assert lines["params"].holds and fv.params == cmp.archcount["parameters"]["weights"]
    assert not cmp.unexplained


def test_compare_tools_transposed(monkeypatch):
    from analysis.compare_tools import compare_tools
    cmp = compare_tools("conv_transpose", {"NF": 4, "NC": 3, "H": 8, "W": 8}, tools=["fvcore"])
    tconv = [e for e in cmp.explanations if e.group == "ConvTranspose2d"][0]
    assert tconv.quantity.endswith("(transposed=scatter)") and not tconv.disagrees


def test_optional_tools_skip_with_a_message_when_absent(monkeypatch):
    import sys

    from analysis.compare_tools import compare_tools, run_tool
    for name in ("thop", "torchinfo", "ptflops"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
        res = run_tool(name, nn.Conv2d(1, 1, 3), torch.randn(1, 1, 5, 5))
        assert not res.available and "not installed" in res.message and "archcount[compare]" in res.message
    cmp = compare_tools("mnist_fixed")
    assert [t.tool for t in cmp.tools if t.available] == ["fvcore"]


@pytest.mark.parametrize("tool", ["thop", "torchinfo", "ptflops"])
def test_optional_tool_explained(tool):
    pytest.importorskip(tool, reason=f"{tool} is optional (pip install 'archcount[compare]')")
    from analysis.compare_tools import compare_tools
    cmp = compare_tools("unet", {"NF": 4, "NC": 3, "H": 16, "W": 16}, tools=[tool])
    res = cmp.tool(tool)
    assert res.available and res.layers
    assert not cmp.unexplained, [e.text for e in cmp.unexplained]
    groups = {e.group: e for e in cmp.explanations}
    if tool == "thop":   # thop counts transposed convs output-based
        assert groups["ConvTranspose2d"].quantity == "connections output-based (transposed=gather)"
    if tool == "torchinfo":  # torchinfo counts BatchNorm MACs as its parameter count
        assert groups["BatchNorm2d"].quantity == "its parameter count (gamma + beta)"


def test_cli_compare_tools(capsys):
    assert main(["verify", "mnist_fixed", "--configs", "0", "--quiet", "--compare-tools",
                 "--conventions", "weighted"]) == 0
    out = capsys.readouterr().out
    assert "fvcore ignores MaxPool2d" in out and "[checked]" in out
