"""The heads-up display: text lines in a dark translucent box in the frame's top-left corner."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamseg.render.options import FONT as _FONT

__all__ = ["draw_hud", "hud_rect"]


def _hud_layout(size: tuple[int, int], lines: Sequence[str]) -> tuple[float, int, int, int, int]:
    """Font scale, thickness, line height, box width and box height (pixels) of the HUD."""
    h, w = size
    scale = max(0.4, min(h, w) / 1000)
    thickness = max(1, round(scale * 1.5))
    sizes = [cv2.getTextSize(line, _FONT, scale, thickness) for line in lines]
    line_h = max(th + base for (_, th), base in sizes) + 4
    box_w = min(w, max(tw for (tw, _), _ in sizes) + 12)
    box_h = min(h, line_h * len(lines) + 8)
    return scale, thickness, line_h, box_w, box_h


def hud_rect(image_size: tuple[int, int], lines: Sequence[str]) -> tuple[int, int, int, int] | None:
    """The rectangle :func:`draw_hud` darkens: ``(0, 0, x2, y2)`` half-open pixels, or None without lines.

    Args:
        image_size: (H, W) of the frame.
        lines: the HUD's text lines.
    """
    if not lines:
        return None
    _, _, _, box_w, box_h = _hud_layout((int(image_size[0]), int(image_size[1])), lines)
    return (0, 0, box_w, box_h)


def draw_hud(image: np.ndarray, lines: Sequence[str], *, inplace: bool = False) -> np.ndarray:
    """Draw text lines in a dark translucent box in the top-left corner.

    Args:
        image: (H, W, 3) uint8 RGB.
        lines: the text lines, top to bottom.
        inplace: draw on ``image`` itself instead of a copy (for callers that own the image).

    Returns:
        The image with the HUD (a new array unless ``inplace``).
    """
    out = image if inplace else image.copy()
    if not lines:
        return out
    scale, thickness, line_h, box_w, box_h = _hud_layout(out.shape[:2], lines)
    region = out[:box_h, :box_w]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %
    for k, line in enumerate(lines):
        y = 4 + line_h * (k + 1) - 4
        cv2.putText(out, line, (6, y), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
