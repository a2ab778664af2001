"""Atomic file writing, shared by training, data caches and report rendering (torch-free).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.txt"
>>> write_atomic(p, "hi").read_text()
'hi'
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | os.PathLike[str], writer: Callable[[BinaryIO], Any]) -> Path:
    """Call ``writer(binary_file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A reader sees the old file or the complete new one, never a partial one.  If ``writer`` (or
    anything else) raises, the temporary file is removed and an existing ``path`` is left untouched,
    so a writer can validate what it wrote (a checksum, say) by raising before the rename.
    Parent directories are created; the file gets the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (``str`` as UTF-8, no newline translation) to ``path`` atomically; returns the path."""
    from .errors import ArchcountError
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArchcountError(f"write_atomic: expected bytes or str, got {type(data).__name__}", argument="data")
    return atomic_write(path, lambda fh: fh.write(data))
