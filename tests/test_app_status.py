"""The window's status bar: frame age for live sources only (issue 13, item 6).

A file session decodes ahead (and is paced to the file's rate), so now - t_capture
counts the queue, not the work: for files the field shows the frame's render time.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from types import SimpleNamespace

import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install 'streamseg[gui]')")

from PyQt6.QtWidgets import QMainWindow  # noqa: E402
from streamseg_app.window import StatusPanel  # noqa: E402


def view_frame(*, live: bool, age_s: float) -> SimpleNamespace:
    """The fields of a ViewFrame that the status bar reads."""
    frame = SimpleNamespace(t_capture=time.monotonic() - age_s)
    result = SimpleNamespace(frame=frame, timings_ms={"model": 140.0, "render": 6.0})
    return SimpleNamespace(result=result, redraw=False, dropped=0, live=live, render_ms=7.0)


def test_status_bar_shows_frame_age_for_live_sources_only(qtbot) -> None:  # noqa: ANN001
    window = QMainWindow()
    qtbot.addWidget(window)
    panel = StatusPanel(window)
    panel.frame(view_frame(live=False, age_s=2.5), 0, force=True)
    assert "age" not in panel.age.text() and "2500" not in panel.age.text()
    assert panel.age.text() == "render 7 ms" and "age" not in panel.age.toolTip().split(";")[0]
    assert panel.model.text() == "model 140 ms"
    panel.frame(view_frame(live=True, age_s=0.4), 0, force=True)
    assert panel.age.text().startswith("age ") and 390 <= int(panel.age.text().split()[1]) < 1000
    assert "capture" in panel.age.toolTip()
