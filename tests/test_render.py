"""Report rendering machinery: escaping, tables, Jinja errors, atomic writes, Typst PDFs, the diagram.

Everything runs for real: the Typst compiler, pypdf on its output, matplotlib's Agg canvas.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sympy as sp
from PIL import Image
from pypdf import PdfReader

from analysis.errors import ArchcountError
from analysis.symbols import NC, NF, NIC, H, W, k
from reports.diagram import draw_architecture
from reports.render import (FIXED_TIMESTAMP, TEMPLATE_DIR, compile_typst, make_env, md_escape, md_table, num,
                            render_markdown, render_pdf, render_template, typ_escape, typ_table, write_atomic)

#: User text that would be markup, code or a table break if it were not escaped.
EVIL = [
    "unet_[v2]*bold* <b>x</b> @ref #1 $x$ a|b ~ & back\\slash",
    "runs/2024_01/model-final.pt // not a comment /* nor this */",
    '#read("secret.txt")',
    "#panic()",
    '#"str" -- en --- em ... "quoted" \'single\' <label> =heading',
    "- not a list | `code` **strong** _emph_ \\ [link](http://x)",
]

TYP_TEMPLATE = """{% include "_macros.typ" %}
#set document(title: {{ title|typ_str }})
= Report {{ title|esc }}
{% for name in names %}
Name {{ loop.index }}: {{ name|esc }} END

{% endfor %}
Weights: {{ weights|tmath }} and {{ weights }}
{{ weights|tdisplay }}
{{ table|typ_table(caption="Counts of " ~ title) }}
{% if image %}#image({{ image|typ_str }}, width: 80%){% endif %}
"""

MD_TEMPLATE = """# Report {{ title|esc }}
{% for name in names %}
- {{ name|esc }}
{% endfor %}

Weights: {{ weights|lmath }} and {{ weights }}

{{ weights|ldisplay }}

{{ table|md_table }}
"""


def _unescape_md(text: str) -> str:
    """CommonMark: a backslash before ASCII punctuation yields the character."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def _pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def tpl_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tpl"
    d.mkdir()
    (d / "_t_report.typ.j2").write_text(TYP_TEMPLATE, encoding="utf-8")
    (d / "_t_report.md.j2").write_text(MD_TEMPLATE, encoding="utf-8")
    (d / "_t_missing.md.j2").write_text("line one\nvalue: {{ nowhere_defined }}\n", encoding="utf-8")
    (d / "_t_badfilter.typ.j2").write_text("a\nb\n{{ 'NIC*NF'|tmath }}\n", encoding="utf-8")
    (d / "_t_broken.typ.j2").write_text('{% include "_macros.typ" %}\nfine text\n#nonexistent_fn(1)\n',
                                        encoding="utf-8")
    (d / "_t_syntax.md.j2").write_text("{% for x in %}\n", encoding="utf-8")
    return d


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["unet_[v2]|x", "runs/very/long/path/to/a/model_checkpoint.pt", "#panic()"],
        "weights": [k**2 * NIC * NF + NF, sp.floor(H / 2) * NF, sp.Abs(H - W)],
        "count": [1234567, 42, None],
        "acc": [0.91234, float("nan"), 1.0],
    })


def _context(**extra):
    ctx = dict(title='net "A" #1', names=EVIL, weights=k**2 * NIC * NF + NF, table=_table(), image=None)
    ctx.update(extra)
    return ctx


# ---------------------------------------------------------------------- escaping

@pytest.mark.parametrize("text", EVIL)
def test_md_escape_round_trips_and_leaves_nothing_active(text):
    out = md_escape(text)
    assert _unescape_md(out) == text
    bare = re.sub(r"\\.", "", out)  # what is left outside escape pairs
    assert not set(bare) & set("\\`*_[]<>#|$~&")


def test_md_escape_line_start_markers():
    assert md_escape("- a") == "\\- a"
    assert md_escape("12. a") == "12\\. a"
    assert md_escape("line\nbreak") == "line break"


