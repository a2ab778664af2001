"""The forked helper of the report: the same values as computing here, errors raised here, warnings
kept, no child left behind; and the report is the same with and without it."""
from __future__ import annotations

import os
import warnings

import pytest

from analysis.errors import ArchcountError
from reports.background import JOBS_ENV, background, can_fork

needs_fork = pytest.mark.skipif(not can_fork(), reason="forking needs Linux and two usable cores")


def _pid_and_value():
    return os.getpid(), sorted({i * i % 7 for i in range(100)})


@needs_fork
def test_value_comes_from_a_child_process():
    with background(_pid_and_value) as job:
        pid, value = job.result()
    assert job.forked and job.from_child
    assert pid != os.getpid()
    assert value == sorted({i * i % 7 for i in range(100)})


def test_without_fork_the_value_is_computed_here():
    with background(_pid_and_value, fork=False) as job:
        pid, _ = job.result()
    assert pid == os.getpid() and not job.forked


def _fails():
    raise ArchcountError("no such thing", argument="--models")


@pytest.mark.parametrize("fork", [True, False] if can_fork() else [False])
def test_an_error_is_raised_here_with_its_message(fork):
    with background(_fails, fork=fork) as job:
        with pytest.raises(ArchcountError, match="no such thing"):
            job.result()
    assert not job.from_child


def _warns():
    warnings.warn("the total is partial", UserWarning)
    return 3


@needs_fork
def test_warnings_of_the_child_are_raised_here():
    with background(_warns) as job:
        with pytest.warns(UserWarning, match="the total is partial"):
            assert job.result() == 3
    assert job.from_child


def _sleeps():
    import time
    time.sleep(60)


@needs_fork
def test_leaving_early_stops_the_child():
    with pytest.raises(RuntimeError):
        with background(_sleeps) as job:
            pid = job._pid
            raise RuntimeError("the parent's own part failed")
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)


def test_jobs_env_switches_it_off(monkeypatch):
    monkeypatch.setenv(JOBS_ENV, "1")
    assert not can_fork()


@needs_fork
def test_report_is_the_same_computed_in_one_process(monkeypatch, tmp_path):
    """The golden file is written by the forked path (CI has two cores); this is the other one."""
    from test_report import FIXED, GOLDEN

    from reports.report import collect_context, render_report
    monkeypatch.setenv(JOBS_ENV, "1")
    ctx = collect_context(tmp_path, tools=("fvcore",), provenance_overrides=FIXED)
    md, _ = render_report(ctx, tmp_path, ("md",))
    assert md.read_text() == GOLDEN.read_text()


@pytest.mark.parametrize("fork", [True, False] if can_fork() else [False])
def test_result_is_computed_once(fork):
    calls = []

    def fn():
        calls.append(1)
        return len(calls)
    with background(fn, fork=fork) as job:
        assert job.result() == job.result() == 1
    assert calls == ([] if fork else [1])  # a forked child appends in its own memory
