"""What the renderer draws (:class:`RenderOptions`), which instances it shows, and their colours."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from streamseg.types import Instances

__all__ = ["RenderOptions", "visible_instances", "color_for", "PALETTE", "FONT"]

#: 20 distinct RGB colours (Tableau 20, reordered so neighbours differ strongly).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip


#: The font of labels and the HUD.
FONT = cv2.FONT_HERSHEY_SIMPLEX


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
