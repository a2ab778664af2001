"""The rule registry, layer specs and counts, and the helpers every rule shares (see :mod:`analysis.rules`).

>>> RULES.resolve(("torch.nn.modules.conv.Conv2d",))[0]
'torch.nn.modules.conv.Conv2d'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError

Shape = tuple  # per-sample shape, batch excluded: (C, H, W) or (F,)

CATEGORIES = ("conv", "transposed", "linear", "norm", "resample", "elementwise", "structural", "matmul",
              "attention", "embedding", "parameter", "unused")


@dataclass(frozen=True)
class LayerSpec:
    """A torch-free description of one layer (or functional op) of a captured graph."""

    path: str                         #: module path ("block1.0") or fx node name ("cat")
    key: str                          #: the registry key of its exact type or function
    mro_keys: tuple[str, ...]         #: keys along the type's MRO, most specific first
    params: Mapping[str, Any]         #: hyperparameters (ints or sympy expressions)
    inputs: tuple[str, ...] = ()      #: names of the producing nodes
    type_name: str = ""               #: short type name ("Conv2d", "torch.cat")
    refs: tuple[Any, ...] = ()        #: the TensorRefs of the tensor arguments, aligned with in_shapes
    input_kinds: tuple[str, ...] = ()  #: per tensor argument: activation | param | buffer | const
    n_outputs: int = 1                #: how many tensors the op returned when recorded (chunk, split)

    def shape_of(self, ref: Any, in_shapes: Sequence[Any]) -> Any:
        """The shape of a tensor argument (a TensorRef found in ``params``)."""
        for r, s in zip(self.refs, in_shapes):
            if r == ref:
                return s
        raise ArchcountError("a tensor argument has no known shape", layer=self.path)

    def kind_of(self, ref: Any) -> str:
        for r, k in zip(self.refs, self.input_kinds):
            if r == ref:
                return k
        return "activation"


@dataclass(frozen=True)
class LayerCounts:
    """Everything one layer contributes, before a convention picks what counts."""

    category: str
    out_shape: Shape
    weight: Any = 0          #: kernel / matrix weights
    bias: Any = 0            #: bias parameters
    affine: Any = 0          #: normalisation affine parameters (gamma, beta)
    outputs: Any = 0         #: output units per sample
    connections: Mapping[str, Any] = field(default_factory=dict)  #: by connection convention
    notes: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    constraints: tuple[tuple[Any, Any], ...] = ()  #: (a, b) pairs of sizes that must be equal
    out_shapes: tuple[Shape, ...] = ()  #: every output's shape, for ops with several (chunk, split)
    products: Any = 0        #: activation x activation multiply-adds (attention, x @ y): never weighted
    claimed: tuple[tuple[int, str], ...] = ()  #: (tensor-argument index, field) of parameters counted here
    domain: Mapping[str, Any] = field(default_factory=dict)  #: connection key -> smallest exact spatial size


Rule = Callable[[LayerSpec, Sequence[Shape]], LayerCounts]


def type_key(obj: Any) -> str:
    """Registry key of a class, function or key string."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__name__", None) or getattr(obj, "__qualname__", None) or repr(obj)
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional",
              "torch._C._VariableFunctions": "torch", "torch.functional": "torch"}.get(module, module)
    for c_mod, public in (("torch._C._fft", "fft"), ("torch._C._linalg", "linalg"), ("torch._C._special", "special")):
        if module == c_mod:
            module = f"torch.{public}"
            name = name.removeprefix(f"{public}_")
    return f"{module}.{name}" if module else name


class RuleRegistry:
    """Counting rules by layer type; lookup walks the MRO, then short names.

    >>> reg = RuleRegistry()
    >>> @reg.register("my.Layer")
    ... def my_layer(spec, in_shapes):
    ...     return LayerCounts("elementwise", in_shapes[0])
    >>> reg.resolve(("my.SubLayer", "my.Layer"))[0]
    'my.Layer'
    """

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self._full: set[str] = set()
        self._short: dict[str, str] | None = None

    def register(self, *keys: Any, full_shape: bool = False) -> Callable[[Rule], Rule]:
        """Decorator form of :meth:`add`."""
        def deco(fn: Rule) -> Rule:
            for key in keys:
                self.add(key, fn, full_shape=full_shape)
            return fn
        return deco

    def add(self, key: Any, rule: Rule, *, full_shape: bool = False) -> None:
        """Register ``rule`` for ``key``.

        By default a rule sees per-sample shapes (the batch dimension removed from every
        activation) and returns per-sample outputs and connections.  A ``full_shape`` rule sees
        whole shapes, batch included wherever it is (after a permute it need not be first), and
        returns counts for the whole batch, which counting divides by the batch size.
        """
        k = type_key(key)
        self._rules[k] = rule
        self._short = None
        if full_shape:
            self._full.add(k)
        else:
            self._full.discard(k)

    def full_shape(self, key: str) -> bool:
        return key in self._full

    def resolve(self, mro: Iterable[str]) -> tuple[str, Rule] | None:
        mro = tuple(mro)
        for key in mro:
            if key in self._rules:
                return key, self._rules[key]
        if self._short is None:
            self._short = {k.rsplit(".", 1)[-1]: k for k in self._rules
                           if "." in k and not k.startswith(("torch.", "operator.", "Tensor."))}
        short = self._short
        for key in mro:
            name = key.rsplit(".", 1)[-1]
            if name in short:
                return short[name], self._rules[short[name]]
        return None

    def keys(self) -> list[str]:
        return sorted(self._rules)

    def __contains__(self, key: Any) -> bool:
        return type_key(key) in self._rules


