"""How a run executes: the device, the CPU threads (chosen from what is actually free, then measured),
the memory format, the memory allocator, and prompt interruption by SIGTERM or Ctrl-C.

None of this changes what a run computes except the thread count and the memory format (CPU
convolutions round differently); both are recorded in the run's config and kept on resume.

>>> select_device("cpu").type
'cpu'
>>> 1 <= auto_threads() <= cpu_count()
True
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from analysis.errors import ArchcountError, require_positive_int

#: Below this many cores busy with other work, the machine counts as idle and every core is used.
IDLE_BUSY_CPUS = 0.25
#: Seconds a signal may wait for the main thread before the process exits without it.
INTERRUPT_GRACE_S = 2.0


class TrainingInterrupted(KeyboardInterrupt):
    """Raised inside training when the process gets SIGTERM (SIGINT raises KeyboardInterrupt)."""


# ----------------------------------------------------------------------------- devices

def select_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is not available is an error.

    >>> select_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ArchcountError(f"must be a device name, got {device!r}", argument="device")
    spec = device.strip().lower()
    if spec in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ArchcountError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps",
                             argument="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchcountError("cuda is not available on this machine (use --device auto or cpu)", argument="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ArchcountError(f"there is no {dev} (this machine has {torch.cuda.device_count()} cuda devices)",
                             argument="device")
    if dev.type == "mps" and not mps_available():
        raise ArchcountError("mps is not available on this machine (use --device auto or cpu)", argument="device")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ArchcountError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps", argument="device")
    return dev


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def amp_dtype(amp: str | None, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` (``auto``: bf16 on CUDA when supported, else none).

    >>> amp_dtype("auto", torch.device("cpu")) is None, amp_dtype("bf16", torch.device("cpu"))
    (True, torch.bfloat16)
    """
    mode = (amp or "off").lower() if isinstance(amp, str) or amp is None else None
    if mode == "auto":
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if mode in ("off", "none", "no", "false", "fp32"):
        return None
    if mode in ("bf16", "bfloat16"):
        return torch.bfloat16
    raise ArchcountError(f"unknown mixed-precision mode {amp!r}; use auto, bf16 or off", argument="amp")


def channels_last_flag(flag: str | bool | None, dev: torch.device) -> bool:
    """``--channels-last``: ``auto`` is on for CPU and CUDA, off for MPS.

    Measured on CPU at batch 100, one thread: 1.3-1.5x faster steps for all three models on an
    AMD EPYC (Zen 5) and 1.29-1.45x on an Intel Xeon. It changes the rounding of convolutions, so
    it is one fixed rule per device type (two runs of one configuration agree) and recorded.

    >>> channels_last_flag("auto", torch.device("cpu")), channels_last_flag("off", torch.device("cpu"))
    (True, False)
    """
    if isinstance(flag, bool):
        return flag
    mode = (flag or "auto").lower() if isinstance(flag, str) or flag is None else None
    if mode == "auto":
        return dev.type in ("cpu", "cuda")
    if mode in ("on", "yes", "true", "1"):
        return True
    if mode in ("off", "no", "false", "0"):
        return False
    raise ArchcountError(f"unknown value {flag!r}; use auto, on or off", argument="channels_last")


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    return f"{cpu_model()} ({os.cpu_count()} logical CPUs)"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


# ----------------------------------------------------------------------------- threads

def parse_count(value: Any, argument: str, maximum: int) -> int | None:
    """``auto``/None -> None, else an integer from 1 to ``maximum`` (digits in a string are accepted).

    >>> parse_count("auto", "threads", 8), parse_count("3", "threads", 8), parse_count(2, "jobs", 8)
    (None, 3, 2)
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    value = require_positive_int(value, argument)
    if value > maximum:
        raise ArchcountError(f"must be at most {maximum}, got {value}", argument=argument)
    return value


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cpu_count() -> int:
    """The cores this process may use: its CPU affinity, lowered by a cgroup CPU quota (at least 1)."""
    n = len(_affinity())
    for path, period_path in (("/sys/fs/cgroup/cpu.max", None),
                              ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(path) as fh:
                fields = fh.read().split()
            if period_path:
                with open(period_path) as fh:
                    fields = [fields[0], fh.read().strip()]
            quota, period = fields[0], fields[1]
            if quota not in ("max", "-1") and int(period) > 0:
                n = min(n, max(1, math.floor(int(quota) / int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, n)


def _cpu_jiffies(cpus: Sequence[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat, or None where it cannot be read."""
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                parts = line.split()
                if parts and parts[0] in wanted:
                    vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
                    idle = vals[3] + vals[4]
                    total += sum(vals)
                    busy += sum(vals) - idle
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total > 0 else None


