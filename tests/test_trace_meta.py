"""The meta-device shortcuts of the recorder give what torch itself gives, and keep torch._dynamo
unimported (its import was a tenth of an analysis-only report)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from analysis.trace import _ELEMENTWISE_LAYERS, _meta_function, _meta_shortcut

META = "meta"


def _x(*shape, cl=False):
    t = torch.empty(*shape, device=META)
    return t.contiguous(memory_format=torch.channels_last) if cl else t


def _same(a, b):
    assert (a.shape, a.dtype, a.stride(), a.device) == (b.shape, b.dtype, b.stride(), b.device)


@pytest.mark.parametrize("name", sorted(_ELEMENTWISE_LAYERS))
@pytest.mark.parametrize("cl", [False, True], ids=["contiguous", "channels_last"])
def test_elementwise_layers_match_torch(name, cl):
    layer = getattr(nn, name)()
    x = _x(2, 3, 5, 4, cl=cl)
    got = _meta_shortcut(layer, (x,), {})
    assert got is not None
    _same(got, layer(x))


@pytest.mark.parametrize("layer", [nn.ReLU(inplace=True), nn.ReLU6(inplace=True), nn.Hardswish(inplace=True),
                                   nn.Dropout(inplace=True)], ids=lambda m: type(m).__name__)
def test_inplace_layers_return_their_input_as_torch_does(layer):
    x = _x(2, 3, 4, 4)
    assert _meta_shortcut(layer, (x,), {}) is x
    assert layer(x) is x


@pytest.mark.parametrize("bn, shape", [(nn.BatchNorm2d(3), (2, 3, 4, 4)), (nn.BatchNorm1d(3), (2, 3)),
                                       (nn.BatchNorm1d(3), (2, 3, 7)), (nn.BatchNorm3d(3), (2, 3, 2, 2, 2))])
def test_batch_norm_matches_torch(bn, shape):
    bn = bn.to(META)
    x = _x(*shape)
    _same(_meta_shortcut(bn, (x,), {}), bn(x))


@pytest.mark.parametrize("bn, shape", [(nn.BatchNorm2d(5), (2, 3, 4, 4)), (nn.BatchNorm2d(3), (2, 3, 4)),
                                       (nn.BatchNorm1d(3), (1, 3))], ids=["channels", "rank", "one-value"])
def test_batch_norm_leaves_errors_to_torch(bn, shape):
    bn = bn.to(META)
    x = _x(*shape)
    assert _meta_shortcut(bn, (x,), {}) is None
    with pytest.raises((ValueError, RuntimeError)):
        bn(x)


def test_subclasses_and_real_tensors_run_the_real_layer():
    class Twice(nn.ReLU):
        def forward(self, x):
            return torch.cat([x, x], 1)
    assert _meta_shortcut(Twice(), (_x(2, 3, 4, 4),), {}) is None
    assert _meta_shortcut(nn.ReLU(), (torch.zeros(2, 3),), {}) is None
    assert _meta_shortcut(nn.PReLU().to(META), (_x(2, 3),), {}) is None  # has a weight: not in the list


@pytest.mark.parametrize("tensors, kwargs", [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], {"dim": 1}),
    ([(2, 3, 4, 4), (1, 3, 4, 4)], {}),
    ([(2, 3, 4, 4), (2, 3, 4, 6)], {"dim": -1}),
    ([(7,), (2,)], {}),
])
def test_cat_matches_torch(tensors, kwargs):
    ts = [_x(*s) for s in tensors]
    _same(_meta_function("torch.cat", torch.cat, (ts,), kwargs), torch.cat(ts, **kwargs))


@pytest.mark.parametrize("tensors, kwargs", [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], {}),           # sizes disagree outside dim
    ([(2, 3, 4, 4), (2, 3, 4)], {"dim": 1}),       # ranks disagree
    ([(2, 3, 4, 4), (2, 3, 4, 4)], {"dim": 4}),    # dim out of range
], ids=["sizes", "ranks", "dim"])
def test_cat_leaves_errors_to_torch(tensors, kwargs):
    ts = [_x(*s) for s in tensors]
    assert _meta_function("torch.cat", torch.cat, (ts,), kwargs) is None
    with pytest.raises((RuntimeError, IndexError)):
        torch.cat(ts, **kwargs)


def test_cat_of_channels_last_or_mixed_dtypes_runs_the_real_op():
    a = _x(2, 3, 4, 4, cl=True)
    assert _meta_function("torch.cat", torch.cat, ([a, a],), {"dim": 1}) is None
    b = torch.empty(2, 3, 4, 4, device=META, dtype=torch.float16)
    assert _meta_function("torch.cat", torch.cat, ([_x(2, 3, 4, 4), b],), {}) is None


@pytest.mark.parametrize("key, func, args, kwargs", [
    ("torch.nn.functional.relu", F.relu, (), {}),
    ("torch.nn.functional.leaky_relu", F.leaky_relu, (0.2,), {}),
    ("torch.nn.functional.gelu", F.gelu, (), {"approximate": "tanh"}),
    ("torch.nn.functional.hardtanh", F.hardtanh, (-2.0, 2.0), {}),
    ("torch.sigmoid", torch.sigmoid, (), {}),
    ("Tensor.relu", torch.Tensor.relu, (), {}),
])
def test_functional_activations_match_torch(key, func, args, kwargs):
    x = _x(2, 3, 4, 4, cl=True)
    _same(_meta_function(key, func, (x, *args), kwargs), func(x, *args, **kwargs))


@pytest.mark.parametrize("key, func, args, kwargs", [
    ("torch.nn.functional.relu", F.relu, (True,), {}),
    ("torch.nn.functional.leaky_relu", F.leaky_relu, (0.1,), {"inplace": True}),
    ("Tensor.relu_", torch.Tensor.relu_, (), {}),
    ("torch.relu_", torch.relu_, (), {}),
])
def test_inplace_functions_return_their_input_as_torch_does(key, func, args, kwargs):
    x = _x(2, 3, 4, 4)
    assert _meta_function(key, func, (x, *args), kwargs) is x
    assert func(x, *args, **kwargs) is x


def test_counting_the_zoo_does_not_import_dynamo():
    code = ("import sys, analysis, reports.sections as S; from pathlib import Path; import tempfile\n"
            "d = Path(tempfile.mkdtemp())\n"
            "[S.model_section(n, d) for n in ('pool_upsample', 'conv_transpose', 'unet')]\n"
            "S.kernel_models_section(['conv_transpose', 'unet'], verify_models=True)\n"
            "S.receptive_section(['pool_upsample', 'conv_transpose', 'unet']); S.rf_factors_section()\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
