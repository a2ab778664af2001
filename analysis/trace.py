"""Record what a real forward does, at the operator level where no layer rule applies.

:func:`record` runs the model once under two hooks:

- ``nn.Module.__call__`` is wrapped for the duration: a call of a module that has a counting rule
  (and does not override ``forward`` or ``_conv_forward`` relative to the class the rule is for)
  is recorded as one *leaf* node with the module's hyperparameters, and nothing inside it is
  recorded; every other module call only pushes its path, so that the operations inside it are
  attributed to it;
- a :class:`torch.overrides.TorchFunctionMode` sees every other torch operation (functional
  layers, tensor methods, indexing, arithmetic) and records it with its arguments, tensors
  replaced by :class:`~analysis.graph.TensorRef` to the node that produced them.

Sizes read from tensors (``x.shape``, ``x.size(1)``, ``x.numel()``) are returned as
:class:`SizeInt`, an ``int`` that also carries its expression in dimension symbols, so that a
later ``view(B, -1)`` or ``interpolate(size=y.shape[-2:])`` can be counted symbolically.

The forward normally runs on the ``meta`` device (no memory is allocated for weights or
activations); :func:`record` is told which device to use by :mod:`analysis.capture`.

>>> import torch, torch.nn as nn, torch.nn.functional as F
>>> class Net(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.conv = nn.Conv2d(1, 4, 3, padding=1)
...     def forward(self, x):
...         return F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1)
>>> rec = record(Net(), [torch.zeros(2, 1, 8, 8)])
>>> [(n.kind, n.path, n.out_shapes[0]) for n in rec.nodes]  # doctest: +NORMALIZE_WHITESPACE
[('input', 'x', (2, 1, 8, 8)), ('module', 'conv', (2, 4, 8, 8)), ('function', 'relu', (2, 4, 8, 8)),
 ('function', 'max_pool2d', (2, 4, 4, 4)), ('function', 'flatten', (2, 64))]
"""
from __future__ import annotations

import inspect
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import sympy as sp

from .errors import ArchcountError
from .graph import OpNode, SizeExpr, SliceArg, TensorRef, dim_symbol
from .rules import RULES, RuleRegistry, type_key

_LOCK = threading.RLock()
_THIS = os.path.abspath(__file__)
_ANALYSIS_DIR = os.path.dirname(_THIS)


#: Layers whose output on a meta input is only the input's shape, dtype and layout (stock classes
#: only: a subclass may compute anything).  Names, so that importing this module needs no torch.
#: A subset of the elementwise layers of ``analysis.rules.layers``: those whose forward cannot fail
#: on a floating input (not Softmax with its ``dim``, Threshold, ChannelShuffle, RReLU's checks).
_ELEMENTWISE_LAYERS = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardswish",
    "Hardsigmoid", "Hardtanh", "Softplus", "Softsign", "Tanhshrink", "LogSigmoid", "Dropout", "AlphaDropout",
    "FeatureAlphaDropout"})  # not Dropout1d/2d/3d: they check the rank