def busy_cpus(window: float = 0.3) -> float | None:
    """How many of this process's cores other processes keep busy, measured over ``window`` seconds.

    Read from /proc/stat while this process sleeps, minus this process's own CPU time, so that
    neither its earlier work (data loading) nor a finished run counts, as it would in a load average.
    None where /proc/stat is not available.
    """
    cpus = _affinity()
    a = _cpu_jiffies(cpus)
    if a is None:
        return None
    own0, t0 = time.process_time(), time.monotonic()
    time.sleep(window)
    b = _cpu_jiffies(cpus)
    own1, t1 = time.process_time(), time.monotonic()
    if b is None or b[1] <= a[1]:
        return None
    return others_busy(b[0] - a[0], b[1] - a[1], len(cpus), own1 - own0, t1 - t0)


def others_busy(busy_jiffies: int, total_jiffies: int, cpus: int, own_cpu_s: float, elapsed_s: float) -> float:
    """Cores busy with other work: the busy share of ``cpus`` cores minus this process's own use.

    >>> others_busy(60, 60, 2, 0.0, 0.3)   # both cores busy, none of it ours
    2.0
    >>> others_busy(60, 60, 2, 0.3, 0.3)   # one of the two was this process
    1.0
    >>> others_busy(3, 60, 2, 0.0, 0.3)
    0.1
    """
    share = busy_jiffies / total_jiffies
    others = share * cpus - own_cpu_s / max(elapsed_s, 1e-9)
    return round(max(0.0, min(float(cpus), others)), 3)


def auto_threads(busy: float | None = None) -> int:
    """Threads for one run from what is free now (no measurement): every core on an idle machine,
    else the cores left over by other processes (at least 1).

    >>> auto_threads(0.0) == cpu_count()
    True
    >>> auto_threads(float(cpu_count())) == 1
    True
    """
    cpus = cpu_count()
    if busy is None:
        busy = busy_cpus()
    if busy is None or busy < IDLE_BUSY_CPUS:
        return cpus
    return max(1, min(cpus, round(cpus - busy)))


def thread_candidates(cpus: int, busy: float) -> list[int]:
    """Thread counts worth measuring when ``busy`` cores are taken by others (1, and those that fit).

    >>> thread_candidates(2, 0.5), thread_candidates(2, 1.2), thread_candidates(16, 0.0)
    ([1, 2], [1], [1, 2, 4, 8, 16])
    """
    free = cpus - busy
    counts = {1} | {t for t in (2 ** i for i in range(1, 12)) if t <= cpus and t <= free + 0.5}
    if cpus <= free + 0.5:
        counts.add(cpus)
    counts.add(max(1, min(cpus, math.floor(free + 0.5))))
    return sorted(counts)


@dataclass
class Choice:
    """The thread count chosen for a run, and why (recorded in ``config.json``)."""

    threads: int
    channels_last: bool
    method: str
    busy_cpus: float | None = None
    measured_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "method": self.method,
                "busy_cpus": None if self.busy_cpus is None else round(self.busy_cpus, 2),
                "measured_ms_per_step": {k: round(v, 2) for k, v in self.measured_ms.items()}}


