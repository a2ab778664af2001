"""``archcount shape`` and ``archcount padding`` through reports.cli.main."""
from __future__ import annotations

import json

import pytest

from reports.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_padding_and_shape(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "padding" in out and "shape" in out


def test_shape_help_documents_the_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["shape", "--help"])
    out = capsys.readouterr().out
    for needle in ("k/kernel", "op/output_padding", "out/out_channels", "ceil", "upsample x2", "'->'",
                   "3x1024x768"):
        assert needle in out, needle


# ----------------------------------------------------------------------------- shape

def test_shape_required_example(capsys):
    code, out, err = run(capsys, "shape", "conv k=5 s=2 p=1 out=16", "--input", "3x1024x768")
    assert code == 0 and err == ""
    assert "floor((1024 + 2 - 5)/2) + 1 = 511" in out
    assert "floor((768 + 2 - 5)/2) + 1 = 383" in out
    assert out.splitlines()[-2] == "output 16x511x383"
    assert "none; every input row and column is read" in out


def test_shape_json(capsys):
    code, out, _ = run(capsys, "shape", "conv k=5 s=2 p=1 out=16", "--input", "3x1024x768", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["input"] == [3, 1024, 768] and data["output"] == [16, 511, 383]
    assert data["output_text"] == "16x511x383"
    step, = data["steps"]
    assert [a["arithmetic"] for a in step["axes"]] == ["floor((1024 + 2 - 5)/2) + 1 = 511",
                                                       "floor((768 + 2 - 5)/2) + 1 = 383"]
    assert step["spec"]["kernel"] == 5 and step["dropped"] == [0, 0]


@pytest.mark.parametrize("argv", [
    ["conv k=3 s=2 p=1 out=16 -> maxpool k=2"],
    ["conv k=3 s=2 p=1 out=16 ; maxpool k=2"],
    ["conv k=3 s=2 p=1 out=16", "maxpool k=2"],
])
def test_shape_chain_prints_each_step(capsys, argv):
    code, out, _ = run(capsys, "shape", *argv, "--input", "3x66x64")
    assert code == 0
    assert "conv k=3 s=2 p=1 out=16: 3x66x64 -> 16x33x32" in out
    assert "maxpool k=2: 16x33x32 -> 16x16x16" in out
    # 33 rows into a 2x2 pool: the last row is never read
    assert "floor((33 - 2)/2) + 1 = 16   (1 input row dropped" in out
    assert "maxpool k=2 drops 1 on H" in out
    assert out.splitlines()[-2] == "output 16x16x16"


def test_shape_json_chain_and_symbols(capsys):
    code, out, _ = run(capsys, "shape", "conv k=3 p=1 out=NF -> maxpool k=2", "--input", "NICxHxW", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["output"] == ["NF", "floor(H/2)", "floor(W/2)"]
    assert data["steps"][1]["dropped"] == ["Mod(H, 2)", "Mod(W, 2)"]


@pytest.mark.parametrize("argv, needle", [
    (["conv k=7 p=1", "--input", "3x4x9"], "argument kernel:"),
    (["conv k=3 s=0", "--input", "3x8x8"], "argument stride:"),
    (["conv k=3 p=-1", "--input", "3x8x8"], "argument padding:"),
    (["tconv k=3 s=2 op=2", "--input", "3x8x8"], "argument output_padding:"),
    (["conv k=3 foo", "--input", "3x8x8"], "'foo'"),
    (["conv k=3 q=2", "--input", "3x8x8"], "argument q:"),
    (["conv k=3", "--input", "3x0x8"], "argument --input:"),
    (["conv k=3", "--input", "3xax8"], "argument --input:"),
    (["conv k=3 -> maxpool k=9", "--input", "3x9x9"], "step 2 of 2"),
    (["conv k=3 g=2", "--input", "3x9x9"], "argument groups:"),
])
def test_shape_errors_exit_2_and_name_the_argument(capsys, argv, needle):
    code, out, err = run(capsys, "shape", *argv)
    assert code == 2 and out == ""
    assert err.startswith("archcount shape: error:")
    assert needle in err


def test_shape_needs_input(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["shape", "conv k=3"])
    assert exc.value.code == 2
    assert "--input" in capsys.readouterr().err


# ----------------------------------------------------------------------------- padding

def test_padding_table(capsys):
    code, out, _ = run(capsys, "padding")
    assert code == 0
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]]
            for line in out.splitlines() if line[:1].isdigit()}
    assert sorted(rows) == [str(v) for v in range(1, 8)]
    assert rows["3"] == ["p=1", "p=1", "(1, 1)"]
    assert rows["4"] == ["none", "p=1", "(1, 0)"]
    assert rows["5"] == ["p=2", "p=2", "(2, 1)"]
    assert "stride-2 transposed doubling: padding = floor((k-1)/2), output_padding = k mod 2" in out
    assert "stride-2 conv halving: padding = floor((k-1)/2)" in out
    assert "General formulas:" in out


