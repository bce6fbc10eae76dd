"""What the window remembers between sessions, stored with QSettings.

Everything but the window geometry is one JSON document under the key
``gui/state`` (a :class:`GuiState`), so the stored types never depend on the
QSettings back end (INI files return strings for booleans and single-item
lists). Recent sources are stored without URL credentials.

Where: ``QSettings("streamseg", "streamseg-gui")``, i.e.
``~/.config/streamseg/streamseg-gui.conf`` on Linux, unless the window is given
another :class:`~PyQt6.QtCore.QSettings` (the tests and ``streamseg gui --settings FILE`` do).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QSettings, QStandardPaths

from streamseg.render import RenderOptions
from streamseg.sources import redact_url
from streamseg_app.config import ModelConfig

__all__ = [
    "GuiState",
    "load_state",
    "save_state",
    "default_settings",
    "default_output_dir",
    "ORGANIZATION",
    "APPLICATION",
]

log = logging.getLogger("streamseg.app")

ORGANIZATION = "streamseg"
APPLICATION = "streamseg-gui"
_KEY = "gui/state"
_VERSION = 1


def default_settings() -> QSettings:
    """The user's settings store (``~/.config/streamseg/streamseg-gui.conf`` on Linux)."""
    return QSettings(ORGANIZATION, APPLICATION)


def default_output_dir() -> Path:
    """Where recordings and snapshots go by default: ``<Videos>/streamseg`` (``~/Videos/streamseg``)."""
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return Path(movies or Path.home()) / "streamseg"


@dataclasses.dataclass
class GuiState:
    """Settings that persist between sessions.

    Attributes:
        render: what is drawn (score threshold, toggles, opacity; ``classes`` is not
            stored: see ``hidden_classes``).
        hidden_classes: names of the classes not shown (by name, so they carry over
            between models that share names).
        model: the model settings.
        detect_every: run the model every K frames.
        recent: recent sources, newest first, without credentials.
        output_dir: folder for recordings and snapshots.
        pace: play files at their own frame rate.
    """

    render: RenderOptions = dataclasses.field(default_factory=lambda: RenderOptions(score_thresh=0.5))
    hidden_classes: list[str] = dataclasses.field(default_factory=list)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    detect_every: int = 1
    recent: list[str] = dataclasses.field(default_factory=list)
    output_dir: str = ""
    pace: bool = True

    def add_recent(self, uri: str, limit: int = 12) -> None:
        """Put ``uri`` (credentials removed) first in :attr:`recent`."""
        uri = redact_url(uri)
        self.recent = [uri] + [r for r in self.recent if r != uri][: limit - 1]

    def to_json(self) -> str:
        """The JSON document stored."""
        render = dataclasses.asdict(self.render)
        render.pop("classes", None)
        return json.dumps(
            {
                "version": _VERSION,
                "render": render,
                "hidden_classes": sorted(self.hidden_classes),
                "model": self.model.model_dump(),
                "detect_every": self.detect_every,
                "recent": self.recent,
                "output_dir": self.output_dir,
                "pace": self.pace,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> GuiState:
        """Read a stored document; unknown keys are ignored and bad values fall back to defaults."""
        data: dict[str, Any] = json.loads(text)
        state = cls()
        state.render = _replace_known(state.render, data.get("render", {}))
        state.model = _known_model(state.model, data.get("model", {}))
        state.hidden_classes = [str(c) for c in data.get("hidden_classes", [])]
        state.detect_every = max(1, int(data.get("detect_every", 1)))
        state.recent = [str(r) for r in data.get("recent", [])]
        state.output_dir = str(data.get("output_dir", ""))
        state.pace = bool(data.get("pace", True))
        return state


def _known_model(config: ModelConfig, values: dict[str, Any]) -> ModelConfig:
    """``config`` with the stored fields it knows; a stored value that no longer validates keeps the default."""
    from streamseg.config import validated
    from streamseg.errors import ConfigError

    known = {k: v for k, v in values.items() if k in ModelConfig.model_fields}
    try:
        return validated(ModelConfig, {**config.model_dump(), **known})
    except ConfigError:
        return config


def _replace_known(obj: Any, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    known = {k: v for k, v in values.items() if k in fields and k != "classes"}
    try:
        return dataclasses.replace(obj, **known)
    except (TypeError, ValueError):
        return obj


def load_state(settings: QSettings) -> GuiState:
    """The stored :class:`GuiState`, or the defaults when nothing (or something unreadable) is stored."""
    text = settings.value(_KEY, "", type=str)
    if not text:
        return GuiState()
    try:
        return GuiState.from_json(text)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("streamseg-app: ignoring unreadable settings in %s (%s)", settings.fileName(), exc)
        return GuiState()


def save_state(settings: QSettings, state: GuiState) -> None:
    """Store ``state`` (written to disk by QSettings.sync)."""
    settings.setValue(_KEY, state.to_json())
    settings.sync()
