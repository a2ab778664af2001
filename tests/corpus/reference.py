"""Independent measurements of a corpus model; nothing here uses archcount.

* parameters: ``sum(p.numel() for p in model.parameters())`` (torch deduplicates shared
  Parameters by identity);
* module calls: forward hooks on every module, one record per *call* in call order, with the
  output's numel per sample and whether the call was innermost (no other module ran inside it);
* products: a dispatch mode sees every convolution / matrix product the forward executes, counts
  its multiply-accumulates from the operand shapes, calls it *weighted* when one multiplicand is
  (a view of) a Parameter and *activation x activation* otherwise, and attributes it to the
  innermost module call running;
* fvcore's ``FlopCountAnalysis`` (by module, by operator; fvcore counts one flop per MAC) and
  ``torch.utils.flop_counter.FlopCounterMode`` (two flops per MAC), run alongside.

Receptive fields by brute force are in :mod:`corpus.field`.  Everything is per sample (batch 1,
eval mode, ``torch.no_grad()``) and cached per model name (:func:`measure`).
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from .registry import REGISTRY

aten = torch.ops.aten

#: fvcore operators that are products with a weight in this corpus (conv and linear layers)
FVCORE_WEIGHTED = ("conv", "linear", "addmm", "mm")


@dataclass(frozen=True)
class Call:
    """One call of one module."""

    path: str          #: module path ("" is the model itself)
    index: int         #: 1 for its first call, 2 for its second, ...
    calls: int         #: how many times this module was called in the forward
    type: str          #: class name
    numel: int         #: output elements per sample (first tensor of a tuple output)
    innermost: bool    #: no other module was called during this call
    weighted: int = 0  #: weighted MACs executed directly in this call (not in nested calls)
    products: int = 0  #: activation x activation MACs executed directly in this call

    @property
    def name(self) -> str:
        """``path`` for a module called once, ``path#k`` for the k-th of several calls."""
        return self.path if self.calls == 1 else f"{self.path}#{self.index}"


@dataclass(frozen=True)
class Product:
    """One convolution or matrix product the forward executed."""

    op: str            #: aten operator, e.g. "aten.convolution"
    macs: int          #: multiply-accumulates per sample
    weighted: bool     #: one multiplicand is a Parameter (a weighted connection)
    call: str          #: name of the innermost module call running it ("" for the model's own forward)
    seen_by_flop_counter: bool  #: FlopCounterMode has a formula for this operator


@dataclass(frozen=True)
class Measurement:
    """Everything measured about one model at its entry's input shape."""

    name: str
    input_shape: tuple[int, ...]
    params: int
    calls: tuple[Call, ...]
    products: tuple[Product, ...]
    fvcore_by_module: dict[str, dict[str, int]]   #: module path -> fvcore operator -> flops (= MACs)
    fvcore_by_operator: dict[str, int]
    fvcore_unsupported: dict[str, int]            #: operators fvcore skipped -> occurrences
    flop_counter: dict[str, int]                  #: FlopCounterMode operator -> flops (= 2 MACs)
    notes: tuple[str, ...] = field(default=())

    # -- totals
    @property
    def weighted(self) -> int:
        """Weighted connections: MACs of products with a Parameter multiplicand."""
        return sum(p.macs for p in self.products if p.weighted)

    @property
    def activation_products(self) -> int:
        """Activation x activation MACs (attention scores and mixing), not weighted connections."""
        return sum(p.macs for p in self.products if not p.weighted)

    @property
    def unseen_by_flop_counter(self) -> int:
        """MACs of products FlopCounterMode has no formula for (e.g. CPU flash attention)."""
        return sum(p.macs for p in self.products if not p.seen_by_flop_counter)

    @property
    def flop_counter_half(self) -> int:
        """FlopCounterMode's total / 2, i.e. in MACs."""
        total = sum(self.flop_counter.values())
        assert total % 2 == 0, total
        return total // 2

    def fvcore_weighted(self, path: str = "") -> int:
        """fvcore's conv + linear count of module ``path`` (its nested modules included; all calls)."""
        ops = self.fvcore_by_module.get(path, {})
        return sum(ops.get(op, 0) for op in FVCORE_WEIGHTED)

    @property
    def fvcore_total(self) -> int:
        return sum(self.fvcore_by_operator.values())

    # -- per call
    def call(self, name: str) -> Call:
        for c in self.calls:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no module call {name!r}")

    def innermost_calls(self) -> tuple[Call, ...]:
        """The calls archcount should give rows for: modules inside which no other module ran."""
        return tuple(c for c in self.calls if c.innermost)

    def weighted_by_module(self) -> dict[str, int]:
        """Weighted MACs per module path, summed over its calls and everything nested in them."""
        out: dict[str, int] = {}
        for p in self.products:
            if not p.weighted:
                continue
            path = p.call.split("#")[0]
            while True:
                out[path] = out.get(path, 0) + p.macs
                if not path:
                    break
                path = path.rpartition(".")[0]
        return out


