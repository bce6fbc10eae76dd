"""The side panel's live list of what is on screen: ID, class, score and age per instance.

One row per drawn instance (the score threshold and class filter applied), sorted
by track ID, untracked instances last. Selecting a row highlights that track in the
view; the selection follows the track ID from frame to frame, not the row. The list
refreshes at most every :attr:`TrackPanel.min_interval_s` (20 times a second: faster
is unreadable and costs UI time at 60 fps); it always ends on the latest frame, and a
redraw of the paused frame updates it at once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

from PyQt6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    Qt,
    QTimer,
    pyqtSignal,
)
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from streamseg_app.output import ViewFrame

__all__ = ["TrackRow", "TrackTableModel", "TrackPanel", "rows_for"]

COLUMNS = ("ID", "Class", "Score", "Age (s)")


@dataclasses.dataclass(frozen=True)
class TrackRow:
    """One row of the list.

    Attributes:
        track_id: the track ID, -1 for an untracked instance.
        label: class label.
        name: class name.
        score: detection score in [0, 1].
        age_s: seconds since the track was first seen (NaN if untracked).
    """

    track_id: int
    label: int
    name: str
    score: float
    age_s: float


def rows_for(frame: ViewFrame, categories: Sequence[str]) -> list[TrackRow]:
    """The rows for one drawn frame: tracked instances by ID, then untracked ones by score (highest first)."""
    inst = frame.instances
    rows = []
    for i in range(len(inst)):
        label = int(inst.labels[i])
        name = categories[label] if 0 <= label < len(categories) else str(label)
        rows.append(
            TrackRow(int(inst.track_ids[i]), label, name, float(inst.scores[i]), float(frame.track_age_s[i]))
        )
    return sorted(rows, key=lambda r: (r.track_id < 0, r.track_id if r.track_id >= 0 else -r.score))


class TrackTableModel(QAbstractTableModel):
    """Table model of :class:`TrackRow`; unchanged row IDs update in place (no reset, no lost selection)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[TrackRow] = []

    @property
    def rows(self) -> list[TrackRow]:
        """The rows shown, in order."""
        return list(self._rows)

    def set_rows(self, rows: list[TrackRow]) -> bool:
        """Show ``rows``; returns True when the row set changed (the model was reset)."""
        same_ids = [r.track_id for r in rows] == [r.track_id for r in self._rows] and all(
            r.track_id >= 0 for r in rows
        )
        if same_ids:
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 1), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return False
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()
        return True

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return str(row.track_id) if row.track_id >= 0 else "–"
            if col == 1:
                return row.name
            if col == 2:
                return f"{row.score:.2f}"
            return "" if math.isnan(row.age_s) else f"{row.age_s:.1f}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row.track_id
        return None

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


class TrackPanel(QWidget):
    """The list of instances on screen, with single selection by track.

    Signals:
        trackSelected(int): the user selected a track (its ID) or cleared the selection (-1).
    """

    trackSelected = pyqtSignal(int)
    #: Seconds between two refreshes of the list while frames stream in.
    min_interval_s = 0.05

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pending: ViewFrame | None = None
        self._last_refresh = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._refresh)
        self.model = TrackTableModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        # Fixed column widths: ResizeToContents would measure every cell on every frame.
        header = self.table.horizontalHeader()
        metrics = self.table.fontMetrics()
        for column, sample in ((0, " 00000 "), (2, " Score "), (3, " Age (s) ")):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 12)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel("no frame yet", self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self._selected = -1
        self._categories: Sequence[str] = ()
        self.table.selectionModel().selectionChanged.connect(self._on_selection)

    def set_categories(self, categories: Sequence[str]) -> None:
        """Class names of the model in use, indexed by label."""
        self._categories = tuple(categories)

    @property
    def selected_track(self) -> int:
        """The selected track ID, or -1."""
        return self._selected

    def show_frame(self, frame: ViewFrame, *, now: bool = False) -> None:
        """List the instances drawn in ``frame``, keeping the selected track selected.

        Args:
            frame: the frame on screen.
            now: refresh at once; else at most every :attr:`min_interval_s` (the latest frame wins).
        """
        self._pending = frame
        wait_s = self.min_interval_s - (time.monotonic() - self._last_refresh)
        if now or frame.redraw or wait_s <= 0:
            self._timer.stop()
            self._refresh()
        elif not self._timer.isActive():
            self._timer.start(max(1, round(wait_s * 1000)))

    def _refresh(self) -> None:
        frame, self._pending = self._pending, None
        if frame is None:
            return
        self._last_refresh = time.monotonic()
        rows = rows_for(frame, self._categories)
        reset = self.model.set_rows(rows)
        tracked = sum(r.track_id >= 0 for r in rows)
        self.summary.setText(f"{len(rows)} shown, {tracked} tracked")  # changes rarely: no relayout per frame
        if reset:
            self._restore_selection()

    def select_track(self, track_id: int) -> None:
        """Select the row of ``track_id`` (-1 clears); emits :attr:`trackSelected`."""
        self._selected = track_id
        self._restore_selection()
        self.trackSelected.emit(track_id)

    def _restore_selection(self) -> None:
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        try:
            selection.clearSelection()
            for row, item in enumerate(self.model.rows):
                if self._selected >= 0 and item.track_id == self._selected:
                    flags = (
                        QItemSelectionModel.SelectionFlag.ClearAndSelect
                        | QItemSelectionModel.SelectionFlag.Rows
                    )
                    selection.select(self.model.index(row, 0), flags)
                    break
        finally:
            selection.blockSignals(False)
        self.table.viewport().update()

    def _on_selection(self, *args: object) -> None:
        rows = self.table.selectionModel().selectedRows()
        track_id = int(self.model.data(rows[0], Qt.ItemDataRole.UserRole)) if rows else -1
        if track_id != self._selected:
            self._selected = track_id
            self.trackSelected.emit(track_id)
