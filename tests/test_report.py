"""The comparison report: golden Markdown, PDF contents, determinism, the output set, and a report from
real (tiny) runs that answers every question of the exercise with numbers from those runs."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pypdf import PdfReader

import models
from reports.report import build_report, collect_context, render_report

sys.path.insert(0, str(Path(__file__).parent))
from test_data import make_arrays, write_tree  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "report_analysis.md"
FIXED = {"date": "2000-01-01", "archcount": "0.1.0", "versions": "fixed for the golden file", "python": "3.x",
         "platform": "test", "command": "archcount report --out OUT", "wall_time": "0 s", "device": "cpu (test)",
         "threads": "fixed"}
QUESTIONS_2023 = ["3.3", "4.2", "4.3", "5.3", "5.4", "5.5", "6.3"]


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
    shutil.copytree(analysis_only["out"] / "figures", tmp_path / "figures")
    md2, pdf2 = render_report(analysis_only["ctx"], tmp_path)
    assert md2.read_bytes() == analysis_only["md"].read_bytes()
    assert pdf2.read_bytes() == analysis_only["pdf"].read_bytes()


def test_analysis_only_report_says_what_is_missing_and_what_to_run(analysis_only):
    text = analysis_only["md"].read_text()
    assert "Missing from this report" in text and "archcount report --train" in text
    assert "No training results" in text
    answers = {a["id"]: a for a in analysis_only["ctx"]["answers"]}
    assert list(answers) == QUESTIONS_2023
    for qid in ("4.2", "5.3", "6.3"):
        assert "Not measured" in answers[qid]["paragraphs"][0] and "archcount train" in answers[qid]["paragraphs"][0]
    assert "archcount report --train --sweep" in answers["5.5"]["paragraphs"][0]


def test_markdown_layout_blank_line_before_every_table_and_one_data_note(analysis_only):
    lines = analysis_only["md"].read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i and not lines[i - 1].startswith("|"):
            assert lines[i - 1] == "", f"line {i + 1}: a table right after text: {lines[i - 1]!r}"
        if line == "$$" and i and lines[i - 1] != "" and not lines[i - 1].startswith(("\\", "$", "H", "k")):
            pass
    text = "\n".join(lines)
    assert text.count("JPEG re-encoding") <= 1
    assert "```math" not in text  # display math as $$ blocks: GitHub and pandoc both render them


def test_exercise_4_3_formulas_as_a_person_writes_them(analysis_only):
    """The 6 values as formulas in NIC, NF, NC, checked against the torch model's own numbers."""
    c = analysis_only["ctx"]["counts"]["pool_upsample"]
    rows = {(r["convention"].split(":")[0], r["quantity"]): r for r in c["rows"]}
    w = rows[("handout", "weights")]
    assert w["formula (H×W)"].text() == "k²(NIC·NF + 4NF² + NF·NC + NC²)"
    assert rows[("handout", "connections")]["32×32, k=3"].text() == "9216NIC·NF + 5760NF² + 2304NF·NC + 9216NC²"
    # independent: the outputs of every conv of the real model at 32x32 and 64x64 (hooks), NIC=1, NF=32, NC=24
    net = models.build("pool_upsample")
    for size, col in ((32, "32×32"), (64, "64×64")):
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o[0].numel()))
                 for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        net.eval()(torch.zeros(1, 1, size, size))
        for h in hooks:
            h.remove()
        value = {r["quantity"]: r for r in c["values"].to_dict("records") if r["convention"] == "handout"}
        assert value["outputs"][col] == sum(seen)
    weights = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert value["weights"]["32×32"] == weights
    text = analysis_only["md"].read_text()
    assert r"k^{2}\left(\mathrm{NIC} \cdot \mathrm{NF} + 4\mathrm{NF}^{2} + \mathrm{NF} \cdot \mathrm{NC} + \mathrm{NC}^{2}\right)" \
        in text


def test_kernel_4_and_5_models_keep_the_handout_shapes(analysis_only):
    k = analysis_only["ctx"]["kernels"]
    assert k["all_ok"] and len(k["details"]) == 4
    assert k["verification"]["mismatches"] == 0 and k["verification"]["quantities"] > 0
    for d in k["details"]:
        assert d["shapes"]["block2"] == (64, 8, 8) and d["shapes"]["final"] == (24, 32, 32)


