"""Training: run directories, metrics checked independently, resume after a kill, sweeps, bad input, the CLI.

Every run here is tiny (a conv net with NF=4 on 23 training and 5 validation images of a PNG fixture
built by tests/test_data.py's helpers), so that the whole file takes a few seconds.
"""
from __future__ import annotations

import csv
import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
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


# ----------------------------------------------------------------------------- gradient norm of the first layer

def test_grad_norm_first_matches_a_naive_loop(env, baseline):
    """Epoch 1 replayed naively (same seed, initialisation and batch order, contiguous tensors): the mean L2
    norm of the first convolution's weight gradient over the epoch's steps."""
    from models.data import greyscale
    torch.manual_seed(0)
    net = models.build("conv_transpose", num_filters=4, num_colours=4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rgb = category(env["arrays"], "train")
    x = torch.from_numpy(greyscale(rgb))
    px = rgb.astype(np.float64).transpose(0, 2, 3, 1)[..., None, :] / 256
    y = torch.from_numpy(np.argmin(np.sqrt(((px - np.array(PALETTE)) ** 2).sum(-1)), axis=-1))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    norms = []
    net.train()
    for i in range(0, len(x), 5):
        idx = perm[i:i + 5]
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        norms.append(float(net.block1[0].weight.grad.norm()))
        opt.step()
    got = baseline.history[0]["grad_norm_first"]
    assert math.isclose(got, sum(norms) / len(norms), rel_tol=1e-4), (got, norms)
    assert all(h["grad_norm_first"] > 0 for h in baseline.history)


# ----------------------------------------------------------------------------- threads and execution settings

def test_busy_cpus_sees_another_process_but_not_this_one():
    from models.execution import busy_cpus
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cpus(0.5) >= 0.6  # the spinning process holds (nearly) one core
    finally:
        spin.kill()
        spin.wait()


def test_auto_threads_are_chosen_recorded_and_kept_on_resume(env, tmp_path, monkeypatch):
    from models.execution import cpu_count
    rd = tmp_path / "auto"
    monkeypatch.setenv("ARCHCOUNT_STOP_AFTER_EPOCH", "1")
    monkeypatch.setenv("ARCHCOUNT_STOP_SIGNAL", "TERM")
    with pytest.raises(TrainingInterrupted):
        run_tiny(env, run_dir=rd, threads="auto")
    monkeypatch.delenv("ARCHCOUNT_STOP_AFTER_EPOCH")
    ex = json.loads((rd / "config.json").read_text())["execution"]
    assert 1 <= ex["threads"] <= cpu_count() and ex["cpu_cores"] == cpu_count()
    method = ex["thread_choice"]["method"]
    assert method.startswith(("idle machine", "measured", "free cores")), method
    if method.startswith("idle"):
        assert ex["threads"] == cpu_count()  # an idle machine uses every core
    assert ex["channels_last"] is True and ex["val_batch_size"] == 100 and ex["amp"] == "off"
    ckpt = torch.load(rd / "checkpoint.pt", weights_only=True)
    assert ckpt["execution"]["threads"] == ex["threads"]
    # the resumed run keeps what changes the numbers, whatever the machine looks like now
    ckpt["execution"]["threads"] = 1
    torch.save(ckpt, rd / "checkpoint.pt")
    from models.runs import register_files
    register_files(rd, ["checkpoint.pt"])
    import shutil
    shutil.copytree(rd, tmp_path / "copy")
    resumed = run_tiny(env, run_dir=rd, threads="auto", resume=True)
    assert resumed.threads == 1 and resumed.execution["thread_choice"]["method"] == "kept from the checkpoint"
    # an explicit different setting is obeyed, with a warning that the numbers will differ
    with pytest.warns(UserWarning, match="used threads=1, this one 2.*will differ"):
        other = run_tiny(env, run_dir=tmp_path / "copy", threads=2, resume=True)
    assert other.threads == 2


def test_choose_keeps_a_given_count_and_measures_otherwise():
    from models.execution import choose, cpu_count
    calls = []

    def step(threads: int) -> float:
        calls.append(threads)
        torch.set_num_threads(threads)
        t = time.perf_counter()
        torch.randn(200, 200) @ torch.randn(200, 200)
        return time.perf_counter() - t
    assert choose(step, threads=2, dev=torch.device("cpu")).threads == 2 and not calls
    c = choose(step, threads=None, dev=torch.device("cpu"))
    assert 1 <= c.threads <= cpu_count()
    if c.method.startswith("measured"):
        assert set(calls) == {int(k.split()[0]) for k in c.measured_ms} and c.threads in set(calls)
    else:
        assert c.threads == (cpu_count() if c.method.startswith("idle") else c.threads)


# ----------------------------------------------------------------------------- what --force may replace

def test_force_replaces_only_archcount_files(env, tmp_path):
    from models.runs import MANIFEST, clear_run_dir, owned_files, register_files
    s = run_tiny(env, run_dir=tmp_path / "run", epochs=1)
    rd = Path(s.run_dir)
    (rd / "notes.txt").write_text("mine")
    (rd / "evidence.json").write_text("{}")  # written later by the report: archcount's own
    (rd / "evidence").mkdir()
    (rd / "evidence" / "a.png").write_bytes(b"x")
    owned, foreign = owned_files(rd)
    assert foreign == [] and {"metrics.csv", "checkpoint.pt", "evidence.json", "evidence", MANIFEST} <= set(owned)
    (rd / "metrics.csv").write_text("edited by hand\n")
    assert owned_files(rd)[1] == ["metrics.csv"]
    before = fingerprint_dir(rd)
    with pytest.raises(ArchcountError, match="metrics.csv that archcount did not write") as exc:
        run_tiny(env, run_dir=rd, epochs=1, force=True)
    assert exc.value.argument == "force" and fingerprint_dir(rd) == before
    with pytest.raises(ArchcountError, match="metrics.csv"):
        clear_run_dir(rd)
    assert fingerprint_dir(rd) == before
    register_files(rd, ["metrics.csv"])  # vouched for again: now --force may replace it
    again = run_tiny(env, run_dir=rd, epochs=1, force=True)
    assert (rd / "notes.txt").read_text() == "mine" and not (rd / "evidence").exists()
    assert again.status == "finished" and not (rd / "evidence.json").exists()


def test_force_on_a_run_dir_of_an_older_archcount_without_manifest(env, tmp_path):
    from models.runs import MANIFEST, owned_files
    s = run_tiny(env, run_dir=tmp_path / "old", epochs=1)
    rd = Path(s.run_dir)
    (rd / MANIFEST).unlink()
    assert owned_files(rd) == (sorted(owned_files(rd)[0], key=list(
        ("config.json", "metrics.csv", "checkpoint.pt", "samples.png", "summary.json", "palette.csv")).index), [])
    assert run_tiny(env, run_dir=rd, epochs=1, force=True).status == "finished"
    # a folder without an archcount config.json: its metrics.csv is the user's
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "metrics.csv").write_text("1,2\n")
    assert owned_files(tmp_path / "user") == ([], ["metrics.csv"])


