"""A worker process of :func:`models.schedule.train_many`: ``python -m models._worker`` trains one run.

The task (a pickle from the parent process: config, data, palette, options) arrives on stdin. Events go
to stdout as JSON lines: ``{"event": "epoch", ...}`` after every epoch, then ``done`` (with the
summary), ``error`` or ``interrupted``. Anything else the process prints goes to stderr. If the
parent dies, the worker stops as on SIGTERM (its last checkpoint is kept).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, Mapping


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main() -> int:
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints of libraries must not mix with the events
    sys.stdout = sys.stderr
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    def emit(obj: Mapping[str, Any]) -> None:
        events.write(json.dumps(obj, default=_plain) + "\n")
        events.flush()

    from analysis.errors import ArchcountError
    task = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by our own parent process
    from models.training import train
    try:
        summary = train(task["config"], data=task["data"], resolved_palette=task["palette"],
                        on_epoch=lambda row: emit({"event": "epoch", **row}), **task["options"])
    except ArchcountError as exc:
        emit({"event": "error", "error": {"reason": exc.reason, "argument": exc.argument, "model": exc.model,
                                          "hint": exc.hint}})
        return 2
    except KeyboardInterrupt:
        emit({"event": "interrupted"})
        return 130
    emit({"event": "done", "summary": summary.to_dict()})
    return 0


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
