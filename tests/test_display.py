"""Notebook display of count tables and receptive fields (reports.display through the _repr_*_ methods)."""
from __future__ import annotations

from html.parser import HTMLParser

import models
from analysis import count
from analysis.parsing import parse_formula
from analysis.receptive import receptive_field


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._in = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.rows[-1][-1] += data


def test_count_table_html_is_a_table_whose_formulas_read_back():
    t = count("unet").simplified()
    p = _Cells()
    p.feed(t._repr_html_())
    header, *rows = p.rows
    assert header == ["layer", "type", "output shape", "weights", "outputs", "connections"]
    assert [r[0] for r in rows] == [r.path for r in t.counted_rows()] + ["total"]
    for cell, q in zip(rows[-1][3:], ("weights", "outputs", "connections")):
        assert (parse_formula(cell) - t.total(q)).expand() == 0, cell


def test_count_table_markdown_at_numbers_matches_torch():
    t = count("pool_upsample", convention="parameters", kernel=3, num_in_channels=1, num_filters=32,
              num_colours=24, input_size=(32, 32))
    md = t._repr_markdown_()
    params = sum(p.numel() for p in models.build("pool_upsample").parameters())
    assert f"| **total** | | | {params:,} |" in md
    assert md.count("\n| ") == len(t.counted_rows()) + 3  # header, rule, rows, total


def test_count_table_latex_is_a_tabular():
    tex = count("conv_transpose").simplified()._repr_latex_()
    assert tex.startswith(r"\begin{tabular}") and tex.endswith(r"\end{tabular}")
    assert tex.count("{") == tex.count("}")


def test_receptive_field_displays():
    rf = receptive_field("pool_upsample", kernel=3)
    md = rf._repr_markdown_()
    assert f"output receptive field {rf.size[0]} pixels" in md
    p = _Cells()
    p.feed(rf._repr_html_())
    assert len(p.rows) == 1 + len([r for r in rf.layers if r.op != "identity"])
    assert rf._repr_latex_().startswith(r"\begin{tabular}")
