"""Bad input for the report, the formula printer, the zoo's even kernels and the evidence (issue 13).

Each case must end cleanly (status 2 for usage/input errors; 0 where a damaged run is skipped with a
warning), name the argument, path or entry, stay within its time limit, and change nothing outside
the folders it may write.  The harness is ``tests/badinput.py``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from badinput import ApiCase, CliCase, run_api_case, run_cli_case

FAST = ["--models", "conv_transpose", "--format", "md", "--verify-configs", "0", "--quiet"]


def _damaged_run(tmp: Path) -> None:
    rd = tmp / "runs" / "conv_transpose-0000"
    rd.mkdir(parents=True)
    (rd / "summary.json").write_text(json.dumps({"val_loss": "abc", "model": 5}))


def _out_file(tmp: Path) -> None:
    (tmp / "out.txt").write_text("a file, not a folder")


CLI = [
    CliCase("verify-configs-negative", ["report", "--out", "{tmp}/r", "--verify-configs", "-1"],
            names=["--verify-configs", "-1"]),
    CliCase("verify-configs-huge", ["report", "--out", "{tmp}/r", "--verify-configs", str(10**20)],
            names=["--verify-configs"]),
    CliCase("verify-configs-text", ["report", "--out", "{tmp}/r", "--verify-configs", "many"],
            names=["--verify-configs"]),
    CliCase("epochs-zero", ["report", "--out", "{tmp}/r", "--epochs", "0"], names=["--epochs"]),
    CliCase("epochs-negative", ["report", "--out", "{tmp}/r", "--epochs", "-5"], names=["--epochs"]),
    CliCase("epochs-huge", ["report", "--out", "{tmp}/r", "--epochs", str(2**70)], names=["--epochs"]),
    CliCase("out-is-a-file", ["report", "--out", "{tmp}/out.txt", *FAST], names=["out.txt", "--out"],
            setup=_out_file),
    CliCase("out-below-a-file", ["report", "--out", "{tmp}/out.txt/sub", *FAST], names=["out.txt", "--out"],
            setup=_out_file),
    CliCase("out-empty", ["report", "--out", "", *FAST], names=["--out"]),
    CliCase("out-nul-byte", ["report", "--out", "{tmp}/r\x00x", *FAST], names=["--out"]),
    CliCase("out-name-too-long", ["report", "--out", "{tmp}/" + "x" * 300, *FAST], names=["--out"]),
    CliCase("out-in-proc", ["report", "--out", "/proc/archcount-report", *FAST],
            names=["/proc/archcount-report", "--out"]),
    CliCase("models-empty", ["report", "--out", "{tmp}/r", "--models", ""], names=["--models"]),
    CliCase("models-unknown", ["report", "--out", "{tmp}/r", "--models", "conv_transpose,nope"], names=["nope"]),
    CliCase("format-unknown", ["report", "--out", "{tmp}/r", "--format", "docx"], names=["--format"]),
    CliCase("format-empty", ["report", "--out", "{tmp}/r", "--format", ","], names=["--format"]),
    CliCase("device-unknown", ["report", "--out", "{tmp}/r", "--device", "tpu9"], names=["device"]),
    CliCase("runs-is-a-file", ["report", "--out", "{tmp}/r", "--runs", "{tmp}/out.txt", *FAST],
            names=["out.txt", "--runs"], setup=_out_file, ),
    CliCase("runs-damaged-summary", ["report", "--out", "{tmp}/r", "--runs", "{tmp}/runs", *FAST],
            names=["summary.json"], status=0, setup=_damaged_run, may_change=["r", "r/**"], timeout=90),
    CliCase("train-missing-data", ["report", "--out", "{tmp}/r", "--train", "--runs", "{tmp}/runs", "--data",
                                   "{tmp}/nope.zip", "--epochs", "1", *FAST], names=["nope.zip"],
            may_change=["runs", "runs/**", "r", "r/**"], timeout=90),
    CliCase("count-bad-size", ["count", "unet", "--size", "0x5"], names=["--size"]),
]


@pytest.mark.parametrize("case", CLI, ids=str)
def test_report_cli_bad_input(case, tmp_path):
    if case.id == "out-in-proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    run_cli_case(case, tmp_path)


def test_read_only_out_folder_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the /proc case covers an unwritable --out")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        run_cli_case(CliCase("out-read-only", ["report", "--out", "{tmp}/ro", *FAST], names=["ro", "--out"]), tmp_path)
    finally:
        ro.chmod(0o700)


def _no_checkpoint(tmp: Path) -> None:
    from models.evidence import load_evidence
    from models.training import RunSummary
    run = RunSummary(run_id="x", run_dir=str(tmp), key="k", model="unet", config={"batch_size": 100}, hparams={},
                     experiment={}, epochs=1, epochs_completed=1, final={}, best={}, history=(), num_weights=0,
                     device="cpu", device_name="cpu", amp="off", channels_last=False, threads=1, data={},
                     palette={}, versions={}, train_time_s=0.0, mean_epoch_time_s=0.0, images_per_s=0.0)
    load_evidence(run)


def _api(tmp_factory):
    import sympy as sp

    import models
    from reports import formulas
    from reports.render import lmath, md_table
    from reports.report import build_report, collect_context

    tmp = tmp_factory
    return [
        ApiCase("build-verify-negative", lambda: build_report(tmp / "a", verify_configs=-1), names=["verify-configs"]),
        ApiCase("build-verify-float", lambda: build_report(tmp / "a", verify_configs=1.5), names=["verify-configs"]),
        ApiCase("build-epochs-text", lambda: build_report(tmp / "a", epochs="3"), names=["epochs"]),
        ApiCase("build-formats", lambda: build_report(tmp / "a", formats=["md", "html"]), names=["--format"]),
        ApiCase("build-models-none", lambda: build_report(tmp / "a", models=[]), names=["--models"]),
        ApiCase("build-models-int", lambda: collect_context(tmp / "a", models=123), names=["models"]),
        ApiCase("build-models-mixed", lambda: collect_context(tmp / "a", models=["unet", 7]), names=["models"]),
        ApiCase("build-out-none", lambda: build_report(None), names=["--out"]),
        ApiCase("formula-string", lambda: formulas.humanize("NF + NC"), names=["expr"]),
        ApiCase("formula-none", lambda: formulas.text(None), names=["expr"]),
        ApiCase("formula-bytes", lambda: lmath(b"x"), names=["expr"]),
        ApiCase("md-table-columns", lambda: md_table(__import__("pandas").DataFrame({"a": [1]}), ["b"]),
                names=["columns"]),
        ApiCase("zoo-kernel-zero", lambda: models.build("conv_transpose", kernel=0), names=["kernel"]),
        ApiCase("zoo-kernel-float", lambda: models.build("unet", kernel=4.0), names=["kernel"]),
        ApiCase("zoo-even-kernel-tiny-input",
                lambda: models.build("conv_transpose", kernel=4, num_filters=2)(
                    __import__("torch").zeros(1, 1, 3, 3)), names=["input"]),
        ApiCase("evidence-no-checkpoint", lambda: _no_checkpoint(tmp), names=["checkpoint.pt"]),
    ]


def test_api_bad_input(tmp_path):
    failures = []
    for case in _api(tmp_path):
        try:
            run_api_case(case)
        except AssertionError as exc:
            failures.append(str(exc)[:400])
    assert not failures, "\n".join(failures)


def test_formula_of_a_huge_number_is_fast():
    import sympy as sp

    from badinput import time_limit
    from reports import formulas
    with time_limit(5):
        assert formulas.text(sp.Integer(10) ** 5000 * sp.Symbol("NF")).endswith("NF")
