"""The padding table, symbolic answers and errors, checked against real torch layers; the layer
text syntax (analysis.layertext) and torch-layer shapes (analysis.counting.output_shape, through the rule registry)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import sympy as sp
import torch
import torch.nn as nn

from analysis.errors import ArchcountError
from analysis.layertext import (LayerText, chain_output_shape, format_shape, layer_output_shape, parse_layer,
                                parse_layers, parse_shape)
from analysis.shapes import output_size, solve_padding
from analysis.symbols import NF, NIC, H, W, k
from analysis.counting import output_shape

EVEN = [2, 4, 6, 10, 16, 64]
ALL = [1, 2, 3, 4, 5, 7, 16, 33]


def conv_out(n: int, kernel: int, stride: int, padding: int) -> int | None:
    """Output size of a real Conv2d on an n x n input (None where torch refuses the input)."""
    try:
        with torch.no_grad():
            layer = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
            return layer(torch.zeros(1, 1, n, n)).shape[-1]
    except RuntimeError:
        return None


def tconv_out(n: int, kernel: int, stride: int, padding: int, op: int) -> int | None:
    """Output size of a real ConvTranspose2d on an n x n input (None where torch refuses it)."""
    try:
        with torch.no_grad():
            layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, output_padding=op, bias=False)
            return layer(torch.zeros(1, 1, n, n)).shape[-1]
    except RuntimeError:
        return None


# ----------------------------------------------------------------------------- the required table

@pytest.mark.parametrize("kernel, expected", [(3, ((1, 0),)), (4, ((1, 0),)), (5, ((2, 0),))])
def test_stride2_conv_halving_table(kernel, expected):
    sol = solve_padding(kernel, stride=2)
    assert sol.solutions == expected
    p = expected[0][0]
    assert [conv_out(n, kernel, 2, p) for n in EVEN] == [n // 2 for n in EVEN]


def test_kernel4_halving_padding_1_and_only_that():
    assert solve_padding(4, stride=2).solutions == ((1, 0),)
    for p in (0, 2, 3, 4, 5):
        assert any(conv_out(n, 4, 2, p) != n // 2 for n in EVEN), p


@pytest.mark.parametrize("kernel, expected", [(3, ((1, 1),)), (4, ((1, 0),)), (5, ((2, 1),))])
def test_stride2_transposed_doubling_table(kernel, expected):
    sol = solve_padding(kernel, stride=2, transposed=True)
    assert sol.solutions == expected
    p, op = expected[0]
    assert [tconv_out(n, kernel, 2, p, op) for n in ALL] == [2 * n for n in ALL]


def test_kernel4_doubling_1_0_and_only_that():
    assert solve_padding(4, stride=2, transposed=True).solutions == ((1, 0),)
    for p in range(7):
        for op in (0, 1):
            if (p, op) != (1, 0):
                assert any(tconv_out(n, 4, 2, p, op) != 2 * n for n in (2, 3, 8)), (p, op)


@pytest.mark.parametrize("kv", range(1, 10))
def test_symbolic_kernel_answers_match_torch(kv):
    halving = solve_padding(k, stride=2)
    doubling = solve_padding(k, stride=2, transposed=True)
    (hp, hop), = halving.solutions
    (dp, dop), = doubling.solutions
    # the documented closed forms: p = floor((k-1)/2), op = k mod 2
    assert hp.subs(k, kv) == dp.subs(k, kv) == (kv - 1) // 2
    assert hop == 0 and dop.subs(k, kv) == kv % 2
    p, op = int(dp.subs(k, kv)), int(dop.subs(k, kv))
    assert [conv_out(n, kv, 2, p) for n in EVEN] == [n // 2 for n in EVEN]
    assert [tconv_out(n, kv, 2, p, op) for n in ALL] == [2 * n for n in ALL]


def test_symbolic_by_parity():
    sol = solve_padding(k, stride=2, transposed=True)
    assert sol.by_parity == {"odd": ((k / 2 - sp.Rational(1, 2), 1),), "even": ((k / 2 - 1, 0),)}
    keep = solve_padding(k, stride=1)
    assert keep.solutions == () and keep.by_parity["even"] == ()
    assert keep.by_parity["odd"] == (((k - 1) / 2, 0),)
    assert keep.reason.startswith("even k")


@pytest.mark.parametrize("kernel", [2, 4, 6])
def test_even_kernel_stride1_cannot_keep_the_size(kernel):
    sol = solve_padding(kernel, stride=1)
    assert sol.solutions == () and not sol.ok
    assert "odd" in sol.reason and f"effective kernel {kernel}" in sol.reason
    # independently: no padding keeps every size in torch
    for p in range(kernel + 2):
        assert any(conv_out(n, kernel, 1, p) != n for n in (8, 9)), p


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_odd_kernel_stride1_keeps_the_size(kernel):
    (p, _), = solve_padding(kernel, stride=1).solutions
    assert p == (kernel - 1) // 2
    assert [conv_out(n, kernel, 1, p) for n in ALL] == ALL


# ----------------------------------------------------------------------------- errors name the argument

@pytest.mark.parametrize("call, argument", [
    (lambda: output_size("conv", 0, 3), "size"),
    (lambda: output_size("conv", -4, 3), "size"),
    (lambda: output_size("conv", 8, 0), "kernel"),
    (lambda: output_size("conv", 8, -3), "kernel"),
    (lambda: output_size("conv", 8, 3, stride=0), "stride"),
    (lambda: output_size("conv", 8, 3, stride=-2), "stride"),
    (lambda: output_size("conv", 8, 3, dilation=0), "dilation"),
    (lambda: output_size("conv", 8, 3, padding=-1), "padding"),
    (lambda: output_size("conv", 4, 7, padding=1), "kernel"),           # 7 > 4 + 2*1
    (lambda: output_size("maxpool", 2, 5, stride=1, padding=1), "kernel"),
    (lambda: output_size("transposed", 8, 3, stride=2, output_padding=2), "output_padding"),
    (lambda: output_size("transposed", 8, 3, stride=1, dilation=3, output_padding=3), "output_padding"),
    (lambda: output_size("transposed", 1, 1, padding=3), "padding"),
    (lambda: output_size("maxpool", 8, 2, padding=2), "padding"),
    (lambda: output_size("avgpool", 8, 2, dilation=2), "dilation"),
    (lambda: output_size("conv", 8, 3, ceil_mode=True), "ceil_mode"),
    (lambda: output_size("upsample", 8, scale_factor=0), "scale_factor"),
    (lambda: output_size("upsample", 3, scale_factor=0.25), "scale_factor"),
    (lambda: output_size("pool", 8, 2), "kind"),
    (lambda: solve_padding(0), "kernel"),
    (lambda: solve_padding(-3, stride=2), "kernel"),
    (lambda: solve_padding(3, stride=0), "stride"),
    (lambda: solve_padding(3, dilation=0), "dilation"),
    (lambda: solve_padding(4, stride=2, transposed=True, scale=3), "scale"),
    (lambda: solve_padding(4, stride=2, scale=1), "scale"),
    (lambda: solve_padding(4, stride=2, scale="a/b"), "scale"),
    (lambda: solve_padding(k, stride=2, transposed=True, scale=3), "scale"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ArchcountError) as err:
        call()
    assert err.value.argument == argument
    assert f"argument {argument}:" in str(err.value)


def test_impossible_scale_explains_the_possible_one():
    with pytest.raises(ArchcountError, match="must be 2 here"):
        solve_padding(4, stride=2, transposed=True, scale=3)
    with pytest.raises(ArchcountError, match="must be 1/2 here"):
        solve_padding(4, stride=2, scale=1)
    assert solve_padding(4, stride=2, scale="1/2").solutions == ((1, 0),)
    assert solve_padding(4, stride=2, scale=0.5).solutions == ((1, 0),)


def test_kernel_too_large_agrees_with_torch():
    assert conv_out(4, 7, 1, 1) is None
    assert conv_out(5, 7, 1, 1) == 1
    assert output_size("conv", 5, 7, padding=1).size == 1


# ----------------------------------------------------------------------------- layer text

def test_required_example():
    answer = layer_output_shape(parse_layer("conv k=5 s=2 p=1 out=16"), parse_shape("3x1024x768"))
    assert answer.output_shape == (16, 511, 383)
    assert [a.arithmetic for a in answer.axes] == ["floor((1024 + 2 - 5)/2) + 1 = 511",
                                                   "floor((768 + 2 - 5)/2) + 1 = 383"]
    assert answer.dropped == (0, 0)
    d = answer.to_dict()
    assert d["output"] == [16, 511, 383] and d["axes"][0]["size"] == 511 and d["layer"] == "conv k=5 s=2 p=1 out=16"


@pytest.mark.parametrize("text, fields", [
    ("conv k=5 s=2 p=1 out=16", dict(kind="conv", kernel=5, stride=2, padding=1, out_channels=16)),
    ("tconv k=4 s=2 p=1 op=0 out=8", dict(kind="transposed", kernel=4, stride=2, padding=1, output_padding=0,
                                          out_channels=8)),
    ("maxpool k=2", dict(kind="maxpool", kernel=2, stride=2, padding=0)),
    ("avgpool k=3 s=2 p=1 ceil", dict(kind="avgpool", kernel=3, stride=2, padding=1, ceil_mode=True)),
    ("upsample x2", dict(kind="upsample", scale_factor=2)),
    ("upsample scale=2", dict(kind="upsample", scale_factor=2)),
    ("upsample x3/2", dict(kind="upsample", scale_factor=sp.Rational(3, 2))),
    ("upsample scale=1.5 mode=bilinear", dict(kind="upsample", scale_factor=1.5, mode="bilinear")),
    ("Conv2d kernel=3 stride=1 padding=1 dilation=2 groups=2 out_channels=4",
     dict(kind="conv", kernel=3, stride=1, padding=1, dilation=2, groups=2, out_channels=4)),
    ("conv k=3x1 p=1x0", dict(kind="conv", kernel=(3, 1), padding=(1, 0))),
    ("conv k=k p=1 out=NF", dict(kind="conv", kernel=k, padding=1, out_channels=NF)),
    ("relu", dict(kind="identity", name="relu")),
])
def test_parse_layer(text, fields):
    layer = parse_layer(text)
    for name, value in fields.items():
        assert getattr(layer, name) == value, name
    assert parse_layer(str(layer)) == layer
    assert layer.to_dict()["kind"] == fields["kind"]


@pytest.mark.parametrize("text, argument, token", [
    ("conv k=5 s=2 p=1 foo", "foo", "foo"),
    ("conv k=5 q=1", "q", "q=1"),
    ("conv k=", "kernel", "k="),
    ("conv k=five", "kernel", "k=five"),
    ("conv s=2", "kernel", None),
    ("conv k=3 k=5", "kernel", "k=5"),
    ("conv k=0", "kernel", "k=0"),
    ("conv k=3 s=0", "stride", "s=0"),
    ("conv k=3 s=-1", "stride", "s=-1"),
    ("conv k=3 p=-1", "padding", "p=-1"),
    ("conv k=3 d=0", "dilation", "d=0"),
    ("conv k=3 out=0", "out_channels", "out=0"),
    ("conv k=3 op=1", "output_padding", "op=1"),
    ("tconv k=3 s=2 op=2", "output_padding", None),
    ("tconv k=3 s=1 d=2 op=2", "output_padding", None),
    ("maxpool k=2 p=2", "padding", None),
    ("avgpool k=2 d=2", "dilation", "d=2"),
    ("maxpool k=2 out=4", "out_channels", "out=4"),
    ("conv k=4 g=3 out=8", "groups", None),
    ("conv k=3x1 s=1x2x3", "stride", "has 3 per-axis values"),
    ("upsample", "scale_factor", None),
    ("upsample x0", "scale_factor", "x0"),
    ("upsample xtwo", "scale_factor", "xtwo"),
    ("upsample x2 mode=fancy", "mode", None),
    ("pool k=2", "kind", "pool"),
    ("", "layer", None),
    ("conv 3", "3", "3"),
])
def test_parse_layer_errors_name_the_argument_and_token(text, argument, token):
    with pytest.raises(ArchcountError) as err:
        parse_layer(text)
    assert err.value.argument == argument
    if token:
        assert token in str(err.value)


@pytest.mark.parametrize("text, shape", [
    ("3x1024x768", (3, 1024, 768)), ("1024x768", (1024, 768)), ("16x513x385", (16, 513, 385)),
    ("1, 3, 32, 32", (1, 3, 32, 32)), ("[1,3,32,32]", (1, 3, 32, 32)), ("NICxHxW", (NIC, H, W)),
    ("3×8×8", (3, 8, 8)),
])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["", "3x", "3xx4", "3x0x4", "3x-1x4", "3x4.5", "axb"])
def test_parse_shape_errors(text):
    with pytest.raises(ArchcountError) as err:
        parse_shape(text)
    assert err.value.argument == "input"


def _torch_layer(layer: LayerText, in_channels: int) -> nn.Module:
    """The nn.Module that the text describes, built from the parsed fields."""
    out = layer.out_channels or in_channels
    if layer.kind == "conv":
        return nn.Conv2d(in_channels, out, layer.kernel, layer.stride, layer.padding, layer.dilation, layer.groups)
    if layer.kind == "transposed":
        return nn.ConvTranspose2d(in_channels, out, layer.kernel, layer.stride, layer.padding, layer.output_padding,
                                  layer.groups, dilation=layer.dilation)
    if layer.kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride, layer.padding, layer.dilation, ceil_mode=layer.ceil_mode)
    if layer.kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
    if layer.kind == "upsample":
        return nn.Upsample(scale_factor=float(layer.scale_factor), mode=layer.mode or "nearest")
    return nn.ReLU()


@pytest.mark.parametrize("text", [
    "conv k=5 s=2 p=1 out=16", "tconv k=4 s=2 p=1 op=0 out=8", "tconv k=3 s=2 p=1 op=1 out=2", "maxpool k=2",
    "maxpool k=3 s=2 d=2 ceil", "avgpool k=3 s=2 p=1 ceil", "upsample x2", "upsample x1.5", "upsample x3/2",
    "conv k=3x1 s=2x1 p=1x0 out=4", "conv k=3 d=2 g=2 out=4", "relu",
])
@pytest.mark.parametrize("shape", [(2, 17, 12), (2, 32, 9)])
def test_layer_text_shape_matches_torch(text, shape):
    layer = parse_layer(text)
    with torch.no_grad():
        expected = tuple(_torch_layer(layer, shape[0])(torch.zeros(1, *shape)).shape[1:])
    assert layer_output_shape(layer, shape).output_shape == expected


def test_dropped_rows_are_reported():
    answer = layer_output_shape("maxpool k=2", "16x513x385")
    assert format_shape(answer.output_shape) == "16x256x192"
    assert answer.dropped == (1, 1)           # 513 and 385 are odd: the last row/column is never read
    assert "1 input row dropped" in answer.explain()
    assert layer_output_shape("conv k=3 s=3", "1x10x9").dropped == (1, 0)


def test_layer_output_shape_symbolic_and_channels():
    answer = layer_output_shape("conv k=3 p=1 out=NF", (NIC, H, W))
    assert answer.output_shape == (NF, H, W)
    pooled = layer_output_shape("maxpool k=2", (NF, H, W))
    assert pooled.output_shape == (NF, sp.floor(H / 2), sp.floor(W / 2))
    assert pooled.dropped == (sp.Mod(H, 2), sp.Mod(W, 2))
    kept = layer_output_shape("conv k=3", "3x8x8")
    assert kept.output_shape == (3, 6, 6) and "channel count 3 is kept" in kept.notes[0]
    assert layer_output_shape("conv k=3 out=4", "8x8").output_shape == (6, 6)
    assert layer_output_shape("relu", "1x3x5x5").output_shape == (1, 3, 5, 5)


@pytest.mark.parametrize("layer, shape, argument", [
    ("conv k=7 p=1", "3x4x9", "kernel"),
    ("conv k=3 g=2 out=4", "3x8x8", "groups"),
    ("conv k=3", "8", "input"),
    ("conv k=3", "1x1x3x8x8", "input"),
    ("tconv k=1 p=3", "1x1", "padding"),
    ("conv k=3x3x3", "3x8x8", "kernel"),
    ("upsample x0.1", "3x4x4", "scale_factor"),
])
def test_layer_output_shape_errors(layer, shape, argument):
    with pytest.raises(ArchcountError) as err:
        layer_output_shape(layer, shape)
    assert err.value.argument == argument
    assert err.value.layer  # the layer text is named


def test_chain():
    answers = chain_output_shape("conv k=3 s=2 p=1 out=16 -> relu; maxpool k=2", "3x64x63")
    assert [a.output_shape for a in answers] == [(16, 32, 32), (16, 32, 32), (16, 16, 16)]
    assert len(parse_layers("conv k=3 -> maxpool k=2")) == 2
    with pytest.raises(ArchcountError, match="step 2 of 2") as err:
        chain_output_shape("conv k=3 -> maxpool k=9", "3x9x9")
    assert err.value.argument == "kernel"
    with pytest.raises(ArchcountError, match="empty"):
        parse_layers("conv k=3 ->  -> relu")


# ----------------------------------------------------------------------------- torch layers

def _forward(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    layer.eval()
    with torch.no_grad():
        return tuple(layer(torch.zeros(*shape)).shape)


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv1d(3, 5, 4, stride=2, padding=1, dilation=2), (2, 3, 31)),
    (nn.Conv1d(3, 5, 3), (3, 10)),
    (nn.Conv2d(3, 16, 5, stride=2, padding=1), (1, 3, 1024, 768)),
    (nn.Conv2d(3, 8, (3, 1), stride=(2, 1), padding=(1, 0), groups=1), (3, 17, 9)),
    (nn.Conv2d(4, 8, 4, padding="same", dilation=2), (1, 4, 9, 10)),
    (nn.Conv2d(4, 8, 3, padding="valid"), (1, 4, 9, 10)),
    (nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), (1, 16, 13, 7)),
    (nn.ConvTranspose2d(2, 2, 3, stride=3, padding=2, output_padding=1, dilation=2), (1, 2, 5, 6)),
    (nn.MaxPool2d(2), (1, 3, 513, 385)),
    (nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True), (2, 9, 10)),
    (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 10, 11)),
    (nn.AvgPool1d(3, stride=2), (1, 2, 11)),
    (nn.AdaptiveAvgPool2d((3, None)), (1, 2, 10, 11)),
    (nn.Upsample(scale_factor=2), (1, 3, 5, 7)),
    (nn.Upsample(scale_factor=1.15), (1, 1, 100, 20)),
    (nn.Upsample(scale_factor=(2, 0.5), mode="bilinear"), (1, 1, 5, 7)),
    (nn.Upsample(size=(4, 6)), (1, 1, 5, 7)),
    (nn.UpsamplingNearest2d(scale_factor=3), (1, 1, 2, 2)),
    (nn.BatchNorm2d(3), (2, 3, 5, 5)),
    (nn.BatchNorm1d(4), (2, 4)),
    (nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    (nn.LayerNorm([5, 5]), (2, 4, 5, 5)),
    (nn.ReLU(), (2, 3, 4)), (nn.LeakyReLU(0.1), (2, 3)), (nn.Sigmoid(), (1,)), (nn.Dropout2d(), (1, 3, 4, 4)),
    (nn.Softmax(dim=1), (2, 5)), (nn.Identity(), (7, 2)),
    (nn.Flatten(), (2, 3, 4, 5)), (nn.Linear(20, 7), (2, 3, 20)),
    (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 7 * 7, 10)),
     (2, 1, 14, 15)),
])
def test_output_shape_matches_torch(layer, shape):
    assert output_shape(layer, shape) == _forward(layer, shape)


def test_output_shape_symbolic():
    assert output_shape(nn.Conv2d(3, 16, 3, padding=1), (1, 3, H, W)) == (1, 16, H, W)
    assert output_shape(nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1), (3, H, W)) == (8, 2 * H, 2 * W)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    shape = output_shape(net, (1, 3, H, W))
    assert shape[:2] == (1, 8)
    for n in (8, 9, 31, 64):
        assert tuple(int(v.subs({H: n, W: n + 1})) for v in shape[2:]) == _forward(net, (1, 3, n, n + 1))[2:]


class MyConv(nn.Conv2d):
    """A subclass: found through the MRO."""


@pytest.mark.parametrize("layer, shape, argument", [
    (nn.Conv2d(3, 8, 7), (1, 3, 5, 5), "kernel"),
    (nn.Conv2d(3, 8, 3), (1, 4, 5, 5), "input"),
    (nn.Conv2d(3, 8, 3), (3, 5), "input"),
    (nn.ConvTranspose2d(1, 1, 1, padding=3), (1, 1, 1, 1), "padding"),
    (nn.MaxPool2d(5), (1, 1, 3, 3), "kernel"),
    (nn.BatchNorm2d(3), (3, 5, 5), "input"),
    (nn.BatchNorm2d(3), (1, 4, 5, 5), "input"),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 5), "input"),
    (nn.Linear(4, 2), (3, 5), "input"),
    (MyConv(3, 8, 9), (1, 3, 5, 5), "kernel"),
])
def test_output_shape_errors_agree_with_torch(layer, shape, argument):
    with pytest.raises((RuntimeError, ValueError)):
        _forward(layer, shape)
    with pytest.raises(ArchcountError) as err:
        output_shape(layer, shape)
    assert err.value.argument == argument
    assert err.value.layer == type(layer).__name__
    assert err.value.shapes == {"input": shape}


def test_output_shape_unknown_layer_and_bad_shape():
    # flattening the batch dimension leaves archcount's per-sample counting: a clear error, not a guess
    with pytest.raises(ArchcountError, match="flattens the batch dimension"):
        output_shape(nn.Flatten(0, 2), (2, 3, 4, 5))
    with pytest.raises(ArchcountError, match="no counting rule for LSTM") as err:
        output_shape(nn.LSTM(3, 4), (1, 2, 3))
    assert err.value.layer == "LSTM"
    with pytest.raises(ArchcountError) as err:
        output_shape(nn.ReLU(), (1, 0, 3))
    assert err.value.argument == "input"
    with pytest.raises(ArchcountError, match="Sequential: layer 1: .*too small"):
        output_shape(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(9)), (1, 1, 8, 8))
    assert output_shape(MyConv(3, 8, 3), torch.Size([1, 3, 8, 8])) == (1, 8, 6, 6)
    assert output_shape(nn.MaxPool2d(2), "1x3x9x9") == (1, 3, 4, 4)


def test_shape_modules_do_not_import_torch():
    code = ("import sys; import analysis.shapes, analysis.layertext; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
