"""What other counting tools say for the same model and configuration, next to archcount.

fvcore (a dependency) is always run; thop, torchinfo and ptflops (the ``compare`` extra) are run
when installed and otherwise listed as skipped with the reason.  Every tool's per-layer numbers
are matched, layer group by layer group (one group per layer type), against archcount's exact
per-layer quantities (connections under each padding/transposed convention, outputs, inputs,
parameters, bias terms) evaluated at the same configuration; the explanation of each group is the
quantity that reproduces the tool's number **exactly for every layer of the group in this run**,
and every total is checked to be the sum of its parts.  Nothing is asserted that the numbers of
the run do not show; a group no candidate reproduces is reported as unexplained.

>>> cmp = compare_tools("pool_upsample", tools=["fvcore"])
>>> [e.group for e in cmp.explanations if e.tool == "fvcore" and e.disagrees]
['MaxPool2d', 'BatchNorm2d', 'Upsample(nearest)', 'skipped ops']
>>> cmp.tool("fvcore").total == cmp.archcount["weighted"]["connections"] + 32768 + 90112
True
"""
from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import ArchcountError

#: Tools in the order they are reported.
TOOLS: tuple[str, ...] = ("fvcore", "thop", "torchinfo", "ptflops")
UNITS = {"fvcore": "flops (1 multiply-add = 1 flop)", "thop": "MACs", "torchinfo": "mult-adds",
         "ptflops": "MACs"}

#: The archcount conventions shown next to the tools.
SHOWN_CONVENTIONS: tuple[str, ...] = ("weighted", "all-layers", "parameters", "weighted[padding_taps=exclude]",
                                      "weighted[transposed=exact]", "weighted[transposed=gather]")


@dataclass(frozen=True)
class ToolResult:
    """One tool's numbers for the model (per layer where the tool gives them)."""

    tool: str
    available: bool
    message: str                                 #: version, or why it was skipped
    unit: str = ""
    total: int | None = None
    params: int | None = None
    layers: Mapping[str, int] = field(default_factory=dict)   #: leaf module path -> count
    extra: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "available": self.available, "message": self.message, "unit": self.unit,
                "total": self.total, "params": self.params, "layers": dict(self.layers), "extra": dict(self.extra),
                "seconds": round(self.seconds, 4)}


@dataclass(frozen=True)
class Explanation:
    """How a tool's count for one group of layers (or its total) relates to archcount's."""

    tool: str
    group: str                  #: layer type ("Conv2d", "Upsample(nearest)"), "total", "params", "other ops"
    layers: tuple[str, ...]
    tool_value: int | None
    quantity: str               #: the archcount quantity that reproduces it ("" when none does)
    archcount_value: int | None
    holds: bool                 #: the tool value equals the quantity, checked in this run
    disagrees: bool             #: the tool differs from archcount's convention for these layers
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "group": self.group, "layers": list(self.layers), "tool_value": self.tool_value,
                "quantity": self.quantity, "archcount_value": self.archcount_value, "holds": self.holds,
                "disagrees": self.disagrees, "text": self.text}


@dataclass(frozen=True)
class ToolComparison:
    """Every tool's numbers next to archcount's convention totals, with the explanations."""

    model: str
    config: Any                                   #: a :class:`~analysis.verify.VerifyConfig`
    archcount: Mapping[str, Mapping[str, int]]    #: convention label -> totals
    total_params: int
    tools: tuple[ToolResult, ...]
    explanations: tuple[Explanation, ...]

    def tool(self, name: str) -> ToolResult:
        for t in self.tools:
            if t.tool == name:
                return t
        raise ArchcountError(f"no tool {name!r}; tools: {', '.join(t.tool for t in self.tools)}")

    @property
    def unexplained(self) -> tuple[Explanation, ...]:
        return tuple(e for e in self.explanations if not e.holds)

    def lines(self) -> list[str]:
        """One line per disagreement (and per unexplained number), then the checked totals."""
        out = [e.text for e in self.explanations if e.disagrees or not e.holds]
        out += [e.text for e in self.explanations if e.group in ("total", "params") and not e.disagrees and e.holds]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "config": self.config.to_dict(), "archcount": {k: dict(v) for k, v in
                                                                                     self.archcount.items()},
                "total_params": self.total_params, "tools": [t.to_dict() for t in self.tools],
                "explanations": [e.to_dict() for e in self.explanations], "lines": self.lines()}


# --------------------------------------------------------------------------- running the tools

