"""Receptive fields measured on the real model: back-propagation through a connectivity copy.

The model runs in float64 with every weight positive (``1/fan_in``) and every bias 0, under the
recorder (:func:`analysis.trace.record`) with substitutions that hide nothing: max pooling becomes
average pooling of the same geometry (its gradient reaches every tap, not just the arg-max),
normalisation, activations and dropout become identity, inside layers as well as in ``forward``.
Single output units of every recorded layer call are back-propagated, and the non-zero input
gradient is the unit's support.  :func:`verify_receptive_field` compares it with
:func:`analysis.receptive_field`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..rules import RULES, RuleRegistry
from ..symbols import H, W
from ..symbols import k as K_SYM
from .engine import finite as finite_windows
from .fields import receptive_field
from .plan import plan
from .result import ReceptiveField, _jlist, _jval, _num


@dataclass(frozen=True)
class MeasuredLayer:
    """Input supports of single output units of one layer, measured on the connectivity copy."""

    path: str
    input_size: tuple[int, ...]           #: the input size this layer was measured at
    out_shape: tuple[int, ...]            #: its output (without batch)
    positions: tuple[tuple[int, ...], ...]
    windows: tuple[tuple[tuple[int, int] | None, ...], ...]   #: per position, per axis: (first, last) read
    filled: tuple[bool, ...]              #: per position: the support is the full box of its extents
    interior: tuple[bool, ...]            #: per position: an unclipped interior unit (centre run only)
    positional: bool                      #: the output has positions (not global)
    run: int = 8                          #: the first ``run`` positions are the centre run

    def extents(self) -> list[tuple[int, ...]]:
        return [tuple(0 if w is None else w[1] - w[0] + 1 for w in pos) for pos in self.windows]

    @property
    def max_size(self) -> tuple[int, ...]:
        ext = self.extents()
        return tuple(max(e[i] for e in ext) for i in range(len(ext[0])))

    @property
    def complete(self) -> bool:
        """Every unit of the centre run is interior: its largest and smallest windows are the unclipped ones."""
        return self.positional and all(self.interior[: self.run])

    @property
    def interior_min(self) -> tuple[int, ...] | None:
        ext = [e for e, ok in zip(self.extents(), self.interior) if ok]
        return tuple(min(e[i] for e in ext) for i in range(len(ext[0]))) if ext else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "input_size": list(self.input_size), "out_shape": list(self.out_shape),
                "positions": [list(p) for p in self.positions],
                "windows": [[None if w is None else list(w) for w in pos] for pos in self.windows],
                "filled": list(self.filled), "interior": list(self.interior), "positional": self.positional,
                "max_size": list(self.max_size)}


@dataclass(frozen=True)
class RFMeasurement:
    model: str
    hparams: Mapping[str, Any]
    layers: tuple[MeasuredLayer, ...]

    def layer(self, path: str) -> MeasuredLayer:
        for row in self.layers:
            if row.path == path:
                return row
        raise ArchcountError(f"layer {path!r} was not measured", model=self.model, argument="path")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "hparams": {k_: _jval(v) for k_, v in self.hparams.items()},
                "layers": [r.to_dict() for r in self.layers]}


def _identity(x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def _avg_for_max(nd: int) -> Callable[..., Any]:
    def avg(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
            ceil_mode: bool = False, return_indices: bool = False) -> Any:
        import torch
        import torch.nn.functional as F
        d = dilation if isinstance(dilation, (tuple, list)) else (dilation,) * nd
        if any(v != 1 for v in d):  # a dilated window: a grouped conv with a dilated all-ones kernel
            ks = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * nd
            c = input.shape[1]
            w = torch.ones((c, 1, *ks), dtype=input.dtype) / max(1, int(torch.tensor(ks).prod()))
            conv = getattr(F, f"conv{nd}d")
            out = conv(input, w, None, stride if stride not in (None, (), []) else ks, padding, d, c)
        else:
            pool = getattr(F, f"avg_pool{nd}d")
            out = pool(input, kernel_size, stride if stride not in (None, (), []) else None, padding,
                       ceil_mode=ceil_mode, count_include_pad=True)
        return (out, torch.zeros_like(out, dtype=torch.long)) if return_indices else out
    return avg


def _adaptive_avg(nd: int) -> Callable[..., Any]:
    def avg(input: Any, output_size: Any, return_indices: bool = False) -> Any:
        import torch
        import torch.nn.functional as F
        out = getattr(F, f"adaptive_avg_pool{nd}d")(input, output_size)
        return (out, torch.zeros_like(out, dtype=torch.long)) if return_indices else out
    return avg


_NEUTRAL = ("relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu", "silu",
            "mish", "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "softplus", "softsign", "sigmoid", "tanh",
            "threshold", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
            "batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm", "rms_norm",
            "softmax", "log_softmax", "prelu", "rrelu", "logsigmoid", "silu_", "sigmoid_", "tanh_", "gelu_",
            "hardswish_", "mish_")


def connectivity_substitutes() -> dict[str, Callable[..., Any]]:
    """Op key -> replacement: max pools by average pools, norms / activations / dropout by identity."""
    subs: dict[str, Callable[..., Any]] = {}
    for nd in (1, 2, 3):
        for key in (f"torch.nn.functional.max_pool{nd}d", f"torch.max_pool{nd}d",
                    f"torch.nn.functional.max_pool{nd}d_with_indices"):
            subs[key] = _avg_for_max(nd)
        for key in (f"torch.nn.functional.adaptive_max_pool{nd}d", f"torch.adaptive_max_pool{nd}d",
                    f"torch.nn.functional.adaptive_max_pool{nd}d_with_indices"):
            subs[key] = _adaptive_avg(nd)
    for name in _NEUTRAL:
        for prefix in ("torch.nn.functional.", "torch.", "Tensor."):
            subs[prefix + name] = _identity
    return subs


def connectivity_copy(module: Any) -> Any:
    """A float64 copy of ``module`` with every weight ``1/fan_in`` (positive) and every bias 0."""
    import torch
    net = copy.deepcopy(module).double().eval()
    for m in net.modules():  # input checks and other hooks are not connectivity (and refuse larger inputs)
        m._forward_pre_hooks.clear()
        m._forward_hooks.clear()
    with torch.no_grad():
        for pname, prm in net.named_parameters():
            if prm.dim() >= 2:
                prm.fill_(1.0 / max(1, prm[0].numel()))
            else:
                prm.fill_(0.0 if pname.rsplit(".", 1)[-1].endswith("bias") else 1.0)
    net.requires_grad_(False)
    return net


def _input_channels(module: Any) -> int:
    import torch.nn as nn
    for m in module.modules():
        for attr in ("in_channels", "in_features", "num_features"):
            v = getattr(m, attr, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
    return 1


def measure_receptive_field(model: Any, *, input_size: int | None = None, run: int = 8, max_size: int = 512,
                            minimal_channels: bool = True, input_channels: int | None = None,
                            **hparams: Any) -> RFMeasurement:
    """Measure input supports of single output units of every layer call on the model's connectivity copy.

    For each layer, ``run`` consecutive positions on the centre diagonal (every phase up to period
    ``run``) and the corners and edge midpoints are back-propagated (one batch element each).
    Positional layers whose centre units touch the image border are measured again at twice the
    input size (up to ``max_size``; beyond a model's own size limit only the layers that still run
    are measured).  Zoo models are built with 1 input channel, 1 filter and 1 colour unless given
    (``minimal_channels``): the pattern over positions does not depend on the channel counts.

    >>> m = measure_receptive_field("conv_transpose", kernel=3)
    >>> m.layer("final").max_size, m.layer("final").interior_min
    ((15, 15), (11, 11))
    """
    import torch

    name, module, spec = _build(model, hparams, minimal_channels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is many times faster than contended ones
    try:
        net = connectivity_copy(module)
        in_ch = input_channels or _input_channels(net)
        size = input_size or _default_size(spec)
        results: dict[str, MeasuredLayer] = {}
        todo: set[str] | None = None
        while True:
            try:
                done = _measure_at(net, size, in_ch, run, todo, name)
            except ArchcountError:
                if todo is None:
                    raise
                break  # beyond the model's own size limit: keep what the smaller input measured
            results.update(done)
            grow = {key for key, ml in done.items() if ml.positional and not ml.complete}
            if not grow or size * 2 > max_size:
                break
            size *= 2
            todo = grow
        return RFMeasurement(name, dict(hparams), tuple(results.values()))
    finally:
        torch.set_num_threads(threads)


def _build(model: Any, hparams: Mapping[str, Any], minimal: bool) -> tuple[str, Any, Any]:
    import torch.nn as nn
    if isinstance(model, nn.Module):
        if hparams:
            raise ArchcountError("hyperparameters cannot be set on a concrete nn.Module", argument="hparams")
        return type(model).__name__, model, None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        hp = dict(hparams)
        if minimal:
            for key in ("num_in_channels", "num_filters", "num_colours"):
                if key in spec.defaults:
                    hp.setdefault(key, 1)
        try:
            return spec.name, zoo.build(model, **hp), spec
        except ArchcountError as exc:
            raise exc.with_context(model=spec.name) from None
    if callable(model):
        return getattr(model, "__name__", "model"), model(**hparams), None
    raise ArchcountError(f"expected a zoo name, a factory or an nn.Module, got {type(model).__name__}",
                         argument="model")


def _input_channels(gm: Any) -> int:
    import torch.nn as nn
    for m in gm.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                          nn.ConvTranspose3d)):
            return m.in_channels
    return 1


def _default_size(spec: Any) -> int:
    if spec is None:
        return 64
    if spec.fixed_size:
        return spec.fixed_size[0]
    size = 64
    while not spec.valid_size(size):  # pragma: no cover - zoo sizes accept 64
        size += 1
    return size


def _positions(shape: Sequence[int], run: int) -> list[tuple[int, ...]]:
    centre = [max(0, s // 2 - run // 2) for s in shape]
    out: list[tuple[int, ...]] = []
    for a in range(run):
        out.append(tuple(min(c + a, s - 1) for c, s in zip(centre, shape)))
    corners = [tuple(0 if (b >> i) & 1 == 0 else s - 1 for i, s in enumerate(shape)) for b in range(2 ** len(shape))]
    mids = []
    for i, s in enumerate(shape):
        for edge in (0, s - 1):
            mids.append(tuple(edge if j == i else t // 2 for j, t in enumerate(shape)))
    for p in corners + mids:
        if p not in out:
            out.append(p)
    return out


def _measure_at(net: Any, size: int, in_ch: int, run: int, only: set[str] | None,
                name: str) -> dict[str, MeasuredLayer]:
    import torch

    from ..trace import record
    batch = run + 8  # the centre run, 4 corners and 4 edge midpoints (2-d)
    x = torch.ones((batch, in_ch, size, size), dtype=torch.float64, requires_grad=True)
    rec = record(net, [x], keep_values=True, substitute=connectivity_substitutes(), partial=True)
    if rec.error is not None and len(rec.values) <= 1:
        raise ArchcountError(f"the structural measurement runs 2-d models on [BS, C, {size}, {size}] inputs, "
                             f"and this one failed at once: {type(rec.error).__name__}: {rec.error}",
                             model=name) from None
    out: dict[str, MeasuredLayer] = {}
    for node in rec.nodes:
        if node.kind not in ("module", "function") or node.name not in rec.values:
            continue
        if only is not None and node.path not in only:
            continue
        outs = rec.values[node.name][1]
        if not outs:
            continue
        v = outs[0]
        if not isinstance(v, torch.Tensor) or v.dim() < 2 or v.shape[0] != batch or not v.requires_grad:
            continue
        spatial = tuple(v.shape[2:])
        positional = len(spatial) >= 1 and any(s > 1 for s in spatial)
        pos = _positions(spatial, run) if positional else [tuple(0 for _ in spatial)]
        pos = pos[:batch]
        loss = 0
        for b, p in enumerate(pos):
            loss = loss + v[(b, slice(None)) + p].sum()
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        windows, filled, interior = [], [], []
        for b in range(len(pos)):
            mask = (grad[b] != 0).any(0)
            per_axis = []
            box = 1
            for ax in range(mask.dim()):
                other = tuple(i for i in range(mask.dim()) if i != ax)
                hit = mask.any(dim=other) if other else mask
                idx = hit.nonzero().flatten()
                if len(idx) == 0:
                    per_axis.append(None)
                    box = 0
                else:
                    lo, hi = int(idx[0]), int(idx[-1])
                    per_axis.append((lo, hi))
                    box *= hi - lo + 1
            windows.append(tuple(per_axis))
            filled.append(int(mask.sum()) == box)
            # border probes are never interior.  A centre unit is when its layer has at least 2*run positions
            # per axis (so the run sits in the middle half of the layer, away from missing border units) and
            # its support lies in the middle half of the image (ancestors falling off the border would put
            # it near that border); a unit reading nothing is judged by its position alone
            lo_ok, hi_ok = size // 4, size - 1 - size // 4
            inner = all(sh >= 2 * run and sh // 4 <= pi <= sh - 1 - sh // 4 for pi, sh in zip(pos[b], spatial))
            if all(w is not None for w in per_axis):
                inner = inner and all(lo_ok <= w[0] and w[1] <= hi_ok for w in per_axis)
            interior.append(positional and b < run and inner)
        out[node.path] = MeasuredLayer(node.path, (size,) * 2, tuple(v.shape[1:]), tuple(pos), tuple(windows),
                                       tuple(filled), tuple(interior), positional, run if positional else 0)
    return out


@dataclass(frozen=True)
class RFCheckRow:
    kernel: int | None     #: None for a concrete nn.Module
    path: str
    quantity: str          #: size | min_size | start | coverage
    formula: Any
    measured: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "path": self.path, "quantity": self.quantity,
                "formula": _jval(self.formula) if not isinstance(self.formula, tuple) else _jlist(self.formula),
                "measured": list(self.measured) if isinstance(self.measured, tuple) else self.measured,
                "ok": self.ok}


@dataclass(frozen=True)
class RFCheck:
    """The symbolic receptive fields against the structural measurement, layer by layer."""

    model: str
    kernels: tuple[int | None, ...]
    rows: tuple[RFCheckRow, ...]
    skipped: tuple[str, ...] = ()         #: layers whose interior units did not fit in ``max_size``

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def failures(self) -> list[RFCheckRow]:
        return [r for r in self.rows if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "kernels": list(self.kernels), "ok": self.ok,
                "rows": [r.to_dict() for r in self.rows], "skipped": list(self.skipped)}


def verify_receptive_field(model: Any, kernels: Sequence[int] | None = None, *, input_size: int | None = None,
                           max_size: int = 512, **hparams: Any) -> RFCheck:
    """Check :func:`receptive_field` against the structural measurement, layer by layer, at each kernel.

    The formulas are derived once (symbolic in k unless ``kernel`` is given) and evaluated at each
    kernel.  Per positional layer: the largest window equals the largest measured support
    (``size``), the smallest the smallest interior support (``min_size``), and ``start + jump*o``
    the centre of a measured interior unit ``o`` of phase 0 (``start``); the exact bounded-image
    windows equal the measured ones at every measured position, borders included (``windows``).
    Per global layer: the claimed size (the whole input; the exact extent read when the kernel and
    ``input_size`` are numeric) equals the measured extent read (``coverage``).  ``kernels``
    defaults to (3, 5, 7), or to the given ``kernel``.

    >>> verify_receptive_field("unet", kernels=(3,)).ok
    True
    """
    fixed = hparams.get("kernel")
    if _is_module(model):
        if kernels not in (None, (), [None], (None,)):
            raise ArchcountError("a concrete nn.Module has fixed kernels; pass a factory or zoo name to vary k",
                                 argument="kernels")
        kernels = (None,)
    elif kernels is None:
        kernels = (fixed,) if fixed is not None else (3, 5, 7)
    elif fixed is not None and tuple(kernels) != (fixed,):
        raise ArchcountError(f"kernel={fixed} is fixed but kernels={tuple(kernels)} were asked for",
                             argument="kernels")
    rf = receptive_field(model, input_size=input_size, **hparams)
    from ..counting import _capture, _default_request, input_sizes
    spec = None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
    from ..capture import InputRequest
    req = _default_request(model, hparams, input_sizes(input_size if input_size is not None else (
        tuple(spec.fixed_size) if spec is not None and spec.fixed_size else (H, W)), spec=spec))
    req = InputRequest(req.shapes, req.dtypes, default_channels=1)
    graph = _capture(model, hparams, None, RULES, req)
    steps, _ = plan(graph, RULES)
    path_of = {st.name: st.path for st in steps}
    rows: list[RFCheckRow] = []
    skipped: list[str] = []
    for kv in kernels:
        meas_hp = {key: v for key, v in hparams.items() if key != "kernel"}
        if kv is not None:
            meas_hp["kernel"] = kv
        periods = [p for r in rf.layers for p in (r.period or ())]
        run = min(64, max([8] + [2 * p for p in periods]))
        meas = measure_receptive_field(model, input_size=input_size, run=run, max_size=max_size, **meas_hp)
        at = rf.evaluate(k=kv) if kv is not None and K_SYM in _expr_symbols(rf) else rf
        finite: dict[tuple[int, ...], dict[str, Any]] = {}
        for layer in at.layers:
            try:
                ml = meas.layer(layer.path)
            except ArchcountError:
                continue
            if ml.input_size not in finite:
                env = finite_windows(steps, ml.input_size, kv)
                finite[ml.input_size] = {path_of[name]: v for name, v in env.items() if name in path_of}
            exact = finite[ml.input_size].get(layer.path)
            if layer.is_global:
                want = tuple(_num(sp.sympify(x).subs({H: ml.input_size[0], W: ml.input_size[1]})) for x in layer.size)
                rows.append(RFCheckRow(kv, layer.path, "coverage", want, ml.max_size, want == ml.max_size))
                if exact is not None and exact[0] == "tensor":
                    got = tuple(None if a[1] is None else tuple(a[1]) for a in exact[1])
                    rows.append(RFCheckRow(kv, layer.path, "windows", got, ml.windows[0],
                                           got == tuple(ml.windows[0])))
                continue
            if layer.size is None or not ml.positional:
                continue
            if exact is not None and exact[0] == "tensor":
                lengths = tuple(len(a) if isinstance(a, list) else None for a in exact[1])
                if lengths != tuple(ml.out_shape[1:]):
                    rows.append(RFCheckRow(kv, layer.path, "shape", lengths, tuple(ml.out_shape[1:]), False))
                    continue
                pred = tuple(_product(tuple(exact[1][ax][pi] for ax, pi in enumerate(p))) for p in ml.positions)
                rows.append(RFCheckRow(kv, layer.path, "windows", pred, ml.windows, pred == tuple(ml.windows)))
            if not ml.complete:
                skipped.append(f"k={kv} {layer.path}: interior units need an input larger than {ml.input_size[0]}")
                continue
            rows.append(RFCheckRow(kv, layer.path, "size", layer.size, ml.max_size,
                                   tuple(layer.size) == ml.max_size))
            if ml.interior_min is not None:
                rows.append(RFCheckRow(kv, layer.path, "min_size", layer.min_size, ml.interior_min,
                                       tuple(layer.min_size) == ml.interior_min))
            centres = [(p, w) for p, w, ok in zip(ml.positions, ml.windows, ml.interior)
                       if ok and None not in w and all(pi % per == 0 for pi, per in zip(p, layer.period))]
            if centres and all(s is not None for s in layer.start):
                p, w = centres[0]
                want = tuple(sp.sympify(s) + sp.sympify(j) * pi for s, j, pi in zip(layer.start, layer.jump, p))
                got_c = tuple(sp.Rational(a + b, 2) for a, b in w)
                rows.append(RFCheckRow(kv, layer.path, "start", want, got_c, want == got_c))
    return RFCheck(rf.model, tuple(kernels), tuple(rows), tuple(skipped))


def _is_module(model: Any) -> bool:
    if isinstance(model, str):
        return False
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, nn.Module)


def _product(axes: tuple) -> tuple:
    """A unit's support is the product of its per-axis windows: empty on one axis, empty on all."""
    return tuple(None for _ in axes) if any(a is None for a in axes) else axes


def _expr_symbols(rf: ReceptiveField) -> set:
    out: set = set()
    for r in rf.layers:
        for t in (r.size, r.min_size, r.start):
            for x in t or ():
                if isinstance(x, sp.Basic):
                    out |= x.free_symbols
    return out


__all__ = ["MeasuredLayer", "RFCheck", "RFCheckRow", "RFMeasurement", "connectivity_copy", "connectivity_substitutes",
           "measure_receptive_field", "verify_receptive_field"]