def _meta_shortcut(module: Any, args: tuple, kwargs: dict) -> Any:
    """The output of a plain BatchNorm or elementwise layer on a valid meta input, without running it.

    On the meta device torch runs these layers through its Python references, and the first such
    call imports ``torch._dynamo`` (about 1 s, more than the rest of a report's captures together);
    BatchNorm's decomposition was also most of the time of a capture.  The output only needs the
    input's shape, dtype and layout, so it is ``empty_like(x)`` (the input itself for an in-place
    layer, as torch returns it) once every check of the real forward has passed; anything unusual
    (wrong channels or rank, another device, one value per channel in training, a subclass) returns
    None and runs the real layer, whose error is then the one reported.

    >>> import torch, torch.nn as nn
    >>> x = torch.empty(2, 3, 4, 4, device="meta")
    >>> _meta_shortcut(nn.ReLU(inplace=True), (x,), {}) is x, _meta_shortcut(nn.BatchNorm2d(3).to("meta"), (x,), {}).shape
    (True, torch.Size([2, 3, 4, 4]))
    >>> _meta_shortcut(nn.BatchNorm2d(5).to("meta"), (x,), {}) is None  # the real layer reports the mismatch
    True
    """
    import torch
    if kwargs or len(args) != 1:
        return None
    x = args[0]
    if type(x) is not torch.Tensor or not x.is_meta or not x.is_floating_point():
        return None
    cls = type(module)
    if cls.__module__ == "torch.nn.modules.activation" or cls.__module__ == "torch.nn.modules.dropout":
        if cls.__name__ not in _ELEMENTWISE_LAYERS:
            return None
        return x if getattr(module, "inplace", False) else torch.empty_like(x)
    from torch.nn.modules.batchnorm import _BatchNorm
    if not isinstance(module, _BatchNorm) or cls.forward is not _BatchNorm.forward or x.dim() < 2:
        return None
    tensors = [t for t in (module.weight, module.bias, module.running_mean, module.running_var) if t is not None]
    if x.shape[1] != module.num_features or any(not t.is_meta or t.dtype != x.dtype for t in tensors):
        return None
    try:
        module._check_input_dim(x)
    except (ValueError, TypeError):
        return None
    if module.training and x.numel() // x.shape[1] <= 1:  # torch: "Expected more than 1 value per channel"
        return None
    return torch.empty_like(x)


#: Functional and method forms of elementwise activations (same shape, dtype and layout out).
_ELEMENTWISE_FUNCS = frozenset({
    "torch.relu", "torch.sigmoid", "torch.tanh", "Tensor.relu", "Tensor.sigmoid", "Tensor.tanh",
    "torch.nn.functional.relu", "torch.nn.functional.relu6", "torch.nn.functional.leaky_relu",
    "torch.nn.functional.elu", "torch.nn.functional.gelu", "torch.nn.functional.silu",
    "torch.nn.functional.mish", "torch.nn.functional.hardswish", "torch.nn.functional.hardsigmoid",
    "torch.nn.functional.hardtanh", "torch.nn.functional.sigmoid", "torch.nn.functional.tanh"})
_INPLACE_FUNCS = frozenset({"torch.relu_", "Tensor.relu_", "Tensor.sigmoid_", "Tensor.tanh_", "torch.sigmoid_",
                            "torch.tanh_"})


def _meta_function(key: str, func: Any, args: tuple, kwargs: dict) -> Any:
    """The output of ``torch.cat`` or an elementwise activation on valid meta inputs, without running it
    (see :func:`_meta_shortcut`: torch runs them through Python references that import
    ``torch._dynamo``).  Only the plain cases: contiguous inputs of one floating dtype, sizes that
    agree; anything else returns None and runs the real op.

    >>> import torch
    >>> a, b = torch.empty(2, 3, 4, 4, device="meta"), torch.empty(2, 5, 4, 4, device="meta")
    >>> _meta_function("torch.cat", torch.cat, ([a, b],), {"dim": 1}).shape
    torch.Size([2, 8, 4, 4])
    >>> _meta_function("torch.cat", torch.cat, ([a, b],), {}) is None  # sizes disagree: torch says so
    True
    """
    import torch
    if key in ("torch.cat", "torch.concat", "torch.concatenate"):
        if "out" in kwargs or not args or len(args) > 2 or set(kwargs) - {"dim", "axis"}:
            return None
        tensors, dim = args[0], args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis", 0))
        if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int:
            return None
        first = tensors[0]
        if any(type(t) is not torch.Tensor or not t.is_meta or not t.is_floating_point() or t.dtype != first.dtype
               or t.dim() != first.dim() or not t.is_contiguous() for t in tensors) or first.dim() == 0:
            return None
        nd = first.dim()
        if not -nd <= dim < nd:
            return None
        dim %= nd
        if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:] for t in tensors):
            return None
        shape = list(first.shape)
        shape[dim] = sum(int(t.shape[dim]) for t in tensors)
        return torch.empty(shape, dtype=first.dtype, device="meta")
    if key not in _ELEMENTWISE_FUNCS and key not in _INPLACE_FUNCS:
        return None
    x = args[0] if args else kwargs.get("input")
    if type(x) is not torch.Tensor or not x.is_meta or not x.is_floating_point() or "out" in kwargs:
        return None
    if any(type(v) is torch.Tensor for v in (*args[1:], *kwargs.values())):
        return None
    if key in _INPLACE_FUNCS:
        return x
    if key.startswith("torch.nn.functional."):
        try:
            inplace = inspect.signature(func).bind(*args, **kwargs).arguments.get("inplace")
        except TypeError:  # arguments torch would refuse
            return None
        except ValueError:  # a builtin without a signature (F.gelu): it has no inplace form
            if "inplace" in kwargs:
                return None
            inplace = False
        if inplace:
            return x
    return torch.empty_like(x)


