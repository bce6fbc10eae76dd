"""A text file written in whole, flushed chunks: the shared core of the JSONL and MOT writers."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from streamseg.errors import SinkError

__all__ = ["FlushedTextFile"]


class FlushedTextFile:
    """A text file that is flushed after every chunk, so an interrupted run leaves whole lines.

    Args:
        path: output file (created or truncated; its folder must exist).
        what: what the file holds, for error messages ("results", "MOT results").
        encoding: text encoding.

    Raises:
        SinkError: the file cannot be created.
    """

    def __init__(self, path: str | Path, *, what: str, encoding: str = "utf-8") -> None:
        self.path = Path(path)
        self._what = what
        try:
            self._file = open(self.path, "w", encoding=encoding, newline="\n")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise self._error(e) from e

    def _error(self, e: OSError) -> SinkError:
        return SinkError(f"cannot write {self._what} {self.path}: {e.strerror or e}")

    def _check_open(self) -> None:
        if self._file.closed:
            raise SinkError(f"cannot write to {self.path}: the writer is closed")

    def _write_flushed(self, text: str) -> None:
        """Write ``text`` and flush it to the OS.

        Raises:
            SinkError: writing failed (e.g. disk full).
        """
        try:
            if text:
                self._file.write(text)
            self._file.flush()
        except OSError as e:
            raise self._error(e) from e

    def close(self) -> None:
        """Close the file (idempotent).

        Raises:
            SinkError: the final flush failed.
        """
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as e:
            raise self._error(e) from e

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._file.closed

    def __enter__(self):  # noqa: ANN204 - returns the subclass instance
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
