"""The comparison report: golden Markdown, PDF contents, determinism, and a report from real (tiny) runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

import models
from reports.report import collect_context, render_report

sys.path.insert(0, str(Path(__file__).parent))
from test_data import make_arrays, write_tree  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "report_analysis.md"
FIXED = {"date": "2000-01-01", "archcount": "0.1.0", "versions": "fixed for the golden file", "python": "3.x",
         "platform": "test", "command": "archcount report --out OUT", "wall_time": "0 s", "device": "cpu (test)"}


@pytest.fixture(scope="module")
def analysis_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ctx = collect_context(out, tools=("fvcore",), provenance_overrides=FIXED)
    md, pdf = render_report(ctx, out)
    return {"ctx": ctx, "out": out, "md": md, "pdf": pdf}


def test_markdown_matches_golden_file(analysis_only, update_golden):
    text = analysis_only["md"].read_text()
    if update_golden or not GOLDEN.exists():
        GOLDEN.write_text(text)
        pytest.skip(f"golden file written: {GOLDEN}")
    assert text == GOLDEN.read_text(), "report.md changed; review it and run pytest --update-golden"


def test_rendering_is_deterministic(analysis_only, tmp_path):
    import shutil
    shutil.copytree(analysis_only["out"] / "figures", tmp_path / "figures")
    md2, pdf2 = render_report(analysis_only["ctx"], tmp_path)
    assert md2.read_bytes() == analysis_only["md"].read_bytes()
    assert pdf2.read_bytes() == analysis_only["pdf"].read_bytes()


def test_analysis_only_report_says_what_is_missing(analysis_only):
    text = analysis_only["md"].read_text()
    assert "Missing from this report" in text and "archcount report --train" in text
    assert "No training results" in text


def test_pdf_contents(analysis_only):
    reader = PdfReader(str(analysis_only["pdf"]))
    assert 5 <= len(reader.pages) <= 30
    text = "\n".join(page.extract_text() for page in reader.pages)
    for heading in ("Counting conventions", "PoolUpsampleNet", "ConvTransposeNet", "UNet", "Paddings for any kernel",
                    "Receptive fields", "Verification", "Answers to the exercise", "Provenance"):
        assert heading in text, heading
    # key numbers, computed independently: PoolUpsampleNet weighted weights at k=3, NIC=1, NF=32, NC=24
    nic, nf, nc, k = 1, 32, 24, 3
    weighted = k * k * (nic * nf + 4 * nf * nf + nf * nc + nc * nc)
    params = sum(p.numel() for p in models.build("pool_upsample").parameters())
    assert f"{weighted:,}" in text and f"{params:,}" in text
    assert "⌊" in text and "NF2" in text.replace(" ", "")
    assert "0 mismatches" in text
    pages_with_images = sum(1 for page in reader.pages if page.images)
    assert pages_with_images >= 3  # architecture diagrams and the scaling chart


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from models.training import train
    root = tmp_path_factory.mktemp("runs")
    data = write_tree(root / "data", make_arrays(seed=2, horse_train=12, horse_test=4))
    pal = root / "palette.csv"
    pal.write_text("r,g,b\n0,0,0\n1,1,1\n0.5,0.2,0.1\n0.1,0.4,0.8\n")
    opts = dict(num_filters=2, epochs=2, palette=str(pal), data=data, cache_dir=root / "cache", device="cpu",
                threads=1, quiet=True, runs_root=root / "runs")
    for name in ("pool_upsample", "conv_transpose", "unet"):
        train(name, batch_size=100, **opts)
    train("conv_transpose", batch_size=32, **opts)
    return {"runs": root / "runs", "palette": str(pal)}


def test_report_with_runs(tiny_runs, tmp_path):
    ctx = collect_context(tmp_path, runs=tiny_runs["runs"], epochs=2, palette=tiny_runs["palette"], tools=("fvcore",),
                          provenance_overrides=FIXED)
    md, pdf = render_report(ctx, tmp_path)
    text = md.read_text()
    assert ctx["training"] is not None and not ctx["missing"]
    assert "training_curves.png" in text and "cost_quality.png" in text and "batch_sweep.png" in text
    for name in ("pool_upsample", "conv_transpose", "unet"):
        assert (tmp_path / "figures" / f"samples_{name}.png").is_file()
    # the answers are computed from the runs' numbers, not canned
    from models.training import load_runs
    runs = {r.model: r for r in load_runs(tiny_runs["runs"]) if r.batch_size == 100}
    diff = runs["conv_transpose"].best_val_loss - runs["pool_upsample"].best_val_loss
    assert f"{abs(diff):.3f} {'lower' if diff < 0 else 'higher'}" in text
    assert "image-folder" in text or "images" in text  # the data source is stated
    assert len(PdfReader(str(pdf)).pages) >= 6


def test_report_cli_rejects_bad_format(tmp_path, capsys):
    from reports.cli import main
    assert main(["report", "--out", str(tmp_path), "--format", "docx"]) == 2
    assert "md and/or pdf" in capsys.readouterr().err
