"""Pure drawing functions: each returns a new image and never touches its inputs.

What is drawn per instance: a translucent mask with an outline, the box, a label
("person 0.92 #7": class, score, track ID), and for persons with keypoints the
COCO skeleton. A small HUD (heads-up display) in the top-left corner shows text
lines such as fps and frame latency.

Labels are placed (:func:`place_labels`) so that they stay inside the frame and keep
clear of the HUD and of each other where there is room: above the box's top-left
corner when that place is free, else inside the box at its top, else one of a few
other places at the box; the most confident instances choose first.

Colours: by track ID when the instance is tracked (stable across frames), else
by class, from a fixed palette. All colours are RGB, like the images.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from streamseg.models.coco import COCO_SKELETON
from streamseg.postprocess import paste_mask_in_box
from streamseg.types import Instances

__all__ = [
    "RenderOptions",
    "TrackTrails",
    "render",
    "visible_instances",
    "draw_hud",
    "hud_rect",
    "label_rects",
    "place_labels",
    "color_for",
    "PALETTE",
]

#: 20 distinct RGB colours (Tableau 20, reordered so neighbours differ strongly).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """What to draw and how.

    Attributes:
        masks: fill masks translucently.
        outlines: draw mask outlines.
        boxes: draw boxes.
        labels: draw "class score" labels.
        track_ids: append "#ID" to labels of tracked instances.
        keypoints: draw keypoints and the COCO skeleton.
        mask_alpha: mask opacity in [0, 1].
        mask_thresh: mask probability above which a pixel is inside (torchvision: 0.5).
        keypoint_thresh: keypoint score (heatmap logit) above which a keypoint is
            drawn; Detectron2's visualizer uses 0.05.
        line_width: box, outline and limb width in pixels; 0 picks one from the image size.
        score_thresh: draw only instances with a score at least this (the outputs that
            are not drawn, such as the JSONL, still carry every instance).
        classes: draw only instances whose label is in this set (label indices into the
            model's categories); None draws every class.
        trails: draw the track trails passed to :func:`render` (a UI toggle that keeps
            the trail history updating while hidden).
    """

    masks: bool = True
    outlines: bool = True
    boxes: bool = True
    labels: bool = True
    track_ids: bool = True
    keypoints: bool = True
    mask_alpha: float = 0.45
    mask_thresh: float = 0.5
    keypoint_thresh: float = 0.05
    line_width: int = 0
    score_thresh: float = 0.0
    classes: frozenset[int] | None = None
    trails: bool = True


def visible_instances(instances: Instances, options: RenderOptions) -> Instances:
    """The instances :func:`render` draws: score >= ``options.score_thresh`` and label in ``options.classes``.

    Args:
        instances: N instances.
        options: the thresholds and the class filter.

    Returns:
        The kept instances (a new Instances; ``instances`` itself when nothing is filtered).
    """
    keep = None
    if options.score_thresh > 0:
        keep = instances.scores >= options.score_thresh
    if options.classes is not None:
        in_classes = np.isin(instances.labels, np.fromiter(options.classes, np.int64, len(options.classes)))
        keep = in_classes if keep is None else keep & in_classes
    return instances if keep is None or keep.all() else instances[keep]


def color_for(label: int, track_id: int = -1) -> tuple[int, int, int]:
    """RGB colour of an instance: by track ID when tracked (``track_id >= 0``), else by class label."""
    key = int(track_id) * 7 + 3 if track_id >= 0 else int(label)
    return PALETTE[key % len(PALETTE)]


class TrackTrails:
    """Recent box centres of each track, for drawing trails.

    The renderer stays pure: the caller owns this history, updates it once per
    frame and passes it to :func:`render`.

    Args:
        length: centres kept per track (frames).
        max_idle: a track not seen for this many updates is forgotten.
    """

    def __init__(self, length: int = 20, max_idle: int = 30) -> None:
        self.length = length
        self.max_idle = max_idle
        self._points: dict[int, deque[tuple[float, float]]] = {}
        self._last_seen: dict[int, int] = {}
        self._updates = 0

    def update(self, instances: Instances) -> None:
        """Append the box centre (pixels) of every tracked instance of one frame."""
        self._updates += 1
        for box, tid in zip(instances.boxes, instances.track_ids):
            if tid < 0 or not np.isfinite(box).all():
                continue
            cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            self._points.setdefault(int(tid), deque(maxlen=self.length)).append((cx, cy))
            self._last_seen[int(tid)] = self._updates
        for tid in [t for t, seen in self._last_seen.items() if self._updates - seen > self.max_idle]:
            del self._points[tid], self._last_seen[tid]

    def points(self, track_id: int) -> list[tuple[float, float]]:
        """The centres of ``track_id``, oldest first (pixels)."""
        return list(self._points.get(int(track_id), ()))


def _line_width(image: np.ndarray, options: RenderOptions) -> int:
    if options.line_width > 0:
        return options.line_width
    return max(1, round(min(image.shape[:2]) / 360))


def render(
    image: np.ndarray,
    instances: Instances,
    *,
    categories: Sequence[str],
    options: RenderOptions | None = None,
    hud: Sequence[str] = (),
    trails: TrackTrails | None = None,
    predicted: bool = False,
) -> np.ndarray:
    """Draw instances (and an optional HUD) on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB; not modified.
        instances: instances in ``image`` pixels (``instances.image_size`` must be (H, W)).
        categories: class names indexed by label.
        options: what to draw; defaults to :class:`RenderOptions()`.
        hud: text lines for the top-left heads-up display (e.g. "12.5 fps").
        trails: recent centres per track; a polyline is drawn for each tracked instance.
        predicted: the instances are tracker predictions for a frame the model skipped:
            boxes are dashed and labels end in "(pred)".

    Returns:
        A new (H, W, 3) uint8 RGB image.

    Raises:
        ValueError: if the image is not (H, W, 3) uint8 or its size differs from ``instances.image_size``.
    """
    opts = options or RenderOptions()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if tuple(image.shape[:2]) != tuple(instances.image_size):
        raise ValueError(f"image size {image.shape[:2]} differs from instances.image_size {instances.image_size}")
    instances = visible_instances(instances, opts)
    out = image.copy()
    lw = _line_width(out, opts)
    h, w = out.shape[:2]
    # Draw low scores first so the most confident instances end on top.
    order = np.argsort(instances.scores, kind="stable")
    for i in order:
        color = color_for(int(instances.labels[i]), int(instances.track_ids[i]))
        box = instances.boxes[i]
        if instances.masks is not None and (opts.masks or opts.outlines):
            _draw_mask(out, instances.masks[i], box, color, opts, lw)
        if opts.boxes:
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            if predicted:
                _dashed_rectangle(out, (x1, y1), (x2, y2), color, lw)
            else:
                cv2.rectangle(out, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        if trails is not None and opts.trails and instances.track_ids[i] >= 0:
            pts = trails.points(int(instances.track_ids[i]))
            if len(pts) >= 2:
                poly = np.round(np.asarray(pts)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(out, [poly], False, color, lw, cv2.LINE_AA)
        if instances.keypoints is not None and opts.keypoints:
            _draw_skeleton(out, instances.keypoints[i], color, opts, lw)
    if opts.labels and len(instances):
        texts, fonts, rects = _label_layout(instances, categories, opts, (h, w), hud, predicted)
        for i in order:  # low scores first: where labels must overlap, the confident one is on top
            color = color_for(int(instances.labels[i]), int(instances.track_ids[i]))
            _draw_label(out, texts[i], rects[i], color, fonts)
    if hud:
        out = draw_hud(out, hud, inplace=True)
    return out


def _label_text(instances: Instances, i: int, categories: Sequence[str], opts: RenderOptions) -> str:
    label = int(instances.labels[i])
    name = categories[label] if 0 <= label < len(categories) else str(label)
    text = f"{name} {float(instances.scores[i]):.2f}"
    if opts.track_ids and instances.track_ids[i] >= 0:
        text += f" #{int(instances.track_ids[i])}"
    return text


def _dashed_rectangle(
    out: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color: tuple[int, int, int], lw: int, dash: int = 8
) -> None:
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, length, 2 * dash):
            t0, t1 = start / max(length, 1), min(start + dash, length) / max(length, 1)
            q0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            q1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(out, q0, q1, color, lw, cv2.LINE_AA)


@functools.lru_cache(maxsize=512)
def _blend_lut(color: tuple[int, int, int], alpha: float) -> np.ndarray:
    """(1, 256, 3) uint8 per-channel table of ``round(p * (1 - alpha) + color * alpha)``, p = 0..255.

    Computed in float32 (round half up), so ``cv2.LUT`` with it gives exactly the
    translucent fill's pixels at table-lookup cost.
    """
    p = np.arange(256, dtype=np.float32)[:, None]
    blended = p * np.float32(1.0 - alpha) + np.float32(alpha) * np.asarray(color, np.float32)
    return np.clip(blended + np.float32(0.5), 0, 255).astype(np.uint8)[None]


#: Outline simplification (pixels): the contour is drawn as a polygon at most this far from
#: the mask's boundary pixels (``cv2.approxPolyDP``): half the segments to draw, and frames within
#: 42 dB PSNR of the unsimplified outline (benchmarks/cpu_side.py's scene, 576p and 720p).
_OUTLINE_EPS = 0.5


def _draw_mask(
    out: np.ndarray, mask: np.ndarray, box: np.ndarray, color: tuple[int, int, int], opts: RenderOptions, lw: int
) -> None:
    """Fill and outline one mask on ``out``, working only on the box's crop.

    The fill is ``round(pixel * (1 - alpha) + color * alpha)`` (a per-channel table,
    :func:`_blend_lut`, copied onto the crop where the mask is inside); the outline is
    the mask's external contour, simplified to within ``_OUTLINE_EPS`` px, anti-aliased.
    """
    (y0, y1, x0, x1), probs = paste_mask_in_box(mask, box, out.shape[:2])
    if probs.size == 0:
        return
    inside = (probs > opts.mask_thresh).view(np.uint8)
    if not inside.any():
        return
    view = out[y0:y1, x0:x1]
    if opts.masks and opts.mask_alpha > 0:
        cv2.copyTo(cv2.LUT(view, _blend_lut(color, float(opts.mask_alpha))), inside, view)
    if opts.outlines:
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = [cv2.approxPolyDP(c, _OUTLINE_EPS, True) for c in contours]
        cv2.drawContours(view, contours, -1, color, lw, cv2.LINE_AA)


def _draw_skeleton(
    out: np.ndarray, kps: np.ndarray, color: tuple[int, int, int], opts: RenderOptions, lw: int
) -> None:
    if np.isnan(kps).all():
        return
    ok = np.isfinite(kps).all(axis=1) & (kps[:, 2] > opts.keypoint_thresh)
    pts = [(int(round(float(x))), int(round(float(y)))) for x, y, _ in kps]
    for a, b in COCO_SKELETON:
        if ok[a] and ok[b]:
            cv2.line(out, pts[a], pts[b], color, lw + 1, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(out, pts[k], lw + 2, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, pts[k], lw + 2, color, max(1, lw // 2), cv2.LINE_AA)


#: Label text padding on each side, pixels.
_LABEL_PAD = 2
#: Extra places tried inside a box below its top, in label heights (crowded scenes).
_LABEL_STEPS = 6
#: Overlap with the HUD costs this much more than overlap with another label (it hides the HUD).
_HUD_WEIGHT = 4


def _label_font(size: tuple[int, int]) -> tuple[float, int]:
    scale = max(0.4, min(size) / 900)
    return scale, max(1, round(scale * 1.5))


def _label_layout(
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
    return _label_layout(shown, categories, opts, tuple(instances.image_size), hud, predicted)[2]


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


def _draw_label(
    out: np.ndarray, text: str, rect: np.ndarray, color: tuple[int, int, int], font: tuple[float, int]
) -> None:
    scale, thickness = font
    x1, y1, x2, y2 = (int(v) for v in rect)
    cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    (_, th), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
    origin = (x1 + _LABEL_PAD, y1 + _LABEL_PAD + th)
    cv2.putText(out, text, origin, _FONT, scale, text_color, thickness, cv2.LINE_AA)


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
