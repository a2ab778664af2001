"""Receptive fields by brute force: which input pixels can change one output unit.

The model is turned into a *connectivity copy*, in float64, whose output is a sum of strictly
positive terms over every input pixel it is connected to, so that the input gradient of one
output unit is nonzero exactly on its receptive field:

* every weight is positive (1 / fan-in for matrices and kernels, 1 for vectors: biases, affine
  parameters, layer scale), so no two paths can cancel;
* activations are the identity (ReLU, ReLU6, SiLU, GELU, ...) and bounded gates (sigmoid, tanh)
  ``x / (1 + x)``: increasing, so they never cut a connection (the real ones cut some only for
  some data), and bounded, so that gated products cannot overflow;
* max pools become average pools of the same geometry (kernel, stride, padding, ceil mode) and
  ``amax`` a mean, so the gradient reaches every tap of the window, not only the arg max;
* normalisations keep exactly their connectivity: BatchNorm (eval) is per channel, i.e. the
  identity; LayerNorm / GroupNorm / softmax become ``x + mean(x over the normalised dims)``,
  which connects each output to all of those inputs, with a positive gradient;
* scaled dot-product attention becomes ``(q k^T + mean) v``, the same connectivity; dropout is off.

The probe back-propagates from one output *position* (all channels summed: the field of a layer
is the union over its channels, as a per-layer receptive field is) and reads off the span of the
nonzero input gradient per axis.  The input is large enough that the field is not clipped (the
thin build keeps it cheap); a field that still covers the whole input from the corner unit is
global (it reads every pixel, e.g. after squeeze-and-excitation or image pooling).
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .reference import model
from .registry import REGISTRY


# ----------------------------------------------------------------------------- connectivity copy

def _identity(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x


def _plus_mean(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x + x.mean(dims, keepdim=True)


def _gate(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """A bounded increasing stand-in for sigmoid/tanh gates (inputs here are positive), so that gated
    products (``x * sigmoid(s)``) cannot overflow."""
    return x / (1 + x)


def _softmax(x: torch.Tensor, dim: int | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Every output reads every input along ``dim`` with a positive gradient; the normaliser is a
    constant for the gradient (so nothing cancels) and keeps the values bounded."""
    y = _plus_mean(x, (dim if dim is not None else -1,))
    return y / y.sum(dim if dim is not None else -1, keepdim=True).detach()