# --------------------------------------------------------------------------- sizes that remember where they came from

class SizeInt(int):
    """An ``int`` read from a tensor's size, carrying its sympy expression in dimension symbols."""

    expr: Any

    def __new__(cls, value: int, expr: Any) -> "SizeInt":
        obj = int.__new__(cls, value)
        obj.expr = expr
        return obj

    def __repr__(self) -> str:
        return int.__repr__(self)

    def __reduce__(self) -> Any:  # pickles (and deep-copies) as a plain int
        return (int, (int(self),))


def _expr(x: Any) -> Any:
    return x.expr if isinstance(x, SizeInt) else sp.Integer(int(x))


def _int_like(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _binop(name: str, fexpr: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[..., Any]:
    base = getattr(int, name)

    def op(self: SizeInt, other: Any) -> Any:
        value = base(self, other)
        if not _int_like(other) or value is NotImplemented or not _int_like(value):
            return value
        a, b = (_expr(other), self.expr) if reflected else (self.expr, _expr(other))
        return SizeInt(value, fexpr(a, b))

    op.__name__ = name
    return op


for _name, _f in (("__add__", lambda a, b: a + b), ("__sub__", lambda a, b: a - b),
                  ("__mul__", lambda a, b: a * b), ("__floordiv__", lambda a, b: sp.floor(a / b)),
                  ("__mod__", lambda a, b: sp.Mod(a, b))):
    setattr(SizeInt, _name, _binop(_name, _f))
    rname = "__r" + _name[2:]
    setattr(SizeInt, rname, _binop(rname, _f, reflected=True))
SizeInt.__neg__ = lambda self: SizeInt(-int(self), -self.expr)  # type: ignore[method-assign]
SizeInt.__pos__ = lambda self: self  # type: ignore[method-assign]

#: size comparisons made by user code during the active recording: (op, lhs, rhs, result, source)
_CONDITIONS: list[tuple[str, Any, Any, bool, str]] | None = None


def _compare(name: str) -> Callable[..., Any]:
    base = getattr(int, name)

    def op(self: SizeInt, other: Any) -> Any:
        result = base(self, other)
        if _CONDITIONS is not None and _int_like(other) and isinstance(result, bool):
            caller = sys._getframe(1).f_code.co_filename
            import torch
            if not os.path.abspath(caller).startswith(os.path.dirname(os.path.abspath(torch.__file__))):
                _CONDITIONS.append((name.strip("_"), self.expr, _expr(other), result, _user_frame()))
        return result

    op.__name__ = name
    return op


for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(SizeInt, _name, _compare(_name))
SizeInt.__hash__ = int.__hash__  # type: ignore[method-assign]


# --------------------------------------------------------------------------- keys and leaves

_DUNDER = {"__getitem__": "operator.getitem", "__setitem__": "Tensor.__setitem__", "__matmul__": "operator.matmul",
           "__rmatmul__": "operator.matmul", "__neg__": "operator.neg", "__invert__": "operator.invert"}


def mro_keys(cls: type) -> tuple[str, ...]:
    return tuple(type_key(c) for c in cls.__mro__ if c is not object)


def op_key(func: Any) -> str:
    """The registry key of a torch function, tensor method or property getter."""
    if getattr(func, "__name__", None) == "__get__" and hasattr(func, "__self__"):
        return f"Tensor.{getattr(func.__self__, '__name__', 'property')}"
    objclass = getattr(func, "__objclass__", None)
    qual = getattr(func, "__qualname__", "") or ""
    name = getattr(func, "__name__", "") or ""
    if objclass is not None and getattr(objclass, "__name__", "") in ("TensorBase", "Tensor") \
            or qual.startswith(("TensorBase.", "Tensor.")):
        return _DUNDER.get(name, f"Tensor.{name}")
    return type_key(func)


def short_name(key: str) -> str:
    name = key.rsplit(".", 1)[-1]
    return {"__setitem__": "setitem"}.get(name, name.strip("_") or name)


#: methods that a subclass overrides to change what its layer computes
_BEHAVIOUR = ("forward", "_conv_forward", "__call__", "_call_impl")


def leaf_rule(module: Any, registry: RuleRegistry = RULES) -> tuple[str, Any] | None:
    """The (key, rule) applying to ``module`` as one layer, or None (record inside it instead).

    A subclass that overrides ``forward`` (timm's ``LayerNorm2d(nn.LayerNorm)``) or
    ``_conv_forward`` is not the layer its parent's rule describes, unless a rule is registered
    for the subclass itself.
    """
    cls = type(module)
    found = registry.resolve(mro_keys(cls))
    if found is None:
        return None
    key = found[0]
    short = key.rsplit(".", 1)[-1]
    for klass in cls.__mro__:
        tk = type_key(klass)
        if tk == key or tk.rsplit(".", 1)[-1] == short:
            return found
        if any(name in vars(klass) for name in _BEHAVIOUR):
            return None
    return found


def module_params(m: Any) -> dict[str, Any]:
    """Hyperparameters of a torch module from its ``__constants__`` (plus bias presence)."""
    params: dict[str, Any] = {}
    for name in getattr(type(m), "__constants__", ()):
        if hasattr(m, name):
            params[name] = plain(getattr(m, name))
    if "bias" in dict(m.named_parameters(recurse=False)) or hasattr(m, "bias"):
        params["has_bias"] = getattr(m, "bias", None) is not None
    extra = MODULE_ATTRIBUTES.get(type_key(type(m)))
    if extra is not None:
        params.update({k: plain(v) for k, v in extra(m).items()})
    return params


#: hyperparameters a rule needs that a torch class does not list in ``__constants__``
MODULE_ATTRIBUTES: dict[str, Callable[[Any], Mapping[str, Any]]] = {
    "torch.nn.modules.activation.MultiheadAttention": lambda m: dict(
        embed_dim=m.embed_dim, num_heads=m.num_heads, kdim=m.kdim, vdim=m.vdim, batch_first=m.batch_first,
        in_proj_bias=m.in_proj_bias is not None, out_proj_bias=m.out_proj.bias is not None,
        bias_kv=m.bias_k is not None, add_zero_attn=m.add_zero_attn),
    "torch.nn.modules.activation.PReLU": lambda m: dict(num_parameters=m.num_parameters),
    "torch.nn.modules.activation.GLU": lambda m: dict(dim=m.dim),
}


def plain(value: Any, ref: Callable[[Any], Any] | None = None) -> Any:
    """A torch-free, hashable copy of an argument: tensors become refs, sizes SizeExpr."""
    import torch
    if isinstance(value, torch.Tensor):
        return ref(value) if ref is not None else TensorRef("const", 0, tuple(int(s) for s in value.shape))
    if isinstance(value, SizeInt):
        return SizeExpr(value.expr, int(value))
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):  # torch.Size included
        return tuple(plain(v, ref) for v in value)
    if isinstance(value, dict):
        return {k: plain(v, ref) for k, v in value.items()}
    if isinstance(value, slice):
        return SliceArg(plain(value.start, ref), plain(value.stop, ref), plain(value.step, ref))
    if value is Ellipsis:
        return "..."
    if isinstance(value, (torch.dtype, torch.device, torch.memory_format, torch.layout)):
        return str(value)
    if inspect.isclass(value) or callable(value):
        return getattr(value, "__name__", repr(value))
    return repr(value)


def _tensors(value: Any) -> list[Any]:
    import torch
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _user_frame(skip: Sequence[str] = ()) -> str:
    """``file:line`` of the innermost frame outside torch and archcount's own capture code."""
    import torch
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    f = sys._getframe(2)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(torch_dir) and not fn.startswith(_ANALYSIS_DIR) and not fn.startswith(tuple(skip)):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return ""


# --------------------------------------------------------------------------- the recording

@dataclass
class Recording:
    """What one forward did: nodes in execution order and the returned tensors."""

    nodes: list[OpNode]
    outputs: tuple[TensorRef, ...]
    unused_params: tuple[tuple[str, int], ...]
    error: BaseException | None = None                     #: what stopped a partial recording
    conditions: tuple[tuple[str, Any, Any, bool, str], ...] = ()  #: size comparisons the forward branched on
    values: dict[str, Any] = field(default_factory=dict)   #: node name -> (inputs, outputs) when kept
    modules: dict[str, Any] = field(default_factory=dict)  #: leaf node name -> the module object
    calls: dict[str, Any] = field(default_factory=dict)    #: leaf node name -> (args, kwargs) of the call


@dataclass
class _Frame:
    path: str
    call: int


class _Recorder:
    def __init__(self, root: Any, registry: RuleRegistry, keep_values: bool,
                 substitute: Mapping[str, Callable[..., Any]] | None, skip_frames: Sequence[str]) -> None:
        self.root, self.registry = root, registry
        self.keep_values, self.substitute = keep_values, dict(substitute or {})
        self.skip_frames = tuple(skip_frames)
        self.module_names: dict[int, str] = {}
        for name, m in root.named_modules(remove_duplicate=False):
            self.module_names.setdefault(id(m), name)
        self.param_names: dict[int, str] = {}
        self.param_numel: dict[str, int] = {}
        for name, p in root.named_parameters(remove_duplicate=False):
            if id(p) not in self.param_names:
                self.param_names[id(p)] = name
                self.param_numel[name] = int(p.numel())
        self.buffer_names: dict[int, str] = {}
        for name, b in root.named_buffers(remove_duplicate=False):
            self.buffer_names.setdefault(id(b), name)
        self.producers: dict[int, TensorRef] = {}
        self.keep: list[Any] = []
        self.raw: list[dict[str, Any]] = []
        self.stack: list[_Frame] = []
        self.calls: Counter[str] = Counter()
        self.suppress = 0
        self.used_params: set[str] = set()
        self.values: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}
        self.call_args: dict[str, Any] = {}
        self.conditions: list[tuple[str, Any, Any, bool, str]] = []
        self.counter = 0
        self.kinds: dict[str, str] = {}

    # -- nodes
    def _new(self, **fields: Any) -> str:
        name = f"n{self.counter}"
        self.counter += 1
        fields["name"] = name
        self.raw.append(fields)
        self.kinds[name] = fields["kind"]
        return name

    def _attach(self, t: Any, name: str, index: int) -> TensorRef:
        ref = TensorRef(name, index)
        self.producers[id(t)] = ref
        self.keep.append(t)
        return ref

    def ref(self, t: Any) -> TensorRef:
        found = self.producers.get(id(t))
        if found is not None:
            return found
        shape = tuple(int(s) for s in t.shape)
        if id(t) in self.param_names:
            pname = self.param_names[id(t)]
            self.used_params.add(pname)
            name = self._new(kind="param", key="parameter", type_name="Parameter", label=pname,
                             params={"shape": shape, "requires_grad": bool(t.requires_grad)}, inputs=(),
                             out=[shape], source="")
        elif id(t) in self.buffer_names:
            name = self._new(kind="buffer", key="buffer", type_name="buffer", label=self.buffer_names[id(t)],
                             params={"shape": shape}, inputs=(), out=[shape], source="")
        else:
            name = self._new(kind="const", key="const", type_name="tensor", label="const",
                             params={"shape": shape}, inputs=(), out=[shape], source="")
        if self.keep_values:
            self.values[name] = ((), (t,))
        return self._attach(t, name, 0)

    def input(self, t: Any, label: str) -> None:
        name = self._new(kind="input", key="input", type_name="input", label=label,
                         params={"shape": tuple(int(s) for s in t.shape), "dtype": str(t.dtype)}, inputs=(),
                         out=[tuple(int(s) for s in t.shape)], source="")
        if self.keep_values:
            self.values[name] = ((), (t,))
        self._attach(t, name, 0)

    def _outputs(self, name: str, out: Any) -> list[tuple[int, ...]]:
        shapes = []
        for i, t in enumerate(_tensors(out)):
            self._attach(t, name, i)
            shapes.append(tuple(int(s) for s in t.shape))
        return shapes

    # -- module calls
    def module_call(self, orig: Callable[..., Any], module: Any, args: tuple, kwargs: dict) -> Any:
        if self.suppress:
            return orig(module, *args, **kwargs)
        path = self.module_names.get(id(module), f"<{type(module).__name__}>")
        found = leaf_rule(module, self.registry) if module is not self.root or not list(module.children()) else None
        if module is self.root and found is None:
            return orig(module, *args, **kwargs)
        self.calls[path] += 1
        call = self.calls[path]
        if found is None:
            self.stack.append(_Frame(path, call))
            try:
                return orig(module, *args, **kwargs)
            except BaseException as exc:
                _mark(exc, path, args, kwargs)
                raise
            finally:
                self.stack.pop()
        ins = tuple(self.ref(t) for t in _tensors((args, kwargs)))
        source = _user_frame(self.skip_frames)
        in_tensors = _tensors((args, kwargs))
        self.suppress += 1
        try:
            out = None if self.keep_values else _meta_shortcut(module, args, kwargs)
            if out is None:
                out = orig(module, *args, **kwargs)
        except BaseException as exc:
            _mark(exc, path or "layer", args, kwargs)
            raise
        finally:
            self.suppress -= 1
        cls = type(module)
        pnames, pnumel = [], []
        for _, p in module.named_parameters():
            qual = self.param_names.get(id(p))
            if qual is not None and qual not in pnames:
                pnames.append(qual)
                pnumel.append(int(p.numel()))
                self.used_params.add(qual)
        name = self._new(kind="module", key=type_key(cls), mro_keys=mro_keys(cls), type_name=cls.__name__,
                         label=path or "layer", params=module_params(module), inputs=ins, out=None, source=source,
                         module=path, call=call, param_names=tuple(pnames), param_numel=tuple(pnumel),
                         n_params=sum(pnumel))
        self.raw[-1]["out"] = self._outputs(name, out)
        if self.keep_values:
            self.values[name] = (tuple(in_tensors), tuple(_tensors(out)))
            self.modules[name] = module
            self.call_args[name] = (args, kwargs)
        return out

    # -- torch functions
    def function(self, func: Any, args: tuple, kwargs: dict) -> Any:
        key = op_key(func)
        if key in ("Tensor.shape", "Tensor.size", "Tensor.numel"):
            return self.size_query(key, func, args, kwargs)
        if key in _NOT_OPS:
            return func(*args, **kwargs)
        impl = self.substitute.get(key)
        in_tensors = _tensors((args, kwargs))
        ins = tuple(self.ref(t) for t in in_tensors)
        params = {"args": plain(args, self.ref), "kwargs": plain(kwargs, self.ref)}
        out = None if impl is not None or self.keep_values else _meta_function(key, func, args, kwargs)
        if out is None:
            out = (impl or func)(*args, **kwargs)
        outs = _tensors(out)
        if not outs and key != "Tensor.__setitem__":
            return out
        frame = self.stack[-1] if self.stack else _Frame("", 0)
        name = self._new(kind="function", key=key, type_name=key.replace("torch.nn.functional.", "F."),
                         label=short_name(key), params=params, inputs=ins, out=None,
                         source=_user_frame(self.skip_frames), module=frame.path, call=frame.call)
        if key == "Tensor.__setitem__":  # x[idx] = v: x now holds the node's output
            outs = [args[0]]
            out_ = args[0]
        else:
            out_ = out
        self.raw[-1]["out"] = self._outputs(name, out_)
        if self.keep_values:
            self.values[name] = (tuple(in_tensors), tuple(outs))
        return out

    def size_query(self, key: str, func: Any, args: tuple, kwargs: dict) -> Any:
        out = func(*args, **kwargs)
        t = args[0]
        ref = self.producers.get(id(t))
        if ref is None or self.kinds.get(ref.node) not in ("input", "module", "function"):
            return out  # parameters, buffers and constants have fixed sizes
        ndim = t.dim()
        syms = [dim_symbol(ref.node, ref.index, a) for a in range(ndim)]
        if key == "Tensor.numel":
            expr = sp.Integer(1)
            for s in syms:
                expr = expr * s
            return SizeInt(int(out), expr)
        if isinstance(out, int):  # x.size(dim)
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            dim = int(dim) % ndim
            return SizeInt(out, syms[dim])
        import torch
        return torch.Size([SizeInt(int(v), s) for v, s in zip(out, syms)])

    # -- naming
    def finish(self, outputs: Any, error: BaseException | None = None) -> Recording:
        out_refs = tuple(self.ref(t) for t in _tensors(outputs))
        leaf_calls: Counter[str] = Counter(r["module"] for r in self.raw if r["kind"] == "module")
        total_calls = self.calls
        used: Counter[str] = Counter()
        nodes = []
        for r in self.raw:
            kind = r["kind"]
            if kind == "module":
                path = r["label"]
                if leaf_calls[r["module"]] > 1:
                    path = f"{path}#{r['call']}"
            elif kind == "function":
                scope = r["module"]
                if scope and total_calls[scope] > 1:
                    scope = f"{scope}#{r['call']}"
                base = f"{scope}:{r['label']}" if scope else r["label"]
                n = used[base]
                used[base] += 1
                path = base if n == 0 else f"{base}_{n}"
            elif kind == "const":
                n = used["const"]
                used["const"] += 1
                path = "const" if n == 0 else f"const_{n}"
            else:
                path = r["label"]
            nodes.append(OpNode(r["name"], kind, r["key"], tuple(r.get("mro_keys") or (r["key"],)), r["type_name"],
                                path, r["params"], tuple(r["inputs"]), tuple(tuple(s) for s in r["out"] or ()),
                                r.get("module", ""), r.get("call", 0), r.get("source", ""),
                                tuple(r.get("param_names", ())), tuple(r.get("param_numel", ())),
                                r.get("n_params", 0)))
        unused = tuple((name, numel) for name, numel in self.param_numel.items() if name not in self.used_params)
        return Recording(nodes, out_refs, unused, error, tuple(self.conditions), self.values, self.modules,
                         self.call_args)


