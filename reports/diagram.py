"""Architecture diagram: layer blocks with tensor shapes, data flow arrows and curved skip connections.

>>> nodes = [dict(name="c1", label="Conv2d k×k", shape="[BS, NF, H, W]", inputs=["input"], group="block1"),
...          dict(name="c2", label="Conv2d k×k", shape="[BS, NC, H, W]", inputs=["c1", "input"], group="final")]
>>> draw_architecture(nodes, tmp / "net.png", title="tiny").stat().st_size > 0  # doctest: +SKIP
True

Nodes of one ``group`` are drawn as one block (the group name in bold, then one line
per layer, the group's output shape under the block).  Consecutive blocks are joined by
straight arrows; any other connection (a skip or concatenation) is a curved arrow above
the row (or to the right of the column).  Rendering uses matplotlib's Agg canvas with
matplotlib's default style, whatever the user's matplotlibrc says, and writes PNG
without a Software/date entry, so the same input gives the same bytes.
"""
from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from analysis.errors import ArchcountError

__all__ = ["draw_architecture", "DiagramNode"]

INPUT = "input"

# Sizes in points (text) and inches (layout); 1 data unit = 1 inch.
_TITLE_PT = 11.0
_GROUP_PT = 8.5
_LABEL_PT = 7.5
_SHAPE_PT = 7.0
_LINE_GAP = 1.25      # line height as a multiple of the font size
_PAD = 0.08           # inside a box
_GAP = 0.38           # between blocks along the flow
_WRAP = 22            # characters per label line
_RAD = -0.32          # arc3 curvature of skip arrows (negative: above a left-to-right row)
_SKIP_COLOUR = "#c0392b"
_BOX_FACE = "#eef3fb"
_BOX_EDGE = "#34495e"
_INPUT_FACE = "#f4f4f4"


@dataclass
class DiagramNode:
    """One layer: its ``name``, ``label`` (layer type), output ``shape``, producer ``inputs`` and ``group``."""

    name: str
    label: str
    shape: str
    inputs: list[str]
    group: str


@dataclass
class _Block:
    key: str
    title: str
    lines: list[str]
    shape: str
    members: list[str] = field(default_factory=list)
    is_input: bool = False


def _get(node: Any, key: str, index: int, default: Any = ...) -> Any:
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
    elif hasattr(node, key):
        return getattr(node, key)
    if default is ...:
        raise ArchcountError(f"diagram node #{index} has no {key!r} field", argument="nodes")
    return default


def _normalize(nodes: Sequence[Any]) -> list[DiagramNode]:
    if not nodes:
        raise ArchcountError("cannot draw an architecture without nodes", argument="nodes")
    out: list[DiagramNode] = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        name = str(_get(node, "name", i))
        if not name or name == INPUT:
            raise ArchcountError(f"diagram node #{i} has an invalid name {name!r}", argument="nodes")
        if name in seen:
            raise ArchcountError(f"diagram node name {name!r} is used twice", argument="nodes")
        inputs = _get(node, "inputs", i)
        if isinstance(inputs, str):
            inputs = [inputs]
        inputs = [str(x) for x in inputs]
        label = str(_get(node, "label", i, name))
        shape = _get(node, "shape", i, "")
        shape = "" if shape is None else str(shape)
        group = _get(node, "group", i, None)
        group = name if group in (None, "") else str(group)
        out.append(DiagramNode(name, label, shape, inputs, group))
        seen.add(name)
    names = {n.name for n in out}
    for n in out:
        for src in n.inputs:
            if src != INPUT and src not in names:
                raise ArchcountError(f"diagram node {n.name!r} reads {src!r}, which is not a node "
                                     f"(nor {INPUT!r})", argument="nodes")
    return out