def test_receptive_field_factors_measured(analysis_only):
    rows = {r["configuration"]: r["receptive field"] for r in analysis_only["ctx"]["rf_factors"]["rows"]}
    # independent: stacked 3x3 convs with dilation d see 1 + 3*2*d pixels
    for d in (1, 2, 4):
        assert rows[f"three 3×3 convs, dilation {d}"] == 1 + 6 * d
    assert rows["ConvTransposeNet, k=3"] < rows["ConvTransposeNet, k=5"] < rows["ConvTransposeNet, k=7"]


def test_pdf_contents(analysis_only):
    reader = PdfReader(str(analysis_only["pdf"]))
    assert 5 <= len(reader.pages) <= 40
    text = "\n".join(page.extract_text() for page in reader.pages)
    for heading in ("Counting conventions", "PoolUpsampleNet", "ConvTransposeNet", "UNet", "Paddings for any kernel",
                    "Receptive fields", "Verification", "Answers to the exercise", "Provenance", "question 4.3",
                    "question 6.3", "What changes the receptive field"):
        assert heading in text, heading
    nic, nf, nc, k = 1, 32, 24, 3
    weighted = k * k * (nic * nf + 4 * nf * nf + nf * nc + nc * nc)
    params = sum(p.numel() for p in models.build("pool_upsample").parameters())
    assert f"{weighted:,}" in text and f"{params:,}" in text
    assert "⌊" in text and "0 mismatches" in text
    assert sum(1 for page in reader.pages if page.images) >= 3


# ---------------------------------------------------------------------- the output set (issue 13, item 8)

def test_a_failing_typst_step_leaves_the_previous_pair(tmp_path, monkeypatch):
    out = tmp_path / "rep"
    first = build_report(out, models="conv_transpose", tools=("fvcore",), verify_configs=0)
    md_before, pdf_before = first.markdown.read_bytes(), first.pdf.read_bytes()
    # a real Typst failure: the same templates, with a call of a function that does not exist
    import reports.render as render
    broken = tmp_path / "templates"
    shutil.copytree(render.TEMPLATE_DIR, broken, ignore=shutil.ignore_patterns("__pycache__"))
    typ = broken / "report.typ.j2"
    typ.write_text(typ.read_text().replace("= Provenance", "#no-such-function()\n= Provenance"))
    monkeypatch.setattr(render, "TEMPLATE_DIR", broken)
    from analysis.errors import ArchcountError
    with pytest.raises(ArchcountError, match="Typst compilation failed"):
        build_report(out, models="unet", tools=("fvcore",), verify_configs=0)
    assert first.markdown.read_bytes() == md_before and first.pdf.read_bytes() == pdf_before
    assert not list(out.glob(".archcount-report-*")), "the temporary folder is removed"
    assert "UNet" not in first.markdown.read_text().splitlines()[0]


def test_a_new_report_replaces_the_set_and_removes_only_its_own_stale_files(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    build_report(out, models="conv_transpose,unet", tools=("fvcore",), verify_configs=0, formats="md")
    assert (out / "figures" / "arch_unet.png").is_file()
    (out / ".archcount-report-killed").mkdir()  # what a killed build leaves
    build_report(out, models="conv_transpose", tools=("fvcore",), verify_configs=0, formats="md")
    assert not (out / "figures" / "arch_unet.png").exists()  # listed in the previous manifest: removed
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / ".archcount-report-killed").exists()
    manifest = json.loads((out / ".archcount-report.json").read_text())
    assert "report.md" in manifest["files"] and "figures/arch_conv_transpose.png" in manifest["files"]


# ---------------------------------------------------------------------- a report from real tiny runs

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from models.training import train
    root = tmp_path_factory.mktemp("runs")
    arrays = make_arrays(seed=2, horse_train=12, horse_test=4)
    data = write_tree(root / "data", arrays)
    pal = root / "palette.csv"
    pal.write_text("r,g,b\n0,0,0\n1,1,1\n0.5,0.2,0.1\n0.1,0.4,0.8\n")
    opts = dict(num_filters=2, epochs=2, palette=str(pal), data=data, cache_dir=root / "cache", device="cpu",
                threads=1, quiet=True, runs_root=root / "runs")
    for name in ("pool_upsample", "conv_transpose", "unet"):
        train(name, batch_size=100, **opts)
    train("conv_transpose", batch_size=32, **opts)
    train("conv_transpose", batch_size=4, **opts)
    return {"runs": root / "runs", "palette": str(pal), "arrays": arrays}


