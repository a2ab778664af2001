"""The zoo, parametrised over the registry: shapes, gradients and parameter counts against
independently written formulas."""
from __future__ import annotations

import pytest
import sympy as sp
import torch

import models
from analysis.errors import ArchcountError
from models.registry import ModelRegistry
from models.zoo import register_zoo

k, nic, nf, nc, N = sp.symbols("k nic nf nc N", positive=True, integer=True)
BNA = 2  # BatchNorm affine parameters per channel (gamma, beta)


def conv(cin, cout):
    """weights + bias of a k x k conv."""
    return k**2 * cin * cout + cout


# Written by hand from the architecture descriptions in the foundation issue.
PARAM_FORMULAS = {
    "pool_upsample": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, nf) + conv(nf, nc) + conv(nc, nc)
    + BNA * (nf + 2 * nf + nf + nc),
    "conv_transpose": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, nf) + conv(nf, nc) + conv(nc, nc)
    + BNA * (nf + 2 * nf + nf + nc),
    "unet": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, nf) + conv(2 * nf, nc) + conv(nic + nc, nc)
    + BNA * (nf + 2 * nf + nf + nc),
    "cnn_2021": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, 2 * nf) + conv(2 * nf, nf) + conv(nf, nc)
    + conv(nc, nc) + BNA * (nf + 2 * nf + 2 * nf + nf + nc),
    "unet_2021": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, 2 * nf) + conv(4 * nf, nf) + conv(2 * nf, nc)
    + conv(nic + nc, nc) + BNA * (nf + 2 * nf + 2 * nf + nf + nc),
    "mnist_fixed": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, 4 * nf) + (4 * nf * 9 * nc + nc),
    "mnist_global_pool": conv(nic, nf) + conv(nf, 2 * nf) + conv(2 * nf, N) + (N * nc + nc),
}

