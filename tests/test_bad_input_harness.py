"""The bad-input harness itself: it must be able to fail (a hang, a traceback, an unnamed argument)."""
from __future__ import annotations

import pytest

from badinput import ApiCase, CliCase, run_api_case, run_cli_case


def test_clean_error_passes(tmp_path):
    out = run_cli_case(CliCase("unknown-model", ["count", "no_such_model"], names=["no_such_model"]), tmp_path)
    assert out.status == 2


@pytest.mark.parametrize("case", [
    CliCase("wrong-name", ["count", "no_such_model"], names=["--kernel"]),
    CliCase("wrong-status", ["count", "no_such_model"], status=1),
    CliCase("writes-outside", ["count", "no_such_model"], setup=lambda t: None, files={"a.txt": "x"}),
], ids=str)
def test_harness_can_fail(case, tmp_path):
    if case.id == "writes-outside":  # the harness notices a changed file outside may_change
        from badinput import changed_paths, fingerprint
        (tmp_path / "a.txt").write_text("x")
        before = fingerprint(tmp_path)
        (tmp_path / "a.txt").write_text("y")
        assert changed_paths(before, fingerprint(tmp_path)) == ["a.txt"]
        return
    with pytest.raises(AssertionError):
        run_cli_case(case, tmp_path)


def test_api_case_hang_and_raw_error_fail():
    import time
    with pytest.raises(AssertionError, match="hang"):
        run_api_case(ApiCase("hang", lambda: time.sleep(5), timeout=0.2))
    with pytest.raises(AssertionError, match="raw exception"):
        run_api_case(ApiCase("raw", lambda: 1 / 0))
    with pytest.raises(AssertionError, match="accepted"):
        run_api_case(ApiCase("accepted", lambda: None))