#: torch functions that read a property without computing a tensor
_NOT_OPS = frozenset({"Tensor.dim", "Tensor.ndim", "Tensor.dtype", "Tensor.device", "Tensor.is_cuda",
                      "Tensor.requires_grad", "Tensor.__len__", "Tensor.__repr__", "Tensor.__format__",
                      "Tensor.is_contiguous", "Tensor.stride", "Tensor.element_size", "Tensor.get_device",
                      "Tensor.data_ptr", "Tensor.is_floating_point", "Tensor.is_complex", "Tensor.layout",
                      "Tensor.names", "Tensor.grad_fn", "Tensor.is_leaf", "Tensor.__hash__", "Tensor.ndimension",
                      "Tensor.nelement", "Tensor.is_sparse", "Tensor.is_quantized", "Tensor.is_meta",
                      "Tensor.__bool__", "Tensor.item", "Tensor.tolist", "Tensor.__iter__", "Tensor.__index__",
                      "Tensor.__int__", "Tensor.__float__", "Tensor.__array__", "Tensor.__reduce_ex__",
                      "Tensor.__deepcopy__", "Tensor.storage_offset", "Tensor.untyped_storage",
                      "Tensor._version", "Tensor.__contains__", "Tensor.__dlpack__", "Tensor.has_names",
                      "Tensor.output_nr", "Tensor._base", "Tensor.is_nested", "Tensor.is_mkldnn",
                      "Tensor.__torch_function__", "Tensor.__get__", "Tensor.name", "Tensor.grad"})


