"""Bad input to training (issue 13, items 5-7): table-driven through tests/badinput.py.

Every case builds its own tiny data (6 + 2 horse PNGs) in its folder; nothing trains beyond one
epoch at NF=2, except the signal cases, which are stopped before their first epoch ends.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from badinput import ApiCase, CliCase, changed_paths, fingerprint, run_api_case, run_cli_case

sys.path.insert(0, str(Path(__file__).parent))
from test_data import make_arrays, write_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PALETTE = "r,g,b\n0,0,0\n1,1,1\n0.5,0.2,0.1\n0.1,0.4,0.8\n"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
#: A folder nobody may create files in: /sys refuses even root; otherwise a chmod 555 folder.
UNWRITABLE = "/sys/fs/archcount-bad-input/run" if ROOT else "{tmp}/readonly/run"


def data(tmp: Path) -> None:
    """tmp/data: a PNG tree with 6 training and 2 validation horses (and one image of every other class)."""
    write_tree(tmp / "data", make_arrays(seed=3, horse_train=6, horse_test=2))
    (tmp / "pal.csv").write_text(PALETTE)


def args(*extra: str, palette: bool = True) -> list[str]:
    base = ["train", "--model", "conv_transpose", "--data", "{tmp}/data/cifar10", "--cache-dir", "{tmp}/cache",
            "--nf", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--threads", "1", "-q"]
    return base + (["--palette", "{tmp}/pal.csv"] if palette else []) + list(extra)


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in steps:
            s(tmp)
    return setup


def finished_run(tmp: Path, epochs: int = 1, stop_after: int | None = None) -> Path:
    """A real tiny run under tmp/runs (stopped by SIGTERM after ``stop_after`` epochs when given)."""
    from models.training import TrainingInterrupted, train
    opts = dict(num_filters=2, epochs=epochs, batch_size=4, palette=str(tmp / "pal.csv"), data=tmp / "data" / "cifar10",
                cache_dir=tmp / "cache", runs_root=tmp / "runs", device="cpu", threads=1, quiet=True)
    if stop_after is None:
        return Path(train("conv_transpose", **opts).run_dir)
    os.environ.update(ARCHCOUNT_STOP_AFTER_EPOCH=str(stop_after), ARCHCOUNT_STOP_SIGNAL="TERM")
    try:
        train("conv_transpose", **opts)
    except TrainingInterrupted:
        pass
    finally:
        os.environ.pop("ARCHCOUNT_STOP_AFTER_EPOCH")
        os.environ.pop("ARCHCOUNT_STOP_SIGNAL")
    return next((tmp / "runs").iterdir())


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        rd = finished_run(tmp)
        d = json.loads((rd / name).read_text())
        change(d)
        (rd / name).write_text(json.dumps(d))
    return setup


def edit_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        import torch
        rd = finished_run(tmp, epochs=2, stop_after=1)
        ckpt = torch.load(rd / "checkpoint.pt", weights_only=True)
        change(ckpt)
        torch.save(ckpt, rd / "checkpoint.pt")
    return setup


def checkpoint_dir(tmp: Path) -> None:
    rd = finished_run(tmp, epochs=2, stop_after=1)
    (rd / "checkpoint.pt").unlink()
    (rd / "checkpoint.pt").mkdir()


def user_folder(tmp: Path) -> None:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "metrics.csv").write_text("my,own,numbers\n1,2,3\n")
    (tmp / "mine" / "notes.txt").write_text("keep me")


def edited_run(tmp: Path) -> None:
    rd = finished_run(tmp)
    with open(rd / "metrics.csv", "a") as fh:
        fh.write("# my annotation\n")


def report_evidence(tmp: Path) -> None:
    """A finished run into which the report wrote evidence.json and evidence/ (archcount's own files)."""
    rd = finished_run(tmp)
    (rd / "evidence.json").write_text("{}")
    (rd / "evidence").mkdir()
    (rd / "evidence" / "grad.png").write_bytes(b"png")


def symlinked_metrics(tmp: Path) -> None:
    rd = finished_run(tmp)
    (tmp / "elsewhere.csv").write_text("precious")
    (rd / "metrics.csv").unlink()
    (rd / "metrics.csv").symlink_to(tmp / "elsewhere.csv")


def readonly(tmp: Path) -> None:
    if not ROOT:
        (tmp / "readonly").mkdir()
        os.chmod(tmp / "readonly", 0o555)


def bomb_zip(tmp: Path) -> None:
    """A zip image tree whose first horse PNG claims 20000x20000 pixels (a decompression bomb header)."""
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    ihdr = png[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", 20000, 20000)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    _tree_zip(tmp, {"cifar10/train/horse/0000.png": bytes(png)})


def big_entry_zip(tmp: Path) -> None:
    _tree_zip(tmp, {"cifar10/train/horse/0000.png": b"\0" * (20 << 20)})


def _tree_zip(tmp: Path, replace: dict[str, bytes]) -> None:
    data(tmp)
    root = tmp / "data"
    with zipfile.ZipFile(tmp / "bad.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(root).as_posix())
        for name, content in replace.items():
            zf.writestr(name.replace("0000", "9999"), content)


def palette_rows(n: int) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        rng = np.random.default_rng(0)
        (tmp / "big.csv").write_text("r,g,b\n" + "".join(f"{a:.3f},{b:.3f},{c:.3f}\n" for a, b, c in rng.random((n, 3))))
    return setup


def palette_npy(tmp: Path) -> None:
    np.save(tmp / "big.npy", np.random.default_rng(0).random((100_000, 3)))


RUNS = ["runs", "runs/*", "cache", "cache/*"]

CASES = [
    # item 6: sizes a user types
    CliCase("nf-1000000", args("--nf", "1000000"), names=["num_filters", "1024"], setup=data),
    CliCase("seed-2**70-literal", args("--seed", str(2**70)), names=["seed", "4294967295"], setup=data),
    CliCase("seed-2**70-expression", args("--seed", "2**70"), names=["--seed"], setup=data),
    CliCase("palette-seed-huge", args("--palette-seed", str(2**64), palette=False), names=["palette_seed"], setup=data),
    CliCase("palette-k-100000", args("--palette-k", "100000", palette=False), names=["palette_k", "256"], setup=data),
    CliCase("palette-100000-rows", args("--palette", "{tmp}/big.csv", palette=False), names=["palette", "big.csv"],
            setup=both(data, palette_rows(100_000))),
    CliCase("palette-300-rows", args("--palette", "{tmp}/big.csv", palette=False), names=["palette", "256"],
            setup=both(data, palette_rows(300))),
    CliCase("palette-npy-100000-rows", args("--palette", "{tmp}/big.npy", palette=False), names=["palette", "big.npy"],
            setup=both(data, palette_npy)),
    CliCase("palette-is-folder", args("--palette", "{tmp}/data", palette=False), names=["palette", "folder"],
            setup=data),
    CliCase("palette-empty", args("--palette", "", palette=False), names=["palette", "empty"], setup=data),
    CliCase("kernel-1001", args("--kernel", "1001"), names=["kernel", "65"], setup=data),
    CliCase("batch-10**7", args("--batch-size", "10000000"), names=["batch_size"], setup=data),
    CliCase("epochs-10**8", args("--epochs", "100000000"), names=["epochs"], setup=data),
    CliCase("memory-nf1024-k65", args("--nf", "1024", "--kernel", "65"), names=["num_filters", "GiB"], setup=data),
    CliCase("threads-100000", args("--threads", "100000"), names=["threads"], setup=data),
    CliCase("jobs-0", args("--jobs", "0"), names=["--jobs"], setup=data),
    CliCase("jobs-1000", args("--jobs", "1000"), names=["jobs"], setup=data),
    CliCase("samples-100000", args("--samples", "100000"), names=["samples"], setup=data),
    CliCase("lr-nan", args("--lr", "nan"), names=["lr"], setup=data),
    CliCase("lr-inf", args("--lr", "inf"), names=["lr"], setup=data),
    CliCase("sweep-2000-combinations", args("--seed", ",".join(str(i) for i in range(2000))),
            names=["seed", "combinations"], setup=data),
    CliCase("hparam-unknown", args("--hparam", "depth=3"), names=["depth"], setup=data),
    CliCase("category-unknown", args("--category", "unicorn"), names=["unicorn"], setup=data),
    CliCase("category-label-99", args("--category", "99"), names=["category"], setup=data),
    # item 6: data
    CliCase("data-empty-string", args("--data", ""), names=["data", "empty"], setup=data),
    CliCase("data-missing", args("--data", "{tmp}/nope.zip"), names=["nope.zip"], setup=data),
    CliCase("data-empty-folder", args("--data", "{tmp}/cache"), names=["data"], setup=lambda t: (t / "cache").mkdir()),
    CliCase("data-not-a-zip", args("--data", "{tmp}/x.zip"), names=["x.zip"], files={"x.zip": b"PK\3\4garbage"},
            setup=data),
    CliCase("data-20000x20000-png", args("--data", "{tmp}/bad.zip"), names=["data", "9999.png"], setup=bomb_zip),
    CliCase("data-20-MiB-image-entry", args("--data", "{tmp}/bad.zip"), names=["data", "9999.png"],
            setup=big_entry_zip),
    # item 6: run files of the wrong shape
    CliCase("summary-val-loss-abc", args("--runs", "{tmp}/runs"), names=["val_loss", "--resume"],
            setup=both(data, edit_json("summary.json", lambda d: d["final"].update(val_loss="abc")))),
    CliCase("summary-val-loss-abc-resume", args("--runs", "{tmp}/runs", "--resume"), status=0, names=["val_loss"],
            setup=both(data, edit_json("summary.json", lambda d: d["final"].update(val_loss="abc"))),
            may_change=RUNS),
    CliCase("summary-history-not-a-list", args("--runs", "{tmp}/runs", "--resume"), status=0, names=["history"],
            setup=both(data, edit_json("summary.json", lambda d: d.update(history=5))),
            may_change=RUNS),
    CliCase("checkpoint-epoch-as-text", args("--runs", "{tmp}/runs", "--resume", "--epochs", "2"),
            names=["checkpoint", "epoch"], setup=both(data, edit_checkpoint(lambda c: c.update(epoch="one")))),
    CliCase("checkpoint-epoch-beyond-run", args("--runs", "{tmp}/runs", "--resume", "--epochs", "2"),
            names=["checkpoint", "epoch 99"], setup=both(data, edit_checkpoint(lambda c: c.update(epoch=99)))),
    CliCase("checkpoint-history-wrong", args("--runs", "{tmp}/runs", "--resume", "--epochs", "2"),
            names=["checkpoint", "history"],
            setup=both(data, edit_checkpoint(lambda c: c.update(history=[{"epoch": 1, "val_loss": "abc"}])))),
    CliCase("checkpoint-rng-wrong", args("--runs", "{tmp}/runs", "--resume", "--epochs", "2"),
            names=["checkpoint", "rng"], setup=both(data, edit_checkpoint(lambda c: c.update(rng={"torch": 1})))),
    CliCase("checkpoint-is-folder", args("--runs", "{tmp}/runs", "--resume", "--epochs", "2"),
            names=["checkpoint.pt", "folder"], setup=both(data, checkpoint_dir)),
    # item 7: --force replaces only archcount's files
    CliCase("force-on-users-metrics", args("--run-dir", "{tmp}/mine", "--force"), names=["metrics.csv", "--force"],
            setup=both(data, user_folder)),
    CliCase("force-on-edited-metrics", args("--runs", "{tmp}/runs", "--force"), names=["metrics.csv"],
            setup=both(data, edited_run)),
    CliCase("no-force-on-users-folder", args("--run-dir", "{tmp}/mine"), names=["mine", "--force"],
            setup=both(data, user_folder)),
    # item 5: paths
    CliCase("runs-is-a-file", args("--runs", "{tmp}/afile"), names=["afile", "file"], setup=data,
            files={"afile": "x"}),
    CliCase("runs-below-a-file", args("--runs", "{tmp}/afile/sub"), names=["afile"], setup=data, files={"afile": "x"}),
    CliCase("run-dir-is-a-file", args("--run-dir", "{tmp}/afile"), names=["afile"], setup=data, files={"afile": "x"}),
    CliCase("run-dir-unwritable", args("--run-dir", UNWRITABLE), names=["run_dir", UNWRITABLE.split("/")[-2]],
            setup=both(data, readonly)),
    CliCase("runs-unwritable", args("--runs", UNWRITABLE), names=["runs", UNWRITABLE.split("/")[-2]],
            setup=both(data, readonly)),
    # more of our own
    CliCase("force-replaces-report-evidence", args("--runs", "{tmp}/runs", "--force"), status=0, names=[],
            setup=both(data, report_evidence), may_change=RUNS),
    CliCase("force-refuses-symlinked-metrics", args("--runs", "{tmp}/runs", "--force"), names=["metrics.csv"],
            setup=both(data, symlinked_metrics)),
    CliCase("epochs-0", args("--epochs", "0"), names=["epochs"], setup=data),
    CliCase("batch-negative", args("--batch-size", "-5"), names=["batch_size"], setup=data),
    CliCase("samples-negative", args("--samples", "-1"), names=["samples"], setup=data),
    CliCase("palette-nan", args("--palette", "{tmp}/nan.csv", palette=False), names=["nan.csv", "finite"],
            setup=data, files={"nan.csv": "r,g,b\n0,0,0\nnan,1,1\n"}),
    CliCase("palette-one-colour", args("--palette", "{tmp}/one.csv", palette=False), names=["one.csv", "2 colours"],
            setup=data, files={"one.csv": "0,0,0\n"}),
    CliCase("palette-binary", args("--palette", "{tmp}/bin.csv", palette=False), names=["bin.csv"],
            setup=data, files={"bin.csv": b"\xff\xfe\x00garbage"}),
    CliCase("category-empty", args("--category", ""), names=["category"], setup=data),
    CliCase("hparam-num-colours-text", args("--hparam", "num_colours=abc"), names=["num_colours"], setup=data),
    CliCase("run-dir-with-sweep", args("--run-dir", "{tmp}/x", "--batch-size", "4,5"), names=["--run-dir"],
            setup=data),
    CliCase("cache-dir-is-a-file", args("--cache-dir", "{tmp}/afile", palette=False), status=0, names=[],
            setup=data, files={"afile": "x"}, may_change=RUNS),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cli_case(case: CliCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("ARCHCOUNT_BADINPUT_ISOLATE"):  # every case in a subprocess under a memory limit
        case = dataclasses.replace(case, isolate=True, timeout=max(case.timeout, 60))
    monkeypatch.setenv("ARCHCOUNT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ARCHCOUNT_DATA", raising=False)
    try:
        run_cli_case(case, tmp_path)
    finally:
        if (tmp_path / "readonly").exists():
            os.chmod(tmp_path / "readonly", 0o755)


def _api_cases() -> list[ApiCase]:
    from models.data import nearest_colour, resolve_source
    from models.palette import compute_palette, validate_palette
    from models.training import TrainConfig, train

    def train_many(*a: Any, **k: Any) -> Any:
        from models.training import train_many as tm
        return tm(*a, **k)
    rgb = np.zeros((1, 3, 2, 2), np.uint8)
    return [
        ApiCase("config-seed-2**70", lambda: TrainConfig("unet", seed=2**70), names=["seed"]),
        ApiCase("config-nf-10**6", lambda: TrainConfig("unet", num_filters=10**6), names=["num_filters"]),
        ApiCase("config-palette-k-10**5", lambda: TrainConfig("unet", palette_k=100_000), names=["palette_k"]),
        ApiCase("config-kernel-float", lambda: TrainConfig("unet", kernel=3.5), names=["kernel"]),
        ApiCase("config-epochs-bool", lambda: TrainConfig("unet", epochs=True), names=["epochs"]),
        ApiCase("config-lr-inf", lambda: TrainConfig("unet", lr=float("inf")), names=["lr"]),
        ApiCase("config-lr-list", lambda: TrainConfig("unet", lr=[1]), names=["lr"]),
        ApiCase("config-model-int", lambda: TrainConfig(5), names=["model"]),
        ApiCase("config-palette-int", lambda: TrainConfig("unet", palette=123), names=["palette"]),
        ApiCase("config-hparams-int", lambda: TrainConfig("unet", hparams=5), names=["hparams"]),
        ApiCase("config-from-list", lambda: TrainConfig.from_dict([1, 2]), names=["config"]),
        ApiCase("train-threads-word", lambda: train("unet", threads="many"), names=["threads"]),
        ApiCase("train-samples-huge", lambda: train("unet", samples=10**6), names=["samples"]),
        ApiCase("train-device-int", lambda: train("unet", device=5), names=["device"]),
        ApiCase("train-data-empty", lambda: train("unet", data="", threads=1), names=["data"]),
        ApiCase("train-unknown-field", lambda: train("unet", batchsize=3), names=["batchsize"]),
        ApiCase("train-many-not-configs", lambda: train_many(["unet"]), names=["configs"]),
        ApiCase("train-many-jobs-0", lambda: train_many([TrainConfig("unet")], jobs=0), names=["jobs"]),
        ApiCase("palette-k-10**5", lambda: compute_palette(rgb, k=100_000), names=["palette_k"]),
        ApiCase("palette-300-colours", lambda: validate_palette(np.zeros((300, 3))), names=["palette"]),
        ApiCase("nearest-colour-bad-palette", lambda: nearest_colour(rgb, np.zeros((2, 4))), names=["palette"]),
        ApiCase("resolve-source-empty", lambda: resolve_source(""), names=["data"]),
    ]


@pytest.mark.parametrize("case", _api_cases(), ids=str)
def test_api_case(case: ApiCase) -> None:
    run_api_case(case)


def test_summary_of_wrong_types_is_skipped_with_a_warning(tmp_path: Path) -> None:
    from models.training import load_run, load_runs
    data(tmp_path)
    rd = finished_run(tmp_path)
    good = load_runs(tmp_path / "runs")
    assert len(good) == 1
    for change in (lambda d: d["final"].update(val_loss="abc"), lambda d: d.update(epochs="25"),
                   lambda d: d["config"].update(batch_size=None), lambda d: d.update(channels_last="yes")):
        d = good[0].to_dict()
        change(d)
        (rd / "summary.json").write_text(json.dumps(d))
        with pytest.warns(UserWarning, match="not an archcount run summary"):
            assert load_runs(tmp_path / "runs") == []
        with pytest.raises(Exception, match="summary") as exc:
            load_run(rd)
        assert type(exc.value).__name__ == "ArchcountError"


# ----------------------------------------------------------------------------- signals (real processes)

def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ARCHCOUNT_CACHE": str(cwd / "cache")}
    env.pop("ARCHCOUNT_DATA", None)
    return subprocess.Popen([sys.executable, "-m", "reports.cli", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 60.0) -> None:
    end = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.1)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_during_a_huge_kernel_takes_effect_promptly(tmp_path: Path, jobs: str) -> None:
    """Kernel 65 (the largest allowed) at NF 32: one step takes minutes; SIGTERM must end it within seconds,
    without claiming a checkpoint that was never written."""
    data(tmp_path)
    models = "conv_transpose" if jobs == "1" else "conv_transpose,unet"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args("--kernel", "65", "--nf", "32", "--batch-size", "5",
                                                            "--runs", "{tmp}/runs", "--jobs", jobs)]
    argv[argv.index("--model") + 1] = models
    argv.remove("-q")
    before = fingerprint(tmp_path)
    proc = _start(argv, tmp_path)
    _wait_for(tmp_path / "runs", proc)
    while not list((tmp_path / "runs").glob("*/config.json")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.5)  # inside the first, very long step
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"SIGTERM had no effect within 15 s:\n{proc.communicate()[1]}")
    took = time.monotonic() - t
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert proc.returncode in (130, 143, -signal.SIGTERM), (proc.returncode, err)
    assert "Traceback" not in err and "after epoch 0" not in err, err
    assert "no checkpoint was written" in err or "unfinished runs keep their last checkpoints" in err, err
    assert not list((tmp_path / "runs").glob("*/checkpoint.pt"))
    changed = [p for p in changed_paths(before, fingerprint(tmp_path)) if not p.startswith(("runs", "cache"))]
    assert not changed


def test_count_of_cases() -> None:
    """The corpus: at least 45 CLI and 20 API cases (issue 13 asks for the counts in the note)."""
    assert len(CASES) >= 45 and len(_api_cases()) >= 20
    assert len({c.id for c in CASES}) == len(CASES)