# Block output shapes [C, H, W] for the colourization nets (from the issue), at input H x W.
BLOCK_SHAPES = {
    "pool_upsample": lambda h, w: {"block1": (nf, h // 2, w // 2), "block2": (2 * nf, h // 4, w // 4),
                                   "block3": (nf, h // 2, w // 2), "block4": (nc, h, w), "final": (nc, h, w)},
    "conv_transpose": lambda h, w: {"block1": (nf, h // 2, w // 2), "block2": (2 * nf, h // 4, w // 4),
                                    "block3": (nf, h // 2, w // 2), "block4": (nc, h, w), "final": (nc, h, w)},
    "cnn_2021": lambda h, w: {"block1": (nf, h // 2, w // 2), "block2": (2 * nf, h // 4, w // 4),
                              "block3": (2 * nf, h // 4, w // 4), "block4": (nf, h // 2, w // 2),
                              "block5": (nc, h, w), "final": (nc, h, w)},
}
BLOCK_SHAPES["unet"] = BLOCK_SHAPES["conv_transpose"]
BLOCK_SHAPES["unet_2021"] = BLOCK_SHAPES["cnn_2021"]

HP_POINTS = [
    dict(kernel=3, num_in_channels=1, num_filters=32, num_colours=24),
    dict(kernel=5, num_in_channels=3, num_filters=7, num_colours=5),
    dict(kernel=1, num_in_channels=2, num_filters=4, num_colours=3),
    dict(kernel=7, num_in_channels=1, num_filters=3, num_colours=11),
]


def _input(spec, hp, size):
    return torch.randn(2, hp["num_in_channels"], *size)


def _subs(hp):
    return {k: hp["kernel"], nic: hp["num_in_channels"], nf: hp["num_filters"], nc: hp["num_colours"],
            N: hp.get("N", 64)}


@pytest.mark.parametrize("name", models.available())
def test_every_model_has_a_hand_formula(name):
    assert name in PARAM_FORMULAS, f"write an independent parameter formula for {name}"


@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("hp", HP_POINTS, ids=lambda hp: "k{kernel}-nic{num_in_channels}-nf{num_filters}-nc{num_colours}".format(**hp))
def test_parameter_count_equals_formula(name, hp):
    spec = models.spec(name)
    hp = {key: v for key, v in hp.items() if key in spec.defaults}
    net = models.build(name, **hp)
    measured = sum(p.numel() for p in net.parameters())
    expected = PARAM_FORMULAS[name].subs(_subs(spec.hparams(**hp)))
    assert sp.simplify(expected - measured) == 0


@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("size", [(32, 32), (64, 64)])
def test_output_shape(name, size):
    spec = models.spec(name)
    size = spec.fixed_size or size
    hp = spec.hparams()
    out = models.build(name)(_input(spec, hp, size))
    if spec.task == "colourization":
        assert tuple(out.shape) == (2, hp["num_colours"], *size)
    else:
        assert tuple(out.shape) == (2, hp["num_colours"])


@pytest.mark.parametrize("name", sorted(BLOCK_SHAPES))
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_intermediate_shapes_from_hooks(name, size):
    hp = dict(kernel=5, num_in_channels=1, num_filters=6, num_colours=4)
    net = models.build(name, **hp)
    seen = {}
    for block in BLOCK_SHAPES[name](*size):
        getattr(net, block).register_forward_hook(lambda m, i, o, b=block: seen.__setitem__(b, tuple(o.shape)))
    net(torch.randn(3, 1, *size))
    subs = _subs(hp)
    for block, shape in BLOCK_SHAPES[name](*size).items():
        expected = (3,) + tuple(int(sp.sympify(s).subs(subs)) for s in shape)
        assert seen[block] == expected, block


@pytest.mark.parametrize("name", models.available())
def test_every_parameter_gets_a_finite_gradient(name):
    spec = models.spec(name)
    torch.manual_seed(0)
    net = models.build(name)
    out = net(_input(spec, spec.hparams(), spec.fixed_size or (32, 32)))
    out.float().pow(2).mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["conv_transpose", "unet"])
@pytest.mark.parametrize("kern", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("size", [(32, 32), (64, 48), (8, 12)])
def test_strided_nets_build_with_every_kernel_and_keep_the_handout_shapes(name, kern, size):
    """Even kernels too: stride-2 layers with the solver's paddings, the final conv asymmetric 'same'."""
    hp = dict(kernel=kern, num_in_channels=1, num_filters=3, num_colours=5)
    net = models.build(name, **hp)
    seen = {}
    for block in BLOCK_SHAPES[name](*size):
        getattr(net, block).register_forward_hook(lambda m, i, o, b=block: seen.__setitem__(b, tuple(o.shape)))
    out = net(torch.randn(2, 1, *size))
    subs = _subs(hp)
    for block, shape in BLOCK_SHAPES[name](*size).items():
        assert seen[block] == (2,) + tuple(int(sp.sympify(s).subs(subs)) for s in shape), (block, kern)
    assert tuple(out.shape) == (2, 5, *size)
    # the final conv pads (k-1)//2 before and k//2 after: one more row after for even k
    pads = net.final._reversed_padding_repeated_twice
    assert net.final.padding == "same" and pads == [(kern - 1) // 2, kern // 2] * 2


@pytest.mark.parametrize("name", ["conv_transpose", "unet"])
def test_even_kernel_final_conv_equals_explicit_asymmetric_zero_padding(name):
    """padding='same' for k=4 is F.pad(1 before, 2 after) followed by a conv without padding."""
    torch.manual_seed(0)
    net = models.build(name, kernel=4, num_filters=3, num_colours=5)
    conv = net.final
    x = torch.randn(2, conv.in_channels, 10, 14)
    explicit = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias)
    assert torch.allclose(conv(x), explicit, atol=1e-6)


@pytest.mark.parametrize("name", ["conv_transpose", "unet"])
def test_even_kernel_nets_refuse_too_small_inputs_clearly(name):
    net = models.build(name, kernel=4, num_filters=2)
    with pytest.raises(ArchcountError, match="input H=2"):
        net(torch.randn(1, 1, 2, 4 if name == "unet" else 8))


def test_pool_upsample_still_refuses_even_kernels():
    with pytest.raises(ArchcountError, match="kernel 4"):
        models.build("pool_upsample", kernel=4)


@pytest.mark.parametrize("bad, arg", [
    (dict(num_filters=0), "num_filters"), (dict(num_colours=-3), "num_colours"),
    (dict(kernel=2), "kernel"), (dict(num_in_channels=1.5), "num_in_channels"), (dict(width=3), "width")])
def test_bad_hyperparameters_name_model_and_argument(bad, arg):
    with pytest.raises(ArchcountError) as err:
        models.build("pool_upsample", **bad)
    assert "pool_upsample" in str(err.value) and arg in str(err.value)


def test_unknown_model_lists_available():
    with pytest.raises(ArchcountError, match="unknown model.*unet"):
        models.build("resnet9000")


@pytest.mark.parametrize("name, size", [("unet", (30, 32)), ("pool_upsample", (2, 2)), ("mnist_fixed", (64, 64))])
def test_input_too_small_or_wrong_is_a_clear_error(name, size):
    with pytest.raises(ArchcountError, match=f"{name}.*input"):
        models.build(name)(torch.randn(1, 1, *size))


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ArchcountError, match="3 channels but num_in_channels=1"):
        models.build("unet")(torch.randn(1, 3, 32, 32))


def test_registration_is_explicit_and_isolated():
    fresh = ModelRegistry()
    assert fresh.available() == []
    register_zoo(fresh)
    assert fresh.available() == models.available()

    @fresh.register("mine", description="a user model", defaults=dict(kernel=3, num_in_channels=1,
                                                                        num_filters=2, num_colours=3))
    def mine(kernel, num_in_channels, num_filters, num_colours):
        return torch.nn.Conv2d(num_in_channels, num_colours, kernel, padding=kernel // 2)

    assert "mine" in fresh and "mine" not in models.registry
    with pytest.raises(ArchcountError, match="already registered"):
        fresh.add("mine", mine, description="again")
    fresh.unregister("mine")
    assert "mine" not in fresh


def _measured_receptive_extent(net: torch.nn.Module, size: int) -> int:
    """Largest receptive-field extent (rows) over output rows near the centre, by back-propagation.

    All weights are 1 and biases 0, BatchNorm is the identity (eval mode, fresh statistics) and the
    input is positive, so every ReLU passes and the gradient is positive exactly on the receptive field.
    """
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0 if p.dim() > 1 else 0.0)
    net.eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(1.0)
    extent = 0
    for row in range(size // 2 - 4, size // 2 + 4):
        x = torch.ones(1, net.num_in_channels, size, size, requires_grad=True)
        net(x)[0, 0, row, size // 2].backward()
        rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1) > 0).flatten()
        extent = max(extent, int(rows.max() - rows.min() + 1))
    return extent


@pytest.mark.parametrize("name", ["conv_transpose", "unet"])
@pytest.mark.parametrize("kern", [3, 4, 5])
def test_receptive_field_of_every_kernel_matches_back_propagation(name, kern):
    from analysis.receptive import receptive_field
    net = models.build(name, kernel=kern, num_filters=2, num_colours=2)
    measured = _measured_receptive_extent(net, 64)
    assert int(receptive_field(name, kernel=kern).size[0]) == measured
