"""Plain settings of the desktop application (no Qt): which model runs, and the classes a user can pick.

The model settings are the library's one typed :class:`streamseg.config.ModelConfig`
(validated by pydantic, the same as ``streamseg run``'s flags and the monitor's
``[model]`` table); two sessions with equal configs share one loaded backend
(:class:`~streamseg_app.session.BackendCache`). What is *drawn* is a
:class:`streamseg.render.RenderOptions`, changed per frame.
"""

from __future__ import annotations

from streamseg.config import DEVICES, MODEL_SCORE_FLOOR, ModelConfig

__all__ = ["DEVICES", "MODEL_SCORE_FLOOR", "ModelConfig", "display_categories"]


def display_categories(categories: list[str] | tuple[str, ...]) -> list[tuple[int, str]]:
    """The (label, name) pairs a user can choose from: every category but the background and ``N/A`` gaps.

    Args:
        categories: class names indexed by label (index 0 is the background), e.g. the
            91 COCO entries (80 names and 11 ``"N/A"`` gaps).

    Returns:
        ``[(label, name), ...]`` in label order (80 pairs for COCO).
    """
    return [
        (label, name)
        for label, name in enumerate(categories)
        if label > 0 and name not in ("N/A", "__background__", "background")
    ]
