"""From a captured forward to receptive-field steps, torch-free.

Every recorded tensor gets a *tag* per dimension: the spatial axis of the input it runs along
(``0`` for H, ``1`` for W), a tuple of tags for a dimension that merges several (``flatten(2)``
gives ``(0, 1)``), ``"?"`` for positions that can no longer be related to the input's
(``torch.cat`` along the tokens), or ``None`` for channels, batch and everything else.  Tags are
followed through permutes, reshapes, indexing, concatenation and broadcasting using the shapes
the forward had when it was recorded.

Each operation then becomes a :class:`Step`: the window operation it applies to each spatial
axis (a conv, transposed conv or pool geometry, an upsampling, a shift for padding and slicing),
the axes it makes global (global pooling, ``mean`` over H and W, a Linear layer or a product over
positions, attention), or a merge of its inputs' windows (``x + y``, ``torch.cat`` of channels,
``x * s`` of a squeeze-and-excitation gate).  Normalisation layers, activations and dropout are
identity (their statistics are not part of the receptive field).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..graph import CapturedGraph, OpNode, SliceArg, TensorRef
from ..rules import RULES, RuleRegistry
from ..rules.ops import bind, einsum_parts, index_tuple
from .windows import interpolation_offsets

Tag = Any  # None | int | tuple | "?"
Key = tuple[str, int]


@dataclass(frozen=True)
class AxisOp:
    """What a step does to one spatial axis's windows."""

    kind: str                 #: conv | transposed | upsample | global | adaptive | resize | pad
    K: Any = 1
    s: Any = 1
    pl: Any = 0
    pr: Any = 0
    d: Any = 1
    op: Any = 0               #: transposed output_padding
    ceil: bool = False        #: pooling ceil_mode
    f: int = 1                #: upsampling factor
    offsets: tuple[tuple[int, ...], ...] | None = None   #: per output residue, coarse units read
    out: Any = None           #: adaptive pooling target / resize output size
    mode: str = ""            #: interpolation mode (resize) or padding mode (pad)
    align: bool | None = None  #: align_corners (resize)
    scale: Any = None         #: the scale_factor given to interpolate (resize)


@dataclass(frozen=True)
class Step:
    name: str
    path: str
    type_name: str
    kind: str                                 #: input | const | apply | merge | unknown
    inputs: tuple[Key, ...]                   #: producers that depend on the input
    op: str = "identity"                      #: label shown in tables
    axes: Mapping[int, AxisOp] = field(default_factory=dict)
    globals: frozenset[int] = frozenset()     #: spatial axes this step reads in full
    positional: bool = True                   #: the output still has positions of the input
    n_outputs: int = 1
    reason: str = ""
    source: str = ""


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) * n if len(value) == 1 and n > 1 else tuple(value)
    return (value,) * n


def _int(value: Any, what: str, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, sp.Basic) and value.is_Integer:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchcountError(f"{what} = {value} must be a fixed integer for receptive fields", layer=path)
    return value


def _spatial_tags(tags: Sequence[Tag]) -> set[int]:
    out: set[int] = set()
    for t in tags:
        if isinstance(t, int) and not isinstance(t, bool):
            out.add(t)
        elif isinstance(t, tuple):
            out |= {x for x in t if isinstance(x, int)}
    return out


def _positional(tags: Sequence[Tag]) -> bool:
    return any(isinstance(t, int) and not isinstance(t, bool) or isinstance(t, tuple) or t == "?" for t in tags)


