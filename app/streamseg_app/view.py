"""The video view: the annotated frame scaled to the widget with its aspect ratio kept.

Painting is all the UI thread does with a frame: the BGRA buffer drawn by the worker
is wrapped as a QImage (no copy) and drawn into the letterboxed rectangle. The
selected track is highlighted on top (the rest of the frame dimmed, a frame around
its box), so a selection shows at once, also while paused.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRect, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from streamseg_app.convert import wrap_bgra
from streamseg_app.output import ViewFrame

__all__ = ["VideoView", "fit_rect"]

#: Colour of the selected track's frame (RGB).
HIGHLIGHT = QColor(255, 214, 10)
#: Opacity of the shade laid over everything but the selected track.
SHADE_ALPHA = 120


def fit_rect(image_w: int, image_h: int, area: QRect) -> QRect:
    """The largest rectangle of the image's aspect ratio inside ``area``, centred (letterbox).

    Args:
        image_w: image width in pixels (> 0).
        image_h: image height in pixels (> 0).
        area: the widget area.

    Returns:
        The target rectangle in widget pixels.
    """
    if image_w <= 0 or image_h <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRect()
    scale = min(area.width() / image_w, area.height() / image_h)
    w, h = max(1, round(image_w * scale)), max(1, round(image_h * scale))
    return QRect(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2, w, h)


class VideoView(QWidget):
    """Shows :class:`~streamseg_app.output.ViewFrame` images letterboxed, the selected track highlighted.

    Signals:
        trackClicked(int): a click on an instance's box: its track ID (-1 if untracked),
            or -2 for a click outside every box.
        doubleClicked(): a double click (the window toggles full screen).
    """

    trackClicked = pyqtSignal(int)
    doubleClicked = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent fills every pixel
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._frame: ViewFrame | None = None
        self._image: QImage | None = None
        self._selected = -1
        self.placeholder = "Open a video file, a camera or an RTSP URL"
        self.frames_painted = 0

    # -- state ----------------------------------------------------------------------
    @property
    def frame(self) -> ViewFrame | None:
        """The frame on screen, or None."""
        return self._frame

    def set_frame(self, frame: ViewFrame | None) -> None:
        """Show ``frame`` (wrapped, not copied) at the next paint."""
        self._frame = frame
        self._image = None if frame is None else wrap_bgra(frame.display)
        self.update()

    @property
    def selected_track(self) -> int:
        """The highlighted track ID, or -1."""
        return self._selected

    def set_selected_track(self, track_id: int) -> None:
        """Highlight ``track_id`` (-1: none)."""
        if track_id != self._selected:
            self._selected = track_id
            self.update()

    def image_rect(self) -> QRect:
        """Where the frame is drawn, in widget pixels (empty without a frame)."""
        if self._frame is None:
            return QRect()
        h, w = self._frame.display.shape[:2]
        return fit_rect(w, h, self.rect())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(960, 540)

    # -- painting -------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            if self._image is None or self._frame is None:
                painter.setPen(QColor(170, 170, 170))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
                return
            target = self.image_rect()
            h, w = self._frame.display.shape[:2]
            if target.width() != w or target.height() != h:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self._image)
            if self._selected >= 0:
                self._paint_highlight(painter, target)
            self.frames_painted += 1
        finally:
            painter.end()

    def _selected_box(self) -> np.ndarray | None:
        frame = self._frame
        if frame is None or self._selected < 0:
            return None
        hits = np.flatnonzero(frame.instances.track_ids == self._selected)
        return frame.instances.boxes[hits[0]] if hits.size else None

    def _paint_highlight(self, painter: QPainter, target: QRect) -> None:
        box = self._selected_box()
        if box is None or self._frame is None:
            return
        h, w = self._frame.display.shape[:2]
        sx, sy = target.width() / w, target.height() / h
        rect = QRectF(
            target.x() + float(box[0]) * sx,
            target.y() + float(box[1]) * sy,
            float(box[2] - box[0]) * sx,
            float(box[3] - box[1]) * sy,
        ).adjusted(-3, -3, 3, 3)
        shade = QPainterPath()
        shade.setFillRule(Qt.FillRule.OddEvenFill)
        shade.addRect(QRectF(target))
        shade.addRect(rect)
        painter.fillPath(shade, QColor(0, 0, 0, SHADE_ALPHA))
        painter.setPen(QPen(HIGHLIGHT, 3))
        painter.drawRect(rect)

    # -- mouse ----------------------------------------------------------------------
    def track_at(self, pos: QPointF) -> int:
        """The track ID of the front-most drawn instance whose box holds widget point ``pos``.

        Returns:
            The track ID, -1 for an untracked instance, -2 when no box holds the point.
        """
        frame = self._frame
        target = self.image_rect()
        if frame is None or target.isEmpty():
            return -2
        h, w = frame.display.shape[:2]
        x = (pos.x() - target.x()) * w / target.width()
        y = (pos.y() - target.y()) * h / target.height()
        boxes = frame.instances.boxes
        inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
        if not inside.any():
            return -2
        # The renderer draws high scores last (on top): pick the best-scoring box under the point.
        candidates = np.flatnonzero(inside)
        best = candidates[np.argmax(frame.instances.scores[candidates])]
        return int(frame.instances.track_ids[best])

    def mousePressEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt API
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            self.trackClicked.emit(self.track_at(event.position()))
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt API
        self.doubleClicked.emit()
        super().mouseDoubleClickEvent(event)
