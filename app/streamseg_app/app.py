"""Start the desktop application: the QApplication, the window, and a clean shutdown.

``run_gui`` is what ``streamseg gui`` calls. After the window closes it waits for
the worker threads (so a recording running at that moment is finished and valid)
before returning the exit code.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QApplication

from streamseg_app.config import ModelConfig
from streamseg_app.settings import APPLICATION, ORGANIZATION, default_settings
from streamseg_app.window import MainWindow

__all__ = ["run_gui", "application"]

log = logging.getLogger("streamseg.app")

#: Seconds to wait after the window closed for the worker threads (a model call in
#: progress, a recording being finished).
SHUTDOWN_WAIT_S = 15.0


def application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (created once, with the organisation and application names QSettings uses)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("streamseg")
    return app  # type: ignore[return-value]


def run_gui(
    source: str | None = None,
    *,
    model: ModelConfig | None = None,
    score_thresh: float | None = None,
    detect_every: int | None = None,
    output_dir: str | Path | None = None,
    pace: bool | None = None,
    paused: bool = False,
    settings_file: str | Path | None = None,
    reset_settings: bool = False,
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 5.0,
) -> int:
    """Show the window and run the Qt event loop until it closes.

    Args:
        source: a file, URL or camera to open at start, or None.
        model: model settings (None: the stored ones).
        score_thresh: initial score threshold (None: stored).
        detect_every: initial K (None: stored).
        output_dir: folder for recordings and snapshots (None: stored, else ~/Videos/streamseg).
        pace: play files at their own frame rate (None: stored, default True).
        paused: open ``source`` paused on its first frame.
        settings_file: an INI file to keep the settings in instead of the user's store.
        reset_settings: start from the defaults (the stored settings are overwritten on exit).
        open_timeout_s: seconds to connect to a live source.
        read_timeout_s: seconds without data before a live stream counts as stalled.

    Returns:
        The exit code: 0, or 1 if worker threads were still running after the wait.
    """
    app = application()
    settings = (
        QSettings(str(settings_file), QSettings.Format.IniFormat) if settings_file else default_settings()
    )
    if reset_settings:
        settings.clear()
    window = MainWindow(
        settings,
        model=model,
        score_thresh=score_thresh,
        detect_every=detect_every,
        output_dir=output_dir,
        pace=pace,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
    )
    window.show()
    if source:
        window.open_source(source, paused=paused)
    code = app.exec()
    window.controller.shutdown()
    if not window.controller.wait(SHUTDOWN_WAIT_S):
        log.warning(
            "streamseg-app: worker threads still running %.0f s after the window closed", SHUTDOWN_WAIT_S
        )
        return 1
    return int(code)
