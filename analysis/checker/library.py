"""The standard slips: the mistakes the registry knows before a teacher adds any (see
:mod:`analysis.checker.slips` for the registry, the search and how to add one).

Count slips (each a pure function of a :class:`~analysis.checker.slips.SlipContext`): a layer
omitted or counted twice, biases (all or some layers), BatchNorm (affine weights, as a layer, at
the full input size, running statistics), pooling and upsampling (included, omitted, wrong taps),
activations and concatenations counted, a channel symbol for another in one layer or NF and NC
swapped, k for k^2, the output area missing, squared or at the wrong resolution, connections written
as weights, the whole count scaled.  Output-size slips: the kernel term, the padding, the +1, the
stride or the dilation forgotten, the wrong formula for the kind.

>>> from analysis.checker.slips import SLIPS, SHAPE_SLIPS
>>> "nf-for-nc" in SLIPS and "kernel-term-missing" in SHAPE_SLIPS
True
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any, Callable, Iterator, Sequence

import sympy as sp

from ..symbols import NC, NF, H, W, k
from .common import CHANNELS, formula_str, terms
from .slips import _CONV_KINDS, Change, SlipContext, instead, register_shape_slip, register_slip

# ======================================================================================= the slips

@register_slip("layer-missing", rank=30, subsets="most", noun="counted layers",
               describe="missing the {q} of {layers} ({delta})")
def _layer_missing(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.counted():
        yield ctx.change(r, 0)


@register_slip("layer-twice", rank=40, subsets="most", pairs=False, noun="counted layers",
               describe="counts the {q} of {layers} twice ({delta})")
def _layer_twice(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.counted():
        yield ctx.add(r, ctx.value(r))


def _conv_noun(ctx: SlipContext) -> str:
    rows = ctx.weight_rows()
    return "conv layers" if all(r.category in ("conv", "transposed") for r in rows) else "weight layers"


@register_slip("bias", quantities=("weights",), rank=10, group="bias",
               describe=lambda ch, full, ctx: (
                   f"missing the biases of {ctx.which(ch, full, _conv_noun(ctx))} ({ctx.signed(ch)})" if ctx.conv.bias
                   else f"includes the biases of {ctx.which(ch, full, _conv_noun(ctx))} ({ctx.signed(ch)}); "
                        f"{ctx.conv.label} counts no biases"))
def _bias(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.weight_rows():
        yield ctx.add(r, -r.counts.bias if ctx.conv.bias else r.counts.bias)


@register_slip("bias-twice", quantities=("weights",), rank=25, group="bias",
               describe=lambda ch, full, ctx: f"counts the biases of {ctx.which(ch, full, _conv_noun(ctx))} twice "
                                              f"({ctx.signed(ch)})")
def _bias_twice(ctx: SlipContext) -> Iterator[Change]:
    if ctx.conv.bias:
        for r in ctx.weight_rows():
            yield ctx.add(r, r.counts.bias)


@register_slip("batchnorm", quantities=("weights",), rank=11, group="batchnorm", noun="BatchNorm layers",
               describe=lambda ch, full, ctx: (
                   f"BatchNorm affine weights included ({ctx.which(ch, full, 'BatchNorm layers')}: {ctx.signed(ch)}); "
                   f"{ctx.conv.label} ignores BatchNorm" if ctx.conv.batchnorm == "ignore" else
                   f"missing the BatchNorm affine weights of {ctx.which(ch, full, 'BatchNorm layers')} "
                   f"({ctx.signed(ch)})"))
def _batchnorm(ctx: SlipContext) -> Iterator[Change]:
    sign = 1 if ctx.conv.batchnorm == "ignore" else -1
    for r in ctx.rows("norm"):
        yield ctx.add(r, sign * r.counts.affine)


@register_slip("batchnorm-twice", quantities=("weights",), rank=26, group="batchnorm", noun="BatchNorm layers",
               describe="counts the BatchNorm affine weights of {layers} twice ({delta})")
def _batchnorm_twice(ctx: SlipContext) -> Iterator[Change]:
    if ctx.conv.batchnorm != "ignore":
        for r in ctx.rows("norm"):
            yield ctx.add(r, r.counts.affine)


@register_slip("batchnorm-running-stats", quantities=("weights",), rank=27, group="batchnorm", subsets="all",
               noun="BatchNorm layers",
               describe="BatchNorm counted with its running mean and variance as weights ({layers}: {delta}); "
                        "they are buffers, not trainable")
def _batchnorm_stats(ctx: SlipContext) -> Iterator[Change]:
    extra = 2 if ctx.conv.batchnorm == "ignore" else 1
    for r in ctx.rows("norm"):
        yield ctx.add(r, extra * r.counts.affine)


def _is_pool(row: Any) -> bool:
    return "pool" in row.type.lower()


def _resample_slip(kind: str) -> None:
    def fn(ctx: SlipContext) -> Iterator[Change]:
        for r in ctx.rows("resample"):
            if _is_pool(r) != (kind == "pooling"):
                continue
            if ctx.conv.pooling:
                yield ctx.change(r, 0)
            else:
                v = r.counts.outputs if ctx.q == "outputs" else r.counts.connections.get(ctx.conv.padding_taps)
                if v is not None:
                    yield from ctx.variants(r, v)

    def describe(ch: Sequence[Change], full: bool, ctx: SlipContext) -> str:
        verb = "omitted" if ctx.conv.pooling else "included"
        counts = "counts" if ctx.conv.pooling else "does not count"
        return (f"{kind} {ctx.q} {verb} ({ctx.which(ch, full, kind + ' layers')}: {ctx.signed(ch)}); "
                f"{ctx.conv.label} {counts} pooling/upsampling layers")
    register_slip(kind, quantities=("outputs", "connections"), rank=12, describe=describe)(fn)


_resample_slip("pooling")
_resample_slip("upsampling")


@register_slip("resample-taps", quantities=("connections",), rank=19, noun="pooling/upsampling layers",
               describe="the connections of {layers} are counted with the wrong number of taps per output "
                        "({details})")
def _resample_taps(ctx: SlipContext) -> Iterator[Change]:
    """Pool windows counted as one connection per output, nearest upsampling as 4 (bilinear) per output."""
    if not ctx.conv.pooling:
        return
    for r in ctx.rows("resample"):
        out = r.counts.outputs
        if _is_pool(r):
            yield ctx.change(r, out, instead(out, ctx.value(r), " (one per output, not one per window tap)"))
        else:
            yield ctx.change(r, 4 * out, instead(4 * out, ctx.value(r), " (4 per output, as bilinear)"))


@register_slip("batchnorm-layer", quantities=("outputs", "connections"), rank=13, group="batchnorm",
               noun="BatchNorm layers",
               describe=lambda ch, full, ctx: (
                   f"BatchNorm {ctx.q} omitted ({ctx.which(ch, full, 'BatchNorm layers')}: {ctx.signed(ch)})"
                   if ctx.conv.batchnorm == "layer" else
                   f"BatchNorm {ctx.q} counted ({ctx.which(ch, full, 'BatchNorm layers')}: {ctx.signed(ch)}); "
                   f"{ctx.conv.label} does not count BatchNorm as a layer"))
def _batchnorm_layer(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.rows("norm"):
        if ctx.conv.batchnorm == "layer":
            yield ctx.change(r, 0)
        else:
            v = r.counts.outputs if ctx.q == "outputs" else r.counts.connections.get("include", r.counts.outputs)
            yield from ctx.variants(r, v)


@register_slip("batchnorm-full-size", quantities=("outputs", "connections"), rank=28, group="batchnorm",
               noun="BatchNorm layers",
               describe="BatchNorm {q} counted at the full input size H x W ({layers}: {details})")
def _batchnorm_full(ctx: SlipContext) -> Iterator[Change]:
    """BatchNorm counted as channels x H x W of the input, not at the size where it sits."""
    for r in ctx.rows("norm"):
        yield from ctx.variants(r, r.out_shape[0] * ctx.area(), "channels x H x W")


@register_slip("batchnorm-times-area", quantities=("connections",), rank=29, group="batchnorm",
               noun="BatchNorm layers",
               describe="BatchNorm connections counted as its outputs x H x W ({layers}: {details})")
def _batchnorm_times_area(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.rows("norm"):
        yield from ctx.variants(r, r.counts.outputs * ctx.area(), "outputs x H x W")


def _outputs_slip(name: str, category: str, rank: int, noun: str, what: str) -> None:
    """Layers of ``category`` (not counted as units) counted with their outputs."""
    def fn(ctx: SlipContext) -> Iterator[Change]:
        for r in ctx.rows(category):
            if r.counts.outputs:
                yield ctx.add(r, r.counts.outputs)
    register_slip(name, quantities=("outputs",), rank=rank, noun=noun, describe=what + " ({layers}: {delta})")(fn)


_outputs_slip("activation-outputs", "elementwise", 14, "activation layers", "activation outputs counted as units")
_outputs_slip("concat-outputs", "structural", 15, "concatenations", "concatenation outputs counted")


@register_slip("input-units", quantities=("outputs",), rank=16, subsets="all",
               describe=lambda ch, full, ctx: f"the input units ({formula_str(ch[0].delta)}) counted as outputs")
def _input_units(ctx: SlipContext) -> Iterator[Change]:
    yield Change("input", sp.expand(sp.Mul(*[sp.sympify(s) for s in ctx.table.input_shape])))


@register_slip("bias-connections", quantities=("connections",), rank=16, group="bias",
               describe=lambda ch, full, ctx: f"one bias connection per output counted for "
                                              f"{ctx.which(ch, full, _conv_noun(ctx))} ({ctx.signed(ch)})")
def _bias_connections(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.weight_rows():
        if r.counts.bias != 0:
            yield ctx.add(r, r.counts.outputs)


_SWITCH_NAMES = {"include": "padding taps included", "exclude": "padding taps excluded (exact count)",
                 "scatter": "counted input-based (scatter)", "exact": "counted exactly (pairs surviving the crop)",
                 "gather": "counted output-based (gather, inserted zeros included)"}


def _switch_slip(alt: str, category: str, switch: str) -> None:
    def fn(ctx: SlipContext) -> Iterator[Change]:
        if getattr(ctx.conv, switch) == alt:
            return
        for r in ctx.rows(category):
            other = r.counts.connections.get(alt)
            if other is not None:
                yield ctx.change(r, other)

    def describe(ch: Sequence[Change], full: bool, ctx: SlipContext) -> str:
        return (f"the connections of {ctx.which(ch, full, 'such layers')} are {_SWITCH_NAMES[alt]}, "
                f"not {_SWITCH_NAMES[getattr(ctx.conv, switch)]} ({ctx.signed(ch)})")
    register_slip(f"connections-{alt}", quantities=("connections",), rank=17, describe=describe,
                  group="switch-" + category)(fn)


for _alt in ("include", "exclude"):
    _switch_slip(_alt, "conv", "padding_taps")
for _alt in ("scatter", "exact", "gather"):
    _switch_slip(_alt, "transposed", "transposed")


@register_slip("connections-as-weights", quantities=("connections",), rank=18, noun="weight layers",
               describe=lambda ch, full, ctx: (
                   ("the formula counts the weights, not the connections" if full and len(ch) > 1 else
                    f"the connections of {ctx.which(ch, full, 'weight layers')} are written as their weights")
                   + f": each weight is used at every output position, so multiply by the output area "
                     f"({ctx.details(ch)})"))
def _as_weights(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.weight_rows():
        if r.connections != 0:
            shape = r.out_shape[-2:] if len(r.out_shape) >= 2 else ()
            yield ctx.change(r, r.counts.weight, "output " + " x ".join(sp.sstr(x) for x in shape))


@register_slip("channels-only", quantities=("outputs",), rank=18, noun="counted layers",
               describe="the outputs of {layers} are counted as channels, without the spatial size "
                        "(outputs = channels x height x width)")
def _channels_only(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.counted():
        if len(r.out_shape) >= 3:
            yield ctx.change(r, r.out_shape[0])


def _per_term(ctx: SlipContext, make: Callable[[Any, dict], Iterable[tuple[Any, str]]]) -> Iterator[Change]:
    """A change per (layer, term) of the count: ``make(term, powers)`` yields (new term, extra detail)."""
    for r in ctx.counted():
        for m, c in terms(ctx.value(r)).items():
            term = c * m
            for new, extra in make(term, m.as_powers_dict()):
                yield ctx.change(r, ctx.value(r) - term + new, instead(new, term, extra))


def _channel_slip(s: sp.Symbol, t: sp.Symbol, every: bool) -> None:
    def fn(ctx: SlipContext) -> Iterator[Change]:
        def make(term: Any, powers: dict) -> Iterator[tuple[Any, str]]:
            if s in powers and (not every or powers[s] > 1):
                yield (term.xreplace({s: t}) if every else term * t / s), ""
        return _per_term(ctx, make)

    what = "every " if every else ""
    register_slip(f"{str(t).lower()}-for-{str(s).lower()}" + ("-all" if every else ""), rank=21 if every else 20,
                  describe=lambda ch, full, ctx: f"the {ctx.q} of {ctx.which(ch, full)} use {t} where {what}{s} "
                                                 f"belongs ({ctx.details(ch)})")(fn)


for _s, _t in itertools.permutations(CHANNELS, 2):
    _channel_slip(_s, _t, False)
    _channel_slip(_s, _t, True)


@register_slip("nf-nc-swapped", rank=22,
               describe="NF and NC swapped in {layers} ({details})")
def _swap(ctx: SlipContext) -> Iterator[Change]:
    for r in ctx.counted():
        v = ctx.value(r)
        new = sp.expand(v.xreplace({NF: NC, NC: NF})) if isinstance(v, sp.Basic) else v
        if new != v:
            yield ctx.change(r, new, instead(new, v))


@register_slip("k-not-squared", rank=22,
               describe="the {q} of {layers} use k where k^2 belongs ({details})")
def _k_not_squared(ctx: SlipContext) -> Iterator[Change]:
    def make(term: Any, powers: dict) -> Iterator[tuple[Any, str]]:
        if powers.get(k, 0) == 2:
            yield term / k, ""
    return _per_term(ctx, make)


def _area_terms(ctx: SlipContext, ratio_of: Callable[[], Any], detail: str) -> Iterator[Change]:
    if ctx.numeric_size:
        return iter(())
    shapes = {r.path: r.out_shape for r in ctx.all_rows}

    def changes() -> Iterator[Change]:
        for r in ctx.counted():
            shape = shapes[r.path][-2:] if len(shapes[r.path]) >= 2 else ("?", "?")
            area = f"; output {sp.sstr(shape[0])} x {sp.sstr(shape[1])}"
            for m, c in terms(ctx.value(r)).items():
                powers = m.as_powers_dict()
                if H in powers and W in powers:
                    term = c * m
                    new = term * ratio_of()
                    yield ctx.change(r, ctx.value(r) - term + new, instead(new, term, area))
    return changes()


@register_slip("area-missing", rank=23, quantities=("outputs", "connections"),
               describe=lambda ch, full, ctx: (("no term is multiplied by the output area" if full and len(ch) > 1
                                               else f"the {ctx.q} of {ctx.which(ch, full)} are not multiplied by "
                                                    f"the output area") + f" ({ctx.details(ch)})"))
def _area_missing(ctx: SlipContext) -> Iterator[Change]:
    return _area_terms(ctx, lambda: 1 / (H * W), "")


@register_slip("area-squared", rank=24, quantities=("outputs", "connections"),
               describe="the {q} of {layers} multiply by the output area twice ({details})")
def _area_squared(ctx: SlipContext) -> Iterator[Change]:
    return _area_terms(ctx, lambda: H * W, "")


def _area_ratio_slip(ratio: Any) -> None:
    def fn(ctx: SlipContext) -> Iterator[Change]:
        return _area_terms(ctx, lambda: ratio, "")

    why = ("the size before a 2x downsampling (or after one 2x upsampling too many)" if ratio == 4 else
           "the size after one 2x downsampling too many (or before a 2x upsampling)" if ratio == sp.Rational(1, 4)
           else f"an area {sp.sstr(ratio)}x the layer's output area")
    register_slip(f"area-x{sp.sstr(ratio)}", rank=32, quantities=("outputs", "connections"),
                  describe=lambda ch, full, ctx: f"the {ctx.q} of {ctx.which(ch, full)} use the wrong size after "
                                                 f"pooling or upsampling: an area {sp.sstr(ratio)}x the layer's "
                                                 f"output area, {why} ({ctx.details(ch)})"
                  if ratio in (4, sp.Rational(1, 4)) else
                  f"the {ctx.q} of {ctx.which(ch, full)} use an area {sp.sstr(ratio)}x the layer's output area "
                  f"({ctx.details(ch)})", group="area")(fn)


for _ratio in (4, sp.Rational(1, 4), 2, sp.Rational(1, 2), 16, sp.Rational(1, 16)):
    _area_ratio_slip(_ratio)


def _whole_slip(ratio: Any) -> None:
    def fn(ctx: SlipContext) -> Iterator[Change]:
        if ctx.expected != 0:
            yield Change("*", sp.expand((ratio - 1) * sp.sympify(ctx.expected)))

    def describe(ch: Sequence[Change], full: bool, ctx: SlipContext) -> str:
        why = ""
        if ctx.q == "weights" and ratio in (4, 16):
            why = ": weights do not depend on the input size (scaling them with the area is wrong)"
        elif ctx.q == "weights" and ratio == 2:
            why = ": weights do not depend on the input size"
        return f"the whole formula is {sp.sstr(ratio)}x the expected {ctx.q}{why}"
    register_slip(f"whole-x{sp.sstr(ratio)}", rank=5, subsets="all", pairs=False, describe=describe,
                  group="whole")(fn)


for _ratio in (4, 2, sp.Rational(1, 2), sp.Rational(1, 4), 16):
    _whole_slip(_ratio)



# ===================================================================================== output-size slips

F = Fraction
_T = ("transposed",)
for _name, _text, _fn, _const, _kinds in (
        ("kernel-term-missing", "kernel term missing: out = (n + 2p)/s, without the -k and the +1",
         lambda n, k, s, p, d, op: F(n + 2 * p, s), 0, _CONV_KINDS),
        ("kernel-and-padding-ignored", "kernel and padding ignored: out = n/s", lambda n, k, s, p, d, op: F(n, s), 0,
         _CONV_KINDS),
        ("kernel-minus-forgotten", "kernel term -k forgotten: out = (n + 2p)/s + 1",
         lambda n, k, s, p, d, op: F(n + 2 * p, s), 1, _CONV_KINDS),
        ("padding-forgotten", "padding forgotten", lambda n, k, s, p, d, op: F(n - d * (k - 1) - 1, s), 1, _CONV_KINDS),
        ("padding-once", "padding counted once", lambda n, k, s, p, d, op: F(n + p - d * (k - 1) - 1, s), 1,
         _CONV_KINDS),
        ("plus-one-forgotten", "+1 forgotten", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1, s), 0,
         _CONV_KINDS),
        ("k-minus-one", "k - 1 used instead of k", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1), s), 1,
         _CONV_KINDS),
        ("stride-ignored", "stride ignored", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1), 1, _CONV_KINDS),
        ("dilation-ignored", "dilation ignored", lambda n, k, s, p, d, op: F(n + 2 * p - k, s), 1, _CONV_KINDS),
        ("transposed-formula", "the transposed-conv formula used for a conv",
         lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1)), 1, ("conv",)),
        ("pool-stride-one", "stride taken as 1 (a pool's stride defaults to its kernel)",
         lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1), 1, ("maxpool", "avgpool")),
        ("plus-one-forgotten-transposed", "+1 forgotten",
         lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1) + op), 0, _T),
        ("output-padding-forgotten", "output_padding forgotten",
         lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1)), 1, _T),
        ("padding-forgotten-transposed", "padding forgotten",
         lambda n, k, s, p, d, op: F((n - 1) * s + d * (k - 1) + op), 1, _T),
        ("padding-once-transposed", "padding counted once",
         lambda n, k, s, p, d, op: F((n - 1) * s - p + d * (k - 1) + op), 1, _T),
        ("padding-added", "padding added instead of subtracted",
         lambda n, k, s, p, d, op: F((n - 1) * s + 2 * p + d * (k - 1) + op), 1, _T),
        ("kernel-ignored-transposed", "kernel ignored: out = n*s", lambda n, k, s, p, d, op: F(n * s), 0, _T),
        ("n-times-s", "n*s used instead of (n - 1)*s",
         lambda n, k, s, p, d, op: F(n * s - 2 * p + d * (k - 1) + op), 1, _T),
        ("conv-formula", "the conv formula used for a transposed conv",
         lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1, s), 1, _T)):
    register_shape_slip(_name, _text, _fn, _const, _kinds)