# ----------------------------------------------------------------------------- product counting

def _shape_macs(func: Any, args: tuple, out: Any) -> tuple[int, tuple[torch.Tensor, ...]] | None:
    """(MACs, multiplicands) of a product operator, None for any other operator."""
    packet = func.overloadpacket
    if packet is aten.convolution:
        x, w, transposed = args[0], args[1], args[6]
        if transposed:   # each input element is scattered through Cout/groups * prod(kernel) weights
            return x.numel() * w.shape[1] * math.prod(w.shape[2:]), (x, w)
        return out.numel() * math.prod(w.shape[1:]), (x, w)
    if packet in (aten.mm, aten.bmm):
        a, b = args[0], args[1]
        return a.numel() * b.shape[-1], (a, b)
    if packet in (aten.addmm, aten.baddbmm):
        a, b = args[1], args[2]
        return a.numel() * b.shape[-1], (a, b)
    if "attention" in packet.__name__ and "backward" not in packet.__name__:
        q, k, v = args[0], args[1], args[2]          # (..., L, E), (..., S, E), (..., S, Ev)
        lead = math.prod(q.shape[:-2])
        return lead * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1]), (q, k)
    if packet in (aten.matmul, aten.einsum, aten.dot, aten.mv, aten._native_multi_head_attention):
        raise NotImplementedError(f"reference: product operator {packet} reached the dispatcher undecomposed")
    return None