def test_padding_table_json(capsys):
    code, out, _ = run(capsys, "padding", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["table"][3] == {"kernel": 4, "stride-1 conv keeping size": None, "stride-2 conv halving": [1],
                                "stride-2 transposed doubling": [[1, 0]]}
    assert data["symbolic"]["stride-2 transposed doubling"]["solutions"] == [["floor(k/2 - 1/2)",
                                                                              "k - 2*floor(k/2)"]]
    assert data["general"]


def test_padding_one_kernel(capsys):
    code, out, _ = run(capsys, "padding", "--kernel", "4", "--stride", "2")
    assert code == 0
    assert "out = in/2" in out and "all input sizes divisible by 2" in out
    assert "the only solution:" in out and "padding = 1" in out
    assert "floor((16 + 2 - 4)/2) + 1 = 8" in out


def test_padding_transposed(capsys):
    code, out, _ = run(capsys, "padding", "--kernel", "4", "--stride", "2", "--transposed", "--scale", "2")
    assert code == 0
    assert "(padding, output_padding) = (1, 0)" in out and "(16 - 1)*2 - 2 + 4 = 32" in out


def test_padding_several_solutions_json(capsys):
    code, out, _ = run(capsys, "padding", "--kernel", "3", "--stride", "3", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert data["solutions"] == [[0, 0], [1, 0]]


def test_padding_no_solution_gives_the_reason(capsys):
    code, out, _ = run(capsys, "padding", "--kernel", "4")
    assert code == 0
    assert "no solution: keeping the size needs 2p = d(k-1) = 3, which is odd" in out
    code, out, _ = run(capsys, "padding", "--kernel", "4", "--json")
    data = json.loads(out)
    assert data["ok"] is False and data["solutions"] == [] and "odd" in data["reason"]


def test_padding_symbolic_kernel(capsys):
    code, out, _ = run(capsys, "padding", "--kernel", "k", "--stride", "2", "--transposed")
    assert code == 0
    assert "odd k: padding = (k-1)/2, output_padding = 1" in out
    assert "even k: padding = k/2 - 1, output_padding = 0" in out
    assert "any k: padding = floor((k-1)/2), output_padding = k mod 2" in out
    code, out, _ = run(capsys, "padding", "--kernel", "k")
    assert "even k: no solution" in out


@pytest.mark.parametrize("argv, needle", [
    (["--kernel", "4", "--stride", "2", "--transposed", "--scale", "3"], "argument --scale: must be 2 here"),
    (["--kernel", "4", "--stride", "2", "--scale", "1"], "argument --scale: must be 1/2 here"),
    (["--kernel", "4", "--stride", "2", "--scale", "half"], "argument --scale:"),
    (["--kernel", "0"], "argument --kernel:"),
    (["--kernel", "-3"], "argument --kernel:"),
    (["--kernel", "x"], "argument --kernel:"),
    (["--kernel", "3", "--stride", "0"], "argument --stride:"),
    (["--kernel", "3", "--dilation", "0"], "argument --dilation:"),
    (["--stride", "2"], "argument --kernel: needed with --stride"),
])
def test_padding_errors_exit_2_and_name_the_argument(capsys, argv, needle):
    code, out, err = run(capsys, "padding", *argv)
    assert code == 2 and out == ""
    assert err.startswith("archcount padding: error:")
    assert needle in err
