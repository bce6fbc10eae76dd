"""The demo world: synthetic video clips with exact ground truth.

A clip is a textured background with several moving, occluding objects of four
classes (:data:`~streamseg.models.demo_model.DEMO_CATEGORIES`; their appearance, motion
and drawing are in :mod:`streamseg.datasets.demo_objects`): ``person``, ``ball``,
``box`` and ``car``. Objects enter and leave the frame, cross and hide each other (a
per-object depth decides the z-order). Everything is deterministic for a seed.

Ground truth, per frame and object (:class:`ObjectGT`): the *visible* mask (the
object's own pixels minus those of every object in front of it, clipped to the
image), its tight box, class, track id (stable for the clip) and, for persons, the
17 COCO keypoints with visibility (COCO convention: 0 outside the image, 1 inside
but hidden by an object in front, 2 visible). Coordinates are continuous pixels
(pixel ``i`` spans ``[i, i + 1)``), as COCO and torchvision.

Seeds: a clip's random stream is ``SeedSequence(seed, spawn_key=(split,))`` with
split :data:`SPLIT_TRAIN` (0) for training clips and :data:`SPLIT_HELDOUT` (1) for
held-out clips, so a held-out clip never equals a training clip, whatever the seeds.
The files written from clips (MP4, COCO json, MOT ``gt.txt``, training sets) are in
:mod:`streamseg.datasets.demo_export`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from streamseg.datasets.demo_objects import (
    BALL,
    BOX,
    CAR,
    PERSON,
    DemoObject,
    background,
    draw_object,
    new_object,
)
from streamseg.models.coco import COCO_KEYPOINT_NAMES

__all__ = [
    "DEMO_FPS",
    "DEMO_SIZE",
    "HELDOUT_SEED",
    "MIN_VISIBLE_AREA",
    "SPLIT_HELDOUT",
    "SPLIT_TRAIN",
    "FrameGT",
    "ObjectGT",
    "clip_frames",
    "synthetic_frames",
]

#: (H, W) of demo frames, pixels.
DEMO_SIZE: tuple[int, int] = (240, 320)
#: Frame rate of demo clips, frames per second.
DEMO_FPS = 24
#: Seed of the held-out demo clip (split 1; training clips use split 0).
HELDOUT_SEED = 2026
#: Random stream of training clips.
SPLIT_TRAIN = 0
#: Random stream of held-out clips.
SPLIT_HELDOUT = 1
#: Objects with fewer visible pixels than this get no annotation in that frame.
MIN_VISIBLE_AREA = 30
_K = len(COCO_KEYPOINT_NAMES)


@dataclasses.dataclass(frozen=True)
class ObjectGT:
    """Ground truth of one object in one frame.

    Attributes:
        track_id: id of the object, stable over the clip (1-based).
        category_id: label index into ``DEMO_CATEGORIES`` (1 person, 2 ball, 3 box, 4 car).
        mask: (H, W) bool visible mask (occlusion and image border applied).
        bbox: (x, y, w, h) float pixels, the tight box of ``mask``.
        area: visible pixels.
        visibility: visible pixels / pixels of the unoccluded object inside the image, in [0, 1].
        keypoints: (17, 3) float32 COCO (x, y, v) for persons, else None. ``v`` is 0
            outside the image (x = y = 0 then), 1 hidden by an object in front, 2 visible.
    """

    track_id: int
    category_id: int
    mask: np.ndarray
    bbox: tuple[float, float, float, float]
    area: int
    visibility: float
    keypoints: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class FrameGT:
    """One rendered frame: the (H, W, 3) uint8 RGB image and its objects (back to front)."""

    index: int
    image: np.ndarray
    objects: tuple[ObjectGT, ...]


def _clip_rng(seed: int, split: int) -> np.random.Generator:
    """The clip's random stream: ``SeedSequence(seed, spawn_key=(split,))``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(split),)))


def _scene(rng: np.random.Generator, h: int, w: int, n: int) -> list[DemoObject]:
    """1-2 persons, then 2-5 objects of random classes among ball, box and car; ids 1..N in that order."""
    objects = []
    num_person = int(rng.integers(1, 3))
    others = [int(c) for c in rng.choice([BALL, BOX, CAR], size=int(rng.integers(2, 6)))]
    for k, cat in enumerate([PERSON] * num_person + others):
        objects.append(new_object(rng, k + 1, cat, h, w, n))
    return objects