@pytest.mark.parametrize("text", EVIL)
def test_typ_escape_escapes_all_punctuation(text):
    out = typ_escape(text)
    bare = re.sub(r"\\.", "", out)
    assert not re.search(r"[!-/:-@\[-`{-~]", bare)


def test_num():
    assert num(1234567) == "1,234,567"
    assert num(sp.Integer(10**9)) == "1,000,000,000"
    assert num(1234.5678, 2) == "1,234.57"
    assert num(float("nan")) == "—"
    with pytest.raises(ArchcountError):
        num(H)
    with pytest.raises(ArchcountError):
        num(True)


def test_md_table_escapes_and_formats():
    out = md_table(_table())
    lines = out.splitlines()
    assert lines[0] == "| model | weights | count | acc |"
    assert lines[1] == "| --- | --- | ---: | ---: |"
    assert "unet\\_\\[v2\\]\\|x" in lines[2] and "1,234,567" in lines[2]
    assert r"$\left|{H - W}\right|$".replace("|", "\\|") in lines[4]  # | inside math escaped too
    # every row has exactly 4 unescaped cell separators + 1
    for line in lines:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5, line
    assert "—" in lines[4]


# ---------------------------------------------------------------------- Markdown

def test_render_markdown_literal_and_deterministic(tmp_path, tpl_dir):
    out1 = render_markdown("_t_report.md.j2", _context(), tmp_path / "a" / "r.md", template_dirs=[tpl_dir])
    out2 = render_markdown("_t_report.md.j2", _context(), tmp_path / "b" / "r.md", template_dirs=[tpl_dir])
    text = out1.read_text(encoding="utf-8")
    assert out1.read_bytes() == out2.read_bytes()
    for name in EVIL:
        assert f"- {md_escape(name)}\n" in text
        assert _unescape_md(md_escape(name)) == name
    # lmath and finalize: laid out by reports.formulas (channels in flow order, k² after them)
    assert r"$\mathrm{NIC} \cdot \mathrm{NF} \cdot k^{2} + \mathrm{NF}$" in text
    assert text.count(r"\mathrm{NIC}") == 3 + 1  # lmath, finalize, ldisplay, table cell
    assert "$$\n" in text and "```math" not in text  # display math that GitHub and pandoc both render
    assert not list(out1.parent.glob(".*tmp"))


def test_strict_undefined_names_variable_and_template(tmp_path, tpl_dir):
    with pytest.raises(ArchcountError) as info:
        render_markdown("_t_missing.md.j2", {}, tmp_path / "m.md", template_dirs=[tpl_dir])
    msg = str(info.value)
    assert "nowhere_defined" in msg and "_t_missing.md.j2" in msg and "line 2" in msg
    assert not (tmp_path / "m.md").exists()


def test_template_errors_are_archcount_errors(tmp_path, tpl_dir):
    with pytest.raises(ArchcountError, match="_t_badfilter.typ.j2 line 3.*expected a sympy expression"):
        render_template("typ", "_t_badfilter.typ.j2", {}, template_dirs=[tpl_dir])
    with pytest.raises(ArchcountError, match="not found"):
        render_template("md", "no_such_template.md.j2", {})
    with pytest.raises(ArchcountError, match="_t_syntax.md.j2 line 1: syntax error"):
        render_template("md", "_t_syntax.md.j2", {}, template_dirs=[tpl_dir])
    with pytest.raises(ArchcountError, match="kind"):
        make_env("html")  # type: ignore[arg-type]


def test_package_templates_dir_has_macros():
    assert (TEMPLATE_DIR / "_macros.typ").is_file()
    assert (TEMPLATE_DIR / "__init__.py").is_file()


# ---------------------------------------------------------------------- PDF

