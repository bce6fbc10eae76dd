"""Instance labels ("person 0.92 #7"): their text, their placement (:func:`place_labels`) and drawing.

Labels are placed so that they stay inside the frame and keep clear of the HUD and of
each other where there is room: above the box's top-left corner when that place is
free, else inside the box at its top, else one of a few other places at the box; the
most confident instances choose first.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamseg.render.hud import hud_rect
from streamseg.render.options import FONT as _FONT
from streamseg.render.options import RenderOptions, visible_instances
from streamseg.types import Instances

__all__ = ["label_rects", "place_labels", "label_layout", "draw_label"]


def _label_text(instances: Instances, i: int, categories: Sequence[str], opts: RenderOptions) -> str:
    label = int(instances.labels[i])
    name = categories[label] if 0 <= label < len(categories) else str(label)
    text = f"{name} {float(instances.scores[i]):.2f}"
    if opts.track_ids and instances.track_ids[i] >= 0:
        text += f" #{int(instances.track_ids[i])}"
    return text


#: Label text padding on each side, pixels.
_LABEL_PAD = 2
#: Extra places tried inside a box below its top, in label heights (crowded scenes).
_LABEL_STEPS = 6
#: Overlap with the HUD costs this much more than overlap with another label (it hides the HUD).
_HUD_WEIGHT = 4


def _label_font(size: tuple[int, int]) -> tuple[float, int]:
    scale = max(0.4, min(size) / 900)
    return scale, max(1, round(scale * 1.5))


def label_layout(
    instances: Instances,
    categories: Sequence[str],
    opts: RenderOptions,
    size: tuple[int, int],
    hud: Sequence[str],
    predicted: bool,
) -> tuple[list[str], tuple[float, int], np.ndarray]:
    """Texts, font (scale, thickness) and placed rectangles of the labels of ``instances``."""
    scale, thickness = _label_font(size)
    suffix = " (pred)" if predicted else ""
    texts = [_label_text(instances, i, categories, opts) + suffix for i in range(len(instances))]
    sizes = []
    for text in texts:
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
        sizes.append((tw + 2 * _LABEL_PAD, th + base + 2 * _LABEL_PAD))
    hud_box = hud_rect(size, hud)
    avoid = () if hud_box is None else (hud_box,)
    rects = place_labels(sizes, instances.boxes, instances.scores, size, avoid=avoid)
    return texts, (scale, thickness), rects


def label_rects(
    instances: Instances,
    *,
    categories: Sequence[str],
    options: RenderOptions | None = None,
    hud: Sequence[str] = (),
    predicted: bool = False,
) -> np.ndarray:
    """The label rectangles :func:`render` draws for ``instances`` (same arguments).

    Args:
        instances: N instances (before the ``options`` filter, as passed to :func:`render`).
        categories: class names indexed by label.
        options: what is drawn; defaults to :class:`RenderOptions()`.
        hud: the HUD lines (labels keep clear of the HUD's rectangle).
        predicted: labels end in "(pred)".

    Returns:
        (K, 4) int64 half-open pixel rectangles ``x1, y1, x2, y2`` of the K visible
        instances (:func:`visible_instances`), in their order.
    """
    opts = options or RenderOptions()
    shown = visible_instances(instances, opts)
    if not len(shown):
        return np.zeros((0, 4), np.int64)
    return label_layout(shown, categories, opts, tuple(instances.image_size), hud, predicted)[2]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Area (pixels) of the intersection of two half-open rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def place_labels(
    sizes: Sequence[tuple[int, int]],
    boxes: np.ndarray,
    scores: np.ndarray,
    image_size: tuple[int, int],
    *,
    avoid: Sequence[tuple[int, int, int, int]] = (),
) -> np.ndarray:
    """Place one label rectangle per box: inside the frame, clear of ``avoid`` and of each other.

    Greedy, in decreasing score order (the most confident instance chooses first):
    each label takes the first free place of a short list of candidates, each shifted
    into the frame:

    1. above the box's top-left corner (the usual place);
    2. inside the box, at its top-left (the place above is taken or off the frame);
    3. above, then inside, the box's top-right corner;
    4. inside the box, one, two, ... label heights below its top (up to 6, crowds);
    5. below the box's bottom-left corner, then inside it at its bottom-left;
    6. next to each ``avoid`` rectangle: below it at the box's left, right of it at the box's top.

    When no candidate is free, the one with the least overlap wins (overlap with an
    ``avoid`` rectangle counts 4x). Places that would leave the frame at the top or
    bottom come last, shifted into it. Rectangles only, no pixels: at most about
    N x 16 x N rectangle tests.

    Args:
        sizes: N (width, height) of the labels, pixels.
        boxes: (N, 4) xyxy boxes, pixels (may reach outside the frame).
        scores: (N,) confidences; higher scores are placed first.
        image_size: (H, W) of the frame.
        avoid: rectangles ``x1, y1, x2, y2`` (half-open, pixels) to keep clear of (the HUD).

    Returns:
        (N, 4) int64 half-open rectangles ``x1, y1, x2, y2`` in the order of ``boxes``.
        A label wider (or taller) than the frame starts at its left (top) edge.
    """
    height, width = int(image_size[0]), int(image_size[1])
    n = len(sizes)
    out = np.zeros((n, 4), np.int64)
    if n == 0:
        return out
    box_px = np.nan_to_num(np.asarray(boxes, np.float64).reshape(-1, 4), nan=0.0)
    box_px = np.round(box_px).astype(np.int64).tolist()
    avoid = [tuple(int(v) for v in r) for r in avoid]
    blocked: list[tuple[int, ...]] = list(avoid)  # then every label placed so far
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable").tolist():
        w, h = int(sizes[i][0]), int(sizes[i][1])
        x1, y1, x2, y2 = box_px[i]
        x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))  # the box's part inside the frame
        y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
        spots = [(x1, y1 - h), (x1, y1), (x2 - w, y1 - h), (x2 - w, y1)]
        spots += [(x1, y1 + k * h) for k in range(1, _LABEL_STEPS + 1) if y1 + (k + 1) * h <= y2]
        spots += [(x1, y2), (x1, y2 - h)]
        for a in avoid:
            spots += [(x1, a[3]), (a[2], y1)]
        # A place that leaves the frame at the top or bottom is tried only after the others
        # (shifted into the frame it would cover another place, e.g. "above" becomes "inside").
        fits = [0 <= sy <= height - h for _, sy in spots]
        spots = [p for p, ok in zip(spots, fits) if ok] + [p for p, ok in zip(spots, fits) if not ok]
        rects = []
        best = None
        for sx, sy in spots:
            sx = max(0, min(sx, width - w))
            sy = max(0, min(sy, height - h))
            ex, ey = sx + w, sy + h
            for a in blocked:  # the avoid rectangles, then the labels placed so far
                if sx < a[2] and a[0] < ex and sy < a[3] and a[1] < ey:
                    break
            else:
                best = (sx, sy, ex, ey)
                break
            rects.append((sx, sy, ex, ey))
        if best is None:  # no free place: the least overlap (the HUD weighs more)
            labels = blocked[len(avoid) :]
            costs = [
                sum(_HUD_WEIGHT * _overlap(r, a) for a in avoid) + sum(_overlap(r, p) for p in labels)
                for r in rects
            ]
            best = rects[int(np.argmin(costs))]
        blocked.append(best)
        out[i] = best
    return out


def draw_label(
    out: np.ndarray, text: str, rect: np.ndarray, color: tuple[int, int, int], font: tuple[float, int]
) -> None:
    """Draw one label on ``out`` in place: a filled ``color`` rectangle with black or white text.

    Args:
        out: (H, W, 3) uint8 RGB, drawn on.
        text: the label's text.
        rect: (4,) half-open pixel rectangle ``x1, y1, x2, y2`` (from :func:`place_labels`).
        color: RGB fill; the text is black on light fills, white on dark ones.
        font: (scale, thickness) of ``cv2.FONT_HERSHEY_SIMPLEX``.
    """
    scale, thickness = font
    x1, y1, x2, y2 = (int(v) for v in rect)
    cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    (_, th), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
    origin = (x1 + _LABEL_PAD, y1 + _LABEL_PAD + th)
    cv2.putText(out, text, origin, _FONT, scale, text_color, thickness, cv2.LINE_AA)