def fingerprint_dir(rd: Path) -> dict[str, bytes]:
    return {str(p.relative_to(rd)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(rd.rglob("*"))}


# ----------------------------------------------------------------------------- several runs at once

def test_parallel_runs_match_sequential_ones(env, tmp_path):
    configs = sweep_configs(["conv_transpose", "unet"], epochs=2, num_filters=4, batch_size=5,
                            palette=str(env["palette"]))
    configs.append(configs[0])  # the same run twice: trained once
    opts = dict(data=env["data"], cache_dir=env["cache"], device="cpu", threads=1, quiet=True)
    seq = train_many(configs, runs_root=tmp_path / "seq", jobs=1, **opts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        par = train_many(configs, runs_root=tmp_path / "par", jobs=2, **opts)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []  # worker pipes closed
    assert [s.status for s in par] == ["finished"] * 3 and par.jobs == 2 and seq.jobs == 1
    assert [metrics(s.history) for s in par] == [metrics(s.history) for s in seq]
    assert par[2].run_id == par[0].run_id and len(list((tmp_path / "par").iterdir())) == 2
    assert all(s.execution["parallel_runs"] == 2 and s.threads == 1 for s in par)
    rows = par.to_dict()["runs"]
    assert len(rows) == 3 and all(r["threads"] == 1 and r["end_s"] > r["start_s"] >= 0 for r in rows)
    assert par.wall_time_s + 0.01 >= max(r["end_s"] for r in rows)  # rows are rounded to 0.01 s
    again = train_many(configs, runs_root=tmp_path / "par", jobs=2, **opts)
    assert [s.status for s in again] == ["reused"] * 3


def test_find_or_train_many_without_data_uses_finished_runs(env, tmp_path):
    from models.training import find_or_train_many
    configs = sweep_configs(["conv_transpose"], batch_size=[5, 23], epochs=1, num_filters=4,
                            palette=str(env["palette"]))
    opts = dict(cache_dir=env["cache"], device="cpu", threads=1, quiet=True)
    first = find_or_train_many(configs, tmp_path, data=env["data"], **opts)
    with pytest.warns(UserWarning, match="data unavailable"):
        got = find_or_train_many(configs, tmp_path, data=tmp_path / "no-such-data", **opts)
    assert [g.key for g in got] == [f.key for f in first] and {g.status for g in got} == {"reused"}
    with pytest.raises(ArchcountError, match="does not exist"):
        find_or_train_many([TrainConfig("unet", epochs=3, palette=str(env["palette"]))], tmp_path,
                           data=tmp_path / "no-such-data", **opts)


def test_plan_jobs_shares_the_free_cores():
    from models.schedule import plan_jobs
    assert plan_jobs(8, cores=2, busy=0.0) == (2, 1)
    assert plan_jobs(8, cores=2, busy=1.5) == (2, 1)     # single-threaded runs still take their share
    assert plan_jobs(1, cores=2, busy=1.0) == (1, None)  # one run: train() measures its threads
    assert plan_jobs(0, cores=2, busy=0.0) == (1, None)
    assert plan_jobs(5, cores=16, busy=4.0) == (5, 2)
    assert plan_jobs(3, cores=2, busy=0.0) == (3, 1)     # the default three models: no idle tail
    assert plan_jobs(5, cores=2, busy=0.0) == (2, 1)
    assert plan_jobs(4, cores=16, busy=0.0, threads=3) == (4, 3)


def test_accelerator_decisions_on_a_cpu_machine():
    """No GPU is lent to this project's CI: the CUDA/MPS branches of the decisions are checked as functions."""
    from models.execution import amp_dtype, channels_last_flag, choose, cpu_count
    from models.loop import acc_dtype
    from models.schedule import plan_jobs
    from models.training import _checkpoint_execution, check_options
    cuda, mps, cpu = torch.device("cuda"), torch.device("mps"), torch.device("cpu")
    assert channels_last_flag("auto", cuda) is True and channels_last_flag("auto", mps) is False
    assert channels_last_flag("auto", cpu) is True and channels_last_flag("on", mps) is True
    assert acc_dtype(mps) == torch.float32 and acc_dtype(cuda) == torch.float64
    assert amp_dtype("off", cuda) is None and amp_dtype("bf16", mps) == torch.bfloat16
    assert amp_dtype("auto", cpu) is None
    c = choose(None, threads=None, dev=cuda)  # an accelerator: no CPU measurement, every core for the host side
    assert c.threads == cpu_count() and c.method == "every core"
    assert plan_jobs(8, cores=2, busy=None, jobs=1) == (1, None)  # train_many gives a GPU one run at a time
    assert _checkpoint_execution({"execution": {"threads": 2, "channels_last": False, "amp": "bf16",
                                                "val_batch_size": 1000}}) == {
        "threads": 2, "channels_last": False, "amp": torch.bfloat16, "val_batch_size": 1000}
    assert _checkpoint_execution({"threads": 3}) == {"threads": 3}  # checkpoints of the previous format
    if not torch.cuda.is_available():
        with pytest.raises(ArchcountError, match="cuda is not available"):
            check_options(device="cuda")