class ProductCounter(TorchDispatchMode):
    """Records every product operator with its MACs, whether it is weighted, and the running module call."""

    def __init__(self, parameters: list[nn.Parameter], current: Callable[[], str]) -> None:
        super().__init__()
        self.storages = {p.untyped_storage().data_ptr() for p in parameters}
        self.current = current
        self.fcm_ops = set(FlopCounterMode().flop_registry)
        self.products: list[Product] = []

    def _is_param(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in self.storages

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        found = _shape_macs(func, args, out)
        if found is not None:
            macs, operands = found
            self.products.append(Product(f"aten.{func.overloadpacket.__name__}", int(macs),
                                         any(self._is_param(t) for t in operands), self.current(),
                                         func.overloadpacket in self.fcm_ops))
        return out


# ----------------------------------------------------------------------------- module calls

class CallRecorder:
    """Forward pre-hooks and hooks on every module: a stack of running calls and one record per call."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.records: list[dict[str, Any]] = []
        self.stack: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.handles: list[Any] = []

    def current(self) -> str:
        """Key of the innermost running call ("" outside any)."""
        return self.stack[-1]["key"] if self.stack else ""

    def __enter__(self) -> "CallRecorder":
        for path, module in self.model.named_modules():
            self.handles.append(module.register_forward_pre_hook(functools.partial(self._pre, path)))
            self.handles.append(module.register_forward_hook(functools.partial(self._post, path)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()

    def _pre(self, path: str, module: nn.Module, args: Any) -> None:
        if self.stack:
            self.stack[-1]["innermost"] = False
        self.counts[path] = self.counts.get(path, 0) + 1
        rec = {"path": path, "index": self.counts[path], "type": type(module).__name__, "innermost": True,
               "key": f"{path}\0{self.counts[path]}", "numel": None}
        self.stack.append(rec)
        self.records.append(rec)

    def _post(self, path: str, module: nn.Module, args: Any, output: Any) -> None:
        rec = self.stack.pop()
        assert rec["path"] == path, (rec["path"], path)
        first = output
        while isinstance(first, (tuple, list)):
            first = first[0]
        rec["numel"] = first.numel() if isinstance(first, torch.Tensor) else 0


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _tensors(v)


def run_calls(model: nn.Module, x: torch.Tensor) -> tuple[tuple[Call, ...], tuple[Product, ...], dict[str, int]]:
    """One forward under hooks, the product counter and FlopCounterMode; per-call records and products."""
    recorder = CallRecorder(model)
    counter = ProductCounter(list(model.parameters()), recorder.current)
    fcm = FlopCounterMode(display=False)
    with torch.no_grad(), recorder, fcm, counter:
        model(x)
    batch = x.shape[0]
    names: dict[str, str] = {}
    calls = []
    for rec in recorder.records:
        n = recorder.counts[rec["path"]]
        call = Call(rec["path"], rec["index"], n, rec["type"], rec["numel"] // batch, rec["innermost"])
        names[rec["key"]] = call.name
        calls.append(call)
    products = tuple(Product(p.op, p.macs // batch, p.weighted, names.get(p.call, ""), p.seen_by_flop_counter)
                     for p in counter.products)
    by_call: dict[str, list[int]] = {}
    for p in products:
        acc = by_call.setdefault(p.call, [0, 0])
        acc[0 if p.weighted else 1] += p.macs
    calls = [Call(c.path, c.index, c.calls, c.type, c.numel, c.innermost, *by_call.get(c.name, (0, 0)))
             for c in calls]
    flops = {str(op): int(v) // batch for op, v in fcm.get_flop_counts().get("Global", {}).items()}
    return tuple(calls), products, flops


def run_fvcore(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, dict[str, int]], dict[str, int], dict[str, int]]:
    """fvcore's counts by module and operator, and the operators it skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # fvcore and its imports call torch.jit.script
        from fvcore.nn import FlopCountAnalysis
        fa = FlopCountAnalysis(model, (x,))
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        by_module = {path: {op: int(v) for op, v in ops.items()} for path, ops in fa.by_module_and_operator().items()}
    return by_module, {op: int(v) for op, v in fa.by_operator().items()}, dict(fa.unsupported_ops())


# ----------------------------------------------------------------------------- cache

@functools.lru_cache(maxsize=None)
def model(name: str, thin: bool = False) -> nn.Module:
    """The corpus model ``name`` in eval mode (seeded; the thin build with ``thin=True``)."""
    torch.manual_seed(0)
    return REGISTRY[name].make(thin=thin)


@functools.lru_cache(maxsize=None)
def measure(name: str) -> Measurement:
    """All count measurements of corpus model ``name`` at its input shape, batch 1."""
    entry = REGISTRY[name]
    net = model(name)
    x = torch.rand(1, *entry.input_shape)
    notes = []
    # nn.MultiheadAttention's inference fast path, where torch takes it, is one fused operator
    # (aten._native_multi_head_attention) that the product count refuses and fvcore skips; with it
    # off the same arithmetic runs unfused.  (With torch 2.13 the corpus's MHA does not take it anyway.)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        calls, products, flops = run_calls(net, x)
        by_module, by_op, unsupported = run_fvcore(net, x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    if any(isinstance(m, nn.MultiheadAttention) for m in net.modules()):
        notes.append("measured with the nn.MultiheadAttention inference fast path disabled")
    return Measurement(name, entry.input_shape, sum(p.numel() for p in net.parameters()), calls, products,
                       by_module, by_op, unsupported, flops, tuple(notes))


__all__ = ["Call", "FVCORE_WEIGHTED", "Measurement", "Product", "measure", "model", "run_calls", "run_fvcore"]