def choose(step: Callable[[int], float] | None, *, threads: int | None, dev: torch.device,
           max_probe_step_s: float = 2.0) -> Choice:
    """Pick the thread count: a given one is kept; ``None`` is chosen.

    Every core when the machine is idle (or for an accelerator); otherwise each count that fits
    what is free is measured: ``step(threads)`` times one training step on a copy of the model, the
    counts are measured in turn (A B A B) and the fastest minimum wins. Where one step takes longer
    than ``max_probe_step_s`` nothing is measured and the free cores are used.

    >>> choose(None, threads=3, dev=torch.device("cpu")).threads
    3
    """
    cpus = cpu_count()
    if threads is not None:
        return Choice(threads, True, "given")
    busy = busy_cpus() if dev.type == "cpu" else None
    if busy is None or busy < IDLE_BUSY_CPUS:
        return Choice(cpus, True, "idle machine: every core" if dev.type == "cpu" else "every core", busy)
    options = thread_candidates(cpus, busy)
    fallback = max(1, min(cpus, round(cpus - busy)))
    method = f"measured: {busy:.1f} of {cpus} cores busy with other work"
    if len(options) == 1 or step is None:
        return Choice(options[0] if len(options) == 1 else fallback, True,
                      method.replace("measured", "free cores"), busy)
    for t in options:  # warm-up (oneDNN primitives, allocations); a slow step stops the measurement
        if step(t) > max_probe_step_s:
            return Choice(fallback, True, method.replace("measured", "free cores") + "; steps too slow to time", busy)
    best: dict[int, float] = {}
    for _ in range(2):
        for t in options:
            best[t] = min(best.get(t, math.inf), step(t))
    winner = min(options, key=lambda t: best[t])
    return Choice(winner, True, method, busy, {f"{t} thread{'s' if t > 1 else ''}": 1e3 * best[t] for t in options})


# ----------------------------------------------------------------------------- the memory allocator

_MALLOC_DEPTH = 0
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def _glibc() -> Any:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def tuned_malloc() -> Iterator[str]:
    """Keep freed memory in the process while training (glibc): no ``mmap`` per large tensor, no trimming.

    Without it every activation tensor above glibc's mmap threshold is a fresh mapping whose pages
    fault in again at each step: on the 2-core VM 10-40% of a step was kernel time (batch 100-500).
    Numerics are unchanged. On exit glibc's defaults are restored and the memory is returned.
    Yields a description for the run's config.
    """
    global _MALLOC_DEPTH
    libc = _glibc()
    if libc is None:
        yield "system default"
        return
    if _MALLOC_DEPTH == 0:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TOP_PAD, 64 << 20)
    _MALLOC_DEPTH += 1
    try:
        yield "glibc without mmap for tensors, 1 GiB trim threshold"
    finally:
        _MALLOC_DEPTH -= 1
        if _MALLOC_DEPTH == 0:
            libc.mallopt(_M_MMAP_MAX, 65536)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
            libc.mallopt(_M_TOP_PAD, 128 * 1024)
            libc.malloc_trim(0)


# ----------------------------------------------------------------------------- interruption

@contextlib.contextmanager
def interruptible(status: Callable[[], str], log: Callable[[str], None],
                  grace: float = INTERRUPT_GRACE_S) -> Iterator[None]:
    """SIGTERM raises :class:`TrainingInterrupted` and SIGINT KeyboardInterrupt in the main thread, promptly.

    Python runs signal handlers only between bytecodes, so a single long operation (a convolution
    with a huge kernel) would delay them for minutes. A watcher thread learns of the signal at once
    (through the wakeup fd); if the main thread has not reacted within ``grace`` seconds it logs
    ``status()`` and ends the process (exit status 128 + signal). Every run file is written
    atomically, so the last checkpoint stays intact. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = threading.Event()
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        handled.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise TrainingInterrupted(f"received {signal.Signals(signum).name}")

    r, w = os.pipe()
    os.set_blocking(w, False)

    def watch() -> None:
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data or stop.is_set():
                return
            sigs = [s for s in data if s in (signal.SIGTERM, signal.SIGINT)]
            if not sigs or handled.wait(grace) or stop.is_set():
                continue
            name = signal.Signals(sigs[-1]).name
            try:
                log(f"{status()} ({name} arrived during a long operation; exiting without waiting for it)")
            except Exception:  # noqa: BLE001 - exiting matters more than the message
                pass
            os._exit(128 + sigs[-1])

    old_term = signal.signal(signal.SIGTERM, handler)
    old_int = signal.signal(signal.SIGINT, handler)
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="archcount-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        os.close(w)
        watcher.join(timeout=1.0)
        os.close(r)


class Log:
    """Progress lines on stderr (through tqdm, so that bars stay intact), or nothing when ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)