class Planner:
    """Builds the steps of one captured graph; ``n`` spatial axes of the first input."""

    def __init__(self, graph: CapturedGraph, registry: RuleRegistry = RULES) -> None:
        self.graph, self.registry = graph, registry
        self.tags: dict[Key, tuple[Tag, ...]] = {}
        self.dep: dict[Key, bool] = {}
        self.shapes: dict[str, Any] = graph.captures[0]["shapes"] if graph.captures else {}
        self.kinds: dict[str, str] = {}
        self.param_shapes: dict[str, tuple] = {}
        self.n = 0

    # -- helpers
    def const(self, value: Any) -> Any:
        """A size computed in forward (``x2.size(2) - x1.size(2)``), as the number it was at every recorded
        size; one that differs between the recorded sizes depends on the input size."""
        from ..graph import SizeExpr, parse_dim_symbol
        if not isinstance(value, SizeExpr):
            return value
        values = set()
        for cap in self.graph.captures:
            subs = {}
            for sym in sp.sympify(value.expr).free_symbols:
                parsed = parse_dim_symbol(sym)
                if parsed is None:
                    continue
                shapes = cap["shapes"].get(parsed[0])
                if shapes is None:
                    input_caps = cap.get("inputs", [])
                    shapes = None
                if shapes is not None:
                    subs[sym] = shapes[parsed[1]][parsed[2]]
            v = sp.sympify(value.expr).xreplace(subs)
            values.add(int(v) if v.is_number else None)
        if len(values) == 1 and None not in values:
            return values.pop()
        if not self.graph.captures:
            return int(value.value)
        raise ArchcountError(f"a size computed in forward ({value.expr}) differs between input sizes: the windows "
                             f"depend on the input size; give a numeric input size")

    def rank(self, ref: TensorRef) -> int:
        return len(self.tags.get((ref.node, ref.index), ()))

    def recorded(self, node: str, index: int = 0) -> tuple[int, ...] | None:
        shapes = self.shapes.get(node)
        return tuple(shapes[index]) if shapes and index < len(shapes) else None

    def deps(self, node: OpNode) -> tuple[Key, ...]:
        return tuple(dict.fromkeys((r.node, r.index) for r in node.inputs if self.dep.get((r.node, r.index))))

    def tags_of(self, ref: Any) -> tuple[Tag, ...]:
        return self.tags.get((ref.node, ref.index), ()) if isinstance(ref, TensorRef) else ()

    def shape_of(self, ref: Any) -> tuple:
        if isinstance(ref, TensorRef):
            if self.kinds.get(ref.node) in ("param", "buffer", "const"):
                return self.param_shapes[ref.node]
        raise ArchcountError("a weight of unknown shape")

    def set_out(self, node: OpNode, tags: Sequence[Sequence[Tag]], dep: bool) -> None:
        for i, t in enumerate(tags):
            self.tags[(node.name, i)] = tuple(t)
            self.dep[(node.name, i)] = dep

    # -- the plan
    def plan(self) -> list[Step]:
        steps: list[Step] = []
        first = True
        for node in self.graph.nodes:
            self.kinds[node.name] = node.kind
            if node.kind == "input":
                rank = len(node.params.get("shape", ()))
                if first:
                    self.n = max(0, rank - 2)
                    if self.n == 0:
                        raise ArchcountError("receptive fields need an input with spatial axes [BS, C, H, ...]",
                                             model=self.graph.model)
                    self.set_out(node, [(None, None, *range(self.n))], True)
                    steps.append(Step(node.name, node.path, "input", "input", ()))
                    first = False
                else:
                    self.set_out(node, [(None,) * rank], False)
                continue
            if node.kind in ("param", "buffer", "const"):
                self.param_shapes[node.name] = tuple(node.params.get("shape", ()))
                self.set_out(node, [(None,) * len(node.params.get("shape", ()))], False)
                continue
            deps = self.deps(node)
            out_ranks = [len(s) for s in node.out_shapes] or [0]
            if not deps:
                self.set_out(node, [(None,) * r for r in out_ranks], False)
                steps.append(Step(node.name, node.path, node.type_name, "const", (), n_outputs=len(out_ranks)))
                continue
            try:
                step, tags = self.step_for(node, deps)
            except ArchcountError as exc:
                step, tags = self.unknown(node, deps, exc.reason)
            self.set_out(node, tags, True)
            steps.append(self.finish(step, tags))
        return steps

    def unknown(self, node: OpNode, deps: tuple[Key, ...], reason: str) -> tuple[Step, list[tuple]]:
        first = self.tags.get(deps[0], ())
        tags = [tuple("?" if _positional([t]) else None for t in first)[:len(s)] + (None,) * max(0, len(s) - len(first))
                for s in node.out_shapes] or [()]
        return Step(node.name, node.path, node.type_name, "unknown", deps, "unknown", reason=reason,
                    n_outputs=len(tags), source=node.source), tags

    def step_for(self, node: OpNode, deps: tuple[Key, ...]) -> tuple[Step, list[tuple]]:
        key = node.key
        found = self.registry.resolve(node.mro_keys)
        rule_key = found[0] if found is not None else None
        if rule_key is None:
            raise ArchcountError(f"no rule for {node.type_name}, so its receptive field is unknown")
        if node.kind == "module":
            torch_key = next((k for k in node.mro_keys if k.startswith("torch.nn.modules.")), None)
            if torch_key is None:
                raise ArchcountError(f"no receptive-field rule for {node.type_name} (its counting rule says "
                                     f"nothing about windows)")
            return self.module_step(node, torch_key, node.params, deps)
        return self.function_step(node, key, node.params, deps)

    def mk(self, node: OpNode, deps: tuple[Key, ...], kind: str, op: str, axes: Mapping[int, AxisOp] | None = None,
           globals_: set[int] | frozenset = frozenset(), positional: bool = True) -> Step:
        return Step(node.name, node.path, node.type_name, kind, deps, op, dict(axes or {}), frozenset(globals_),
                    positional, max(1, len(node.out_shapes)), source=node.source)

    def finish(self, step: Step, tags: Sequence[Sequence[Tag]]) -> Step:
        """A step is *spatial* when its first output keeps at least one unmerged spatial axis."""
        spatial = bool(tags) and any(isinstance(t, int) and not isinstance(t, bool) for t in tags[0])
        from dataclasses import replace as _replace
        return _replace(step, positional=spatial)

    # -- spatial layers acting on the last nd dims
    def spatial_axes(self, node: OpNode, ref: Any, nd: int) -> list[int | None]:
        tags = self.tags_of(ref)
        last = tags[-nd:] if nd else ()
        out: list[int | None] = []
        for t in last:
            if t is None:
                out.append(None)
            elif isinstance(t, int) and not isinstance(t, bool):
                out.append(t)
            else:
                raise ArchcountError(f"{node.type_name} runs over positions merged or reordered earlier "
                                     f"(tags {tags}); archcount cannot follow its windows")
        return out

    def geometry_step(self, node: OpNode, deps: tuple[Key, ...], ref: Any, nd: int, op: str,
                      per_axis: Sequence[AxisOp]) -> tuple[Step, list[tuple]]:
        axes = {}
        for ax, aop in zip(self.spatial_axes(node, ref, nd), per_axis):
            if ax is not None:
                axes[ax] = aop
        tags = self.tags_of(ref)
        return self.mk(node, deps, "apply", op, axes), [tags] * max(1, len(node.out_shapes))

    def conv_axes(self, p: Mapping[str, Any], nd: int, path: str, pool: bool = False) -> list[AxisOp]:
        K = _tuple(p["kernel_size"], nd)
        stride = p.get("stride")
        s = _tuple(stride if stride not in (None, (), []) else (p["kernel_size"] if pool else 1), nd)
        d = _tuple(p.get("dilation", 1), nd)
        padding = p.get("padding", 0)
        if isinstance(padding, str):
            if padding == "valid":
                pl = pr = (0,) * nd
            elif padding == "same":
                tot = [sp.sympify(di) * (sp.sympify(ki) - 1) for ki, di in zip(K, d)]
                pl = tuple(sp.floor(t / 2) for t in tot)
                pr = tuple(t - a for t, a in zip(tot, pl))
            else:
                raise ArchcountError(f"unknown padding mode {padding!r}", layer=path)
        else:
            pl = pr = _tuple(padding, nd)
        return [AxisOp("conv", K[i], _int(s[i], "stride", path), pl[i], pr[i], _int(d[i], "dilation", path),
                       ceil=bool(p.get("ceil_mode", False))) for i in range(nd)]

    def transposed_axes(self, p: Mapping[str, Any], nd: int, path: str) -> list[AxisOp]:
        K = _tuple(p["kernel_size"], nd)
        s = _tuple(p.get("stride", 1), nd)
        pad = p.get("padding", 0)
        if isinstance(pad, str):
            raise ArchcountError(f"padding mode {pad!r} on a transposed conv", layer=path)
        pad = _tuple(pad, nd)
        d = _tuple(p.get("dilation", 1), nd)
        op = _tuple(p.get("output_padding", 0), nd)
        return [AxisOp("transposed", K[i], _int(s[i], "stride", path), pad[i], pad[i], _int(d[i], "dilation", path),
                       op[i]) for i in range(nd)]

    def resample_axes(self, node: OpNode, ref: Any, nd: int, mode: str, align: Any, size: Any,
                      scale: Any) -> list[AxisOp]:
        """Per axis: an integer-factor upsampling (periodic) or a general resize (exact at numeric sizes)."""
        in_shape = self.recorded(ref.node, ref.index) if isinstance(ref, TensorRef) else None
        out_shape = self.recorded(node.name, 0)
        out = []
        caps = self.graph.captures
        for i in range(nd):
            factors = set()
            for cap in caps:
                a = cap["shapes"].get(ref.node)
                b = cap["shapes"].get(node.name)
                if a is None or b is None:
                    continue
                na, nb = a[ref.index][-nd + i], b[0][-nd + i]
                factors.add(Fraction(nb, na) if na else None)
            f = next(iter(factors)) if len(factors) == 1 else None
            if f is not None and f.denominator == 1 and f >= 1 and (mode in ("nearest", "nearest-exact")
                                                                   or not align):
                offs = interpolation_offsets(mode, int(f), align)
                if offs is not None:
                    out.append(AxisOp("upsample", f=int(f), offsets=tuple(tuple(o) for o in offs)))
                    continue
            target = None if size is None else _tuple(size, nd)[i]
            sc = None if scale is None else _tuple(scale, nd)[i]
            out.append(AxisOp("resize", mode=mode, align=align, out=target, scale=sc))
        return out

    # -- modules
    def module_step(self, node: OpNode, key: str, p: Mapping[str, Any], deps: tuple[Key, ...]
                    ) -> tuple[Step, list[tuple]]:
        x = node.inputs[0]
        name = key.rsplit(".", 1)[-1]
        nd = int(name[-2]) if name[-2:] in ("1d", "2d", "3d") else 0
        if key.startswith("torch.nn.modules.conv.ConvTranspose"):
            return self.geometry_step(node, deps, x, nd, "transposed", self.transposed_axes(p, nd, node.path))
        if key.startswith("torch.nn.modules.conv.Conv"):
            return self.geometry_step(node, deps, x, nd, "conv", self.conv_axes(p, nd, node.path))
        if key.startswith(("torch.nn.modules.pooling.MaxPool", "torch.nn.modules.pooling.AvgPool")):
            return self.geometry_step(node, deps, x, nd, "pool", self.conv_axes(p, nd, node.path, pool=True))
        if key.startswith(("torch.nn.modules.pooling.AdaptiveAvgPool", "torch.nn.modules.pooling.AdaptiveMaxPool")):
            return self.adaptive_step(node, deps, x, nd, p.get("output_size"))
        if key.startswith("torch.nn.modules.upsampling."):
            mode = p.get("mode", "nearest")
            align = p.get("align_corners")
            if name == "UpsamplingBilinear2d":
                mode, align = "bilinear", True
            if name == "UpsamplingNearest2d":
                mode = "nearest"
            nd = max(1, self.rank(x) - 2)
            return self.geometry_step(node, deps, x, nd, "upsample",
                                      self.resample_axes(node, x, nd, mode, align, p.get("size"),
                                                         p.get("scale_factor")))
        if key.startswith("torch.nn.modules.pixelshuffle."):
            r = int(p.get("upscale_factor") or p.get("downscale_factor"))
            if "upscale_factor" in p:
                axes = [AxisOp("upsample", f=r, offsets=tuple((0,) for _ in range(r)))] * 2
            else:
                axes = [AxisOp("conv", r, r, 0, 0, 1)] * 2
            return self.geometry_step(node, deps, x, 2, "upsample" if "upscale_factor" in p else "pool", axes)
        if key.startswith("torch.nn.modules.padding."):
            pads = list(_tuple(p["padding"], 2))
            nd = len(pads) // 2
            mode = name.split("Pad")[0].lower()
            axes = [AxisOp("pad", pl=pads[2 * (nd - 1 - i)], pr=pads[2 * (nd - 1 - i) + 1], mode=mode)
                    for i in range(nd)]
            return self.geometry_step(node, deps, x, nd, "structural", axes)
        if key == "torch.nn.modules.linear.Linear":
            return self.last_dim_mix(node, deps, x, "linear")
        if key == "torch.nn.modules.flatten.Flatten":
            return self.flatten(node, deps, x, p.get("start_dim", 1), p.get("end_dim", -1))
        if key == "torch.nn.modules.flatten.Unflatten":
            return self.reshape(node, deps, x)
        if key == "torch.nn.modules.activation.MultiheadAttention":
            return self.attention(node, deps, p)
        if key == "torch.nn.modules.sparse.Embedding":
            tags = self.tags_of(x) + (None,)
            return self.mk(node, deps, "apply", "identity"), [tags]
        if key == "torch.nn.modules.activation.GLU":
            return self.mk(node, deps, "apply", "identity"), [self.tags_of(x)]
        if key.startswith(_IDENTITY_MODULES):
            return self.elementwise(node, deps, "identity")
        raise ArchcountError(f"no receptive-field rule for {node.type_name}")

    def adaptive_step(self, node: OpNode, deps: tuple[Key, ...], ref: Any, nd: int, target: Any
                      ) -> tuple[Step, list[tuple]]:
        axes, globals_ = {}, set()
        for ax, o in zip(self.spatial_axes(node, ref, nd), _tuple(target, nd)):
            if ax is None or o is None:
                continue
            if o == 1:
                globals_.add(ax)
            else:
                axes[ax] = AxisOp("adaptive", out=o)
        tags = self.tags_of(ref)
        op = "global" if globals_ and not axes else "pool"
        return self.mk(node, deps, "apply", op, axes, globals_), [tags] * max(1, len(node.out_shapes))

    def last_dim_mix(self, node: OpNode, deps: tuple[Key, ...], ref: Any, op: str) -> tuple[Step, list[tuple]]:
        tags = list(self.tags_of(ref))
        globals_ = _spatial_tags(tags[-1:]) if tags else set()
        positional_lost = bool(tags) and tags[-1] == "?"
        if tags:
            tags[-1] = None
        g = globals_ | (self.all_axes() if positional_lost else set())
        return self.mk(node, deps, "apply", "global" if g else op, {}, g), [tuple(tags)]

    def all_axes(self) -> set[int]:
        return set(range(self.n))

    # -- functions
    def function_step(self, node: OpNode, key: str, p: Mapping[str, Any], deps: tuple[Key, ...]
                      ) -> tuple[Step, list[tuple]]:
        args = list(p.get("args", ()))
        kwargs = dict(p.get("kwargs", {}))
        spec = _Spec(p)
        x = args[0] if args else next(iter(kwargs.values()), None)
        short = key.rsplit(".", 1)[-1]
        if key in ("torch.conv1d", "torch.conv2d", "torch.conv3d"):
            b = bind(spec, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                     dict(stride=1, padding=0, dilation=1, groups=1))
            w = self.shape_of(b["weight"]) if self.kinds.get(b["weight"].node) != "function" else \
                self.recorded(b["weight"].node, b["weight"].index)
            nd = len(w) - 2
            pp = dict(kernel_size=tuple(w[2:]), stride=b["stride"], padding=b["padding"], dilation=b["dilation"])
            return self.geometry_step(node, deps, b["input"], nd, "conv", self.conv_axes(pp, nd, node.path))
        if key in ("torch.conv_transpose1d", "torch.conv_transpose2d", "torch.conv_transpose3d"):
            b = bind(spec, ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
                     dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1))
            w = self.shape_of(b["weight"])
            nd = len(w) - 2
            pp = dict(kernel_size=tuple(w[2:]), stride=b["stride"], padding=b["padding"], dilation=b["dilation"],
                      output_padding=b["output_padding"])
            return self.geometry_step(node, deps, b["input"], nd, "transposed",
                                      self.transposed_axes(pp, nd, node.path))
        if "pool" in short and ("max_pool" in short or "avg_pool" in short) and "adaptive" not in short:
            nd = int([c for c in short if c.isdigit()][0])
            names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode") if "max" in short else \
                ("input", "kernel_size", "stride", "padding", "ceil_mode")
            b = bind(spec, names, dict(stride=None, padding=0, dilation=1, ceil_mode=False))
            return self.geometry_step(node, deps, b["input"], nd, "pool", self.conv_axes(b, nd, node.path, pool=True))
        if "adaptive" in short and "pool" in short:
            nd = int([c for c in short if c.isdigit()][0])
            b = bind(spec, ("input", "output_size"))
            return self.adaptive_step(node, deps, b["input"], nd, b["output_size"])
        if key in ("torch.nn.functional.interpolate", "torch.nn.functional.upsample",
                   "torch.nn.functional.upsample_nearest", "torch.nn.functional.upsample_bilinear"):
            b = bind(spec, ("input", "size", "scale_factor", "mode", "align_corners"),
                     dict(size=None, scale_factor=None, mode="nearest", align_corners=None))
            if key.endswith("upsample_bilinear"):
                b["mode"], b["align_corners"] = "bilinear", True
            nd = max(1, len(self.tags_of(b["input"])) - 2)
            return self.geometry_step(node, deps, b["input"], nd, "upsample",
                                      self.resample_axes(node, b["input"], nd, b["mode"], b["align_corners"],
                                                         b["size"], b["scale_factor"]))
        if key in ("torch.nn.functional.pad", "torch.constant_pad_nd"):
            b = bind(spec, ("input", "pad", "mode", "value"), dict(mode="constant"))
            pads = [self.const(v) for v in b["pad"]]
            npairs = len(pads) // 2
            tags = self.tags_of(b["input"])
            axes = {}
            for i in range(npairs):
                dim = len(tags) - 1 - i
                t = tags[dim]
                if isinstance(t, int) and not isinstance(t, bool):
                    axes[t] = AxisOp("pad", pl=pads[2 * i], pr=pads[2 * i + 1], mode=str(b["mode"]))
                elif t is not None:
                    raise ArchcountError("padding along merged positions")
            return self.mk(node, deps, "apply", "structural", axes), [tags]
        if key in ("torch.pixel_shuffle", "torch.nn.functional.pixel_shuffle", "torch.pixel_unshuffle",
                   "torch.nn.functional.pixel_unshuffle"):
            r = int(args[1] if len(args) > 1 else next(iter(kwargs.values())))
            if "unshuffle" in key:
                axes = [AxisOp("conv", r, r, 0, 0, 1)] * 2
            else:
                axes = [AxisOp("upsample", f=r, offsets=tuple((0,) for _ in range(r)))] * 2
            return self.geometry_step(node, deps, x, 2, "upsample" if "unshuffle" not in key else "pool", axes)
        if key == "torch.nn.functional.linear":
            return self.last_dim_mix(node, deps, x, "linear")
        if key in ("torch.nn.functional.scaled_dot_product_attention",):
            b = bind(spec, ("query", "key", "value"))
            g = _spatial_tags(self.tags_of(b["key"])[-2:-1]) | _spatial_tags(self.tags_of(b["value"])[-2:-1])
            if "?" in self.tags_of(b["key"])[-2:-1]:
                g |= self.all_axes()
            tags = tuple(self.tags_of(b["query"])[:-1]) + (None,)
            return self.mk(node, deps, "merge", "attention", {}, g), [tags]
        if key in _MATMUL:
            return self.matmul(node, deps, key, args, kwargs)
        if key == "torch.einsum":
            return self.einsum(node, deps, args)
        if short in _REDUCE and key.split(".")[0] in ("torch", "Tensor"):
            return self.reduction(node, deps, key, args, kwargs)
        if key in _STRUCTURAL:
            return getattr(self, _STRUCTURAL[key])(node, deps, key, args, kwargs)
        if key in ("torch.nn.functional.softmax", "torch.softmax", "Tensor.softmax", "torch.nn.functional.log_softmax",
                   "torch.log_softmax", "Tensor.log_softmax", "torch.nn.functional.softmin"):
            b = bind(spec, ("input", "dim"), dict(dim=None))
            tags = self.tags_of(b["input"])
            g = set()
            if b["dim"] is not None and tags:
                g = _spatial_tags([tags[int(b["dim"]) % len(tags)]])
            step, out = self.elementwise(node, deps, "identity")
            return Step(step.name, step.path, step.type_name, step.kind, step.inputs, "global" if g else step.op,
                        step.axes, frozenset(g), step.positional, step.n_outputs, source=step.source), out
        if key.endswith(("cumsum", "cumprod", "cummax", "cummin")):
            raise ArchcountError(f"{node.type_name} accumulates along an axis: its windows are not followed")
        return self.elementwise(node, deps, "identity")

    def elementwise(self, node: OpNode, deps: tuple[Key, ...], op: str) -> tuple[Step, list[tuple]]:
        """Broadcast: tags aligned from the right, taken from the dependent inputs."""
        dep_refs = [r for r in node.inputs if self.dep.get((r.node, r.index))]
        ranks = [len(s) for s in node.out_shapes] or [max((self.rank(r) for r in node.inputs), default=0)]
        out_rank = ranks[0]
        tags: list[Tag] = [None] * out_rank
        for r in dep_refs:
            t = self.tags_of(r)
            shape = self.recorded(r.node, r.index) or (2,) * len(t)
            for j, tag in enumerate(t):
                pos = out_rank - len(t) + j
                if pos < 0 or tag is None:
                    continue
                if shape[j] == 1 and out_rank and self.recorded(node.name) and self.recorded(node.name)[pos] != 1:
                    continue  # a broadcast size-1 dim: its (global) window reaches every position
                if tags[pos] is None:
                    tags[pos] = tag
                elif tags[pos] != tag:
                    raise ArchcountError(f"inputs with positions in different orders are combined ({tags[pos]} "
                                         f"and {tag})")
        kind = "merge" if len(dep_refs) > 1 else "apply"
        return self.mk(node, deps, kind, "merge" if kind == "merge" else op), [tuple(tags)] * max(1, len(ranks))

    def matmul(self, node: OpNode, deps: tuple[Key, ...], key: str, args: list, kwargs: dict
               ) -> tuple[Step, list[tuple]]:
        a = args[0] if args else kwargs.get("input")
        b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
        if key in ("torch.addmm", "Tensor.addmm", "torch.baddbmm", "Tensor.baddbmm"):
            a, b = args[1], args[2]
        if key == "Tensor.__rmatmul__":
            a, b = b, a
        ta, tb = self.tags_of(a), self.tags_of(b)
        dep_a = isinstance(a, TensorRef) and self.dep.get((a.node, a.index), False)
        dep_b = isinstance(b, TensorRef) and self.dep.get((b.node, b.index), False)
        g: set[int] = set()
        if ta and dep_a:
            g |= _spatial_tags(ta[-1:]) | (self.all_axes() if ta[-1] == "?" else set())
        if len(tb) >= 2 and dep_b:
            g |= _spatial_tags(tb[-2:-1]) | (self.all_axes() if tb[-2] == "?" else set())
        elif tb and dep_b:
            g |= _spatial_tags(tb)
        lead_a, lead_b = list(ta[:-2]), list(tb[:-2])
        n = max(len(lead_a), len(lead_b))
        lead = [None] * n
        for lst in (lead_a, lead_b):
            for j, t in enumerate(lst):
                pos = n - len(lst) + j
                if t is not None and lead[pos] is None:
                    lead[pos] = t
        out = lead + ([ta[-2]] if len(ta) >= 2 else []) + ([tb[-1]] if len(tb) >= 2 else [])
        if not dep_a:
            out = [t if t is not None else None for t in out]
        rank = len(node.out_shapes[0]) if node.out_shapes else len(out)
        out = (out + [None] * rank)[:rank]
        kind = "merge" if dep_a and dep_b else "apply"
        return self.mk(node, deps, kind, "global" if g else "product", {}, g), [tuple(out)]

    def einsum(self, node: OpNode, deps: tuple[Key, ...], args: list) -> tuple[Step, list[tuple]]:
        terms, rhs, operands = einsum_parts(args, node.path)
        letter_tags: dict[str, Tag] = {}
        for term, o in zip(terms, operands):
            for letter, t in zip(term, self.tags_of(o)):
                if t is not None:
                    letter_tags.setdefault(letter, t)
        contracted = {c for c in letter_tags if c not in rhs}
        g = _spatial_tags([letter_tags[c] for c in contracted])
        if any(letter_tags[c] == "?" for c in contracted):
            g |= self.all_axes()
        tags = tuple(letter_tags.get(c) for c in rhs)
        kind = "merge" if len(deps) > 1 else "apply"
        return self.mk(node, deps, kind, "global" if g else "product", {}, g), [tags]

    def attention(self, node: OpNode, deps: tuple[Key, ...], p: Mapping[str, Any]) -> tuple[Step, list[tuple]]:
        q = node.inputs[0]
        k = node.inputs[1] if len(node.inputs) > 1 else q
        tq, tk = self.tags_of(q), self.tags_of(k)
        token = 1 if p.get("batch_first") else 0
        if len(tq) == 2:
            token = 0
        g = _spatial_tags([tk[token]]) if len(tk) > token else set()
        if len(tk) > token and tk[token] == "?":
            g |= self.all_axes()
        out = tuple(tq[:-1]) + (None,)
        weights = (None, tq[token], tk[token]) if len(tq) > 2 else (tq[token], tk[token])
        kind = "merge" if len(deps) > 1 else "apply"
        return self.mk(node, deps, kind, "attention", {}, g), [out, weights]

    def reduction(self, node: OpNode, deps: tuple[Key, ...], key: str, args: list, kwargs: dict
                  ) -> tuple[Step, list[tuple]]:
        x = args[0]
        tags = list(self.tags_of(x))
        others = [a for a in args[1:] if isinstance(a, TensorRef)]
        if others and key.rsplit(".", 1)[-1] in ("max", "min"):
            return self.elementwise(node, deps, "identity")
        dim = kwargs.get("dim")
        rest = args[1:]
        if dim is None and rest and not isinstance(rest[0], (bool, str)):
            dim = rest[0]
        keep = kwargs.get("keepdim", next((r for r in rest[1:] if isinstance(r, bool)), False))
        dims = list(range(len(tags))) if dim is None or dim == () else \
            sorted({int(d) % len(tags) for d in _tuple(dim, 1)})
        g = _spatial_tags([tags[d] for d in dims]) | (self.all_axes() if any(tags[d] == "?" for d in dims) else set())
        out = [None if i in dims else t for i, t in enumerate(tags)] if keep else \
            [t for i, t in enumerate(tags) if i not in dims]
        return self.mk(node, deps, "apply", "global" if g else "identity", {}, g), \
            [tuple(out)] * max(1, len(node.out_shapes))

    # -- structure
    def flatten(self, node: OpNode, deps: tuple[Key, ...], x: Any, start: Any, end: Any
                ) -> tuple[Step, list[tuple]]:
        tags = list(self.tags_of(x))
        if not tags:
            return self.mk(node, deps, "apply", "structural"), [(None,)]
        s, e = int(start) % len(tags), int(end) % len(tags)
        group = tags[s:e + 1]
        merged: Tag = _merge_tags(group)
        return self.mk(node, deps, "apply", "structural"), [tuple(tags[:s] + [merged] + tags[e + 1:])]

    def _flatten(self, node: OpNode, deps: tuple[Key, ...], key: str, args: list, kwargs: dict):
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("input", "start_dim", "end_dim"),
                 dict(start_dim=0, end_dim=-1))
        return self.flatten(node, deps, b["input"], b["start_dim"], b["end_dim"])

    def reshape(self, node: OpNode, deps: tuple[Key, ...], x: Any = None, *_: Any) -> tuple[Step, list[tuple]]:
        """view / reshape / unflatten: dims grouped by the recorded sizes; tags follow the groups."""
        x = x if isinstance(x, TensorRef) else node.inputs[0]
        tags = list(self.tags_of(x))
        a = self.recorded(x.node, x.index)
        b = self.recorded(node.name, 0)
        if a is None or b is None:
            raise ArchcountError("no recorded shapes to follow the reshape")
        out: list[Tag] = [None] * len(b)
        i = j = 0
        while i < len(a) or j < len(b):
            if i < len(a) and a[i] == 1 and (j >= len(b) or b[j] != 1):
                if tags[i] is not None and _spatial_tags([tags[i]]):
                    pass  # a size-1 spatial dim disappears: its (global) window is kept as dependence
                i += 1
                continue
            if j < len(b) and b[j] == 1 and (i >= len(a) or a[i] != 1):
                j += 1
                continue
            gi, gj = [i], [j]
            pa, pb = a[i], b[j]
            while pa != pb:
                if pa < pb:
                    i += 1
                    gi.append(i)
                    pa *= a[i]
                else:
                    j += 1
                    gj.append(j)
                    pb *= b[j]
            group = [tags[t] for t in gi]
            if len(gi) == 1 and len(gj) == 1:
                out[gj[0]] = group[0]
            elif len(gj) == 1:
                out[gj[0]] = _merge_tags(group)
            else:  # a split: a merged dim split back into its members restores their tags
                members = _members(group[0]) if len(gi) == 1 else None
                if members is not None and len(members) == len(gj) and all(t is None or isinstance(t, int)
                                                                            for t in members):
                    for jj, t in zip(gj, members):
                        out[jj] = t
                elif _spatial_tags(group) or "?" in group:
                    for jj in gj:
                        out[jj] = "?"
            i += 1
            j += 1
        return self.mk(node, deps, "apply", "structural"), [tuple(out)]

    def _reshape(self, node, deps, key, args, kwargs):
        return self.reshape(node, deps, args[0])

    def _permute(self, node, deps, key, args, kwargs):
        tags = self.tags_of(args[0])
        dims = list(args[1:]) if len(args) > 1 else list(kwargs.get("dims", ()))
        if len(dims) == 1 and isinstance(dims[0], tuple):
            dims = list(dims[0])
        return self.mk(node, deps, "apply", "structural"), [tuple(tags[int(d) % len(tags)] for d in dims)]

    def _transpose(self, node, deps, key, args, kwargs):
        tags = list(self.tags_of(args[0]))
        if key.endswith(("mT", "mH")) or (key.endswith(".t") or key.endswith(".T")) and len(tags) <= 2:
            if key.endswith(("mT", "mH")):
                tags[-1], tags[-2] = tags[-2], tags[-1]
            else:
                tags = tags[::-1]
            return self.mk(node, deps, "apply", "structural"), [tuple(tags)]
        if key.endswith(".T"):
            return self.mk(node, deps, "apply", "structural"), [tuple(tags[::-1])]
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("input", "dim0", "dim1"))
        d0, d1 = int(b["dim0"]) % len(tags), int(b["dim1"]) % len(tags)
        tags[d0], tags[d1] = tags[d1], tags[d0]
        return self.mk(node, deps, "apply", "structural"), [tuple(tags)]

    def _movedim(self, node, deps, key, args, kwargs):
        tags = list(self.tags_of(args[0]))
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("input", "source", "destination"))
        n = len(tags)
        src = [int(d) % n for d in _tuple(b["source"], 1)]
        dst = [int(d) % n for d in _tuple(b["destination"], 1)]
        order = [i for i in range(n) if i not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.mk(node, deps, "apply", "structural"), [tuple(tags[i] for i in order)]

    def _squeeze(self, node, deps, key, args, kwargs):
        return self.reshape(node, deps, args[0])

    def _identity(self, node, deps, key, args, kwargs):
        return self.elementwise(node, deps, "identity")

    def _expand(self, node, deps, key, args, kwargs):
        tags = list(self.tags_of(args[0]))
        out_rank = len(node.out_shapes[0]) if node.out_shapes else len(tags)
        a = self.recorded(args[0].node, args[0].index) or ()
        b = self.recorded(node.name) or ()
        lead = out_rank - len(tags)
        out: list[Tag] = [None] * lead
        for j, t in enumerate(tags):
            grown = a and b and a[j] != b[lead + j]
            out.append(None if grown else t)
        return self.mk(node, deps, "apply", "structural"), [tuple(out)]

    def _getitem(self, node, deps, key, args, kwargs):
        tags = list(self.tags_of(args[0]))
        idx = index_tuple(args[1], len(tags))
        out: list[Tag] = []
        axes: dict[int, AxisOp] = {}
        dim = 0
        tensor_at = None
        for i in idx:
            if i is None:
                out.append(None)
                continue
            t = tags[dim] if dim < len(tags) else None
            if isinstance(i, SliceArg):
                i = SliceArg(self.const(i.start), self.const(i.stop), self.const(i.step))
                if _is_full(i):
                    out.append(t)
                elif isinstance(t, int) and not isinstance(t, bool):
                    axes[t] = _crop(i.start, i.stop, i.step, node.path)
                    out.append(t)
                elif t is None:
                    out.append(None)
                else:
                    out.append("?")
            elif isinstance(i, (TensorRef, tuple)):
                if t is not None:
                    raise ArchcountError("indexing positions with a tensor or list")
                if tensor_at is None:
                    tensor_at = len(out)
                    out.append(None)
            else:  # an integer: the dim goes
                if isinstance(t, int) and not isinstance(t, bool):
                    iv = _value(i)
                    axes[t] = _crop(iv, None if iv == -1 else iv + 1, 1, node.path)
            dim += 1
        out.extend(tags[dim:])
        rank = len(node.out_shapes[0]) if node.out_shapes else len(out)
        out = (out + [None] * rank)[:rank]
        return self.mk(node, deps, "apply", "structural" if not axes else "crop", axes), [tuple(out)]

    def _narrow(self, node, deps, key, args, kwargs):
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("input", "dim", "start", "length"))
        tags = list(self.tags_of(b["input"]))
        t = tags[int(b["dim"]) % len(tags)]
        axes = {}
        if isinstance(t, int) and not isinstance(t, bool):
            start = _value(b["start"])
            axes[t] = _crop(start, start + _value(b["length"]), 1, node.path)
        elif t is not None:
            tags[int(b["dim"]) % len(tags)] = "?"
        return self.mk(node, deps, "apply", "crop" if axes else "structural", axes), [tuple(tags)]

    def _select(self, node, deps, key, args, kwargs):
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("input", "dim", "index"))
        tags = list(self.tags_of(b["input"]))
        d = int(b["dim"]) % len(tags)
        t = tags.pop(d)
        axes = {}
        if isinstance(t, int) and not isinstance(t, bool):
            iv = _value(b["index"])
            axes[t] = _crop(iv, None if iv == -1 else iv + 1, 1, node.path)
        return self.mk(node, deps, "apply", "crop" if axes else "structural", axes), [tuple(tags)]

    def _split(self, node, deps, key, args, kwargs):
        x = args[0]
        tags = list(self.tags_of(x))
        dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
        if key.endswith("unbind"):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        d = int(dim) % len(tags)
        if tags[d] is not None:
            raise ArchcountError("splitting along positions")
        outs = [tuple(t for i, t in enumerate(tags) if i != d)] if key.endswith("unbind") else [tuple(tags)]
        return self.mk(node, deps, "apply", "structural"), outs * max(1, len(node.out_shapes))

    def _cat(self, node, deps, key, args, kwargs):
        b = bind(_Spec({"args": tuple(args), "kwargs": kwargs}), ("tensors", "dim"), dict(dim=0))
        tensors = [t for t in b["tensors"] if isinstance(t, TensorRef)]
        ranks = [len(self.tags_of(t)) for t in tensors]
        rank = max(ranks) if ranks else 0
        stack = key == "torch.stack"
        d = int(b.get("dim", b.get("axis", 0))) % max(rank + (1 if stack else 0), 1)
        dep_refs = [t for t in tensors if self.dep.get((t.node, t.index))]
        tags: list[Tag] = [None] * rank
        along_positions = False
        for t in dep_refs:
            for j, tag in enumerate(self.tags_of(t)):
                if j == d and tag is not None and not stack:
                    along_positions = True
                    continue
                if tag is not None:
                    if tags[j] is None:
                        tags[j] = tag
                    elif tags[j] != tag:
                        raise ArchcountError("concatenated tensors have their positions in different orders")
        if stack:
            tags.insert(d, None)
        if along_positions:
            tags[d] = "?"
            if len(dep_refs) > 1:
                raise ArchcountError("concatenation along positions of several input-dependent tensors")
        kind = "merge" if len(dep_refs) > 1 else "apply"
        return self.mk(node, deps, kind, "merge" if kind == "merge" else "structural"), [tuple(tags)]

    def _repeat(self, node, deps, key, args, kwargs):
        return self._expand(node, deps, key, args, kwargs)


