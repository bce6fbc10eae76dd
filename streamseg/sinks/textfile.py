"""A text file written in whole, flushed chunks: the shared core of the JSONL and MOT writers."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from streamseg.errors import SinkError

__all__ = ["FlushedTextFile"]


def _drop_partial_line(path: Path) -> None:
    """Cut ``path`` after its last newline (nothing when it is missing, empty or ends in one)."""
    try:
        f = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, 2)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end != size:
            f.truncate(end)


class FlushedTextFile:
    """A text file that is flushed after every chunk, so an interrupted run leaves whole lines.

    Args:
        path: output file (created or truncated; its folder must exist).
        what: what the file holds, for error messages ("results", "MOT results").
        encoding: text encoding.
        append: keep what the file holds and write after it (a stream resumed after its
            process was restarted). A last line cut by the crash (no final newline) is
            dropped first, so the file stays whole lines.

    Raises:
        SinkError: the file cannot be created.
    """

    def __init__(self, path: str | Path, *, what: str, encoding: str = "utf-8", append: bool = False) -> None:
        self.path = Path(path)
        self._what = what
        try:
            if append:
                _drop_partial_line(self.path)
            self._file = open(self.path, "a" if append else "w", encoding=encoding, newline="\n")  # noqa: SIM115
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
