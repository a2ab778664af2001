"""Table-driven harness for the bad-input suites (``tests/test_bad_input_*.py``).

Each suite lists :class:`CliCase` and :class:`ApiCase` rows and parametrises one test over them.
For every case the harness asserts what issue 13 asks of bad input:

- a clean exit: status 2 (usage or input error) or 1 (a wrong answer), never an escaped exception;
- no ``Traceback`` and no ``internal error`` on stderr;
- a message naming the argument, path or entry (``names``: substrings, case-insensitive);
- a time limit per case (``timeout`` seconds; an expired case fails as a hang);
- nothing outside the allowed folders changed: every file under the case folder is fingerprinted
  before and after, and only paths matching ``may_change`` (globs relative to it) may differ.

CLI cases run in-process through :func:`reports.cli.main` (fast: no interpreter start-up), with the
working directory set to the case folder and ``{tmp}`` in argv replaced by it. Cases that may
exhaust memory, or need a real process (signals), set ``isolate=True``: they run as
``python -m reports.cli`` in a subprocess under an address-space limit of ``memory_gib``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import resource
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]


class CaseTimeout(BaseException):
    """Raised inside an in-process case when its time limit expires."""


@dataclass(frozen=True)
class CliCase:
    """One bad command line. ``argv`` excludes the program name; ``{tmp}`` is the case folder."""

    id: str
    argv: Sequence[str]
    names: Sequence[str] = ()
    status: int = 2
    timeout: float = 15.0
    files: Mapping[str, bytes | str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    may_change: Sequence[str] = ()
    isolate: bool = False
    memory_gib: float = 6.0
    stdin: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:  # pytest ids
        return self.id


@dataclass(frozen=True)
class ApiCase:
    """One bad Python call: ``call()`` must raise :class:`analysis.errors.ArchcountError` naming ``names``."""

    id: str
    call: Callable[[], Any]
    names: Sequence[str] = ()
    timeout: float = 15.0

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float


def fingerprint(root: Path) -> dict[str, tuple[str, int, str]]:
    """Map every path below ``root`` to (kind, mode, content hash); links are not followed."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            try:
                st = p.lstat()
            except OSError:
                continue
            if p.is_symlink():
                out[rel] = ("link", st.st_mode, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode, "")
            elif p.is_file():
                h = hashlib.sha256()
                try:
                    with open(p, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                except OSError:
                    pass
                out[rel] = ("file", st.st_mode, h.hexdigest())
            else:
                out[rel] = ("other", st.st_mode, "")
    return out


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


@contextlib.contextmanager
def time_limit(seconds: float):
    def _expire(signum, frame):  # noqa: ARG001
        raise CaseTimeout(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _prepare(case: CliCase, tmp: Path) -> list[str]:
    for rel, content in case.files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if case.setup is not None:
        case.setup(tmp)
    return [a.replace("{tmp}", str(tmp)) for a in case.argv]


def _run_in_process(case: CliCase, argv: list[str], tmp: Path) -> Outcome:
    import time

    from reports.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    old_env = {k: os.environ.get(k) for k in case.env}
    old_stdin = sys.stdin
    start = time.perf_counter()
    status: int
    try:
        os.chdir(tmp)
        os.environ.update(case.env)
        if case.stdin is not None:
            sys.stdin = io.StringIO(case.stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(case.timeout):
            try:
                status = int(main(argv) or 0)
            except SystemExit as exc:  # argparse usage errors
                status = exc.code if isinstance(exc.code, int) else 2
    except CaseTimeout:
        raise AssertionError(f"{case.id}: hang: no answer within {case.timeout} s") from None
    except BaseException:  # an escaped exception is what a user sees as a traceback
        raise AssertionError(f"{case.id}: traceback escaped from archcount {' '.join(argv)}:\n"
                             f"{traceback.format_exc()}") from None
    finally:
        os.chdir(old_cwd)
        sys.stdin = old_stdin
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Outcome(status, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def _run_isolated(case: CliCase, argv: list[str], tmp: Path) -> Outcome:
    import time

    limit = int(case.memory_gib * (1 << 30))

    def _limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), **case.env}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "reports.cli", *argv], cwd=tmp, env=env,
                              input=case.stdin, capture_output=True, text=True, timeout=case.timeout,
                              preexec_fn=_limits)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{case.id}: hang: no answer within {case.timeout} s") from None
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def run_cli_case(case: CliCase, tmp: Path) -> Outcome:
    """Run one CLI case in ``tmp`` and assert everything the bad-input contract asks."""
    tmp.mkdir(parents=True, exist_ok=True)
    argv = _prepare(case, tmp)
    before = fingerprint(tmp)
    outcome = (_run_isolated if case.isolate else _run_in_process)(case, argv, tmp)
    where = f"{case.id}: archcount {' '.join(argv)}"
    assert "Traceback" not in outcome.stderr, f"{where}: traceback on stderr:\n{outcome.stderr}"
    assert "internal error" not in outcome.stderr.lower(), f"{where}: internal error:\n{outcome.stderr}"
    assert outcome.status == case.status, (f"{where}: exit status {outcome.status}, expected {case.status}\n"
                                           f"stdout: {outcome.stdout[-2000:]}\nstderr: {outcome.stderr[-2000:]}")
    text = (outcome.stderr + outcome.stdout).lower() if case.status in (0, 1) else outcome.stderr.lower()
    for name in case.names:
        assert name.lower() in text, f"{where}: message does not name {name!r}:\n{outcome.stderr}"
    changed = [p for p in changed_paths(before, fingerprint(tmp))
               if not any(fnmatch.fnmatch(p, pat) or p == pat.rstrip("/*") for pat in case.may_change)]
    assert not changed, f"{where}: changed outside the allowed folders: {changed}"
    return outcome


def run_api_case(case: ApiCase) -> str:
    """Call ``case.call`` and assert it raises ArchcountError naming ``case.names``; return the message."""
    from analysis.errors import ArchcountError

    try:
        with time_limit(case.timeout):
            case.call()
    except ArchcountError as exc:
        message = str(exc)
    except CaseTimeout:
        raise AssertionError(f"{case.id}: hang: no answer within {case.timeout} s") from None
    except BaseException:
        raise AssertionError(f"{case.id}: raised a raw exception:\n{traceback.format_exc()}") from None
    else:
        raise AssertionError(f"{case.id}: accepted the bad input without an error")
    for name in case.names:
        assert name.lower() in message.lower(), f"{case.id}: message does not name {name!r}: {message}"
    return message
