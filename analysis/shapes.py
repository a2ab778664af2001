"""Exact output sizes and padding solutions for conv, transposed conv, pooling and upsampling.

Works on ints and on sympy expressions; floors are kept.  Formulas are PyTorch's
documented ones (``torch.nn.Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``,
``AvgPool2d``, ``Upsample``).

>>> output_size("conv", 1024, 5, stride=2, padding=1).size
511
>>> output_size("conv", 1024, 5, stride=2, padding=1).dropped
0
>>> solve_padding(4, stride=2, transposed=True, scale=2).solutions
((1, 0),)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from collections.abc import Sequence
from typing import Any, Iterable, Iterator, Union

import sympy as sp

from .errors import ArchcountError
from .bounds import MAX_INT, bounded_int, check_bounds, parse_exact_number
from .windows import conv_read_rows, transposed_read_inputs

Size = Union[int, sp.Expr]

KIND_ALIASES = {
    "conv": "conv", "conv1d": "conv", "conv2d": "conv",
    "transposed": "transposed", "conv_transpose": "transposed", "convtranspose": "transposed",
    "convtranspose2d": "transposed", "deconv": "transposed", "tconv": "transposed",
    "maxpool": "maxpool", "max_pool": "maxpool", "maxpool2d": "maxpool", "max": "maxpool",
    "avgpool": "avgpool", "avg_pool": "avgpool", "avgpool2d": "avgpool", "avg": "avgpool",
    "upsample": "upsample", "interpolate": "upsample", "up": "upsample",
}


def normalize_kind(kind: str) -> str:
    """Map a kind name or alias (``"conv2d"``, ``"deconv"``, ``"max"``) to its canonical form."""
    key = str(kind).strip().lower().replace("-", "_")
    if key not in KIND_ALIASES:
        raise ArchcountError(
            f"unknown layer kind {kind!r}; valid: conv, transposed, maxpool, avgpool, upsample",
            argument="kind")
    return KIND_ALIASES[key]


def _is_num(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return isinstance(x, sp.Basic) and x.is_number


def _as_int_or_expr(x: Any, name: str) -> Size:
    if isinstance(x, bool):
        raise ArchcountError(f"must be an integer, got {x!r}", argument=name)
    if isinstance(x, int):
        return x
    if isinstance(x, sp.Basic):
        if x.is_number:
            if not x.is_integer:
                raise ArchcountError(f"must be an integer, got {x}", argument=name)
            return int(x)
        return x
    try:
        import numbers
        if isinstance(x, numbers.Integral):
            return int(x)
    except Exception:  # pragma: no cover
        pass
    raise ArchcountError(f"must be an integer or a sympy expression, got {x!r}", argument=name)


def _check_min(x: Size, name: str, minimum: int) -> None:
    """A numeric ``x`` must lie in ``[minimum, MAX_INT]`` (every size is answered in closed form up to it)."""
    if _is_num(x):
        check_bounds(int(x), name, minimum=minimum)


def _floor_div(a: Size, b: Size) -> Size:
    if _is_num(a) and _is_num(b):
        return int(a) // int(b)
    return sp.floor(sp.Rational(1, 1) * a / b)


def _ceil_div(a: Size, b: Size) -> Size:
    if _is_num(a) and _is_num(b):
        return -((-int(a)) // int(b))
    return sp.ceiling(sp.Rational(1, 1) * a / b)


@dataclass(frozen=True)
class SizeResult:
    """An output size with what floor division lost.

    ``size`` is an int or a sympy expression; ``dropped`` counts input rows (or
    columns) that no output reads (``None`` when unknown for symbolic input).
    """

    kind: str
    input: Size
    size: Size
    dropped: Size | None
    formula: str
    floor_applied: bool = False

    def __int__(self) -> int:
        return int(self.size)

    def __index__(self) -> int:
        return int(self.size)

    def explain(self) -> str:
        """One sentence in words."""
        text = f"{self.kind}: {self.input} -> {self.size}  [{self.formula}]"
        if self.dropped not in (None, 0):
            cause = "cropped by the padding" if self.kind == "transposed" else "lost to floor division or gaps"
            text += f"; {self.dropped} input row(s)/column(s) never reach the output ({cause})"
        return text

    def to_dict(self) -> dict[str, Any]:
        conv = (lambda v: v if isinstance(v, int) or v is None else sp.sstr(v))
        return {"kind": self.kind, "input": conv(self.input), "size": conv(self.size),
                "dropped": conv(self.dropped), "formula": self.formula, "floor_applied": self.floor_applied}


def _upsample_len(n: Size, scale_factor: Any) -> Size:
    """``floor(n * scale)``; a float scale on a numeric size uses double arithmetic, as torch does.

    >>> _upsample_len(100, 1.15), _upsample_len(100, "23/20")
    (114, 115)
    """
    if _is_num(n) and isinstance(scale_factor, float):
        return math.floor(float(int(n)) * scale_factor)
    sf = sp.nsimplify(scale_factor)
    if _is_num(n):
        return int(sp.floor(int(n) * sf))
    return sp.floor(n * sf) if not sf.is_integer else n * sf


def _exact_scale(scale_factor: Any) -> sp.Expr:
    """A positive exact scale from an int, Fraction, sympy number or text (never evaluated as code).

    >>> _exact_scale("3/2"), _exact_scale(2), _exact_scale(sp.sqrt(2))
    (3/2, 2, sqrt(2))
    """
    if isinstance(scale_factor, str):
        sf: Any = parse_exact_number(scale_factor, "scale_factor")
    elif isinstance(scale_factor, bool):
        sf = None
    elif isinstance(scale_factor, (int, Fraction)):
        sf = sp.Rational(scale_factor)
    elif isinstance(scale_factor, sp.Basic):
        sf = scale_factor
    else:
        try:
            sf = sp.nsimplify(scale_factor)
        except (TypeError, ValueError, sp.SympifyError):
            sf = None
    if sf is None or not (sf.is_number and sf.is_real and sf > 0):
        raise ArchcountError(f"must be a positive number, got {scale_factor!r}", argument="scale_factor")
    if sf.is_Rational and max(abs(sf.p), sf.q) > MAX_INT:
        raise ArchcountError(f"must be a ratio of integers of at most 10^18, got {sf}", argument="scale_factor")
    return sf


def out_len(kind: str, n: Size, kernel: Size | None = None, stride: Size | None = None, padding: Size = 0,
            dilation: Size = 1, output_padding: Size = 0, ceil_mode: bool = False,
            scale_factor: Any = None) -> Size:
    """Output length along one axis (int or sympy expression), no validation or report."""
    kind = normalize_kind(kind)
    if kind == "upsample":
        return _upsample_len(n, scale_factor)
    if stride is None:
        stride = kernel if kind in ("maxpool", "avgpool") else 1
    if kind == "transposed":
        return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if kind in ("maxpool", "avgpool") and ceil_mode:
        out = _ceil_div(span, stride) + 1
        # PyTorch: the last window must start inside the input or left padding.
        if _is_num(out) and _is_num(n):
            if (int(out) - 1) * int(stride) >= int(n) + int(padding):
                out = int(out) - 1
            return out
        return sp.Piecewise((out - 1, sp.Ge((out - 1) * stride, n + padding)), (out, True))
    return _floor_div(span, stride) + 1


def _dropped_rows(n: Size, kernel: Size, stride: Size, padding: Size, dilation: Size, out: Size,
                  ceil_mode: bool = False) -> Size | None:
    """Input rows that no output window reads (closed form: :func:`analysis.windows.conv_read_rows`).

    >>> _dropped_rows(10**12 + 1, 2, 2, 0, 1, 5 * 10**11)
    1
    """
    if all(_is_num(v) for v in (n, kernel, stride, padding, dilation, out)):
        n, kernel, stride, padding, dilation, out = (int(v) for v in (n, kernel, stride, padding, dilation, out))
        return n - conv_read_rows(n, out, kernel, stride, padding, dilation)
    if _is_num(kernel) and _is_num(stride) and _is_num(dilation) and int(dilation) == 1 \
            and int(kernel) >= int(stride):
        if ceil_mode:
            # contiguous windows and the last one reaches past the end: nothing is lost
            return 0
        # windows are contiguous: only the tail can be lost; Mod(span, s) <= s - 1
        if _is_num(padding) and int(padding) >= int(stride) - 1:
            return 0
        span = n + 2 * padding - dilation * (kernel - 1) - 1
        if _is_num(padding) and int(padding) == 0:
            return sp.Mod(span, stride)
        return sp.Max(0, sp.Mod(span, stride) - padding)
    return None


def _dropped_transposed(n: Size, kernel: Size, stride: Size, padding: Size, dilation: Size,
                        out: Size) -> Size | None:
    """Input rows of a transposed conv whose every output position is cropped by the padding.

    >>> _dropped_transposed(10**12, 1, 1, 1, 1, 10**12 - 2)   # k=1 p=1: the first and last rows
    2
    """
    if all(_is_num(v) for v in (n, kernel, stride, padding, dilation, out)):
        n, kernel, stride, padding, dilation, out = (int(v) for v in (n, kernel, stride, padding, dilation, out))
        return n - transposed_read_inputs(n, out, kernel, stride, padding, dilation)
    if _is_num(padding) and int(padding) == 0:
        return 0  # input i writes position i*s (j = 0), and i*s <= (n-1)*s < out
    return None


def output_size(kind: str, size: Size, kernel: Size | None = None, stride: Size | None = None,
                padding: Size = 0, dilation: Size = 1, output_padding: Size = 0, *,
                ceil_mode: bool = False, scale_factor: Any = None) -> SizeResult:
    """Output size of one layer along one axis, exactly as PyTorch computes it.

    ``kind`` is ``conv``, ``transposed``, ``maxpool``, ``avgpool`` or ``upsample``
    (``scale_factor`` for the last).  Pool strides default to the kernel.

    >>> output_size("conv", 32, 3, padding=1).size
    32
    >>> output_size("transposed", 16, 3, stride=2, padding=1, output_padding=1).size
    32
    >>> from analysis.symbols import H
    >>> output_size("maxpool", H, 2).size
    floor(H/2)
    """
    kind = normalize_kind(kind)
    n = _as_int_or_expr(size, "size")
    _check_min(n, "size", 1)
    if kind == "upsample":
        if scale_factor is None:
            raise ArchcountError("upsample needs scale_factor", argument="scale_factor")
        if isinstance(scale_factor, float) and _is_num(n):
            # the numeric float case, as torch computes it (no sympy: nsimplify is slow)
            if not (math.isfinite(scale_factor) and scale_factor > 0):
                raise ArchcountError(f"must be a positive number, got {scale_factor!r}", argument="scale_factor")
            sf: Any = int(scale_factor) if scale_factor.is_integer() else scale_factor
        else:
            sf = _exact_scale(scale_factor)
        if not sf <= MAX_INT:
            raise ArchcountError(f"must be at most 10^18, got {scale_factor!r}", argument="scale_factor")
        out = out_len(kind, n, scale_factor=scale_factor if isinstance(scale_factor, float) else sf)
        if _is_num(out) and int(out) < 1:
            raise ArchcountError(f"scale {scale_factor} turns size {n} into {out}; the output must be >= 1",
                                 argument="scale_factor")
        if isinstance(sf, int) or (isinstance(sf, sp.Basic) and sf.is_integer):
            return SizeResult(kind, n, out, 0, f"n*{sf}")
        # a fractional scale repeats some rows and (below 1, or by rounding) skips others,
        # which depends on the interpolation mode: unknown here
        shown = scale_factor if isinstance(scale_factor, float) else sf
        return SizeResult(kind, n, out, None, f"floor(n*{shown})", floor_applied=True)
    if scale_factor is not None:
        raise ArchcountError("scale_factor applies only to upsample", argument="scale_factor")
    if kernel is None:
        raise ArchcountError(f"{kind} needs a kernel size", argument="kernel")
    kernel = _as_int_or_expr(kernel, "kernel")
    if stride is None:
        stride = kernel if kind in ("maxpool", "avgpool") else 1
    stride = _as_int_or_expr(stride, "stride")
    padding = _as_int_or_expr(padding, "padding")
    dilation = _as_int_or_expr(dilation, "dilation")
    output_padding = _as_int_or_expr(output_padding, "output_padding")
    _check_min(kernel, "kernel", 1)
    _check_min(stride, "stride", 1)
    _check_min(dilation, "dilation", 1)
    _check_min(padding, "padding", 0)
    _check_min(output_padding, "output_padding", 0)
    if kind == "transposed":
        if _is_num(output_padding) and _is_num(stride) and _is_num(dilation) \
                and int(output_padding) >= max(int(stride), int(dilation)):
            raise ArchcountError(
                f"must be smaller than max(stride, dilation) = {max(int(stride), int(dilation))}, "
                f"got {output_padding}", argument="output_padding")
        out = out_len(kind, n, kernel, stride, padding, dilation, output_padding)
        if _is_num(out) and int(out) < 1:
            raise ArchcountError(f"{padding} is too large: the output size would be {out} for input {n} "
                                 f"(it must be >= 1)", argument="padding")
        return SizeResult(kind, n, out, _dropped_transposed(n, kernel, stride, padding, dilation, out),
                          "(n-1)*s - 2p + d(k-1) + op + 1")
    if kind in ("maxpool", "avgpool"):
        if kind == "avgpool" and _is_num(dilation) and int(dilation) != 1:
            raise ArchcountError("avgpool has no dilation; must be 1", argument="dilation")
        if _is_num(padding) and _is_num(kernel) and 2 * int(padding) > int(kernel):
            raise ArchcountError(f"pool padding must be at most kernel/2 = {int(kernel) // 2}, got {padding}",
                                 argument="padding")
    elif output_padding not in (0, sp.Integer(0)):
        raise ArchcountError("output_padding applies only to transposed convs", argument="output_padding")
    if ceil_mode and kind not in ("maxpool", "avgpool"):
        raise ArchcountError("ceil_mode applies only to max/avg pooling", argument="ceil_mode")
    eff = dilation * (kernel - 1) + 1
    out = out_len(kind, n, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    if ceil_mode:
        # torch keeps a window that starts inside the input even if it overhangs the padded end
        if _is_num(out) and int(out) < 1:
            raise ArchcountError(
                f"kernel extent {eff} with stride {stride} and padding {padding} leaves no window on "
                f"an input of size {n}, even in ceil mode (output size {out})", argument="kernel")
    elif _is_num(n) and _is_num(eff) and _is_num(padding) and int(n) + 2 * int(padding) < int(eff):
        raise ArchcountError(
            f"kernel extent {eff} is larger than the padded input {int(n) + 2 * int(padding)} "
            f"(size {n} + 2*padding {padding}); the input must be at least {int(eff) - 2 * int(padding)}",
            argument="kernel")
    dropped = _dropped_rows(n, kernel, stride, padding, dilation, out, ceil_mode)
    rounding = "ceil" if ceil_mode else "floor"
    span_exact = None
    if all(_is_num(v) for v in (n, kernel, stride, padding, dilation)):
        span_exact = (int(n) + 2 * int(padding) - int(dilation) * (int(kernel) - 1) - 1) % int(stride) == 0
    return SizeResult(kind, n, out, dropped, f"{rounding}((n + 2p - d(k-1) - 1)/s) + 1",
                      floor_applied=(span_exact is False) or (span_exact is None and stride != 1))


# --------------------------------------------------------------------------- padding solver

#: Families of padding solutions longer than this are kept as a :class:`SolutionRange`, not a tuple.
MAX_LISTED = 1000


@dataclass(frozen=True, eq=False)
class SolutionRange(Sequence):
    """``count`` pairs ``(p0 + i*dp, op0 + i*dop)``: a family of padding solutions too long to list.

    A huge stride or dilation admits about ``max(stride, dilation)/2`` paddings; they form an
    arithmetic family, held here in O(1) space.  It compares equal to a tuple of the same pairs.

    >>> r = SolutionRange((0, 0), (1, 0), 5 * 10**11)
    >>> len(r), r[-1], (7, 0) in r, (7, 1) in r
    (500000000000, (499999999999, 0), True, False)
    """

    first: tuple[int, int]
    step: tuple[int, int]
    count: int

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(min(self.count, MAX_LISTED))))
        i = int(index)
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(index)
        return (self.first[0] + i * self.step[0], self.first[1] + i * self.step[1])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in range(self.count):
            yield self[i]

    def __contains__(self, pair: Any) -> bool:
        try:
            p, op = (int(v) for v in pair)
        except (TypeError, ValueError):
            return False
        i = (p - self.first[0]) // self.step[0] if self.step[0] else 0
        return 0 <= i < self.count and self[i] == (p, op)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, SolutionRange):
            return (self.first, self.step, self.count) == (other.first, other.step, other.count)
        if isinstance(other, (tuple, list)):
            return len(other) == self.count and all(self[i] == tuple(v) for i, v in enumerate(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SolutionRange({self[0]}, {self[1]}, ..., {self[-1]}; {self.count} pairs)"


def _family(first: tuple[int, int], step: tuple[int, int], count: int) -> Sequence[tuple[int, int]]:
    """A tuple when it is short enough to list, else a :class:`SolutionRange`."""
    if count <= 0:
        return ()
    if count > MAX_LISTED:
        return SolutionRange(first, step, count)
    return tuple((first[0] + i * step[0], first[1] + i * step[1]) for i in range(count))


@dataclass(frozen=True)
class PaddingSolution:
    """The integer paddings that give ``out = scale * in`` for every input in ``valid_for``."""

    kernel: Size
    stride: int
    dilation: int
    transposed: bool
    scale: sp.Rational
    #: (padding, output_padding) pairs; may hold formulas; a SolutionRange when longer than MAX_LISTED
    solutions: Sequence[tuple[Any, Any]]
    valid_for: str
    reason: str | None = None  #: why there is no solution, when there is none
    general: tuple[str, ...] = ()  #: general formulas, in words
    by_parity: dict[str, tuple[tuple[Any, Any], ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.solutions) or any(self.by_parity.values())

    def to_dict(self) -> dict[str, Any]:
        s = lambda v: v if isinstance(v, int) else sp.sstr(v)  # noqa: E731
        return {
            "kernel": s(self.kernel), "stride": self.stride, "dilation": self.dilation,
            "transposed": self.transposed, "scale": sp.sstr(self.scale),
            "solutions": [[s(p), s(op)] for p, op in self.solutions[:MAX_LISTED]],
            "count": len(self.solutions),
            "by_parity": {key: [[s(p), s(op)] for p, op in sols] for key, sols in self.by_parity.items()},
            "valid_for": self.valid_for, "reason": self.reason, "general": list(self.general),
            **({"listed": MAX_LISTED, "step": list(self.solutions.step)}
               if isinstance(self.solutions, SolutionRange) else {}),
        }


def _parse_scale(scale: Any, stride: int, transposed: bool) -> sp.Rational:
    """The scale as a rational; only ``stride`` (transposed) or ``1/stride`` (conv) can ever hold."""
    possible = sp.Integer(stride) if transposed else sp.Rational(1, stride)
    if scale is None or scale is ...:
        return possible
    try:
        value = parse_exact_number(scale, "scale") if isinstance(scale, str) else sp.nsimplify(scale)
    except ArchcountError:
        raise
    except (ValueError, TypeError, ZeroDivisionError, sp.SympifyError):
        raise ArchcountError(f"must be a positive number such as 1, 1/2 or 2, got {scale!r}",
                             argument="scale") from None
    if not (value.is_number and value.is_rational and value > 0):
        raise ArchcountError(f"must be a positive rational such as 1, 1/2 or 2, got {scale!r}", argument="scale")
    if value != possible:
        if transposed:
            why = f"a stride-{stride} transposed conv gives out = {stride}*in + const"
        else:
            why = f"a stride-{stride} conv gives out = floor((in + const)/{stride}) + 1"
        raise ArchcountError(f"must be {possible} here, got {value}: {why}, so only scale {possible} "
                             f"can hold for every input size", argument="scale")
    return value


def general_padding_formulas() -> tuple[str, ...]:
    """The general formulas behind :func:`solve_padding`, in words."""
    return (
        "conv, stride s, out = in/s for all in divisible by s: "
        "ceil((d(k-1)+1-s)/2) <= p <= floor(d(k-1)/2)",
        "conv, stride 1, keep size: p = d(k-1)/2, so only odd d(k-1)+1 (odd k when d=1) works",
        "stride-2 conv halving: p = floor((k-1)/2) (d=1)",
        "transposed conv, stride s, out = s*in for all in: 2p = d(k-1) + 1 - s + op, 0 <= op < max(s, d)",
        "stride-2 transposed conv doubling: p = floor((k-1)/2), op = k mod 2 (d=1)",
    )


def _conv_range(kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    lo = -((-(dilation * (kernel - 1) + 1 - stride)) // 2)
    hi = (dilation * (kernel - 1)) // 2
    return max(lo, 0), hi


def _solve_numeric(kernel: int, stride: int, dilation: int, transposed: bool, scale: sp.Rational
                   ) -> tuple[Sequence[tuple[int, int]], str, str | None]:
    """All solutions in closed form: an interval of paddings (conv) or every other output padding (transposed).

    >>> _solve_numeric(10**12 + 1, 2, 1, True, sp.Integer(2))[0]   # odd k: p = (k-1)/2, op = 1
    ((500000000000, 1),)
    """
    # (_parse_scale has rejected every scale but stride resp. 1/stride)
    if transposed:
        # 2p = c + op with c = d(k-1) + 1 - s, p >= 0 and 0 <= op < max(s, d): op >= -c, op = c mod 2
        c = dilation * (kernel - 1) + 1 - stride
        limit = max(stride, dilation)
        op0 = max(0, -c)
        op0 += (c + op0) % 2
        count = max(0, -((op0 - limit) // 2))  # op0, op0 + 2, ... < limit
        valid = "all input sizes >= 1"
        if not count:
            return (), valid, (f"2p = d(k-1) + 1 - s + op = {c} + op "
                               f"has no solution with p >= 0 and 0 <= op < {limit}")
        return _family(((c + op0) // 2, op0), (1, 2), count), valid, None
    lo, hi = _conv_range(kernel, stride, dilation)
    valid = "all input sizes" if stride == 1 else f"all input sizes divisible by {stride} (in >= {stride})"
    if lo > hi:
        eff = dilation * (kernel - 1) + 1
        if stride == 1:
            why = (f"keeping the size needs 2p = d(k-1) = {dilation * (kernel - 1)}, which is odd: an "
                   f"{'even' if eff % 2 == 0 else 'odd'} effective kernel {eff} with stride 1 cannot keep "
                   f"the size with symmetric padding")
        else:
            why = f"no integer p with {dilation * (kernel - 1) + 1 - stride} <= 2p <= {dilation * (kernel - 1)}"
        return (), valid, why
    return _family((lo, 0), (1, 0), hi - lo + 1), valid, None


def solve_padding(kernel: Size, stride: int = 1, dilation: int = 1, transposed: bool = False,
                  scale: Any = None) -> PaddingSolution:
    """All integer ``(padding, output_padding)`` giving ``out = scale*in`` for every input in a class.

    ``scale`` defaults to ``1/stride`` (conv) or ``stride`` (transposed).  The kernel may be a
    sympy symbol; then the answer is given per parity of k and as a floor formula.

    >>> solve_padding(3, stride=2).solutions
    ((1, 0),)
    >>> solve_padding(4).reason.startswith("keeping the size")
    True
    >>> from analysis.symbols import k
    >>> solve_padding(k, stride=2, transposed=True).solutions
    ((floor(k/2 - 1/2), k - 2*floor(k/2)),)
    """
    stride = bounded_int(stride, "stride", minimum=1)
    dilation = bounded_int(dilation, "dilation", minimum=1)
    scale_r = _parse_scale(scale, stride, transposed)
    general = general_padding_formulas()
    if isinstance(kernel, sp.Basic) and not kernel.is_number:
        return _solve_symbolic(kernel, stride, dilation, transposed, scale_r, general)
    kernel = bounded_int(kernel, "kernel", minimum=1)
    sols, valid, why = _solve_numeric(kernel, stride, dilation, transposed, scale_r)
    return PaddingSolution(kernel, stride, dilation, transposed, scale_r, sols, valid, why, general)


def _solve_symbolic(kernel: sp.Expr, stride: int, dilation: int, transposed: bool, scale: sp.Rational,
                    general: tuple[str, ...]) -> PaddingSolution:
    ksym = kernel
    by_parity: dict[str, tuple] = {}
    samples = {"odd": [3, 5, 7, 9], "even": [2, 4, 6, 8]}
    fitted: dict[str, list[tuple[sp.Expr, sp.Expr]]] = {}
    reason = None
    valid = ""
    for parity, ks in samples.items():
        per_k = []
        for kv in ks:
            sols, valid, why = _solve_numeric(kv, stride, dilation, transposed, scale)
            per_k.append(sols)
            if why and reason is None:
                reason = f"{parity} k (e.g. k={kv}): {why}"
        counts = {len(s) for s in per_k}
        if counts == {0}:
            by_parity[parity] = ()
            continue
        if len(counts) != 1:
            by_parity[parity] = ()
            if reason is None:
                reason = (f"{parity} k: the number of paddings changes with k ("
                          + ", ".join(f"{len(s)} for k={kv}" for kv, s in zip(ks, per_k))
                          + "); give a numeric kernel")
            continue
        if max(counts) > MAX_LISTED:
            by_parity[parity] = ()
            if reason is None:
                reason = (f"{parity} k: more than {MAX_LISTED} paddings for each kernel (stride {stride}, "
                          f"dilation {dilation}); give a numeric kernel for the whole family")
            continue
        forms = []
        for idx in range(counts.pop()):
            # p and op are affine in k within a parity class: fit on two points, check the rest
            (p0, o0), (p1, o1) = per_k[0][idx], per_k[1][idx]
            dk = ks[1] - ks[0]
            ap, bp = sp.Rational(p1 - p0, dk), sp.Rational(p0) - sp.Rational(p1 - p0, dk) * ks[0]
            ao, bo = sp.Rational(o1 - o0, dk), sp.Rational(o0) - sp.Rational(o1 - o0, dk) * ks[0]
            for kv, sols in zip(ks, per_k):
                assert sols[idx] == (ap * kv + bp, ao * kv + bo)
            forms.append((sp.expand(ap * ksym + bp), sp.expand(ao * ksym + bo)))
        by_parity[parity] = tuple(forms)
        fitted[parity] = forms
    combined: tuple = ()
    if set(fitted) == {"odd", "even"} and len(fitted["odd"]) == len(fitted["even"]):
        merged = []
        for (po, oo), (pe, oe) in zip(fitted["odd"], fitted["even"]):
            merged.append((_merge_parity(po, pe, ksym), _merge_parity(oo, oe, ksym)))
        combined = tuple(merged)
    if combined:
        reason = None
    return PaddingSolution(ksym, stride, dilation, transposed, scale, combined, valid, reason, general,
                           by_parity)


def _merge_parity(odd_form: sp.Expr, even_form: sp.Expr, ksym: sp.Symbol) -> sp.Expr:
    """One expression equal to ``odd_form`` for odd k and ``even_form`` for even k, using floor(k/2)."""
    if sp.simplify(odd_form - even_form) == 0:
        return sp.expand(odd_form)
    # odd_form = a k + b, even_form = c k + d; write as x k + y + z*(k - 2 floor(k/2))
    # (k - 2 floor(k/2)) is 1 for odd and 0 for even k
    parity = ksym - 2 * sp.floor(ksym / 2)
    candidate = even_form + (odd_form - even_form) * parity
    # prefer floor((k-1)/2)-style forms where they match
    for alt in (sp.floor((ksym - 1) / 2), sp.floor(ksym / 2), sp.floor((ksym + 1) / 2)):
        for mult in (1, 2):
            for const in (-1, 0, 1):
                guess = mult * alt + const
                if all(guess.subs(ksym, v) == (odd_form if v % 2 else even_form).subs(ksym, v)
                       for v in range(1, 12)):
                    return guess
    if all((sp.expand(odd_form - even_form)).subs(ksym, v) == 1 for v in (1, 2)):
        return even_form + parity
    return sp.expand(candidate)


def padding_table(kernels: Iterable[int] = range(1, 8)) -> list[dict[str, Any]]:
    """Rows for k = 1..7: stride-1 keep, stride-2 conv halving, stride-2 transposed doubling."""
    rows = []
    for kv in kernels:
        keep = solve_padding(kv, stride=1)
        half = solve_padding(kv, stride=2)
        dbl = solve_padding(kv, stride=2, transposed=True)
        rows.append({
            "kernel": kv,
            "stride-1 conv keeping size": [p for p, _ in keep.solutions] or None,
            "stride-2 conv halving": [p for p, _ in half.solutions] or None,
            "stride-2 transposed doubling": list(dbl.solutions) or None,
        })
    return rows