def _quiet() -> Any:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return f"{dist} {version(dist)}"
    except Exception:
        return dist


def _leaf_paths(module: Any) -> dict[int, str]:
    return {id(m): name for name, m in module.named_modules() if name and not list(m.children())}


def run_fvcore(module: Any, x: Any) -> ToolResult:
    t0 = time.perf_counter()
    with _quiet():
        from fvcore.nn import FlopCountAnalysis
        fa = FlopCountAnalysis(module, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = fa.by_module()
        total = int(fa.total())
        unsupported = {k: int(v) for k, v in fa.unsupported_ops().items()}
        by_op = {k: int(v) for k, v in fa.by_operator().items()}
    leaves = set(_leaf_paths(module).values())
    layers = {p: int(v) for p, v in by_module.items() if p in leaves}
    params = sum(p.numel() for p in module.parameters())
    return ToolResult("fvcore", True, _version("fvcore"), UNITS["fvcore"], total, params, layers,
                      {"unsupported_ops": unsupported, "by_operator": by_op}, time.perf_counter() - t0)


def run_thop(module: Any, x: Any) -> ToolResult:
    t0 = time.perf_counter()
    import thop
    model = copy.deepcopy(module)
    with _quiet():
        ops, params, info = thop.profile(model, inputs=(x,), verbose=False, ret_layer_info=True)

    def flat(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, float]]:
        for name, (o, _p, nested) in d.items():
            if nested:
                yield from flat(nested, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", o
    leaves = set(_leaf_paths(module).values())
    layers = {p: int(round(v)) for p, v in flat(info) if p in leaves}
    return ToolResult("thop", True, _version("thop"), UNITS["thop"], int(round(ops)), int(round(params)), layers,
                      {}, time.perf_counter() - t0)


def run_torchinfo(module: Any, x: Any) -> ToolResult:
    t0 = time.perf_counter()
    import torchinfo
    model = copy.deepcopy(module)
    paths = _leaf_paths(model)
    with _quiet():
        stats = torchinfo.summary(model, input_data=[x], verbose=0, device="cpu")
    layers: dict[str, int] = {}
    for info in stats.summary_list:
        mod = getattr(info, "module", None)
        if mod is not None and id(mod) in paths:
            layers[paths[id(mod)]] = layers.get(paths[id(mod)], 0) + int(info.macs)
    return ToolResult("torchinfo", True, _version("torchinfo"), UNITS["torchinfo"], int(stats.total_mult_adds),
                      int(stats.total_params), layers, {}, time.perf_counter() - t0)


def run_ptflops(module: Any, x: Any) -> ToolResult:
    t0 = time.perf_counter()
    from ptflops import get_model_complexity_info
    shape = tuple(x.shape[1:])
    with _quiet():
        macs, params = get_model_complexity_info(copy.deepcopy(module), shape, as_strings=False,
                                                 print_per_layer_stat=False, backend="pytorch", verbose=False)
    if macs is None:
        raise ArchcountError("ptflops could not count the model")
    layers, note = _ptflops_layers(module, x)
    extra = {"per_layer": note} if note else {}
    return ToolResult("ptflops", True, _version("ptflops") + " (pytorch backend)", UNITS["ptflops"], int(macs),
                      int(params), layers, extra, time.perf_counter() - t0)


def _ptflops_layers(module: Any, x: Any) -> tuple[dict[str, int], str]:
    """Per-module MACs from ptflops's own module hooks (its functional patching is not repeated)."""
    try:
        import torch
        from ptflops.pytorch_engine import add_flops_counting_methods
        model = add_flops_counting_methods(copy.deepcopy(module))
        model.eval()
        paths = _leaf_paths(model)
        with _quiet():
            model.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
            with torch.no_grad():
                model(x)
            layers = {paths[id(m)]: int(m.__flops__) for m in model.modules()
                      if id(m) in paths and hasattr(m, "__flops__")}
            model.stop_flops_count()
        return layers, ""
    except Exception as exc:  # internal API of ptflops: totals still work without it
        return {}, f"per-layer numbers unavailable ({type(exc).__name__}: {exc})"


RUNNERS: dict[str, Callable[[Any, Any], ToolResult]] = {
    "fvcore": run_fvcore, "thop": run_thop, "torchinfo": run_torchinfo, "ptflops": run_ptflops,
}


def run_tool(name: str, module: Any, x: Any) -> ToolResult:
    """Run one tool; a missing optional tool or a failure gives ``available=False`` with the reason."""
    if name not in RUNNERS:
        raise ArchcountError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}", argument="tools")
    try:
        return RUNNERS[name](module, x)
    except ImportError as exc:
        return ToolResult(name, False, f"{name} is not installed ({exc.name or exc}); "
                                       f"pip install 'archcount[compare]' to compare with it")
    except Exception as exc:
        return ToolResult(name, False, f"{name} failed on this model: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- explanations

@dataclass(frozen=True)
class _Layer:
    path: str
    group: str
    kind: str          # measured kind: conv, transposed, linear, norm, pool, adaptive, upsample, other
    counts: Any        # archcount LayerCounts, evaluated
    inputs: int


def _candidates(layer: _Layer) -> list[tuple[str, Any]]:
    """(archcount quantity, value) pairs, most telling first, for one layer."""
    c = layer.counts
    conn = dict(c.connections)
    bias_term = c.outputs if c.bias else 0
    params = c.weight + c.bias + c.affine
    kind = layer.kind
    out: list[tuple[str, Any]] = []
    if kind == "conv":
        out += [("connections, padding taps included (padding_taps=include)", conn.get("include")),
                ("connections, padding taps excluded (padding_taps=exclude)", conn.get("exclude"))]
        out += [("connections (padding_taps=include) + 1 per output for the bias",
                 (conn.get("include") or 0) + bias_term)] if bias_term else []
    elif kind == "transposed":
        out += [("connections input-based (transposed=scatter)", conn.get("scatter")),
                ("connections output-based (transposed=gather)", conn.get("gather")),
                ("connections surviving the crop (transposed=exact)", conn.get("exact"))]
        if bias_term:
            out += [("connections (transposed=scatter) + 1 per output for the bias", conn.get("scatter") + bias_term),
                    ("connections (transposed=gather) + 1 per output for the bias", conn.get("gather") + bias_term)]
    elif kind == "linear":
        out += [("connections (in x out per position)", conn.get("include"))]
        out += [("connections + 1 per output for the bias", conn.get("include") + bias_term)] if bias_term else []
    elif kind == "norm":
        out += [("2 per output (normalise, then scale and shift)", 2 * c.outputs), ("1 per output", c.outputs),
                ("4 per output", 4 * c.outputs), ("its parameter count (gamma + beta)", params)]
    elif kind in ("pool", "adaptive"):
        out += [("window taps (all-layers, padding_taps=include)", conn.get("include")),
                ("window taps on input units (all-layers, padding_taps=exclude)", conn.get("exclude")),
                ("1 per input element", layer.inputs), ("1 per output", c.outputs),
                ("1 per input element + 1 per output", layer.inputs + c.outputs)]
    elif kind == "upsample":
        out += [("1 per output", c.outputs), ("interpolation taps (all-layers)", conn.get("include"))]
    else:
        out += [("1 per output", c.outputs), ("1 per input element", layer.inputs)]
    out.append(("nothing (ignored)", 0))
    return [(q, v) for q, v in out if v is not None]


def _reference(layer: _Layer) -> tuple[str, Any]:
    """What archcount's presets count for this layer (weighted for weight layers, all-layers for
    pooling/upsampling, nothing for the others)."""
    c = layer.counts
    if layer.kind in ("conv", "linear"):
        return "weighted", c.connections.get("include")
    if layer.kind == "transposed":
        return "weighted", c.connections.get("scatter")
    if layer.kind in ("pool", "adaptive", "upsample"):
        return "all-layers", c.connections.get("include")
    if layer.kind == "norm":
        return "presets", 0
    return "any convention", 0


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


def explain(tool: ToolResult, layers: Sequence[_Layer]) -> list[Explanation]:
    """Explanations of one tool's numbers, group by group, then its total and parameters."""
    if not tool.available or not tool.layers:
        return []
    out: list[Explanation] = []
    groups: dict[str, list[_Layer]] = {}
    for layer in layers:
        if layer.path in tool.layers:
            groups.setdefault(layer.group, []).append(layer)
    explained_sum = 0
    parts: list[str] = []
    for group, members in groups.items():
        values = [tool.layers[m.path] for m in members]
        tool_sum = sum(values)
        per_layer = [dict(_candidates(m)) for m in members]
        matching = [q for q, _ in _candidates(members[0])
                    if all(q in cand and cand[q] == v for cand, v in zip(per_layer, values))]
        found = matching[0] if matching else None
        also = f" (here also = {'; '.join(matching[1:])})" if len(matching) > 1 else ""
        ref_conv, _ = _reference(members[0])
        ref_sum = sum(int(_reference(m)[1] or 0) for m in members)
        paths = tuple(m.path for m in members)
        n = f"{len(members)} layer{'s' if len(members) > 1 else ''}"
        if found is None:
            text = (f"{tool.tool}: {group} ({n}): {_fmt(tool_sum)} is not any archcount quantity of these layers "
                    f"(archcount {ref_conv}: {_fmt(ref_sum)}); per layer: "
                    + ", ".join(f"{m.path}={_fmt(v)}" for m, v in zip(members, values)))
            out.append(Explanation(tool.tool, group, paths, tool_sum, "", ref_sum, False, tool_sum != ref_sum, text))
            continue
        value = sum(int(dict(_candidates(m))[found]) for m in members)
        explained_sum += value
        resample = members[0].kind in ("pool", "adaptive", "upsample")
        disagrees = tool_sum != ref_sum or resample
        if found != "nothing (ignored)" and tool_sum:
            parts.append(f"{group} {found} {_fmt(tool_sum)}")
        verb = "ignores" if found == "nothing (ignored)" else "counts"
        what = "" if found == "nothing (ignored)" else f" {found}"
        counts = "count" if ref_conv == "presets" else "counts"
        if tool_sum != ref_sum:
            text = (f"{tool.tool} {verb} {group} ({n}){what}{also}: {_fmt(tool_sum)}; archcount {ref_conv} "
                    f"{counts} {_fmt(ref_sum)} there (difference {_fmt(tool_sum - ref_sum)})"
                    f"{_norm_hint(members)} [checked per layer]")
        elif resample:
            text = (f"{tool.tool} {verb} {group} ({n}){what}{also}: {_fmt(tool_sum)} = archcount {ref_conv}; "
                    f"archcount weighted counts 0 there [checked per layer]")
        else:
            text = (f"{tool.tool} agrees with archcount {ref_conv} on {group} ({n}): {found}{also} = "
                    f"{_fmt(tool_sum)}")
        out.append(Explanation(tool.tool, group, paths, tool_sum, found, value, True, disagrees, text))
    # what the tool counts outside the leaf layers (functional ops such as cat or interpolate)
    leaf_sum = sum(tool.layers.values())
    rest = (tool.total or 0) - leaf_sum
    rest_line = _rest_line(tool, rest, groups) if rest else None
    if rest_line is not None:
        out.append(rest_line)
    unsupported = tool.extra.get("unsupported_ops") or {}
    if unsupported:
        text = (f"{tool.tool} skips ops it has no counter for: "
                + ", ".join(f"{op} x{n}" for op, n in sorted(unsupported.items())) + " (its own report)")
        out.append(Explanation(tool.tool, "skipped ops", (), 0, "", None, True, True, text))
    # the total, as the sum of the explained parts
    rest_label = ("counted twice" if rest_line is not None and rest_line.holds else "unattributed")
    return out + [_total_line(tool, explained_sum, rest, parts, rest_label)]


def _norm_hint(members: Sequence[_Layer]) -> str:
    if members[0].kind != "norm":
        return ""
    return f"; batchnorm=layer would count {_fmt(sum(m.counts.outputs for m in members))} (1 per output)"


def _rest_line(tool: ToolResult, rest: int, groups: Mapping[str, Sequence[_Layer]]) -> Explanation:
    """What a tool counts outside its leaf-module numbers; explained when it equals the tool's own
    module counts of some layer groups (the functional calls inside those modules counted again)."""
    import itertools
    sums = {g: sum(tool.layers[m.path] for m in members) for g, members in groups.items()}
    names = [g for g, v in sums.items() if v]
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            if sum(sums[g] for g in combo) == rest:
                text = (f"{tool.tool} counts {_fmt(rest)} outside its module hooks = its own counts of "
                        f"{' + '.join(combo)} a second time (the torch.nn.functional calls inside those modules "
                        f"are counted again) [checked]")
                return Explanation(tool.tool, "other ops", tuple(combo), rest, "module counts again", rest, True,
                                   True, text)
    text = f"{tool.tool} counts {_fmt(rest)} outside leaf modules (functional ops), not attributed to a layer"
    return Explanation(tool.tool, "other ops", (), rest, "", None, False, True, text)


def _total_line(tool: ToolResult, explained_sum: int, rest: int, parts: list[str],
                rest_label: str = "unattributed") -> Explanation:
    holds = tool.total == explained_sum + rest
    text = (f"{tool.tool} total {_fmt(tool.total)} {tool.unit} = " + (" + ".join(parts) or "0")
            + (f" + {_fmt(rest)} {rest_label}" if rest else "") + (" [checked]" if holds else
                                                                  f" (explained {_fmt(explained_sum)} only)"))
    return Explanation(tool.tool, "total", (), tool.total, "sum of the groups", explained_sum + rest, holds,
                       False, text)


def _params_line(tool: ToolResult, archcount_params: int, total_params: int) -> Explanation | None:
    if not tool.available or tool.params is None:
        return None
    holds = tool.params == archcount_params
    text = (f"{tool.tool} parameters {_fmt(tool.params)} " + ("= " if holds else "!= ")
            + f"archcount parameters-preset weights {_fmt(archcount_params)}"
            + (f" (sum of p.numel(): {_fmt(total_params)})" if total_params != archcount_params else ""))
    if not holds:
        missing = total_params - tool.params
        text += f"; the tool misses {_fmt(missing)} parameters" if missing > 0 else ""
    return Explanation(tool.tool, "params", (), tool.params, "parameters-preset weights", archcount_params, holds,
                       not holds, text)


# --------------------------------------------------------------------------- the comparison

def compare_tools(model: Any, config: Mapping[str, Any] | Any = None, *,
                  tools: Sequence[str] | None = None) -> ToolComparison:
    """Run the counting tools on ``model`` at one configuration and explain their numbers.

    ``model``: zoo name, factory or nn.Module; ``config``: a mapping such as ``{"NF": 8, "H": 30}``
    (missing keys: defaults) or a :class:`~analysis.verify.VerifyConfig`; ``tools``: a subset of
    :data:`TOOLS` (default all; fvcore always runs, the others only when installed).
    """
    import torch

    from .measure import measure
    from .verify import (_Formulas, _input_channels, _normalise_config, _subject, default_configs,
                         parse_convention, torch_threads)
    names = list(tools or TOOLS)
    for name in names:
        if name not in RUNNERS:
            raise ArchcountError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}", argument="tools")
    subject = _subject(model)
    cfg = default_configs(subject)[0] if config is None else _normalise_config(subject, config)
    with torch_threads(1):
        formulas = _Formulas(subject)
        try:
            module = subject.build(cfg.hparams)
        except ArchcountError:
            raise
        except Exception as exc:
            raise ArchcountError(f"the model cannot be built: {type(exc).__name__}: {exc}",
                                 model=subject.name) from None
        channels = _input_channels(subject, formulas, cfg, module)
        m = measure(module, (1, channels, *cfg.size), model=subject.name, flops=False, connections=False)
        table = formulas.for_kernel(cfg.hparams.get("kernel"))
        table = table.evaluate(**formulas.values(cfg, table))
        archcount = {}
        for label in SHOWN_CONVENTIONS:
            t = table.under(parse_convention(label))
            archcount[label] = {q: int(t.total(q)) for q in ("weights", "outputs", "connections")}
        rows = {}
        for r in table.rows:
            rows.setdefault(r.path, r)
        layers = []
        for lm in m.layers:
            if lm.op != "call_module" or lm.path not in rows:
                continue
            mode = getattr(module.get_submodule(lm.path), "mode", "") if lm.kind == "upsample" else ""
            group = lm.type + (f"({mode})" if mode else "")
            inputs = sum(int(_prod(s)) for s in lm.in_shapes[:1])
            layers.append(_Layer(lm.path, group, lm.kind, rows[lm.path].counts, inputs))
        x = torch.randn((1, channels, *cfg.size), generator=torch.Generator().manual_seed(0))
        module.eval()
        results = [run_tool(name, module, x) for name in names]
    explanations: list[Explanation] = []
    for res in results:
        explanations += explain(res, layers)
        p = _params_line(res, archcount["parameters"]["weights"], m.total_params)
        if p is not None:
            explanations.append(p)
    return ToolComparison(subject.name, cfg, archcount, m.total_params, tuple(results), tuple(explanations))


def _prod(shape: Sequence[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


__all__ = ["Explanation", "SHOWN_CONVENTIONS", "TOOLS", "ToolComparison", "ToolResult", "compare_tools", "explain",
           "run_tool"]