@pytest.fixture(scope="module")
def tiny_report(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_report")
    ctx = collect_context(out, runs=tiny_runs["runs"], epochs=2, palette=tiny_runs["palette"], tools=("fvcore",),
                          provenance_overrides=FIXED)
    md, pdf = render_report(ctx, out)
    return {"ctx": ctx, "out": out, "md": md.read_text(), "pdf": pdf}


def _runs(tiny_runs):
    from models.training import load_runs
    runs = load_runs(tiny_runs["runs"])
    return {r.model: r for r in runs if r.batch_size == 100}, {r.batch_size: r for r in runs if r.model ==
                                                                 "conv_transpose"}


def _nearest(rgb: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Per-pixel nearest palette index, written out plainly (independent of models.data)."""
    x = rgb.transpose(0, 2, 3, 1).astype(np.float64) / 256.0
    d = ((x[..., None, :] - pal[None, None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def test_every_question_is_answered_with_numbers_from_the_runs(tiny_runs, tiny_report):
    ctx, text = tiny_report["ctx"], tiny_report["md"]
    answers = {a["id"]: " ".join(a["paragraphs"]) for a in ctx["answers"]}
    assert list(answers) == QUESTIONS_2023
    assert not any("Not measured" in a for a in answers.values()), answers
    main, sweep = _runs(tiny_runs)
    pu, ct, un = main["pool_upsample"], main["conv_transpose"], main["unet"]
    # 4.2: accuracy from the run's own log, baselines recomputed here from the images
    assert f"{100 * pu.final_val_acc:.1f}%" in answers["4.2"]
    pal = np.loadtxt(tiny_runs["palette"], delimiter=",", skiprows=1)
    tr = tiny_runs["arrays"]["train_data"][tiny_runs["arrays"]["train_labels"] == 7].reshape(-1, 3, 32, 32)
    te = tiny_runs["arrays"]["test_data"][tiny_runs["arrays"]["test_labels"] == 7].reshape(-1, 3, 32, 32)
    y_tr, y_te = _nearest(tr, pal), _nearest(te, pal)
    most = np.bincount(y_tr.ravel(), minlength=len(pal)).argmax()
    assert f"{100 * (y_te == most).mean():.1f}%" in answers["4.2"]
    grey = te.astype(np.float64).mean(axis=1) / 256.0
    grey_idx = ((grey[..., None] - pal[:, 0]) ** 2 + (grey[..., None] - pal[:, 1]) ** 2
                + (grey[..., None] - pal[:, 2]) ** 2).argmin(-1)
    assert f"{100 * (grey_idx == y_te).mean():.1f}%" in answers["4.2"]
    assert f"{float(pu.final['train_loss']):.3f}" in answers["4.2"]
    # 5.3 and 6.3: the validation losses and their differences
    assert f"{ct.final_val_loss:.3f}" in answers["5.3"] and f"{pu.final_val_loss:.3f}" in answers["5.3"]
    assert f"{abs(un.final_val_loss - ct.final_val_loss):.3f}" in answers["6.3"]
    assert f"{ct.mean_epoch_time_s:.1f} s" in answers["5.3"]
    # 6.3: the first-layer gradient norm, recomputed here from the checkpoints
    norms = {}
    for r in (ct, un):
        net = models.build(r.model, **r.hparams)
        net.load_state_dict(torch.load(Path(r.run_dir) / "checkpoint.pt", weights_only=True)["model"])
        net.train()
        x = torch.from_numpy(tr.astype(np.float32).mean(axis=1, keepdims=True) / np.float32(256.0))[:100]
        loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y_tr[:100]))
        loss.backward()
        norms[r.model] = float(net.block1[0].weight.grad.norm())
    assert f"{norms['unet']:.4f}" in answers["6.3"] and f"{norms['conv_transpose']:.4f}" in answers["6.3"]
    # 5.5: training losses and steps per epoch of the sweep
    for b, r in sweep.items():
        assert f"{float(r.final['train_loss']):.3f}" in answers["5.5"] or b not in (min(sweep), max(sweep))
    assert f"{-(-12 // min(sweep))} steps per epoch" in answers["5.5"]
    small, large, reading = re.search(r"Time per epoch: ([\d.]+) s at batch \d+ and ([\d.]+) s at batch \d+ \(([^)]*)\)",
                                      answers["5.5"]).groups()
    small, large = float(small), float(large)  # the verdict follows the times (here rounded to 0.1 s)
    if min(small, large) >= 1.0 and not 0.04 < abs(large / small - 1) < 0.06:
        assert ("faster" if large < small * 0.95 else "slower" if large > small * 1.05 else "about the same") in reading
    else:
        assert any(w in reading for w in ("faster", "slower", "about the same")), reading
    # 4.3, 5.4, 3.3 come from the analysis and are there too
    assert "49,248" in answers["4.3"] and "padding 1 with output_padding 0" in answers["5.4"]
    assert all(a in text for a in ("question 4.2", "question 6.3"))


def test_report_with_runs_has_the_new_figures_and_tables(tiny_runs, tiny_report):
    ctx, text = tiny_report["ctx"], tiny_report["md"]
    assert ctx["training"] is not None and not ctx["missing"]
    for fig in ("training_curves.png", "cost_quality.png", "batch_sweep.png", "comparison.png", "sweep_samples.png"):
        assert fig in text and (tiny_report["out"] / "figures" / fig).is_file(), fig
    assert "final train loss" in text and "steps / epoch" in text
    sweep = ctx["training"]["sweep"]
    assert list(sweep["batch size"]) == [4, 32, 100]
    _, by_batch = _runs(tiny_runs)
    assert list(sweep["final train loss"]) == [round(float(by_batch[b].final["train_loss"]), 4) for b in (4, 32, 100)]
    ev = ctx["training"]["evidence"]
    main, _ = _runs(tiny_runs)
    for r in main.values():  # evidence's own accuracy equals the run's logged final validation accuracy
        assert ev[r.run_id].accuracy == pytest.approx(r.final_val_acc, abs=1e-12)
        assert (Path(r.run_dir) / "evidence.json").is_file()
    assert "image-folder" in text or "images" in text
    assert len(PdfReader(str(tiny_report["pdf"])).pages) >= 6


def test_report_2021_asks_and_answers_that_version(tmp_path):
    ctx = collect_context(tmp_path, models="cnn_2021,unet_2021", tools=("fvcore",), verify_configs=0,
                          provenance_overrides=FIXED)
    ids = [a["id"] for a in ctx["answers"]]
    assert ids == ["A.3", "A.2", "B.2"]
    a3 = ctx["answers"][0]
    assert "NF and NC (NIC = 1)" in a3["paragraphs"][0]
    rows = {(r["convention"].split(":")[0], r["quantity"]): r for r in ctx["counts"]["cnn_2021"]["rows"]}
    assert "NIC" not in rows[("handout", "weights")]["formula (H×W)"].text()
    net = models.build("cnn_2021")
    w = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert f"weights {w:,} at 32×32" in a3["paragraphs"][0]
    md, _ = render_report(ctx, tmp_path, "md")
    assert "2021 exercise, question B.2" in md.read_text()


def test_report_cli_rejects_bad_format(tmp_path, capsys):
    from reports.cli import main
    assert main(["report", "--out", str(tmp_path), "--format", "docx"]) == 2
    assert "md and/or pdf" in capsys.readouterr().err


def test_evidence_is_computed_once_and_cached(tiny_runs):
    from models.evidence import EVIDENCE_FILE, load_evidence
    main, _ = _runs(tiny_runs)
    r = main["unet"]
    path = Path(r.run_dir) / EVIDENCE_FILE
    before = path.stat().st_mtime_ns if path.exists() else None
    e1 = load_evidence(r)
    e2 = load_evidence(r)
    assert e1 == e2 and path.stat().st_mtime_ns == (before or path.stat().st_mtime_ns)
    assert re.fullmatch(r"[0-9a-f]{64}", e1.checkpoint_sha256)


@pytest.mark.parametrize("small, large, word", [(4.0, 2.0, "×2.00 faster"), (2.0, 4.0, "×2.00 slower"),
                                                (4.1, 4.3, "about the same"), (4.3, 4.1, "about the same")])
def test_sweep_epoch_time_reading_follows_the_times(small, large, word):
    from reports.answers import _epoch_time_reading
    assert word in _epoch_time_reading(small, large)