def test_pdf_shows_user_text_literally_and_executes_nothing(tmp_path, tpl_dir):
    root = tmp_path / "root"
    root.mkdir()
    (root / "secret.txt").write_text("TOPSECRET", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no font fallback, no other Typst warning
        pdf = render_pdf("_t_report.typ.j2", _context(), root / "r.pdf", root=root, template_dirs=[tpl_dir])
    text = _pdf_text(pdf)
    flat = _squash(text)
    assert "TOPSECRET" not in text
    for i, name in enumerate(EVIL, 1):
        assert f"Name{i}:{_squash(name)}END" in flat, name
    assert 'Reportnet"A"#1' in flat
    assert "NIC" in text and "⌊" in text
    assert "1,234,567" in text and "Countsofnet" in flat
    # the title went into the metadata, the date is the fixed one
    reader = PdfReader(pdf)
    assert reader.metadata.title == 'net "A" #1'
    assert "20000101" in str(reader.metadata.get("/CreationDate"))


def test_pdf_uses_only_embedded_fonts(tmp_path, tpl_dir):
    pdf = render_pdf("_t_report.typ.j2", _context(names=["x"]), tmp_path / "f.pdf", root=tmp_path,
                     template_dirs=[tpl_dir])
    fonts = set()
    for page in PdfReader(pdf).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    assert any("LibertinusSerif" in f for f in fonts), fonts
    assert any("NewCMMath" in f or "NewComputerModernMath" in f for f in fonts), fonts
    with pytest.warns(UserWarning, match="unknown font family"):
        compile_typst('#set text(font: "Surely Not Installed")\nhi', tmp_path / "w.pdf", root=tmp_path)


def test_pdf_is_deterministic(tmp_path, tpl_dir):
    a = render_pdf("_t_report.typ.j2", _context(), tmp_path / "a.pdf", root=tmp_path, template_dirs=[tpl_dir])
    b = render_pdf("_t_report.typ.j2", _context(), tmp_path / "b.pdf", root=tmp_path, template_dirs=[tpl_dir])
    assert a.read_bytes() == b.read_bytes()
    c = compile_typst("#datetime.today().display()", tmp_path / "c.pdf", root=tmp_path)
    assert FIXED_TIMESTAMP.strftime("%Y-%m-%d") in _pdf_text(c)


def test_failed_compile_raises_and_leaves_no_pdf(tmp_path, tpl_dir):
    out = tmp_path / "out" / "broken.pdf"
    with pytest.raises(ArchcountError) as info:
        render_pdf("_t_broken.typ.j2", {}, out, root=tmp_path, template_dirs=[tpl_dir], keep_source=True)
    msg = str(info.value)
    assert "unknown variable: nonexistent_fn" in msg and "#nonexistent_fn(1)" in msg
    assert not out.exists()
    assert out.with_suffix(".typ").is_file()  # kept for debugging
    assert [p.name for p in out.parent.iterdir()] == ["broken.typ"]  # no temp file left


def test_failed_compile_keeps_existing_pdf(tmp_path):
    good = compile_typst("hello", tmp_path / "r.pdf", root=tmp_path)
    before = good.read_bytes()
    with pytest.raises(ArchcountError, match="expected expression"):
        compile_typst("text\n#let x = \n", good, root=tmp_path)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pdf"]


def test_write_atomic_failure_leaves_nothing(tmp_path):
    target = tmp_path / "adir"
    target.mkdir()  # replacing a directory with a file fails
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert target.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    p = write_atomic(tmp_path / "sub" / "f.txt", "héllo\r\n")
    assert p.read_bytes() == "héllo\r\n".encode("utf-8")
    with pytest.raises(ArchcountError):
        write_atomic(tmp_path / "x", 3)  # type: ignore[arg-type]


def test_typ_table_breaks_across_pages(tmp_path):
    df = pd.DataFrame({"layer": [f"block{i}.conv_with_a_rather_long_name/{i}" for i in range(120)],
                       "weights": [k**2 * NF * (i + 1) for i in range(120)],
                       "outputs": [sp.floor(H / 2**(i % 5 + 1)) * W * NC for i in range(120)],
                       "n": list(range(0, 1200000, 10000))})
    src = '{% include "_macros.typ" %}\n{{ df|typ_table(widths=["auto", "1fr", "auto", "auto"]) }}\n'
    pdf = compile_typst(make_env("typ").from_string(src).render(df=df), tmp_path / "t.pdf", root=tmp_path)
    reader = PdfReader(pdf)
    assert len(reader.pages) >= 2
    assert reader.pages[1].extract_text().lstrip().startswith("layer")  # header repeated
    with pytest.raises(ArchcountError, match="width"):
        typ_table(df, widths=["auto", "1fr", "auto", "oops)"])
    with pytest.raises(ArchcountError, match="unknown column"):
        typ_table(df, columns=["nope"])


# ---------------------------------------------------------------------- diagram

def _unet_nodes() -> list[dict]:
    nodes = []

    def add(name, label, shape, inputs, group):
        nodes.append(dict(name=name, label=label, shape=shape, inputs=inputs, group=group))

    for b, (lab, shape, src) in enumerate([
            ("Conv2d k×k, stride 2", "[BS, NF, H/2, W/2]", "input"),
            ("Conv2d k×k, stride 2", "[BS, 2NF, H/4, W/4]", "block1.2"),
            ("ConvTranspose2d k×k, stride 2", "[BS, NF, H/2, W/2]", "block2.2")], 1):
        add(f"block{b}.0", lab, shape, [src], f"block{b}")
        add(f"block{b}.1", "BatchNorm2d", shape, [f"block{b}.0"], f"block{b}")
        add(f"block{b}.2", "ReLU", shape, [f"block{b}.1"], f"block{b}")
    add("block4.0", "ConvTranspose2d k×k, stride 2", "[BS, NC, H, W]", ["block3.2", "block1.2"], "block4")
    add("block4.1", "BatchNorm2d", "[BS, NC, H, W]", ["block4.0"], "block4")
    add("block4.2", "ReLU", "[BS, NC, H, W]", ["block4.1"], "block4")
    add("final", "Conv2d k×k $not math$", "[BS, NC, H, W]", ["block4.2", "input"], "final")
    return nodes


def test_diagram_png_is_valid_and_deterministic(tmp_path):
    a = draw_architecture(_unet_nodes(), tmp_path / "a.png", title="unet")
    b = draw_architecture(_unet_nodes(), tmp_path / "b.png", title="unet")
    assert a.stat().st_size > 0 and a.read_bytes() == b.read_bytes()
    with Image.open(a) as img:
        img.load()
        assert img.format == "PNG" and img.width > img.height > 100
        assert "Software" not in img.info
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert any(r > 150 and g < 100 and b < 100 for _, (r, g, b) in colours)  # red skip arcs drawn


def test_diagram_many_nodes_objects_and_pdf(tmp_path):
    @dataclass
    class Node:
        name: str
        label: str
        shape: str
        inputs: list
        group: str

    nodes = [Node(n["name"], n["label"], n["shape"], n["inputs"], n["name"]) for n in _unet_nodes()]
    png = draw_architecture(nodes, tmp_path / "v.png", title="ungrouped")  # 13 blocks: top to bottom
    with Image.open(png) as img:
        assert img.height > img.width
    pdf = compile_typst('#image("v.png", height: 20cm)', tmp_path / "d.pdf", root=tmp_path)
    assert PdfReader(pdf).pages[0]["/Resources"]["/XObject"]


@pytest.mark.parametrize("nodes, match", [
    ([], "without nodes"),
    ([dict(name="a", label="x", shape="s", inputs=["ghost"], group="g")], "ghost"),
    ([dict(name="a", label="x", shape="s", inputs=["input"], group="g")] * 2, "used twice"),
    ([dict(label="x", shape="s", inputs=["input"], group="g")], "'name'"),
])
def test_diagram_rejects_bad_nodes(tmp_path, nodes, match):
    with pytest.raises(ArchcountError, match=match):
        draw_architecture(nodes, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
