"""Generated detections for ``--backend replay --replay synthetic[:N]``: a moving scene at no model cost.

:class:`SyntheticReplay` answers every frame with N instances (20 by default) that
move plausibly, so the CPU side of the pipeline (tracker, drawing, encoding, JSONL with
RLE, MOT) does the work it does behind a real model: each instance has a 28 x 28
soft-edged mask (an ellipse with a per-object wobble), persons have the 17 COCO
keypoints of a walking figure, and every object keeps its own path (a constant
velocity bouncing off the frame's edges, plus a slow sway), its size and its score
(in [0.62, 0.99], so ByteTrack starts a track for each and the default threshold
draws them all).
Everything is a function of the frame count and the seed, so two runs give the same
Instances frame by frame. It exists for ``benchmarks/cpu_side.py`` and for trying the
window and the outputs without a model; it is a ``replay`` source, not a model
(``random_weights`` is False, nothing is learnt).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from streamseg.errors import ConfigError
from streamseg.types import MASK_SIZE, NUM_KEYPOINTS, Instances

__all__ = ["SyntheticReplay", "parse_synthetic", "SYNTHETIC"]

#: The ``--replay`` value that selects generated detections (``synthetic`` or ``synthetic:N``).
SYNTHETIC = "synthetic"
#: Instances per frame for a plain ``synthetic``.
DEFAULT_COUNT = 20

#: A standing person's COCO keypoints in its box, (x, y) as fractions of width and height
#: (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles; left before right).
_POSE = np.array(
    [
        (0.50, 0.08), (0.46, 0.06), (0.54, 0.06), (0.42, 0.08), (0.58, 0.08),
        (0.32, 0.22), (0.68, 0.22), (0.26, 0.38), (0.74, 0.38), (0.24, 0.52), (0.76, 0.52),
        (0.38, 0.54), (0.62, 0.54), (0.36, 0.76), (0.64, 0.76), (0.34, 0.97), (0.66, 0.97),
    ],
    np.float32,
)  # fmt: skip
#: Keypoints that swing while walking (elbows, wrists, knees, ankles) and their phase sign.
_SWING = {7: 1.0, 9: 1.0, 8: -1.0, 10: -1.0, 13: -1.0, 15: -1.0, 14: 1.0, 16: 1.0}


def parse_synthetic(value: str) -> int | None:
    """The instance count of a ``--replay`` value ``synthetic[:N]``, or None for a file path.

    Raises:
        ConfigError: ``synthetic:N`` with N not an integer in [1, 1000].
    """
    if value != SYNTHETIC and not value.startswith(SYNTHETIC + ":"):
        return None
    if value == SYNTHETIC:
        return DEFAULT_COUNT
    text = value[len(SYNTHETIC) + 1 :]
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ConfigError(f"--replay synthetic:N needs N in 1..1000 instances per frame, got {value!r}")
    return int(text)


def _labels(categories: Sequence[str], count: int) -> tuple[np.ndarray, int | None]:
    """Half persons (when the model has a "person" class), the rest cycling through the other classes."""
    person = categories.index("person") if "person" in categories else None
    others = [i for i, name in enumerate(categories) if i > 0 and i != person and name not in ("N/A", "")]
    others = others[:8] or ([person] if person is not None else [1])
    labels = [
        person if person is not None and (k % 2 == 0 or not others) else others[k // 2 % len(others)]
        for k in range(count)
    ]
    return np.asarray(labels, np.int64), person


class SyntheticReplay:
    """N generated instances per frame (see the module docstring).

    Args:
        categories: class names indexed by label (the model's); "person" gets keypoints.
        model_name: the model whose categories these are.
        count: instances per frame.
        keypoints: give persons the 17 COCO keypoints (other rows are NaN); without it
            ``keypoints`` is None, as for a mask model without ``--keypoints``.
        seed: the scene's random seed (paths, sizes, scores, mask shapes).

    Attributes:
        name: ``"replay"``.
        frames_given: frames answered so far.
    """

    name = "replay"
    device = "cpu"
    random_weights = False

    def __init__(
        self, *, categories: Sequence[str], model_name: str, count: int = DEFAULT_COUNT, keypoints: bool = True,
        seed: int = 0,
    ) -> None:  # fmt: skip
        if count < 1:
            raise ConfigError(f"synthetic replay needs at least one instance per frame, got {count}")
        self.categories = tuple(categories)
        self.model_name = model_name
        self.count = int(count)
        self.keypoints = keypoints
        self.frames_given = 0
        rng = np.random.default_rng(seed)
        self.labels, self._person = _labels(self.categories, self.count)
        self._start = rng.uniform(0.05, 0.95, (self.count, 2))  # box centre, fractions of (W, H)
        self._velocity = rng.uniform(-0.004, 0.004, (self.count, 2))  # fraction of (W, H) per frame
        self._size = rng.uniform(0.08, 0.28, self.count)  # box height, fraction of H
        self._aspect = np.where(self.labels == self._person, rng.uniform(0.35, 0.5, self.count),
                                rng.uniform(0.8, 1.8, self.count))  # fmt: skip
        self._phase = rng.uniform(0, 2 * math.pi, self.count)
        self.scores = np.sort(rng.uniform(0.62, 0.99, self.count)).astype(np.float32)[::-1].copy()
        self._masks = self._mask_shapes(rng)

    def _mask_shapes(self, rng: np.random.Generator) -> np.ndarray:
        """(N, 28, 28) float32 probabilities: a wobbly ellipse with a soft (sigmoid) edge per object."""
        c = (np.arange(MASK_SIZE, dtype=np.float32) + 0.5) / MASK_SIZE * 2 - 1  # cell centres in [-1, 1]
        yy, xx = np.meshgrid(c, c, indexing="ij")
        angle = np.arctan2(yy, xx)
        radius = np.hypot(xx, yy)
        wobble = rng.uniform(0.0, 0.12, (self.count, 3))
        edge = 0.82 + sum(wobble[:, k, None, None] * np.cos((k + 2) * angle) for k in range(3))
        return (1.0 / (1.0 + np.exp((radius - edge) * 12.0))).astype(np.float32)

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """The scene at the next frame, in ``image``'s pixels.

        Args:
            image: (H, W, 3) uint8; only its size is used.

        Returns:
            ``(instances, {"model": ms})``: N instances with boxes (N, 4) float32 xyxy
            inside the frame, scores, labels, masks (N, 28, 28) float32, and keypoints
            (N, 17, 3) float32 (NaN rows for non-persons) when ``keypoints``.
        """
        t0 = time.perf_counter()
        h, w = int(image.shape[0]), int(image.shape[1])
        t = self.frames_given
        self.frames_given += 1
        # A constant velocity folded into [0, 1] (bouncing off the edges), plus a slow sway.
        pos = self._start + self._velocity * t
        pos = 1.0 - np.abs(1.0 - np.mod(pos, 2.0))
        pos[:, 0] += 0.01 * np.sin(t / 15.0 + self._phase)
        bh = self._size * h
        bw = np.minimum(bh * self._aspect, 0.6 * w)
        cx = np.clip(pos[:, 0] * w, bw / 2, w - bw / 2)
        cy = np.clip(pos[:, 1] * h, bh / 2, h - bh / 2)
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
        keypoints = self._walk(boxes, t) if self.keypoints else None
        instances = Instances(
            image_size=(h, w), boxes=boxes, scores=self.scores, labels=self.labels, masks=self._masks,
            keypoints=keypoints,
        )  # fmt: skip
        return instances, {"model": (time.perf_counter() - t0) * 1000.0}

    def _walk(self, boxes: np.ndarray, t: int) -> np.ndarray:
        """(N, 17, 3) keypoints of a walking figure in each person's box; NaN rows for the others."""
        kps = np.full((self.count, NUM_KEYPOINTS, 3), np.nan, np.float32)
        for i in np.flatnonzero(self.labels == self._person):
            x1, y1, x2, y2 = boxes[i]
            pose = _POSE.copy()
            swing = 0.08 * math.sin(t / 4.0 + self._phase[i])
            for k, sign in _SWING.items():
                pose[k, 0] += sign * swing
            kps[i, :, 0] = x1 + pose[:, 0] * (x2 - x1)
            kps[i, :, 1] = y1 + pose[:, 1] * (y2 - y1)
            kps[i, :, 2] = 5.0 + 3.0 * np.cos(np.arange(NUM_KEYPOINTS) + t / 10.0)  # heatmap logits
        return kps
