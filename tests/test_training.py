"""Training: run directories, metrics checked independently, resume after a kill, sweeps, bad input, the CLI.

Every run here is tiny (a conv net with NF=4 on 23 training and 5 validation images of a PNG fixture
built by tests/test_data.py's helpers), so that the whole file takes a few seconds.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
from analysis.errors import ArchcountError
from models.training import RunSummary, TrainConfig, TrainingInterrupted, find_or_train, find_run, load_run, \
    load_runs, select_device, sweep_configs, train, train_many
from reports.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_data import category, make_arrays, write_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PALETTE = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.5, 0.2, 0.1), (0.1, 0.4, 0.8)]
TINY = dict(num_filters=4, batch_size=5, epochs=3)
TIMING = ("epoch_time_s", "train_time_s", "val_time_s", "images_per_s")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("train")
    arrays = make_arrays(seed=1, horse_train=23, horse_test=5)
    tree = write_tree(root, arrays)
    pal = root / "palette.csv"
    pal.write_text("r,g,b\n" + "".join(f"{r},{g},{b}\n" for r, g, b in PALETTE))
    return {"root": root, "arrays": arrays, "data": tree, "palette": pal, "cache": root / "cache"}


def run_tiny(env, model: str = "conv_transpose", **kw) -> RunSummary:
    opts = dict(TINY, palette=str(env["palette"]), data=env["data"], cache_dir=env["cache"], device="cpu",
                threads=1, quiet=True)
    opts.update(kw)
    return train(model, **opts)


def metrics(history) -> list[dict]:
    """The per-epoch numbers without the timings."""
    return [{k: v for k, v in dict(h).items() if k not in TIMING} for h in history]


@pytest.fixture(scope="module")
def baseline(env) -> RunSummary:
    """An uninterrupted tiny run, the reference for determinism and resume."""
    return run_tiny(env, run_dir=env["root"] / "baseline")


# ----------------------------------------------------------------------------- a run and its files

def test_run_directory_contents(env, baseline):
    rd = Path(baseline.run_dir)
    assert sorted(p.name for p in rd.iterdir()) == sorted(
        ["config.json", "metrics.csv", "checkpoint.pt", "samples.png", "summary.json", "palette.csv",
         ".archcount-run.json"])
    with open(rd / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_acc", "grad_norm_first", "epoch_time_s",
                            "train_time_s", "val_time_s", "images_per_s"}
    for row, h in zip(rows, baseline.history):
        assert float(row["val_loss"]) == h["val_loss"] and float(row["train_loss"]) == h["train_loss"]
        assert math.isclose(float(row["images_per_s"]), 23 / float(row["train_time_s"]), rel_tol=1e-9)
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["final"] == baseline.history[-1] == dict(baseline.final)
    best = min(baseline.history, key=lambda h: h["val_loss"])
    assert summary["best"]["val_loss"] == best["val_loss"]
    assert summary["device"] == "cpu" and summary["epochs_completed"] == 3 and summary["status"] == "finished"
    assert summary["palette"]["k"] == 4 and summary["palette"]["kind"] == "file"
    assert summary["data"]["n_train"] == 23 and summary["data"]["n_val"] == 5
    assert "lossless PNG" in summary["data"]["description"]
    assert {"torch", "numpy", "python"} <= set(summary["versions"])
    config = json.loads((rd / "config.json").read_text())
    assert config["key"] == baseline.key and config["experiment"]["batch_size"] == 5
    assert baseline.num_weights == sum(p.numel() for p in models.build(
        "conv_transpose", num_filters=4, num_colours=4).parameters())
    assert load_run(rd) == baseline
    from PIL import Image
    with Image.open(rd / "samples.png") as im:
        assert im.mode == "RGB" and im.size[0] > 5 * 32 and im.size[1] >= 4 * 32
    np.testing.assert_array_equal(np.loadtxt(rd / "palette.csv", delimiter=",", skiprows=1), np.array(PALETTE))


def test_validation_metrics_match_an_independent_evaluation(env, baseline):
    """Rebuild the final model from the checkpoint (loaded with weights_only=True) and evaluate it naively."""
    ckpt = torch.load(Path(baseline.run_dir) / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 3
    net = models.build("conv_transpose", num_filters=4, num_colours=4)
    net.load_state_dict(ckpt["model"])
    net.eval()
    rgb = category(env["arrays"], "test").astype(np.float64)
    x = torch.tensor(rgb.sum(axis=1, keepdims=True) / 768, dtype=torch.float32)
    px = rgb.transpose(0, 2, 3, 1)[..., None, :] / 256
    y = torch.from_numpy(np.argmin(np.sqrt(((px - np.array(PALETTE)) ** 2).sum(-1)), axis=-1))
    with torch.no_grad():
        out = net(x)
    loss = F.cross_entropy(out, y).item()
    acc = (out.argmax(1) == y).double().mean().item()
    assert math.isclose(loss, baseline.final_val_loss, rel_tol=1e-5)
    assert abs(acc - baseline.final_val_acc) <= 2 / y.numel()


def test_uneven_batches_and_step_count(env, baseline):
    ckpt = torch.load(Path(baseline.run_dir) / "checkpoint.pt", weights_only=True)
    steps = {float(s["step"]) for s in ckpt["optimizer"]["state"].values()}
    assert steps == {3 * math.ceil(23 / 5)}  # 5 batches an epoch, the last one of 3 images
    assert set(ckpt["rng"]) >= {"torch", "numpy", "shuffle"}


def test_runs_are_deterministic_and_reused(env, baseline):
    again = run_tiny(env, run_dir=env["root"] / "again")
    assert metrics(again.history) == metrics(baseline.history) and again.key == baseline.key
    mtime = (Path(again.run_dir) / "summary.json").stat().st_mtime_ns
    reused = run_tiny(env, run_dir=env["root"] / "again")
    assert reused.status == "reused" and metrics(reused.history) == metrics(baseline.history)
    assert (Path(again.run_dir) / "summary.json").stat().st_mtime_ns == mtime
    other_seed = run_tiny(env, run_dir=env["root"] / "seed1", seed=1)
    assert metrics(other_seed.history) != metrics(baseline.history) and other_seed.key != baseline.key


def test_models_train_is_the_same_api(env, tmp_path):
    s = models.train("unet", **{**TINY, "epochs": 1}, palette=str(env["palette"]), data=env["data"],
                     cache_dir=env["cache"], runs_root=tmp_path, device="cpu", quiet=True)
    assert isinstance(s, RunSummary) and s.model == "unet" and Path(s.run_dir).parent == tmp_path
    assert Path(s.run_dir).name == f"unet-{s.key[:12]}"


def test_kmeans_palette_by_default(env, tmp_path):
    s = run_tiny(env, runs_root=tmp_path, epochs=1, palette=None, palette_k=5)
    assert s.palette["kind"] == "kmeans" and s.palette["k"] == 5 and "k-means" in s.palette_description
    assert s.hparams["num_colours"] == 5


# ----------------------------------------------------------------------------- resume

def _cli_args(env, run_dir: Path) -> list[str]:
    return ["train", "--model", "conv_transpose", "--nf", "4", "--batch-size", "5", "--epochs", "3",
            "--data", str(env["data"]), "--palette", str(env["palette"]), "--cache-dir", str(env["cache"]),
            "--run-dir", str(run_dir), "--device", "cpu", "--threads", "1", "-q"]


def test_resume_after_sigkill_gives_identical_results(env, baseline, tmp_path):
    rd = tmp_path / "killed"
    cmd = [sys.executable, "-m", "reports.cli", *_cli_args(env, rd)]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "ARCHCOUNT_STOP_AFTER_EPOCH": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (rd / "summary.json").exists()
    ckpt = torch.load(rd / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    with open(rd / "metrics.csv") as fh:
        assert len(fh.read().splitlines()) == 2
    resumed = run_tiny(env, run_dir=rd, resume=True)  # in this process: same settings, threads=1
    assert load_run(rd) == resumed and resumed.resumed == 1 and resumed.epochs_completed == 3
    assert metrics(resumed.history) == metrics(baseline.history)
    a = torch.load(rd / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(Path(baseline.run_dir) / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_resume_after_sigterm_or_sigint_in_process(env, baseline, tmp_path, monkeypatch, sig):
    rd = tmp_path / f"stopped-{sig}"
    monkeypatch.setenv("ARCHCOUNT_STOP_AFTER_EPOCH", "2")
    monkeypatch.setenv("ARCHCOUNT_STOP_SIGNAL", sig)
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as exc:
        run_tiny(env, run_dir=rd)
    assert isinstance(exc.value, TrainingInterrupted) == (sig == "TERM")
    assert signal.getsignal(signal.SIGTERM) == handler_before  # train's SIGTERM handler is removed again
    assert torch.load(rd / "checkpoint.pt", weights_only=True)["epoch"] == 2
    monkeypatch.delenv("ARCHCOUNT_STOP_AFTER_EPOCH")
    with pytest.raises(ArchcountError, match="unfinished run.*2/3 epochs.*--resume"):
        run_tiny(env, run_dir=rd)
    resumed = run_tiny(env, run_dir=rd, resume=True)
    assert resumed.resumed == 1 and metrics(resumed.history) == metrics(baseline.history)


def test_resume_refuses_a_checkpoint_of_another_configuration(env, tmp_path, monkeypatch):
    rd = tmp_path / "run"
    monkeypatch.setenv("ARCHCOUNT_STOP_AFTER_EPOCH", "1")
    monkeypatch.setenv("ARCHCOUNT_STOP_SIGNAL", "TERM")
    with pytest.raises(KeyboardInterrupt):
        run_tiny(env, run_dir=rd)
    monkeypatch.delenv("ARCHCOUNT_STOP_AFTER_EPOCH")
    before = {p.name: p.read_bytes() for p in rd.iterdir()}
    with pytest.raises(ArchcountError, match="different configuration.*batch_size: 5 there, 7 now") as exc:
        run_tiny(env, run_dir=rd, resume=True, batch_size=7)
    assert exc.value.argument == "resume"
    assert {p.name: p.read_bytes() for p in rd.iterdir()} == before
    # a corrupt checkpoint is a clear error too, and stays as it was
    (rd / "checkpoint.pt").write_bytes(before["checkpoint.pt"][:100])
    with pytest.raises(ArchcountError, match="cannot read the checkpoint"):
        run_tiny(env, run_dir=rd, resume=True)
    assert (rd / "checkpoint.pt").read_bytes() == before["checkpoint.pt"][:100]


# ----------------------------------------------------------------------------- run directories that hold something else

def test_run_dir_with_a_different_run_is_refused_unless_forced(env, tmp_path):
    rd = tmp_path / "run"
    first = run_tiny(env, run_dir=rd, epochs=1)
    before = {p.name: p.read_bytes() for p in rd.iterdir()}
    with pytest.raises(ArchcountError, match="already holds a different run.*batch_size") as exc:
        run_tiny(env, run_dir=rd, epochs=1, batch_size=7)
    assert exc.value.argument == "run_dir" and "--force" in str(exc.value)
    assert {p.name: p.read_bytes() for p in rd.iterdir()} == before
    with pytest.raises(ArchcountError, match="unknown device"):  # bad settings fail before --force clears
        run_tiny(env, run_dir=rd, epochs=1, batch_size=7, force=True, device="tpu9")
    assert {p.name: p.read_bytes() for p in rd.iterdir()} == before
    forced = run_tiny(env, run_dir=rd, epochs=1, batch_size=7, force=True)
    assert forced.batch_size == 7 and forced.key != first.key and load_run(rd).batch_size == 7


def test_foreign_folder_is_refused_and_force_keeps_other_files(env, tmp_path):
    rd = tmp_path / "mine"
    rd.mkdir()
    (rd / "notes.txt").write_text("keep me")
    with pytest.raises(ArchcountError, match="holds no archcount run"):
        run_tiny(env, run_dir=rd, epochs=1)
    run_tiny(env, run_dir=rd, epochs=1, force=True)
    assert (rd / "notes.txt").read_text() == "keep me" and (rd / "summary.json").is_file()


# ----------------------------------------------------------------------------- sweeps and the report's API

def test_sweep_skips_finished_runs_and_lists_them(env, tmp_path):
    configs = sweep_configs(["conv_transpose", "unet"], batch_size=[5, 23], epochs=1, num_filters=4,
                            palette=str(env["palette"]))
    assert [(c.model, c.batch_size) for c in configs] == [("conv_transpose", 5), ("conv_transpose", 23),
                                                         ("unet", 5), ("unet", 23)]
    opts = dict(data=env["data"], cache_dir=env["cache"], runs_root=tmp_path, device="cpu", threads=1, quiet=True)
    first = train_many(configs, **opts)
    assert [s.status for s in first] == ["finished"] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s.model}-{s.key[:12]}" for s in first)
    second = train_many(configs, **opts)
    assert [s.status for s in second] == ["reused"] * 4
    assert [metrics(s.history) for s in second] == [metrics(s.history) for s in first]
    listed = load_runs(tmp_path)
    assert [(r.model, r.batch_size) for r in listed] == [(c.model, c.batch_size) for c in configs]
    assert find_run(configs[3], tmp_path).key == first[3].key
    assert find_run(TrainConfig("unet", batch_size=64, palette=str(env["palette"])), tmp_path) is None
    got = find_or_train(configs[0], tmp_path, data=env["data"], cache_dir=env["cache"], device="cpu", threads=1,
                        quiet=True)
    assert got.status == "reused" and got.key == first[0].key
    # without data, a finished run with the same settings is still found
    with pytest.warns(UserWarning, match="data unavailable"):
        got = find_or_train(configs[1], tmp_path, data=tmp_path / "no-such-data", device="cpu", quiet=True)
    assert got.key == first[1].key
    with pytest.raises(ArchcountError, match="does not exist"):
        find_or_train(TrainConfig("unet", epochs=9, palette=str(env["palette"])), tmp_path,
                      data=tmp_path / "no-such-data", quiet=True)
    with pytest.raises(ArchcountError, match="single --run-dir"):
        train_many(configs, run_dir=tmp_path / "x", **{k: v for k, v in opts.items() if k != "runs_root"})


def test_load_runs_skips_broken_summaries(env, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert load_runs(tmp_path) == []
    assert load_runs(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- configuration and devices

@pytest.mark.parametrize("kwargs, match", [
    (dict(model="mnist_fixed"), "classification model"),
    (dict(model="nope"), "unknown model"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=2.5), "epochs"),
    (dict(lr=-1), "lr"),
    (dict(lr="fast"), "lr"),
    (dict(category="unicorn"), None),  # accepted here, rejected when the data are read
    (dict(hparams={"depth": 3}), "unknown hyperparameter"),
    (dict(hparams={"num_in_channels": 3}), "greyscale"),
    (dict(hparams={"kernel": 5}), "own argument"),
])
def test_config_validation(kwargs, match):
    if match is None:
        assert TrainConfig(**kwargs).category == "unicorn"
        return
    with pytest.raises(ArchcountError, match=match):
        TrainConfig(**kwargs)


def test_palette_size_must_match_num_colours(env, tmp_path):
    with pytest.raises(ArchcountError, match="num_colours=24 but the palette has 4"):
        run_tiny(env, runs_root=tmp_path, hparams={"num_colours": 24})


def test_unknown_category_in_training(env, tmp_path):
    with pytest.raises(ArchcountError, match="no train images of class 'unicorn'"):
        run_tiny(env, runs_root=tmp_path, category="unicorn")


def test_select_device():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ArchcountError, match="unknown device"):
        select_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ArchcountError, match="cuda is not available"):
            select_device("cuda")


# ----------------------------------------------------------------------------- the command line

def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--resume", "--force", "--palette", "--device", "--batch-size", "JPEG re-encoding"):
        assert option in out


def test_cli_tiny_runs(env, tmp_path, capsys):
    args = ["train", "--model", "conv_transpose,unet", "--nf", "4", "--batch-size", "5", "--epochs", "1",
            "--data", str(env["data"]), "--palette", str(env["palette"]), "--cache-dir", str(env["cache"]),
            "--runs", str(tmp_path), "--device", "cpu", "--threads", "1", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lossless PNG" in out and "palette.csv (4 colours)" in out
    assert out.count("finished") == 2 and "conv_transpose" in out and "unet" in out
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["reused", "reused"] and [r["model"] for r in rows] == ["conv_transpose",
                                                                                                 "unet"]
    assert {Path(r["run_dir"]).name for r in rows} == {p.name for p in tmp_path.iterdir()}


def test_cli_errors(env, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("r,g,b\n0,0,0\n")
    code = main(["train", "--model", "unet", "--epochs", "1", "--data", str(env["data"]), "--palette", str(bad),
                 "--cache-dir", str(env["cache"]), "--runs", str(tmp_path), "--threads", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.csv" in err and "at least 2 colours" in err
    code = main(["train", "--model", "unet", "--batch-size", "5,7", "--run-dir", str(tmp_path / "x"), "-q"])
    assert code == 2 and "--run-dir" in capsys.readouterr().err
