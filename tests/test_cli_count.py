from __future__ import annotations

import json

import sympy as sp

import models
from analysis import NC, NF, NIC, H, W, k
from reports.cli import main


def test_count_json_is_readable_back(capsys):
    assert main(["count", "pool_upsample", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"model", "convention", "hparams", "input_size", "totals", "layers"} <= set(data)
    weights = sp.sympify(data["totals"]["weights"], locals={"NIC": NIC, "NF": NF, "NC": NC, "k": k})
    assert sp.simplify(weights - k**2 * (NIC * NF + 4 * NF**2 + NF * NC + NC**2)) == 0


def test_count_numeric_table(capsys):
    assert main(["count", "pool_upsample", "--convention", "parameters", "--kernel", "3", "--size", "32",
                 "--nic", "1", "--nf", "32", "--nc", "24"]) == 0
    out = capsys.readouterr().out
    measured = sum(p.numel() for p in models.build("pool_upsample").parameters())
    assert f"total weights: {measured:,}" in out


def test_count_csv_and_latex(capsys):
    assert main(["count", "unet", "--kernel", "3", "--size", "32x48", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "layer,type,input,output,weights,outputs,connections"
    assert main(["count", "unet", "--kernel", "3", "--format", "latex", "--simplify"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out


def test_count_errors_exit_2(capsys):
    assert main(["count", "unet", "--set", "bias=true", "--set", "bias=false"]) == 2
    assert "contradictory" in capsys.readouterr().err
    assert main(["count", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["count", "unet", "--size", "0"]) == 2


def test_solve_command(capsys):
    assert main(["solve", "N", "--model", "mnist_global_pool", "--equal-to", "mnist_fixed", "--quantity",
                 "weights", "--convention", "parameters", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    fixed = sum(p.numel() for p in models.build("mnist_fixed").parameters())
    best = data["best"]
    got = sum(p.numel() for p in models.build("mnist_global_pool", N=best).parameters())
    for cand in data["candidates"]:
        other = sum(p.numel() for p in models.build("mnist_global_pool", N=cand["value"]).parameters())
        assert abs(got - fixed) <= abs(other - fixed)
