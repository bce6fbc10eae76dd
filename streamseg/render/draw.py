"""The drawing itself: :func:`render` puts masks, outlines, boxes, trails, skeletons, labels and the HUD on a frame.

Every instance is drawn on its box's crop of the frame, never through full-frame
float images: the mask is pasted into the crop (torchvision's pasting), filled through
a per-channel blend table and outlined; boxes, limbs and text are OpenCV primitives.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from streamseg.masks import mask_crops
from streamseg.models.coco import COCO_SKELETON
from streamseg.render.hud import draw_hud
from streamseg.render.labels import draw_label, label_layout
from streamseg.render.options import RenderOptions, color_for, visible_instances
from streamseg.types import Instances

__all__ = ["TrackTrails", "render"]


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
    crops = None
    if instances.masks is not None and (opts.masks or opts.outlines):
        crops = mask_crops(instances, opts.mask_thresh)  # pasted once per frame, shared with the JSONL
    skeletons = _skeleton_points(instances.keypoints, opts) if instances.keypoints is not None and opts.keypoints else None
    boxes = np.round(np.nan_to_num(instances.boxes)).astype(np.int64).tolist()  # round half to even, as round()
    # Draw low scores first so the most confident instances end on top.
    order = np.argsort(instances.scores, kind="stable")
    for i in order.tolist():
        color = color_for(int(instances.labels[i]), int(instances.track_ids[i]))
        if crops is not None:
            _draw_mask(out, *crops[i], color, opts, lw)
        if opts.boxes:
            x1, y1, x2, y2 = boxes[i]
            if predicted:
                _dashed_rectangle(out, (x1, y1), (x2, y2), color, lw)
            else:
                cv2.rectangle(out, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        if trails is not None and opts.trails and instances.track_ids[i] >= 0:
            pts = trails.points(int(instances.track_ids[i]))
            if len(pts) >= 2:
                poly = np.round(np.asarray(pts)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(out, [poly], False, color, lw, cv2.LINE_AA)
        if skeletons is not None and skeletons[1][i].any():
            _draw_skeleton(out, skeletons[0][i], skeletons[1][i], color, lw)
    if opts.labels and len(instances):
        texts, fonts, rects = label_layout(instances, categories, opts, (h, w), hud, predicted)
        for i in order:  # low scores first: where labels must overlap, the confident one is on top
            color = color_for(int(instances.labels[i]), int(instances.track_ids[i]))
            draw_label(out, texts[i], rects[i], color, fonts)
    if hud:
        out = draw_hud(out, hud, inplace=True)
    return out


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
    out: np.ndarray,
    region: tuple[int, int, int, int],
    inside: np.ndarray,
    color: tuple[int, int, int],
    opts: RenderOptions,
    lw: int,
) -> None:
    """Fill and outline one mask on ``out``, working only on its box's crop.

    Args:
        region: ``(y0, y1, x0, x1)`` of the crop in ``out`` (:func:`~streamseg.masks.mask_crops`).
        inside: the crop's uint8 mask (1 inside).

    The fill is ``round(pixel * (1 - alpha) + color * alpha)`` (a per-channel table,
    :func:`_blend_lut`, copied onto the crop where the mask is inside); the outline is
    the mask's external contour, simplified to within ``_OUTLINE_EPS`` px, anti-aliased.
    """
    y0, y1, x0, x1 = region
    if inside.size == 0 or not inside.any():
        return
    view = out[y0:y1, x0:x1]
    if opts.masks and opts.mask_alpha > 0:
        cv2.copyTo(cv2.LUT(view, _blend_lut(color, float(opts.mask_alpha))), inside, view)
    if opts.outlines:
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = [cv2.approxPolyDP(c, _OUTLINE_EPS, True) for c in contours]
        cv2.drawContours(view, contours, -1, color, lw, cv2.LINE_AA)


#: The COCO skeleton's limbs as two index arrays (first and second keypoint of each limb).
_LIMB_A, _LIMB_B = (np.array(side, np.int64) for side in zip(*COCO_SKELETON))


def _skeleton_points(keypoints: np.ndarray, opts: RenderOptions) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) int32 pixel positions (rounded half to even, as ``round``) and (N, K) bool "drawn" flags.

    A keypoint is drawn when it is finite and its score is above ``opts.keypoint_thresh``.
    """
    ok = np.isfinite(keypoints).all(axis=2) & (np.nan_to_num(keypoints[:, :, 2], nan=-np.inf) > opts.keypoint_thresh)
    return np.round(np.nan_to_num(keypoints[:, :, :2])).astype(np.int32), ok


def _draw_skeleton(out: np.ndarray, pts: np.ndarray, ok: np.ndarray, color: tuple[int, int, int], lw: int) -> None:
    """Draw one person's COCO skeleton on ``out``: limbs (one ``cv2.polylines`` call), then the keypoints.

    Args:
        pts: (K, 2) int32 keypoint pixels; ok: (K,) bool, the keypoints to draw
            (:func:`_skeleton_points`). A limb is drawn when both its keypoints are; each
            keypoint is a white disc with a ring of the instance's colour.
    """
    both = ok[_LIMB_A] & ok[_LIMB_B]
    if both.any():  # the same pixels as one cv2.line per limb
        limbs = np.stack([pts[_LIMB_A[both]], pts[_LIMB_B[both]]], axis=1).reshape(-1, 2, 1, 2)
        cv2.polylines(out, list(limbs), False, color, lw + 1, cv2.LINE_AA)
    for x, y in pts[ok].tolist():
        cv2.circle(out, (x, y), lw + 2, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, (x, y), lw + 2, color, max(1, lw // 2), cv2.LINE_AA)
