"""An append-only JSON Lines log of events (rule hits, stream state changes, errors)."""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamseg.errors import SinkError

__all__ = ["EventLog", "utc_now"]


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. ``2026-12-01T21:05:00.123Z``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """A thread-safe JSONL file of events, one object per line, flushed per line.

    Each event gets a ``"time"`` key first (:func:`utc_now`), and is also passed to
    ``callback`` when one is given.

    Args:
        path: the file, opened for appending (its folder must exist).
        callback: called with every event dict after it is written.

    Raises:
        SinkError: the file cannot be opened.
    """

    def __init__(self, path: Path, callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = Path(path)
        self.callback = callback
        self._lock = threading.Lock()
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise SinkError(f"cannot write events {self.path}: {e.strerror or e}") from None

    def write(self, event: dict[str, Any]) -> None:
        """Append one event (after :meth:`close`, events are dropped)."""
        event = {"time": utc_now(), **event}
        line = json.dumps(event, separators=(",", ":"), default=str)
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        if self.callback is not None:
            self.callback(event)

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._file.close()
