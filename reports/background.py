"""Compute part of a report in a forked process while the rest is computed here.

The report's sections are independent pure computations (sympy and the meta device, plus a few
real forwards for the verification); on a machine with two or more cores, one forked child computes
some of them while this process computes the others, which takes about a third off an analysis-only
report on two cores.  The child sets torch to one thread first, as torch's own DataLoader workers
do, so an OpenMP pool used here before the fork is never touched in the child.

Nothing is lost: warnings raised in the child are raised again here, and when forking is not
possible (not Linux, one core, ``ARCHCOUNT_REPORT_JOBS=1``), or the child fails in any way, the
work is done here instead, so that its errors are raised here with their own message.

>>> with background(lambda: sum(range(10))) as job:
...     here = 2 + 2
...     job.result(), here
(45, 4)
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import warnings
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

#: Set to 1 to compute everything in this process.
JOBS_ENV = "ARCHCOUNT_REPORT_JOBS"


def can_fork() -> bool:
    """Whether a forked helper can run beside this process: Linux, two or more usable cores, and not
    switched off with ``ARCHCOUNT_REPORT_JOBS=1``."""
    if os.environ.get(JOBS_ENV, "").strip() == "1" or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) >= 2


class Background(Generic[T]):
    """``fn()`` computed in a forked child (see the module docstring); :meth:`result` waits for it."""

    def __init__(self, fn: Callable[[], T], fork: bool | None = None) -> None:
        self._fn = fn
        self._pid: int | None = None
        self._fd: int | None = None
        #: whether a child was started, and whether the value came from it
        self.forked = self.from_child = False
        self._done, self._value = False, None
        if not (can_fork() if fork is None else fork):
            return
        read, write = os.pipe()
        with warnings.catch_warnings():  # Python 3.12+: "multi-threaded, use of fork() may lead to deadlocks"
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; coverage does not follow it
            os.close(read)
            self._child(write)
        os.close(write)
        self._pid, self._fd = pid, read
        self.forked = True

    def _child(self, fd: int) -> None:  # pragma: no cover - runs in the child
        status = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                value = self._fn()
            raised = [(w.category, str(w.message)) for w in caught]
            payload = pickle.dumps(("ok", value, raised), protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        except BaseException:  # noqa: BLE001 - recomputed in the parent, which raises it properly
            payload = pickle.dumps(("failed", None, []))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(status)

    def result(self) -> T:
        """The value: the child's, or computed here when there was no child or it failed (once:
        later calls return the same value)."""
        if self._done:
            return self._value
        self._value, self._done = self._collect(), True
        return self._value

    def _collect(self) -> T:
        if self._pid is not None:
            fd, pid = self._fd, self._pid
            self._pid = self._fd = None
            with os.fdopen(fd, "rb") as fh:  # type: ignore[arg-type]
                data = fh.read()
            os.waitpid(pid, 0)
            try:
                status, value, raised = pickle.loads(data)
            except Exception:  # noqa: BLE001 - the child died before it wrote: computed here
                status, value, raised = "failed", None, []
            if status == "ok":
                self.from_child = True
                for category, message in raised:
                    warnings.warn(message, category, stacklevel=2)
                return value
        return self._fn()

    def cancel(self) -> None:
        """Stop the child (after an error here) and reap it."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(self._pid, 0)
        except OSError:
            pass
        if self._fd is not None:
            os.close(self._fd)
        self._pid = self._fd = None

    def __enter__(self) -> "Background[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


def background(fn: Callable[[], T], fork: bool | None = None) -> Background[T]:
    """Start ``fn()`` beside this process (a context manager: leaving it stops an unfinished child)."""
    return Background(fn, fork)


__all__ = ["Background", "JOBS_ENV", "background", "can_fork"]