#: torch modules that act position by position (normalisation statistics aside): identity for windows
_IDENTITY_MODULES = ("torch.nn.modules.activation.", "torch.nn.modules.batchnorm.", "torch.nn.modules.instancenorm.",
                     "torch.nn.modules.normalization.", "torch.nn.modules.dropout.", "torch.nn.modules.linear.Identity",
                     "torch.nn.modules.channelshuffle.")


def _is_full(sl: SliceArg) -> bool:
    return sl.start in (None, 0) and sl.stop is None and sl.step in (None, 1)


def _value(v: Any) -> Any:
    from ..graph import SizeExpr
    return int(v.value) if isinstance(v, SizeExpr) else v


def _crop(start: Any, stop: Any, step: Any, path: str) -> AxisOp:
    """Slicing ``[start:stop:step]`` along a spatial axis: a shift (and stride) of the windows."""
    start, stop = _value(start), _value(stop)
    step = 1 if step is None else _int(_value(step), "slice step", path)
    start = 0 if start is None else _int(start, "slice start", path)
    return AxisOp("crop", 1, step, start, 0, 1, out=stop)


def _merge_tags(group: Sequence[Tag]) -> Tag:
    if all(t is None for t in group):
        return None
    if "?" in group:
        return "?"
    flat: list[Tag] = []
    for t in group:
        flat.extend(t if isinstance(t, tuple) else [t])
    return tuple(flat) if len(flat) > 1 else flat[0]


