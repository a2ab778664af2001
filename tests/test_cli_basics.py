from __future__ import annotations

import json
import subprocess
import sys

import models
from reports.cli import main


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "models" in capsys.readouterr().out


def test_models_lists_every_registered_model(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == models.available()
    assert all(r["description"] and "kernel" in r["hparams"] for r in rows)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "reports.cli", "models"], capture_output=True, text=True, check=True)
    assert "unet" in out.stdout
