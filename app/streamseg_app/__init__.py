"""streamseg_app: the PyQt6 desktop window of streamseg (``streamseg gui``).

Modules (PyQt6 is imported only by the modules marked Qt):

* :mod:`~streamseg_app.cli`: the ``gui`` subcommand (no Qt at import time).
* :mod:`~streamseg_app.config`: model settings (no Qt).
* :mod:`~streamseg_app.session`: a source, a backend and a pipeline run in worker threads (no Qt).
* :mod:`~streamseg_app.output`: the pipeline output that draws frames for the view and records (no Qt).
* :mod:`~streamseg_app.seekable`: a video file source that starts at any frame (no Qt).
* :mod:`~streamseg_app.bridge`: session reports to queued Qt signals (Qt).
* :mod:`~streamseg_app.controller`: one session at a time; play, pause, step, seek, record (Qt).
* :mod:`~streamseg_app.window`, :mod:`~streamseg_app.view`, :mod:`~streamseg_app.tracks`,
  :mod:`~streamseg_app.controls`, :mod:`~streamseg_app.source_bar`: the widgets (Qt).
* :mod:`~streamseg_app.settings`: what persists between sessions (QSettings).
* :mod:`~streamseg_app.app`: ``run_gui``, the entry point (Qt).
"""

from __future__ import annotations

__all__ = ["run_gui"]


def run_gui(*args: object, **kwargs: object) -> int:
    """Show the window and run until it closes; see :func:`streamseg_app.app.run_gui`."""
    from streamseg_app.app import run_gui as _run_gui

    return _run_gui(*args, **kwargs)  # type: ignore[arg-type]