def record(module: Any, inputs: Sequence[Any], *, registry: RuleRegistry = RULES, input_names: Sequence[str] = (),
           keep_values: bool = False, substitute: Mapping[str, Callable[..., Any]] | None = None,
           skip_frames: Sequence[str] = (), partial: bool = False) -> Recording:
    """Run ``module(*inputs)`` and record every leaf-module call and torch operation.

    ``keep_values`` keeps each node's input and output tensors (for measurements);
    ``substitute`` maps op keys to replacement callables (for connectivity copies).
    Exceptions of the forward propagate unchanged (the caller turns them into clear errors), or
    with ``partial`` the recording so far comes back with ``error`` set.
    """
    import torch
    import torch.nn as nn
    from torch.overrides import TorchFunctionMode

    names = list(input_names) or _input_names(module, len(inputs))
    with _LOCK:
        rec = _Recorder(module, registry, keep_values, substitute, skip_frames)
        for t, label in zip(inputs, names):
            rec.input(t, label)

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                if rec.suppress:
                    if rec.substitute:  # a connectivity copy changes ops inside layers too
                        impl = rec.substitute.get(op_key(func))
                        if impl is not None:
                            return impl(*args, **kwargs)
                    return func(*args, **kwargs)
                return rec.function(func, args, kwargs)

        orig = nn.Module.__call__

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return rec.module_call(orig, self, args, kwargs)

        nn.Module.__call__ = call  # type: ignore[method-assign]
        global _CONDITIONS
        _CONDITIONS = rec.conditions
        try:
            with _Mode(), torch.no_grad() if not keep_values else _nullcontext():
                out = module(*inputs)
        except Exception as exc:  # noqa: BLE001
            if not partial:
                raise
            rec.stack.clear()
            rec.suppress = 0
            return rec.finish((), exc)
        finally:
            nn.Module.__call__ = orig  # type: ignore[method-assign]
            _CONDITIONS = None
        return rec.finish(out)


