"""The window fits a 1280 x 800 screen, every side-panel control is reachable, the title names the app once.

Qt runs offscreen (the offscreen platform draws no window frame, so the limits leave
room for one: 1280 wide, 800 - 40 high). Each window gets a QSettings file in
tmp_path, so no stored geometry from the user's settings takes part.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install 'streamseg[gui]')")

from PyQt6.QtCore import QRect, QSettings, QStandardPaths  # noqa: E402
from PyQt6.QtWidgets import QApplication, QScrollArea, QToolButton, QWidget  # noqa: E402
from streamseg_app.config import ModelConfig  # noqa: E402
from streamseg_app.session import BackendCache, worker_threads  # noqa: E402
from streamseg_app.window import MainWindow, window_title  # noqa: E402

from streamseg.datasets.demo_export import write_clip  # noqa: E402

QStandardPaths.setTestModeEnabled(True)

DEMO = ModelConfig(name="demo", device="cpu")
#: The screen to fit, and what a window frame (title bar, borders, a desktop panel) may take of it.
SCREEN_W, SCREEN_H = 1280, 800
FRAME_H = 40
WAIT_MS = 120_000


@pytest.fixture
def make_window(qtbot, tmp_path: Path):  # noqa: ANN201
    """Build windows with settings in tmp_path (not shown); close them after the test."""
    windows: list[MainWindow] = []

    def make(**kwargs: object) -> MainWindow:
        settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
        kwargs.setdefault("model", DEMO)
        kwargs.setdefault("output_dir", tmp_path / "out")
        window = MainWindow(settings, **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
    qtbot.waitUntil(lambda: not worker_threads(), timeout=WAIT_MS)


def show(qtbot, window: MainWindow) -> None:
    window.show()
    qtbot.waitExposed(window)
    QApplication.processEvents()


def scroll_area_of(widget: QWidget) -> QScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    return parent


def window_rect(window: MainWindow, widget: QWidget, rect: QRect) -> QRect:
    """``rect`` (widget coordinates) in window coordinates."""
    return QRect(widget.mapTo(window, rect.topLeft()), rect.size())


def side_controls(window: MainWindow) -> dict[str, QWidget]:
    """Every control of the side panel's scroll area, by name."""
    c = window.controls
    widgets: dict[str, QWidget] = {
        "score slider": c.threshold_slider,
        "score box": c.threshold,
        "detect every": c.detect_every,
        "opacity slider": c.opacity,
        "class search": c.class_search,
        "class list": c.class_list,
        "all classes": c.all_classes,
        "no classes": c.no_classes,
        "backend box": c.backend,
        "model box": c.model,
        "device box": c.device,
        "weights field": c.weights,
    }
    widgets.update({f"{name} toggle": check for name, check in c.toggles.items()})
    browse = [b for b in c.findChildren(QToolButton) if b.text() == "…"]
    assert len(browse) == 1
    widgets["weights browse"] = browse[0]
    return widgets


def test_window_fits_1280x800(qtbot, make_window) -> None:
    window = make_window()
    hint = window.minimumSizeHint()
    assert hint.width() <= SCREEN_W and hint.height() <= SCREEN_H - FRAME_H, hint
    show(qtbot, window)
    size = window.frameGeometry().size()
    assert size.width() <= SCREEN_W and size.height() <= SCREEN_H - FRAME_H, size
    assert window.size().width() >= window.minimumSizeHint().width()


@pytest.mark.parametrize("size", [None, (SCREEN_W, SCREEN_H - FRAME_H), (1024, 600)], ids=str)
def test_side_panel_reachable(qtbot, make_window, size: tuple[int, int] | None) -> None:
    """At the default size (and at others a user may pick) every control can be scrolled to, whole."""
    window = make_window()
    if size is not None:
        window.resize(*size)
    show(qtbot, window)
    inside = window.rect()
    for name, widget in side_controls(window).items():
        scroll = scroll_area_of(widget)
        assert scroll is not None, name
        assert scroll.horizontalScrollBar().maximum() == 0, f"the side panel is cut at the right ({name})"
        scroll.ensureWidgetVisible(widget)
        QApplication.processEvents()
        assert widget.isVisible(), name
        visible = widget.visibleRegion()
        assert not visible.isEmpty(), name
        assert inside.contains(window_rect(window, widget, visible.boundingRect())), name
        # ensureWidgetVisible shows a line edit's cursor only: scroll its whole rectangle in, too.
        centre = widget.mapTo(scroll.widget(), widget.rect().center())
        scroll.ensureVisible(centre.x(), centre.y(), widget.width() // 2 + 1, widget.height() // 2 + 1)
        QApplication.processEvents()
        visible = widget.visibleRegion().boundingRect()
        if widget.height() <= scroll.viewport().height():
            assert visible == widget.rect(), f"{name} partly hidden: {visible} of {widget.rect()}"
        assert inside.contains(window_rect(window, widget, visible)), name
    # The track list (above the scroll area): every column, the Age column in full, and some rows.
    table = window.tracks.table
    header = table.horizontalHeader()
    assert table.isVisible() and not table.visibleRegion().isEmpty()
    assert table.horizontalScrollBar().maximum() == 0
    last = header.count() - 1
    assert header.model().headerData(last, header.orientation()).startswith("Age")
    left, width = header.sectionViewportPosition(last), header.sectionSize(last)
    assert left >= 0 and left + width <= header.viewport().width(), (left, width, header.viewport().width())
    assert width >= header.fontMetrics().horizontalAdvance("Age (s)")
    assert table.viewport().height() >= 4 * table.verticalHeader().defaultSectionSize()
    column = QRect(left, 0, width, header.height())
    assert inside.contains(window_rect(window, header.viewport(), column))


def displayed_title(window: MainWindow) -> str:
    """The title a window manager shows: Qt appends " — <display name>" unless the title ends with it."""
    title, name = window.windowTitle(), QApplication.applicationDisplayName()
    return title if not name or title.endswith(name) else f"{title} — {name}"


@pytest.fixture
def display_name(qapp):  # noqa: ANN001, ANN201
    """The display name streamseg_app.app.application() sets (Qt appends it to window titles)."""
    before = qapp.applicationDisplayName()
    qapp.setApplicationDisplayName("streamseg")
    yield
    qapp.setApplicationDisplayName(before)


def test_title_names_the_app_once(qtbot, make_window, tmp_path: Path, display_name: None) -> None:
    clip = write_clip(tmp_path / "clip", num_frames=6)["video"]
    window = make_window(backends=BackendCache())
    show(qtbot, window)
    assert displayed_title(window).count("streamseg") == 1, displayed_title(window)
    with qtbot.waitSignal(window.controller.sessionReady, timeout=WAIT_MS):
        window.open_source(str(clip), paused=True)
    title = displayed_title(window)
    assert title.count("streamseg") == 1, title
    assert clip.name in title


@pytest.mark.parametrize(
    ("uri", "title"),
    [
        (None, "streamseg"),
        ("/videos/street.mp4", "street.mp4 — streamseg"),
        ("rtsp://camera.local/stream1", "rtsp://camera.local/stream1 — streamseg"),
        ("cam:0", "cam:0 — streamseg"),
        ("/dev/video2", "/dev/video2 — streamseg"),
    ],
)
def test_window_title(uri: str | None, title: str) -> None:
    assert window_title(uri) == title


def test_window_title_never_shows_url_credentials() -> None:
    from streamseg_app.window import window_title

    title = window_title("rtsp://admin:hunter22pw@10.0.0.5/stream1")
    assert "hunter22pw" not in title and "admin" not in title and "10.0.0.5/stream1" in title
