"""Qt signals for a session's reports: the only way worker threads reach the window.

A :class:`SessionBridge` lives in the UI thread. The session calls its plain-Python
callbacks from worker threads; each callback emits a signal, which Qt queues to
the UI thread. Frames go through a one-slot mailbox: the worker replaces the frame
waiting there (newest wins, the replaced one is counted in
:attr:`SessionBridge.ui_dropped`) and signals only when the slot was empty, so a
slow UI never builds up a backlog of frames (the live drop-oldest policy, up to the
screen).
"""

from __future__ import annotations

import contextlib
import threading

from PyQt6.QtCore import QObject, pyqtSignal

from streamseg_app.output import RecordingEvent, ViewFrame
from streamseg_app.session import SessionCallbacks

__all__ = ["SessionBridge"]


class SessionBridge(QObject):
    """Turns one session's callbacks into queued Qt signals (see the module docstring).

    Signals:
        frameReady(): a frame waits in the mailbox; take it with :meth:`take_frame`.
        stateChanged(str, str): ``(state, detail)``.
        ready(object): the :class:`~streamseg_app.session.SessionInfo`.
        errorRaised(str): the one-line error message.
        recording(object): a :class:`~streamseg_app.output.RecordingEvent`.
        finished(str): the session ended, with its final state.

    Attributes:
        ui_dropped: frames replaced in the mailbox before the UI took them.
    """

    frameReady = pyqtSignal()
    stateChanged = pyqtSignal(str, str)
    ready = pyqtSignal(object)
    errorRaised = pyqtSignal(str)
    recording = pyqtSignal(object)
    finished = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: ViewFrame | None = None
        self._detached = False
        self.ui_dropped = 0

    def callbacks(self) -> SessionCallbacks:
        """The callbacks to give the session."""
        return SessionCallbacks(
            frame=self._post_frame,
            state=lambda state, detail: self._emit(self.stateChanged, state, detail),
            ready=lambda info: self._emit(self.ready, info),
            error=lambda message: self._emit(self.errorRaised, message),
            recording=self._emit_recording,
            finished=lambda state: self._emit(self.finished, state),
        )

    def take_frame(self) -> ViewFrame | None:
        """The newest frame not taken yet, or None (UI thread)."""
        with self._lock:
            frame, self._pending = self._pending, None
        return frame

    def detach(self) -> None:
        """Stop delivering this session's frames, states and errors (its recording events still come)."""
        with self._lock:
            self._detached = True
            self._pending = None
        for signal in (self.frameReady, self.stateChanged, self.ready, self.errorRaised, self.finished):
            with contextlib.suppress(TypeError):  # nothing connected
                signal.disconnect()

    # -- worker threads --------------------------------------------------------------
    def _emit(self, signal: object, *args: object) -> None:
        with self._lock:
            if self._detached:
                return
        signal.emit(*args)  # type: ignore[attr-defined]

    def _post_frame(self, frame: ViewFrame) -> None:
        with self._lock:
            if self._detached:
                return
            replaced = self._pending is not None
            if replaced and not frame.redraw:
                self.ui_dropped += 1
            self._pending = frame
        if not replaced:
            self.frameReady.emit()

    def _emit_recording(self, event: RecordingEvent) -> None:
        self.recording.emit(event)
