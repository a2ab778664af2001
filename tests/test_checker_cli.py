"""``archcount check``: exit codes, JSON, shapes, paddings, doubling claims, batch files, hostile input."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reports.cli import main
from analysis.checker.batch import check_many

DATA = Path(__file__).parent / "data" / "answers.yaml"
PU_WEIGHTS = "9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_formula_right_wrong_and_json(capsys):
    code, out, _ = run(capsys, PU_WEIGHTS, "--model", "pool_upsample", "--quantity", "weights")
    assert code == 0 and "verdict: right (weighted, all-layers)" in out
    code, out, _ = run(capsys, "9 NIC NF + 27 NF^2 + 9 NF NC + 9 NC^2", "--model", "pool_upsample",
                       "--quantity", "weights", "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["closest"] == "weighted"
    assert [t["term"] for t in data["terms"] if t["differs"]] == ["NF^2"]
    assert data["explanations"][0].startswith("the NF^2 term is 27, expected 36")


def test_formula_convention_and_kernel_flags(capsys):
    code, out, _ = run(capsys, r"k^{2}\left(N_{IC} N_F + 4 N_F^2 + N_F N_C + N_C^2\right) + 8 N_F + 2 N_C",
                       "--model", "pool_upsample", "--quantity", "weights", "--convention", "parameters")
    assert code == 1 and "verdict: wrong under parameters (right under weighted[batchnorm=affine])" in out
    assert "missing the biases of all conv layers" in out
    code, out, _ = run(capsys, "25 NIC NF + 100 NF^2 + 25 NF NC + 25 NC^2", "--model", "pool_upsample",
                       "--quantity", "weights", "--kernel", "5")
    assert code == 0
    code, out, _ = run(capsys, "49728", "--model", "pool_upsample", "--quantity", "weights", "--size", "32",
                       "--nic", "1", "--nf", "32", "--nc", "24", "--kernel", "3", "--convention", "parameters")
    assert code == 0


def test_shape_check(capsys):
    code, out, _ = run(capsys, "--shape", "16x513x385", "--layer", "conv k=5 s=2 p=1 out=16",
                       "--input", "3x1024x768")
    assert code == 1
    assert "expected: 16x511x383" in out and "H: floor((1024 + 2 - 5)/2) + 1 = 511" in out
    assert "kernel term missing" in out
    code, out, _ = run(capsys, "--shape", "16x511x383", "--layer", "conv k=5 s=2 p=1 out=16",
                       "--input", "3x1024x768", "--json")
    assert code == 0 and json.loads(out)["expected"] == [16, 511, 383]


def test_padding_check(capsys):
    code, out, _ = run(capsys, "--padding", "p=2", "--kernel", "4", "--stride", "2")
    assert code == 1 and "H divisible by 2: out = H/2 + 1 (wanted H/2)" in out
    code, out, _ = run(capsys, "--padding", "p=1 op=0", "--kernel", "4", "--stride", "2", "--transposed")
    assert code == 0
    code, out, _ = run(capsys, "--padding", "p=1", "--kernel", "4")
    assert code == 1 and "gives H - 1" in out


def test_scaled_check(capsys):
    code, out, _ = run(capsys, "--scaled", "4x", "--model", "unet", "--quantity", "weights")
    assert code == 1 and "weights do not depend on the input size" in out
    code, out, _ = run(capsys, "--scaled", "4x", "--model", "unet", "--quantity", "connections")
    assert code == 0


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, PU_WEIGHTS, "--quantity", "weights")
    assert code == 2 and "--model" in err
    code, _, err = run(capsys, PU_WEIGHTS, "--model", "unet", "--quantity", "weights", "--shape", "1x2x3")
    assert code == 2 and "one of" in err
    code, _, err = run(capsys, "--shape", "16x8x8", "--layer", "conv k=3", "--input", "3x8xq")
    assert code == 2 and "--input" in err
    code, _, err = run(capsys, "--padding", "p=1")
    assert code == 2 and "--kernel" in err
    code, _, err = run(capsys)
    assert code == 2 and "nothing to check" in err
    with pytest.raises(SystemExit) as info:
        main(["check", "--kernel", "three"])
    assert info.value.code == 2


@pytest.mark.parametrize("text", ["__import__('os').system('touch {marker}')", "open('{marker}','w').write('x')",
                                  "9**9**9**9", "NF" * 3000, "().__class__.__mro__"])
def test_hostile_formulas_exit_2(capsys, tmp_path, text):
    marker = tmp_path / "pwned"
    code, _, err = run(capsys, text.format(marker=marker), "--model", "pool_upsample", "--quantity", "weights")
    assert code == 2 and "argument formula" in err
    assert not marker.exists()


def test_batch_file_markdown(capsys):
    code, out, err = run(capsys, "--file", str(DATA))
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0] == "| # | id | kind | check | answer | verdict | convention | explanation |"
    rows = lines[1:]
    assert len(rows) == 7
    assert "| a1-right | formula |" in rows[0] and "| right (weighted, all-layers) |" in rows[0]
    assert "| right |" in rows[1]
    assert "wrong under parameters (right under weighted[batchnorm=affine])" in rows[2]
    assert "missing the biases of all conv layers" in rows[2]
    assert "kernel term missing" in rows[3]
    assert "| error |" in rows[6] and "entry 7: field quantity is missing" in rows[6]
    assert code == 2 and "7 entries: 2 right, 4 wrong, 1 could not be checked" in err


def test_batch_formats_and_exit_codes(capsys, tmp_path):
    sheet = tmp_path / "a.yaml"
    sheet.write_text("answers:\n"
                     "  - {id: ok, model: unet, quantity: weights, formula: 'k^2 (NIC NF + 4NF^2 + 2NF NC + NC^2 + NIC NC)'}\n"
                     "  - {id: pad, padding: 'p=1', kernel: 3, stride: 2}\n", encoding="utf-8")
    code, out, _ = run(capsys, "--file", str(sheet), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["verdict"] for r in rows] == ["right (weighted, all-layers)", "right"]
    sheet.write_text("- {id: w, model: unet, quantity: weights, formula: '9 NIC NF'}\n"
                     "- {id: bad, shape: 16x8x8, layer: 'conv k=3', input: 3x8x8, kernel: 3}\n"
                     "- 42\n"
                     "- {id: p, model: unet, quantity: weights, formula: 'NF', hparams: {kernel: three}}\n",
                     encoding="utf-8")
    code, out, _ = run(capsys, "--file", str(sheet), "--format", "json")
    data = json.loads(out)["entries"]
    assert code == 2
    assert data[0]["verdict"] == "wrong" and data[0]["result"]["closest"] == "weighted"
    assert data[1]["verdict"] == "error" and data[1]["field"] == "kernel" and "entry 2" in data[1]["explanation"]
    assert data[2]["verdict"] == "error" and "entry 3: must be a mapping of fields" in data[2]["explanation"]
    assert data[3]["field"] == "hparams" and "entry 4" in data[3]["explanation"]
    sheet.write_text("- {id: w, model: unet, quantity: weights, formula: '9 NIC NF'}\n", encoding="utf-8")
    assert run(capsys, "--file", str(sheet), "--format", "text")[0] == 1


def test_batch_entry_with_hostile_formula_is_an_error_row(tmp_path):
    marker = tmp_path / "pwned"
    rows = check_many([{"model": "unet", "quantity": "weights",
                        "formula": f"__import__('os').system('touch {marker}')"},
                       {"shape": "16x16x16", "layer": "maxpool k=2", "input": "16x33x33"}]).entries
    assert rows[0].verdict == "error" and rows[0].field == "formula"
    assert rows[1].verdict == "right"
    assert not marker.exists()


def test_batch_file_errors_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "--file", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    code, _, err = run(capsys, "--file", str(bad))
    assert code == 2 and "not valid YAML" in err
    bad.write_text("!!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    code, _, err = run(capsys, "--file", str(bad))
    assert code == 2
