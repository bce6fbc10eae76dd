"""The side panel's controls: what is drawn (acts on the next frame) and which model runs (restarts).

* Detections: score threshold (slider and spin box, 0-1), detect every K frames.
* Show: masks, outlines, boxes, labels, track IDs, trails, skeletons, mask opacity.
* Classes: a searchable, checkable list of the model's class names (the 80 COCO names
  for the COCO models), with All / None for the rows the search shows.
* Model: backend, model, device and weights file; changing one restarts the stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from streamseg.backends import backend_names
from streamseg.models.registry import model_names
from streamseg.render import RenderOptions
from streamseg_app.config import DEVICES, MODEL_SCORE_FLOOR, ModelConfig, display_categories

__all__ = ["ControlPanel", "TOGGLES"]

#: Render option toggled by each check box, with its label.
TOGGLES: tuple[tuple[str, str], ...] = (
    ("masks", "Masks"),
    ("outlines", "Outlines"),
    ("boxes", "Boxes"),
    ("labels", "Labels"),
    ("track_ids", "Track IDs"),
    ("trails", "Trails"),
    ("keypoints", "Skeletons"),
)
#: Columns of the check boxes (three rows of three: the panel stays short enough for 1280 x 800).
TOGGLE_COLUMNS = 3
#: Least height of the class list in pixels (it takes the panel's spare height).
CLASS_LIST_MIN_HEIGHT = 88


class ControlPanel(QWidget):
    """Display and model controls.

    Signals:
        optionsChanged(object): new :class:`~streamseg.render.RenderOptions` (threshold,
            classes, toggles, opacity); apply on the next frame.
        detectEveryChanged(int): run the model every K frames.
        modelChanged(object): a new :class:`~streamseg_app.config.ModelConfig`; restart.
    """

    optionsChanged = pyqtSignal(object)
    detectEveryChanged = pyqtSignal(int)
    modelChanged = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._categories: tuple[str, ...] = ()
        self._hidden: set[str] = set()  # class names unchecked (kept across models by name)
        self._model = ModelConfig()
        self._quiet = False  # set while the widgets are filled programmatically
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._detections_group())
        layout.addWidget(self._show_group())
        layout.addWidget(self._classes_group(), 1)
        layout.addWidget(self._model_group())

    # -- building -------------------------------------------------------------------
    def _detections_group(self) -> QGroupBox:
        box = QGroupBox("Detections", self)
        form = QFormLayout(box)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal, box)
        self.threshold_slider.setRange(0, 100)
        self.threshold = QDoubleSpinBox(box)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        tip = (
            "Show, list and record only instances with at least this score. Acts on the next frame; "
            f"the model keeps every detection above {MODEL_SCORE_FLOOR:g} for the tracker."
        )
        self.threshold.setToolTip(tip)
        self.threshold_slider.setToolTip(tip)
        row = QHBoxLayout()
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold)
        form.addRow("Score ≥", row)
        self.detect_every = QSpinBox(box)
        self.detect_every.setRange(1, 60)
        self.detect_every.setToolTip(
            "Run the model on every K-th frame; the tracker predicts the boxes in between (drawn dashed)"
        )
        form.addRow("Detect every", self.detect_every)
        self.threshold_slider.valueChanged.connect(lambda v: self.threshold.setValue(v / 100))
        self.threshold.valueChanged.connect(self._on_threshold)
        self.detect_every.valueChanged.connect(self._on_detect_every)
        return box

    def _show_group(self) -> QGroupBox:
        box = QGroupBox("Show", self)
        grid = QGridLayout(box)
        self.toggles: dict[str, QCheckBox] = {}
        for k, (name, label) in enumerate(TOGGLES):
            check = QCheckBox(label, box)
            check.setChecked(True)
            check.toggled.connect(self._emit_options)
            self.toggles[name] = check
            grid.addWidget(check, k // TOGGLE_COLUMNS, k % TOGGLE_COLUMNS)
        self.opacity = QSlider(Qt.Orientation.Horizontal, box)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(RenderOptions().mask_alpha * 100))
        self.opacity.setToolTip("Mask opacity")
        self.opacity.valueChanged.connect(self._emit_options)
        row = -(-len(TOGGLES) // TOGGLE_COLUMNS)
        grid.addWidget(QLabel("Mask opacity", box), row, 0)
        grid.addWidget(self.opacity, row, 1, 1, TOGGLE_COLUMNS - 1)
        return box

    def _classes_group(self) -> QGroupBox:
        box = QGroupBox("Classes", self)
        layout = QVBoxLayout(box)
        self.class_search = QLineEdit(box)
        self.class_search.setPlaceholderText("Search classes…")
        self.class_search.setClearButtonEnabled(True)
        self.class_list = QListWidget(box)
        self.class_list.setMinimumHeight(CLASS_LIST_MIN_HEIGHT)
        buttons = QHBoxLayout()
        self.all_classes = QPushButton("All", box)
        self.no_classes = QPushButton("None", box)
        buttons.addWidget(self.all_classes)
        buttons.addWidget(self.no_classes)
        buttons.addStretch(1)
        layout.addWidget(self.class_search)
        layout.addWidget(self.class_list, 1)
        layout.addLayout(buttons)
        self.class_search.textChanged.connect(self._filter_classes)
        self.class_list.itemChanged.connect(self._on_class_item)
        self.all_classes.clicked.connect(lambda: self._check_shown_classes(True))
        self.no_classes.clicked.connect(lambda: self._check_shown_classes(False))
        return box

    def _model_group(self) -> QGroupBox:
        box = QGroupBox("Model (changing restarts the stream)", self)
        form = QFormLayout(box)
        self.backend = QComboBox(box)
        self.backend.addItems([n for n in backend_names() if n != "replay"])  # replay needs a file
        self.model = QComboBox(box)
        self.model.addItems(list(model_names()))
        self.device = QComboBox(box)
        self.device.addItems(list(DEVICES))
        weights_row = QHBoxLayout()
        self.weights = QLineEdit(box)
        self.weights.setPlaceholderText("registry default")
        self.weights.setToolTip("A weights file, 'random', or empty for the registry's file")
        browse = QToolButton(box)
        browse.setText("…")
        browse.clicked.connect(self._browse_weights)
        weights_row.addWidget(self.weights, 1)
        weights_row.addWidget(browse)
        form.addRow("Backend", self.backend)
        form.addRow("Model", self.model)
        form.addRow("Device", self.device)
        form.addRow("Weights", weights_row)
        for combo in (self.backend, self.model, self.device):
            combo.activated.connect(self._emit_model)
        self.weights.editingFinished.connect(self._emit_model)
        return box

    # -- render options ---------------------------------------------------------------
    def render_options(self) -> RenderOptions:
        """The options the controls describe."""
        classes = None
        if self._hidden & set(self._categories):
            classes = frozenset(
                label for label, name in display_categories(self._categories) if name not in self._hidden
            )
        return RenderOptions(
            score_thresh=round(self.threshold.value(), 4),
            classes=classes,
            mask_alpha=self.opacity.value() / 100,
            **{name: check.isChecked() for name, check in self.toggles.items()},
        )

    def set_render_options(self, options: RenderOptions, hidden_classes: Iterable[str] = ()) -> None:
        """Show ``options`` in the widgets (no signal); ``hidden_classes`` are unchecked by name."""
        self._quiet = True
        try:
            self.threshold.setValue(options.score_thresh)
            self.threshold_slider.setValue(round(options.score_thresh * 100))
            self.opacity.setValue(round(options.mask_alpha * 100))
            for name, check in self.toggles.items():
                check.setChecked(bool(getattr(options, name)))
            self._hidden = set(hidden_classes)
            self._fill_classes()
        finally:
            self._quiet = False

    @property
    def hidden_classes(self) -> list[str]:
        """Names of the classes not shown (sorted)."""
        return sorted(self._hidden)

    def _emit_options(self, *args: object) -> None:
        if not self._quiet:
            self.optionsChanged.emit(self.render_options())

    def _on_threshold(self, value: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(value * 100))
        self.threshold_slider.blockSignals(False)
        self._emit_options()

    def _on_detect_every(self, value: int) -> None:
        if not self._quiet:
            self.detectEveryChanged.emit(int(value))

    # -- classes ------------------------------------------------------------------------
    def set_categories(self, categories: Sequence[str]) -> None:
        """List the classes of the model in use (label-indexed names, background first)."""
        if tuple(categories) == self._categories:
            return
        self._categories = tuple(categories)
        self._fill_classes()
        self._emit_options()  # the label indices of the shown classes differ between models

    def _fill_classes(self) -> None:
        self.class_list.blockSignals(True)
        try:
            self.class_list.clear()
            for label, name in display_categories(self._categories):
                item = QListWidgetItem(name, self.class_list)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if name in self._hidden else Qt.CheckState.Checked)
                item.setData(Qt.ItemDataRole.UserRole, label)
        finally:
            self.class_list.blockSignals(False)
        self._filter_classes(self.class_search.text())

    def _filter_classes(self, text: str) -> None:
        needle = text.strip().lower()
        for row in range(self.class_list.count()):
            item = self.class_list.item(row)
            item.setHidden(bool(needle) and needle not in item.text().lower())

    def _on_class_item(self, item: QListWidgetItem) -> None:
        if item.checkState() == Qt.CheckState.Checked:
            self._hidden.discard(item.text())
        else:
            self._hidden.add(item.text())
        self._emit_options()

    def _check_shown_classes(self, checked: bool) -> None:
        """Check (or uncheck) every class the search shows; one options change."""
        state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        self.class_list.blockSignals(True)
        try:
            for row in range(self.class_list.count()):
                item = self.class_list.item(row)
                if not item.isHidden():
                    item.setCheckState(state)
                    (self._hidden.discard if checked else self._hidden.add)(item.text())
        finally:
            self.class_list.blockSignals(False)
        self._emit_options()

    def set_class_checked(self, name: str, checked: bool) -> None:
        """Show or hide one class by name (as a click on its check box)."""
        items = self.class_list.findItems(name, Qt.MatchFlag.MatchExactly)
        if not items:
            raise KeyError(f"no class named {name!r} in {self._categories}")
        items[0].setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    # -- model --------------------------------------------------------------------------
    def model_config(self) -> ModelConfig:
        """The model settings the controls describe."""
        from streamseg.config import validated

        return validated(
            ModelConfig,
            {
                **self._model.model_dump(),
                "backend": self.backend.currentText(),
                "name": self.model.currentText(),
                "device": self.device.currentText(),
                "weights": self.weights.text().strip() or None,
            },
        )

    def set_model_config(self, config: ModelConfig) -> None:
        """Show ``config`` in the widgets (no signal); unknown names are added to the combos."""
        self._quiet = True
        try:
            self._model = config
            for combo, value in (
                (self.backend, config.backend),
                (self.model, config.name),
                (self.device, config.device),
            ):
                if combo.findText(value) < 0:
                    combo.addItem(value)
                combo.setCurrentText(value)
            self.weights.setText(config.weights or "")
        finally:
            self._quiet = False

    def set_detect_every(self, k: int) -> None:
        """Show K (no signal)."""
        self._quiet = True
        try:
            self.detect_every.setValue(int(k))
        finally:
            self._quiet = False

    def _emit_model(self, *args: object) -> None:
        if self._quiet:
            return
        config = self.model_config()
        if config != self._model:
            self._model = config
            self.modelChanged.emit(config)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "Weights (*.pth *.pt);;All files (*)")
        if path:
            self.weights.setText(path)
            self._emit_model()
