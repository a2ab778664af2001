"""Bad models and model arguments (issue 12's bad input, issue 13's contract): a user's file that is
missing, does not define NAME, raises on import, a forward that raises, a forward whose operations
depend on the input size, inputs that cannot be read.  Each gives one clear error naming the file,
model, layer or argument, never a traceback; valid but awkward models (data-dependent control
flow) are counted, and say how."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from analysis import H, W, count, receptive_field
from badinput import ApiCase, CliCase, run_api_case, run_cli_case

NET = """
import torch, torch.nn as nn, torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))

def make(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())

net = Net()
NUMBER = 5

class NeedsArgs(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)

class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.conv(x))      # 4 channels into a 5-feature linear layer

class SizeBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(3, 4, 5)

    def forward(self, x):
        if x.shape[-1] > 100:             # the operations depend on the input size
            return self.a(x)
        return self.b(x)
"""

FILES = {"net.py": NET, "broken.py": "import torch\nraise RuntimeError('no GPU here')\n",
         "syntax.py": "def f(:\n    pass\n", "pkgdir/__init__.py": ""}


def case(id: str, argv: list[str], *names: str, status: int = 2) -> CliCase:
    return CliCase(id, argv, names=names, status=status, files=FILES, timeout=30)


CLI_CASES = [
    case("no-such-file", ["count", "missing.py:Net"], "missing.py", "no such file"),
    case("name-missing", ["count", "net.py:Nope"], "net.py", "Nope", "defines"),
    case("name-not-a-model", ["count", "net.py:NUMBER"], "net.py:NUMBER", "not an nn.Module"),
    case("import-raises", ["count", "broken.py:Net"], "broken.py", "RuntimeError", "no GPU here"),
    case("syntax-error", ["count", "syntax.py:f"], "syntax.py", "syntax error"),
    case("directory-not-file", ["count", "pkgdir/:Net"], "pkgdir", "not a file"),
    case("no-such-module", ["count", "no_such_pkg.models:Net"], "no_such_pkg.models"),
    case("colon-without-name", ["count", "net.py:"], "net.py"),
    case("needs-arguments", ["count", "net.py:NeedsArgs", "--input", "3x8x8"], "depth"),
    case("forward-raises", ["count", "net.py:Raises", "--input", "3x8x8"], "fc", "net.py", "mat1 and mat2"),
    case("forward-raises-rf", ["rf", "net.py:Raises", "--input", "3x8x8"], "fc", "net.py"),
    case("forward-raises-verify", ["verify", "net.py:Raises", "--input", "3x8x8"], "Raises"),
    case("size-branch-symbolic", ["count", "net.py:SizeBranch", "--input", "3xHxW"], "W > 100", "net.py",
         status=0),
    case("model-twice", ["count", "unet", "--model", "unet"], "--model"),
    case("no-model", ["count"], "--model"),
    case("unknown-zoo", ["count", "resnet9000"], "resnet9000", "available"),
    case("input-unreadable", ["count", "net.py:Net", "--input", "3xAx?"], "--input"),
    case("input-zero", ["count", "net.py:Net", "--input", "3x0x8"], "--input", ">= 1"),
    case("input-huge", ["count", "net.py:Net", "--input", "3x1" + "0" * 30 + "x8"], "--input", "10^18"),
    case("input-and-size", ["count", "net.py:Net", "--input", "3x8x8", "--size", "8"], "--input"),
    case("hp-on-instance", ["count", "net.py:net", "--hp", "width=3"], "--hp"),
    case("wrong-channels", ["count", "net.py:Net", "--input", "5x8x8"], "conv", "channels"),
    case("too-small", ["count", "net.py:make", "--input", "3x2x2"], "0", "Kernel size"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=str)
def test_bad_models_on_the_command_line(case, tmp_path):
    run_cli_case(case, tmp_path)


def test_user_models_on_the_command_line(tmp_path, capsys):
    """The good paths through the same file: class, factory with --hp, instance, package:NAME."""
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    expected = sum(p.numel() for p in net.parameters()) + 8 * 2 + 2
    for argv in (["count", f"{tmp_path}/net.py:Net", "--input", "3x8x8", "--convention", "parameters"],
                 ["count", "--model", f"{tmp_path}/net.py:net", "--input", "3x16x16", "--convention", "parameters"]):
        out = run_cli_case(CliCase("ok", argv, status=0), tmp_path / "run")
        assert f"total weights: {expected}" in out.stdout
    out = run_cli_case(CliCase("factory", ["count", f"{tmp_path}/net.py:make", "--input", "3x10x10", "--hp",
                                           "width=5", "--convention", "parameters"], status=0), tmp_path / "run")
    assert f"total weights: {3 * 5 * 9 + 5}" in out.stdout
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        out = run_cli_case(CliCase("package", ["rf", "net:Net", "--input", "3x16x16"], status=0), tmp_path / "run")
        assert "conv" in out.stdout
    finally:
        sys.path.remove(str(tmp_path))


class _ValueBranch(nn.Module):
    """Data-dependent control flow: the forward reads a tensor's values."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.other = nn.Conv2d(1, 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e9:   # always true, but only a real tensor can tell
            return self.conv(x)
        return self.other(x)


def test_data_dependent_control_flow_is_recorded_on_real_tensors_and_said():
    model = _ValueBranch()
    t = count(model, input_shape=(1, 8, 8), convention="parameters")
    paths = [r.path for r in t.rows]
    assert "conv" in paths and "other" not in paths and paths[-1] == "(unused parameters)"
    assert t.row("conv").weights == 2 * 9 + 2 and t.total("weights") == sum(p.numel() for p in model.parameters())
    assert any("recorded on real CPU tensors" in a for a in t.assumptions), t.assumptions


def test_size_dependent_branches_become_stated_conditions():
    t = count(_SizeBranch(), input_shape=(3, H, W))
    assert any(a.startswith("W > 100 (the forward tests the input size at ") for a in t.assumptions), t.assumptions
    assert [r.path for r in t.rows][:1] == ["a"]


API_CASES = [
    ApiCase("count-not-a-model", lambda: count(object()), ["model"]),
    ApiCase("count-shape-text", lambda: count(nn.Conv2d(1, 1, 1), input_shape="3xQx4"), ["input"]),
    ApiCase("count-shape-negative", lambda: count(nn.Conv2d(1, 1, 1), input_shape=(1, -4, 4)), ["input_shape"]),
    ApiCase("count-shape-float", lambda: count(nn.Conv2d(1, 1, 1), input_shape=(1, 4.5, 4)), ["input_shape"]),
    ApiCase("count-both-inputs", lambda: count(nn.Conv2d(1, 1, 1), input_shape=(1, 4, 4), input_size=4),
            ["input_shape"]),
    ApiCase("count-wrong-channels", lambda: count(nn.Conv2d(3, 4, 3), input_shape=(2, 8, 8)), ["channels"]),
    ApiCase("count-cannot-infer", lambda: count(nn.Sequential(nn.ReLU())), ["input_shape", "channels"]),
    ApiCase("count-hparams-on-instance", lambda: count(nn.Conv2d(1, 1, 1), kernel=3), ["hyperparameters"]),
    ApiCase("rf-no-spatial-axes", lambda: receptive_field(nn.Linear(4, 2), input_shape=(4,)), ["spatial"]),
]


class _SizeBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(3, 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) if x.shape[-1] > 100 else self.b(x)


@pytest.mark.parametrize("case", API_CASES, ids=str)
def test_bad_models_in_python(case):
    run_api_case(case)