def clip_frames(
    *,
    seed: int,
    num_frames: int,
    size: tuple[int, int] = DEMO_SIZE,
    split: int = SPLIT_HELDOUT,
    noise: float = 3.0,
    only: frozenset[int] | None = None,
) -> Iterator[FrameGT]:
    """Render a clip frame by frame, with its ground truth.

    Args:
        seed: clip seed; with ``split``, it determines the clip exactly.
        num_frames: number of frames.
        size: (H, W) in pixels.
        split: random stream (:data:`SPLIT_TRAIN` or :data:`SPLIT_HELDOUT`).
        noise: standard deviation of the per-frame Gaussian pixel noise (grey levels).
        only: render and yield only these frame indices (the scene is the same; the
            pixel noise differs from a full render).

    Yields:
        :class:`FrameGT` per frame: (H, W, 3) uint8 RGB image and the annotated objects
        (those with at least :data:`MIN_VISIBLE_AREA` visible pixels), back to front.
    """
    h, w = (int(v) for v in size)
    rng = _clip_rng(seed, split)
    backdrop = background(rng, h, w)
    objects = sorted(_scene(rng, h, w, num_frames), key=lambda o: o.depth)  # back to front
    noise_rng = np.random.default_rng(rng.integers(0, 2**32))
    canvas = np.zeros((h, w, 3), np.uint8)
    for t in range(num_frames):
        if only is not None and t not in only:
            continue
        image = backdrop.copy()
        full_masks: list[np.ndarray] = []
        keypoints: list[np.ndarray | None] = []
        for obj in objects:
            canvas[:] = 0
            kp = draw_object(obj, t, canvas)
            mask = canvas.any(axis=2)
            image[mask] = canvas[mask]
            full_masks.append(mask)
            keypoints.append(kp)
        # Visible masks: remove everything in front (later in the list).
        in_front = np.zeros((h, w), bool)
        visible: list[np.ndarray] = [np.zeros((h, w), bool)] * len(objects)
        fronts: list[np.ndarray] = [in_front] * len(objects)
        for i in range(len(objects) - 1, -1, -1):
            fronts[i] = in_front.copy()
            visible[i] = full_masks[i] & ~in_front
            in_front |= full_masks[i]
        out: list[ObjectGT] = []
        for i, obj in enumerate(objects):
            vis = visible[i]
            area = int(vis.sum())
            if area < MIN_VISIBLE_AREA:
                continue
            ys, xs = np.nonzero(vis)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            kps = None
            if keypoints[i] is not None:
                kps = _visibility(keypoints[i], fronts[i], h, w)
            out.append(
                ObjectGT(
                    track_id=obj.track_id,
                    category_id=obj.category_id,
                    mask=vis,
                    bbox=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                    area=area,
                    visibility=area / max(1, int(full_masks[i].sum())),
                    keypoints=kps,
                )
            )
        if noise > 0:
            image = np.clip(image + noise_rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
        yield FrameGT(index=t, image=image, objects=tuple(out))


def _visibility(kp: np.ndarray, front: np.ndarray, h: int, w: int) -> np.ndarray:
    """(17, 2) positions + the mask of objects in front -> (17, 3) COCO (x, y, v) float32."""
    out = np.zeros((_K, 3), np.float32)
    for k in range(_K):
        x, y = float(kp[k, 0]), float(kp[k, 1])
        if not (0.0 <= x < w and 0.0 <= y < h):
            continue  # v = 0, x = y = 0 (COCO: not labelled)
        hidden = bool(front[int(y), int(x)])
        out[k] = (x, y, 1.0 if hidden else 2.0)
    return out


def synthetic_frames(
    *, seed: int = HELDOUT_SEED, num_frames: int = 48, size: tuple[int, int] = DEMO_SIZE
) -> Iterator[np.ndarray]:
    """Yield only the (H, W, 3) uint8 RGB images of a held-out clip (see :func:`clip_frames`)."""
    for frame in clip_frames(seed=seed, num_frames=num_frames, size=size, split=SPLIT_HELDOUT):
        yield frame.image