#: The default rule registry; users extend it with :func:`register_rule`.
RULES = RuleRegistry()


def register_rule(*layer_types: Any, full_shape: bool = False) -> Callable[[Rule], Rule]:
    """Register a counting rule for layer classes (or key strings) in the default registry.

    >>> @register_rule("mypkg.Scale")
    ... def scale_rule(spec, in_shapes):
    ...     return LayerCounts("elementwise", in_shapes[0], outputs=prod(in_shapes[0]))
    """
    return RULES.register(*layer_types, full_shape=full_shape)


def apply_rule(spec: LayerSpec, in_shapes: Sequence[Shape], registry: RuleRegistry = RULES) -> LayerCounts:
    found = registry.resolve(spec.mro_keys or (spec.key,))
    if found is None:
        raise ArchcountError(f"no counting rule for {spec.type_name or spec.key}", layer=spec.path)
    return found[1](spec, in_shapes)


# --------------------------------------------------------------------------- helpers

def prod(values: Iterable[Any]) -> Any:
    out: Any = sp.Integer(1)
    for v in values:
        out = out * v
    return _num(out)


def _num(x: Any) -> Any:
    """Plain int for numeric sympy values (keeps tables readable and JSON-able)."""
    if isinstance(x, sp.Basic) and x.is_number and x.is_integer:
        return int(x)
    return x


def _is_num(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) or (isinstance(x, sp.Basic) and x.is_number)


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and n > 1:
            return tuple(value) * n
        return tuple(value)
    return (value,) * n


def _positive(value: Any, what: str, spec: LayerSpec, in_shapes: Sequence[Shape], argument: str = "kernel") -> Any:
    if _is_num(value) and int(value) < 1:
        raise ArchcountError(f"{what} would be {value}: the input is too small for this layer", argument=argument,
                             layer=spec.path, shapes={"input": ("BS",) + tuple(in_shapes[0]) if in_shapes else None})
    return value


def _need_input(spec: LayerSpec, in_shapes: Sequence[Shape], ndim: int | None = None) -> Shape:
    if not in_shapes or in_shapes[0] is None:
        raise ArchcountError("input shape unknown", layer=spec.path, argument="input")
    shape = tuple(in_shapes[0])
    if ndim is not None and len(shape) != ndim:
        raise ArchcountError(f"expects a {ndim + 1}-d input [BS, ...], got {len(shape) + 1}-d", layer=spec.path,
                             argument="input", shapes={"input": ("BS",) + shape})
    return shape


def _same(a: Any, b: Any) -> bool | None:
    """True/False when decidable, None when it depends on the symbols.

    Cheap first: an expanded difference of 0 is True, a nonzero number False.  Otherwise the
    difference is evaluated at a few sample points: nonzero somewhere means it holds only for
    some sizes (None); zero everywhere is then proven with ``simplify`` when the expression is small.

    >>> from analysis.symbols import H
    >>> _same(2 * (H / 2), H), _same(H, H + 1), _same(sp.floor(H / 2), H / 2)
    (True, False, None)
    """
    return _same_exprs(sp.sympify(a), sp.sympify(b))


@lru_cache(maxsize=4096)
def _same_exprs(a: Any, b: Any) -> bool | None:
    """:func:`_same` on sympy expressions, memoised: every capture of a model asks the same questions."""
    diff = sp.expand(a - b)
    if diff == 0:
        return True
    if diff.is_number:
        return False
    syms = sorted(diff.free_symbols, key=str)
    for point in (37, 64, 101):
        value = diff.xreplace({s: point + i for i, s in enumerate(syms)})
        if value.is_number and value != 0:
            return None
    if sp.count_ops(diff) <= 40 and sp.simplify(diff) == 0:
        return True
    return None


def broadcast_shapes(a: Shape, b: Shape, spec: LayerSpec) -> Shape:
    """The shape ``a`` and ``b`` broadcast to (torch's rules); symbolic sizes must be equal or 1."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if _is_num(y) and int(y) == 1:
            out.append(x)
        elif _is_num(x) and int(x) == 1:
            out.append(y)
        elif _same(x, y) is False:
            raise ArchcountError(f"shapes {a} and {b} do not broadcast", layer=spec.path)
        else:
            out.append(x)
    return tuple(out)