def _layer_norm(x: torch.Tensor, normalized_shape: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _plus_mean(x, tuple(range(-len(tuple(normalized_shape)), 0)))


def _group_norm(x: torch.Tensor, num_groups: int, *args: Any, **kwargs: Any) -> torch.Tensor:
    g = x.reshape(x.shape[0], num_groups, -1)
    return _plus_mean(g, (2,)).reshape(x.shape)


def _instance_norm(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _plus_mean(x, tuple(range(2, x.dim())))


def _max_pool(avg: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def pool(x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
             ceil_mode: bool = False, return_indices: bool = False) -> torch.Tensor:
        if return_indices or any(d != 1 for d in ([dilation] if isinstance(dilation, int) else dilation)):
            raise NotImplementedError("connectivity copy: max pool with indices or dilation")
        return avg(x, kernel_size, stride if stride else kernel_size, padding, ceil_mode, True)
    return pool


def _amax(x: torch.Tensor, dim: Any = (), keepdim: bool = False) -> torch.Tensor:
    return x.mean(dim if dim != () else tuple(range(x.dim())), keepdim=keepdim)


def _adaptive_max(avg: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def pool(x: torch.Tensor, output_size: Any, return_indices: bool = False) -> torch.Tensor:
        if return_indices:
            raise NotImplementedError("connectivity copy: adaptive max pool with indices")
        return avg(x, output_size)
    return pool


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None, dropout_p: float = 0.0,
               is_causal: bool = False, **kwargs: Any) -> torch.Tensor:
    if attn_mask is not None or is_causal:
        raise NotImplementedError("connectivity copy: masked attention")
    return _softmax(q @ k.transpose(-2, -1), -1) @ v


_T = torch.Tensor
NEUTRAL: dict[Any, Callable[..., Any]] = {
    **{f: _identity for f in (
        F.relu, F.relu_, torch.relu, torch.relu_, _T.relu, _T.relu_, F.relu6, F.hardtanh, F.hardtanh_,
        F.silu, F.gelu, F.hardswish, F.leaky_relu, F.elu, F.mish, F.softplus, F.batch_norm,
        F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)},
    **{f: _gate for f in (F.sigmoid, torch.sigmoid, _T.sigmoid, _T.sigmoid_, F.tanh, torch.tanh, _T.tanh, _T.tanh_,
                          F.hardsigmoid)},
    **{f: _softmax for f in (F.softmax, torch.softmax, _T.softmax, F.log_softmax, torch.log_softmax,
                             _T.log_softmax)},
    F.layer_norm: _layer_norm, F.group_norm: _group_norm, F.instance_norm: _instance_norm,
    F.max_pool1d: _max_pool(F.avg_pool1d), F.max_pool2d: _max_pool(F.avg_pool2d),
    F.max_pool3d: _max_pool(F.avg_pool3d),
    F.adaptive_max_pool1d: _adaptive_max(F.adaptive_avg_pool1d),
    F.adaptive_max_pool2d: _adaptive_max(F.adaptive_avg_pool2d),
    F.adaptive_max_pool3d: _adaptive_max(F.adaptive_avg_pool3d),
    torch.amax: _amax, _T.amax: _amax,
    F.scaled_dot_product_attention: _attention,
}
#: functions whose gradient reaches only some of their inputs: refused rather than mis-measured
REFUSED = (torch.max, _T.max, torch.min, _T.min, torch.amin, _T.amin, torch.topk, _T.topk, torch.sort, _T.sort)


class Connectivity(TorchFunctionMode):
    """Replaces the functions of :data:`NEUTRAL` by their connectivity-preserving versions."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in REFUSED:
            raise NotImplementedError(f"connectivity copy: {func} has no neutral version")
        return NEUTRAL.get(func, func)(*args, **kwargs)


def connectivity_copy(net: nn.Module) -> nn.Module:
    """A float64 copy of ``net`` with every parameter positive (see the module docstring)."""
    out = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for p in out.parameters():          # tied parameters appear once
            p.fill_(1.0 / p[0].numel() if p.dim() >= 2 else 1.0)
            p.requires_grad_(False)         # only the input's gradient is wanted
    return out


# ----------------------------------------------------------------------------- probing

class _Stop(Exception):
    """Raised by the capture hook once the probed call has run: the rest of the forward is not needed."""


@dataclass(frozen=True)
class Extent:
    """Where one output unit's input gradient is nonzero."""

    span: tuple[int, int]         #: last - first + 1 nonzero row, column
    connected: tuple[int, int]    #: rows, columns with a nonzero gradient (fewer than span when dilated)
    first: tuple[int, int]        #: first nonzero row, column
    clipped: bool                 #: touches the input border (the field may extend beyond the input)
    whole: bool                   #: covers the whole input


@dataclass(frozen=True)
class FieldMeasurement:
    """The brute-force receptive field of one layer (one module call) of a corpus model."""

    model: str
    layer: str                         #: "" (model output), a module path, or path#k for its k-th call
    input_size: int                    #: the side of the square input measured on
    map_size: tuple[int, int]          #: the layer's output map
    size: tuple[int, int] | None       #: the largest span over the probed unclipped positions (None if global)
    centre: Extent
    corner: Extent | None              #: probed only when the centre's field covers the whole input
    probes: int
    is_global: bool


def _layer_output(net: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (its k-th call for ``path#k``) on input ``x``, under the connectivity mode."""
    if not layer:
        with Connectivity():
            return net(x)
    path, _, k = layer.partition("#")
    want = int(k) if k else 1
    module = net.get_submodule(path)
    seen: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        seen.append(output[0] if isinstance(output, (tuple, list)) else output)
        if len(seen) == want:
            raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        with Connectivity():
            net(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if len(seen) < want:
        raise ValueError(f"{layer}: module called {len(seen)} times, not {want}")
    return seen[want - 1]


def _extent(grad: torch.Tensor) -> Extent:
    mask = grad[0].abs().sum(0) > 0            # (H, W): summed over input channels, all terms positive
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    if rows.numel() == 0:
        raise ValueError("the output unit depends on no input pixel")
    h, w = mask.shape
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return Extent((r1 - r0 + 1, c1 - c0 + 1), (rows.numel(), cols.numel()), (r0, c0),
                  clipped=r0 == 0 or c0 == 0 or r1 == h - 1 or c1 == w - 1,
                  whole=(r0, c0, r1, c1) == (0, 0, h - 1, w - 1))


def probe(net: nn.Module, layer: str, channels: int, size: int, walk: bool = False
          ) -> tuple[tuple[int, int], Extent, Extent | None, list[Extent]]:
    """Map size, the centre unit's extent, the corner unit's (only when the centre's covers the whole
    input), and the extents of every probed unit.

    ``walk``: probe the diagonal units (i, i) outwards from the centre in both directions until their
    fields touch the border, i.e. every diagonal unit whose field is unclipped (fields move monotonically
    with the position, and on the diagonal each unit stands for its row and its column).
    """
    x = torch.ones(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    out = _layer_output(net, layer, x)
    if out.dim() != 4:
        raise ValueError(f"{layer!r}: output {tuple(out.shape)} is not a (N, C, H, W) map")
    hm, wm = out.shape[-2:]

    def at(i: int, j: int) -> Extent:
        (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
        return _extent(grad)

    centre = at(hm // 2, wm // 2)
    corner = at(0, 0) if centre.whole else None
    probed = [centre]
    if walk and not centre.clipped:
        for step in (1, -1):
            i = hm // 2 + step
            while 0 <= i < min(hm, wm):
                e = at(i, i)
                if e.clipped:
                    break
                probed.append(e)
                i += step
    return (hm, wm), centre, corner, probed


def measure_layer(name: str, layer: str, size: int, max_doublings: int = 2) -> FieldMeasurement:
    """The receptive field of ``layer`` of corpus model ``name``, on its thin build, from input side ``size``
    (doubled while the centre unit's field is clipped)."""
    entry = REGISTRY[name]
    net = connectivity_copy(model(name, thin=True))
    for _ in range(max_doublings + 1):
        map_size, centre, corner, probed = probe(net, layer, entry.input_shape[0], size, entry.rf_walk)
        if corner is not None and corner.whole:
            return FieldMeasurement(name, layer, size, map_size, None, centre, corner, 1, True)
        if not centre.clipped:
            span = (max(e.span[0] for e in probed), max(e.span[1] for e in probed))
            return FieldMeasurement(name, layer, size, map_size, span, centre, corner, len(probed), False)
        size *= 2
    raise ValueError(f"{name}.{layer}: field still clipped at input {size // 2}; raise its size")


@functools.lru_cache(maxsize=None)
def measure_field(name: str) -> tuple[FieldMeasurement, ...]:
    """Brute-force receptive fields of every ``rf_layers`` entry of corpus model ``name`` (cached)."""
    return tuple(measure_layer(name, layer, size) for layer, size in REGISTRY[name].rf_layers)


__all__ = ["Connectivity", "Extent", "FieldMeasurement", "NEUTRAL", "connectivity_copy", "measure_field",
           "measure_layer", "probe"]