def _mark(exc: BaseException, path: str, args: tuple, kwargs: dict) -> None:
    """Remember the innermost module a forward failed in, with its input shapes."""
    if getattr(exc, "_archcount_where", None) is None:
        try:
            exc._archcount_where = (path, [("BS", *tuple(int(v) for v in t.shape[1:])) if t.dim() else ()
                                           for t in _tensors((args, kwargs))])  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - some exception types refuse attributes
            pass


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _input_names(module: Any, n: int) -> list[str]:
    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params][:n]
    except (TypeError, ValueError):
        names = []
    while len(names) < n:
        names.append("input" if not names else f"input_{len(names)}")
    if len(set(names)) != len(names):
        names = ["input"] + [f"input_{i}" for i in range(1, n)]
    return names


def forward_error(exc: BaseException, model: str) -> ArchcountError:
    """A clear error for a forward that raised: the user's line and the message, no traceback."""
    import traceback
    import torch
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    where = ""
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        fn = os.path.abspath(fs.filename)
        if not fn.startswith(torch_dir) and not fn.startswith(_ANALYSIS_DIR):
            where = f"{fs.filename}:{fs.lineno}" + (f" ({fs.line.strip()})" if fs.line else "")
            break
    layer, shapes = getattr(exc, "_archcount_where", None) or (None, None)
    if isinstance(exc, ArchcountError):
        return exc.with_context(model=model, layer=layer)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ArchcountError(f"the forward raised {type(exc).__name__}{': ' + text if text else ''}"
                          + (f" at {where}" if where else ""), model=model, layer=layer or None,
                          shapes=({"input": shapes[0]} if len(shapes) == 1 else {f"input {i}": s for i, s in
                                                                                   enumerate(shapes)})
                          if shapes else None)


__all__ = ["Recording", "SizeInt", "forward_error", "leaf_rule", "module_params", "mro_keys", "op_key", "plain",
           "record", "short_name"]
