"""The source bar (open a file, pick a camera, type a URL, recent sources) and the transport bar.

Transport: play/pause, stop, frame step back and forward, a seek slider for files,
the frame position, record and snapshot. Both bars only emit signals; the window
decides what they do.
"""

from __future__ import annotations

import glob
import re

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QToolButton,
    QWidget,
)

__all__ = ["SourceBar", "TransportBar", "local_cameras", "VIDEO_FILTER"]

#: File dialog filter for videos.
VIDEO_FILTER = "Videos (*.mp4 *.mkv *.avi *.mov *.webm *.ts *.m4v *.mpg *.mpeg *.flv);;All files (*)"
#: Recent sources kept.
MAX_RECENT = 12


def local_cameras() -> list[str]:
    """V4L2 camera devices present, e.g. ``["/dev/video0", "/dev/video2"]`` (sorted by number)."""
    devices = glob.glob("/dev/video[0-9]*")
    return sorted(devices, key=lambda d: int(re.sub(r"\D", "", d) or 0))


class SourceBar(QWidget):
    """Open a file, pick a camera or type an RTSP / HTTP URL; the combo keeps the recent sources.

    Signals:
        openRequested(str): open this source (path, URL, ``cam:N`` or ``/dev/videoN``).
    """

    openRequested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.open_file = QPushButton(
            self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), "Open file…", self
        )
        self.open_file.setToolTip("Open a video file (Ctrl+O)")
        self.camera = QToolButton(self)
        self.camera.setText("Camera")
        self.camera.setToolTip("Pick a local camera")
        self.camera.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.camera_menu = QMenu(self.camera)
        self.camera.setMenu(self.camera_menu)
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self.source = QComboBox(self)
        self.source.setEditable(True)
        self.source.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.source.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.source.lineEdit().setPlaceholderText(
            "rtsp://host/stream, http(s)://…, a file path, cam:0 (recent sources ▾)"
        )
        self.source.setToolTip(
            "Type an RTSP / HTTP URL, a path or cam:N and press Enter; the list holds recent sources"
        )
        self.go = QPushButton("Open", self)
        layout.addWidget(self.open_file)
        layout.addWidget(self.camera)
        layout.addWidget(self.source, 1)
        layout.addWidget(self.go)
        self.open_file.clicked.connect(self.choose_file)
        self.go.clicked.connect(self._open_typed)
        self.source.lineEdit().returnPressed.connect(self._open_typed)
        self.source.activated.connect(lambda _index: self._open_typed())

    def set_recent(self, sources: list[str]) -> None:
        """Fill the drop-down with recent sources (newest first), keeping the typed text."""
        text = self.source.currentText()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItems(sources[:MAX_RECENT])
        self.source.setEditText(text)
        self.source.blockSignals(False)

    def set_current(self, uri: str) -> None:
        """Show ``uri`` as the current source text."""
        self.source.setEditText(uri)

    def choose_file(self) -> None:
        """Ask for a video file and open it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", VIDEO_FILTER)
        if path:
            self.source.setEditText(path)
            self.openRequested.emit(path)

    def choose_camera_index(self) -> None:
        """Ask for a camera index N and open ``cam:N``."""
        index, ok = QInputDialog.getInt(self, "Camera", "Camera index (/dev/videoN):", 0, 0, 63)
        if ok:
            self._open(f"cam:{index}")

    def _fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        cameras = local_cameras()
        for device in cameras:
            action = QAction(device, self.camera_menu)
            action.triggered.connect(lambda _checked=False, d=device: self._open(d))
            self.camera_menu.addAction(action)
        if not cameras:
            none = self.camera_menu.addAction("no camera found (/dev/video*)")
            none.setEnabled(False)
        self.camera_menu.addSeparator()
        other = self.camera_menu.addAction("Camera index…")
        other.triggered.connect(self.choose_camera_index)

    def _open(self, uri: str) -> None:
        self.source.setEditText(uri)
        self.openRequested.emit(uri)

    def _open_typed(self) -> None:
        text = self.source.currentText().strip()
        if text:
            self.openRequested.emit(text)


class TransportBar(QWidget):
    """Play/pause, stop, frame step, seek slider (files), position, record and snapshot.

    Signals:
        playPauseClicked(): toggle play / pause.
        stopClicked(): stop the stream.
        stepClicked(int): step one frame, -1 back or +1 forward.
        seekRequested(int): go to this frame index (slider released or clicked).
        recordClicked(): start or stop recording.
        snapshotClicked(): save the frame on screen as PNG.
    """

    playPauseClicked = pyqtSignal()
    stopClicked = pyqtSignal()
    stepClicked = pyqtSignal(int)
    seekRequested = pyqtSignal(int)
    recordClicked = pyqtSignal()
    snapshotClicked = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style = self.style()
        icon = style.standardIcon
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.step_back = self._button(
            icon(QStyle.StandardPixmap.SP_MediaSeekBackward), "Step back one frame (←)"
        )
        self.play = self._button(icon(QStyle.StandardPixmap.SP_MediaPlay), "Play / pause (Space)")
        self.stop = self._button(icon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.step_forward = self._button(
            icon(QStyle.StandardPixmap.SP_MediaSeekForward), "Step forward one frame (→)"
        )
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Seek (video files)")
        self.position = QLabel("–", self)
        self.position.setFixedWidth(self.position.fontMetrics().horizontalAdvance("000000 / 000000") + 8)
        self.position.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.record = QPushButton("● Record", self)
        self.record.setCheckable(True)
        self.record.setToolTip("Record the annotated video (MP4) and the results shown (JSONL) (R)")
        self.snapshot = QPushButton("Snapshot", self)
        self.snapshot.setToolTip("Save the frame on screen as PNG (S)")
        for w in (self.step_back, self.play, self.stop, self.step_forward):
            layout.addWidget(w)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.position)
        layout.addWidget(self.record)
        layout.addWidget(self.snapshot)
        self._playing = False
        self.play.clicked.connect(self.playPauseClicked)
        self.stop.clicked.connect(self.stopClicked)
        self.step_back.clicked.connect(lambda: self.stepClicked.emit(-1))
        self.step_forward.clicked.connect(lambda: self.stepClicked.emit(1))
        self.record.clicked.connect(self._record_clicked)
        self.snapshot.clicked.connect(self.snapshotClicked)
        self.slider.sliderReleased.connect(lambda: self.seekRequested.emit(self.slider.value()))
        self.slider.actionTriggered.connect(self._slider_action)
        self.set_seekable(None)

    def _button(self, icon: object, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(icon)  # type: ignore[arg-type]
        button.setToolTip(tip)
        button.setAutoRaise(True)
        return button

    def _record_clicked(self) -> None:
        # The window sets the checked state from the recording's real state.
        self.record.setChecked(not self.record.isChecked())
        self.recordClicked.emit()

    def _slider_action(self, action: int) -> None:
        # Page steps (a click on the groove) seek at once; drags seek on release.
        if action in (
            QSlider.SliderAction.SliderPageStepAdd.value,
            QSlider.SliderAction.SliderPageStepSub.value,
        ):
            self.seekRequested.emit(self.slider.sliderPosition())

    def set_playing(self, playing: bool) -> None:
        """Show the play or the pause icon."""
        self._playing = playing
        pixmap = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play.setIcon(self.style().standardIcon(pixmap))

    def set_seekable(self, num_frames: int | None) -> None:
        """Enable the slider and step back for a file of ``num_frames`` frames; None disables them."""
        seekable = bool(num_frames)
        self.slider.setEnabled(seekable)
        self.step_back.setEnabled(seekable)
        self.slider.setRange(0, max(0, (num_frames or 1) - 1))
        self.slider.setPageStep(max(1, (num_frames or 10) // 10))

    def set_position(self, index: int | None, num_frames: int | None) -> None:
        """Show the frame position (the slider does not move while the user drags it)."""
        if index is None:
            self.position.setText("–")
            return
        self.position.setText(f"{index + 1} / {num_frames}" if num_frames else f"frame {index + 1}")
        if num_frames and not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)

    def set_recording(self, recording: bool) -> None:
        """Show whether a recording runs."""
        self.record.setChecked(recording)
        self.record.setText("■ Stop recording" if recording else "● Record")