def _text_size(text: str, size: float, *, family: str = "DejaVu Sans", weight: str = "normal") -> tuple[float, float]:
    """Width and height in inches of one line of text (no mathtext)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(family=family, weight=weight, size=size)
    w, h, _d = TextToPath().get_text_width_height_descent(text or " ", prop, ismath=False)
    return w / 72.0, h / 72.0


def _blocks(nodes: list[DiagramNode]) -> tuple[list[_Block], dict[str, int]]:
    blocks: list[_Block] = []
    index: dict[str, int] = {}   # group -> block index
    for n in nodes:
        if n.group not in index:
            index[n.group] = len(blocks)
            blocks.append(_Block(key=n.group, title=n.group, lines=[], shape=""))
        b = blocks[index[n.group]]
        b.lines.extend(textwrap.wrap(n.label, _WRAP) or [""])
        b.shape = n.shape
        b.members.append(n.name)
    return blocks, index


def draw_architecture(nodes: Sequence[Any], out_png: str | Path, *, title: str | None = None,
                      orientation: Literal["auto", "horizontal", "vertical"] = "auto",
                      input_shape: str | None = None, dpi: int = 200) -> Path:
    """Draw ``nodes`` (dicts or objects with name, label, shape, inputs, group) to ``out_png``.

    ``orientation="auto"`` lays up to 8 blocks out left to right and more top to bottom.
    ``input_shape`` is printed under the input block when given.  Returns the path.
    """
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from .render import write_atomic

    if orientation not in ("auto", "horizontal", "vertical"):
        raise ArchcountError(f"unknown orientation {orientation!r}; valid: auto, horizontal, vertical",
                             argument="orientation")
    spec = _normalize(nodes)
    blocks, group_index = _blocks(spec)
    node_block = {n.name: group_index[n.group] + 1 for n in spec}   # +1: block 0 is the input
    node_block[INPUT] = 0
    blocks.insert(0, _Block(key=INPUT, title=INPUT, lines=[], shape=input_shape or "", is_input=True))
    horizontal = orientation == "horizontal" or (orientation == "auto" and len(blocks) - 1 <= 8)

    # Edges between blocks, in a fixed order.
    edges: list[tuple[int, int]] = []
    for n in spec:
        dst = node_block[n.name]
        for src_name in n.inputs:
            src = node_block[src_name]
            if src != dst and (src, dst) not in edges:
                edges.append((src, dst))

    with matplotlib.style.context("default"):
        # Block sizes from the measured text.
        line_h = _LABEL_PT * _LINE_GAP / 72.0
        group_h = _GROUP_PT * _LINE_GAP / 72.0
        sizes = []
        for b in blocks:
            widths = [_text_size(b.title, _GROUP_PT, weight="bold")[0]]
            widths += [_text_size(s, _LABEL_PT)[0] for s in b.lines]
            w = max(widths) + 2 * _PAD
            h = group_h + len(b.lines) * line_h + 2 * _PAD
            sizes.append((w, h))
        shape_w = [(_text_size(b.shape, _SHAPE_PT, family="DejaVu Sans Mono")[0] if b.shape else 0.0)
                   for b in blocks]
        shape_h = _SHAPE_PT * _LINE_GAP / 72.0
        if horizontal:
            box_h = max(h for _, h in sizes)
            widths = [max(w, sw + 0.04) for (w, _), sw in zip(sizes, shape_w)]
            boxes = []  # (cx, cy, w, h)
            x = 0.0
            for i, (w, _h) in enumerate(sizes):
                slot = widths[i]
                cx = x + slot / 2
                boxes.append((cx, 0.0, w, box_h))
                x += slot + _GAP
            span = [abs(boxes[d][0] - boxes[s][0]) for s, d in edges if abs(d - s) > 1]
            arc_up = max([abs(_RAD) * sp / 2 for sp in span], default=0.0)
            x0, x1 = -0.15, x - _GAP + 0.15
            y0 = -box_h / 2 - shape_h - 0.25
            y1 = box_h / 2 + arc_up + 0.2
        else:
            box_w = max(w for w, _ in sizes)
            boxes = []
            y = 0.0
            for i, (_w, h) in enumerate(sizes):
                cy = y - h / 2
                boxes.append((0.0, cy, box_w, h))
                y -= h + _GAP
            span = [abs(boxes[d][1] - boxes[s][1]) for s, d in edges if abs(d - s) > 1]
            arc_right = max([abs(_RAD) * sp / 2 for sp in span], default=0.0)
            x0 = -box_w / 2 - max(shape_w) - 0.3
            x1 = box_w / 2 + arc_right + 0.25
            y0, y1 = y + _GAP - 0.15, 0.15
        if any(abs(d - s) > 1 for s, d in edges):
            y0 -= 0.22  # room for the legend
        title_h = (_TITLE_PT * 1.8 / 72.0) if title else 0.0
        fig_w, fig_h = x1 - x0, (y1 - y0) + title_h
        fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, (y1 - y0) / fig_h))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_axis_off()
        if title:
            fig.text(0.5, 1 - (title_h / 2) / fig_h, title, ha="center", va="center", fontsize=_TITLE_PT,
                     fontweight="bold", parse_math=False)

        for b, (cx, cy, w, h) in zip(blocks, boxes):
            ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                        facecolor=_INPUT_FACE if b.is_input else _BOX_FACE,
                                        edgecolor=_BOX_EDGE, linewidth=0.9, zorder=2))
            top = cy + h / 2 - _PAD
            ax.text(cx, top, b.title, ha="center", va="top", fontsize=_GROUP_PT, fontweight="bold",
                    parse_math=False, zorder=3)
            ty = top - group_h
            for line in b.lines:
                ax.text(cx, ty, line, ha="center", va="top", fontsize=_LABEL_PT, parse_math=False, zorder=3)
                ty -= line_h
            if b.shape:
                if horizontal:
                    ax.text(cx, cy - h / 2 - 0.06, b.shape, ha="center", va="top", fontsize=_SHAPE_PT,
                            family="DejaVu Sans Mono", color="#222222", parse_math=False)
                else:
                    ax.text(cx - w / 2 - 0.08, cy, b.shape, ha="right", va="center", fontsize=_SHAPE_PT,
                            family="DejaVu Sans Mono", color="#222222", parse_math=False)

        n_skips = 0
        for s, d in edges:
            (sx, sy, sw, sh), (dx, dy, dw, dh) = boxes[s], boxes[d]
            if d == s + 1:
                if horizontal:
                    a, b_ = (sx + sw / 2, sy), (dx - dw / 2, dy)
                else:
                    a, b_ = (sx, sy - sh / 2), (dx, dy + dh / 2)
                ax.add_patch(FancyArrowPatch(a, b_, arrowstyle="-|>", mutation_scale=9, linewidth=1.0,
                                             color="black", shrinkA=0, shrinkB=0, zorder=1))
                continue
            n_skips += 1
            rad = _RAD if d > s else -_RAD
            if horizontal:
                a, b_ = (sx + sw * 0.25, sy + sh / 2), (dx - dw * 0.25, dy + dh / 2)
                if d < s:  # backwards: below the row
                    a, b_ = (sx - sw * 0.25, sy - sh / 2), (dx + dw * 0.25, dy - dh / 2)
            else:
                a, b_ = (sx + sw / 2, sy - sh * 0.25), (dx + dw / 2, dy + dh * 0.25)
            ax.add_patch(FancyArrowPatch(a, b_, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=9, linewidth=1.0, color=_SKIP_COLOUR,
                                         shrinkA=1, shrinkB=1, zorder=1))
        if n_skips:
            ax.text(x0 + 0.08, y0 + 0.06, "curved arrows: skip connections", ha="left",
                    va="bottom", fontsize=_SHAPE_PT, color=_SKIP_COLOUR, parse_math=False)

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return write_atomic(out_png, buf.getvalue())