def _members(tag: Tag) -> list[Tag] | None:
    return list(tag) if isinstance(tag, tuple) else None


class _Spec:
    """The bit of a LayerSpec that :func:`analysis.rules.ops.bind` reads."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.path = ""


_MATMUL = {"torch.matmul", "Tensor.matmul", "operator.matmul", "Tensor.__matmul__", "Tensor.__rmatmul__", "torch.mm",
           "Tensor.mm", "torch.bmm", "Tensor.bmm", "torch.addmm", "Tensor.addmm", "torch.baddbmm", "Tensor.baddbmm",
           "torch.mv", "Tensor.mv"}
_REDUCE = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "logsumexp", "nansum", "nanmean",
           "median", "norm", "all", "any", "argmax", "argmin", "count_nonzero"}
_STRUCTURAL = {}
for _k in ("Tensor.view", "Tensor.reshape", "torch.reshape", "Tensor.view_as", "Tensor.reshape_as", "torch.unflatten",
           "Tensor.unflatten"):
    _STRUCTURAL[_k] = "_reshape"
for _k in ("torch.flatten", "Tensor.flatten"):
    _STRUCTURAL[_k] = "_flatten"
for _k in ("Tensor.permute", "torch.permute"):
    _STRUCTURAL[_k] = "_permute"
for _k in ("Tensor.transpose", "torch.transpose", "Tensor.swapaxes", "torch.swapaxes", "Tensor.swapdims",
           "torch.swapdims", "Tensor.t", "torch.t", "Tensor.T", "Tensor.mT", "Tensor.H", "Tensor.mH",
           "Tensor.transpose_"):
    _STRUCTURAL[_k] = "_transpose"
for _k in ("Tensor.movedim", "torch.movedim", "Tensor.moveaxis", "torch.moveaxis"):
    _STRUCTURAL[_k] = "_movedim"
for _k in ("Tensor.squeeze", "torch.squeeze", "Tensor.squeeze_", "Tensor.unsqueeze", "torch.unsqueeze",
           "Tensor.unsqueeze_"):
    _STRUCTURAL[_k] = "_squeeze"
for _k in ("Tensor.expand", "torch.broadcast_to", "Tensor.broadcast_to", "Tensor.expand_as", "Tensor.repeat",
           "torch.tile", "Tensor.tile"):
    _STRUCTURAL[_k] = "_expand"
_STRUCTURAL["operator.getitem"] = "_getitem"
for _k in ("Tensor.narrow", "torch.narrow"):
    _STRUCTURAL[_k] = "_narrow"
for _k in ("Tensor.select", "torch.select"):
    _STRUCTURAL[_k] = "_select"
for _k in ("Tensor.chunk", "torch.chunk", "Tensor.split", "torch.split", "Tensor.split_with_sizes",
           "torch.split_with_sizes", "Tensor.unbind", "torch.unbind"):
    _STRUCTURAL[_k] = "_split"
for _k in ("torch.cat", "torch.concat", "torch.concatenate", "torch.stack"):
    _STRUCTURAL[_k] = "_cat"


def plan(graph: CapturedGraph, registry: RuleRegistry = RULES) -> tuple[list[Step], int]:
    """The receptive-field steps of a captured graph and its number of spatial axes."""
    planner = Planner(graph, registry)
    steps = planner.plan()
    return steps, planner.n


__all__ = ["AxisOp", "Planner", "Step", "plan"]
