"""The demo world: synthetic video clips with exact ground truth, and their exports.

A clip is a textured background with several moving, occluding objects of four
classes (:data:`~streamseg.models.demo_model.DEMO_CATEGORIES`): ``person`` (a stick
figure whose joints are the 17 COCO keypoints, walking and waving, limbs drawn as
thick strokes along the COCO skeleton), ``ball`` (a bouncing striped disc), ``box``
(a rotating square crate) and ``car`` (a body, cabin and two wheels). Objects enter
and leave the frame, cross and hide each other (a per-object depth decides the
z-order). Everything is deterministic for a seed.

Ground truth, per frame and object (:class:`ObjectGT`): the *visible* mask (the
object's own pixels minus those of every object in front of it, clipped to the
image), its tight box, class, track id (stable for the clip) and, for persons, the
17 COCO keypoints with visibility (COCO convention: 0 outside the image, 1 inside
but hidden by an object in front, 2 visible). Coordinates are continuous pixels
(pixel ``i`` spans ``[i, i + 1)``), as COCO and torchvision.

Exports (:func:`write_clip`): an H.264 MP4 (:class:`streamseg.sinks.VideoWriter`), a
COCO json (images with ``id = frame_index + 1`` and a ``frame_index`` field; RLE
masks, ``bbox`` xywh, ``area``, ``iscrowd`` 0, ``keypoints``, ``num_keypoints``,
``track_id``) and a MOT-challenge ``gt.txt``. :func:`write_dataset` writes a training
set (JPEG images + one COCO json) from many short clips.

Seeds: a clip's random stream is ``SeedSequence(seed, spawn_key=(split,))`` with
split 0 for training clips (:func:`write_dataset`) and 1 for held-out clips
(:func:`write_clip`, :func:`write_synthetic_clip`), so a held-out clip never equals
a training clip, whatever the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamseg.models.coco import COCO_KEYPOINT_NAMES, COCO_SKELETON
from streamseg.models.demo_model import DEMO_CATEGORIES

__all__ = [
    "DEMO_FPS",
    "DEMO_SIZE",
    "HELDOUT_SEED",
    "MIN_VISIBLE_AREA",
    "SPLIT_HELDOUT",
    "SPLIT_TRAIN",
    "FrameGT",
    "ObjectGT",
    "coco_categories",
    "clip_frames",
    "run_demo",
    "synthetic_frames",
    "write_clip",
    "write_dataset",
    "write_synthetic_clip",
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

PERSON, BALL, BOX, CAR = 1, 2, 3, 4
_K = len(COCO_KEYPOINT_NAMES)
_NOSE, _LEYE, _REYE, _LEAR, _REAR = 0, 1, 2, 3, 4
_LSH, _RSH, _LEL, _REL, _LWR, _RWR = 5, 6, 7, 8, 9, 10
_LHIP, _RHIP, _LKN, _RKN, _LANK, _RANK = 11, 12, 13, 14, 15, 16
_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT


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


def coco_categories() -> list[dict[str, Any]]:
    """COCO ``categories`` of the demo world; id = label index, the person has keypoints and skeleton.

    The skeleton is COCO's 1-based pairs (person_keypoints_val2017.json).
    """
    out: list[dict[str, Any]] = []
    for cid, name in enumerate(DEMO_CATEGORIES):
        if cid == 0:
            continue
        cat: dict[str, Any] = {"id": cid, "name": name, "supercategory": name}
        if cid == PERSON:
            cat["keypoints"] = list(COCO_KEYPOINT_NAMES)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in COCO_SKELETON]
        out.append(cat)
    return out


# --------------------------------------------------------------------------- drawing


def _p(x: float, y: float) -> tuple[int, int]:
    """Continuous pixel coordinates -> cv2 fixed-point (pixel centres at integers)."""
    return int(round((x - 0.5) * _ONE)), int(round((y - 0.5) * _ONE))


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: Any, thick: int) -> None:
    cv2.line(img, _p(a[0], a[1]), _p(b[0], b[1]), color, max(1, thick), cv2.LINE_8, _SHIFT)


def _disc(img: np.ndarray, c: np.ndarray, r: float, color: Any) -> None:
    cv2.circle(img, _p(c[0], c[1]), max(1, int(round(r * _ONE))), color, -1, cv2.LINE_8, _SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, color: Any) -> None:
    q = np.round((np.asarray(pts, np.float64) - 0.5) * _ONE).astype(np.int32)
    cv2.fillPoly(img, [q.reshape(-1, 1, 2)], color, cv2.LINE_8, _SHIFT)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background: coloured smooth noise, stripes or checks, clutter lines. (h, w, 3) uint8."""
    base = rng.uniform(40, 200, size=3)
    coarse = rng.random((h // 16 + 2, w // 16 + 2, 3), dtype=np.float32)
    img = base + (cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) - 0.5) * rng.uniform(30, 90)
    kind = int(rng.integers(0, 4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:  # stripes
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(8, 40)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        img += (np.sin(2 * math.pi * phase)[..., None] * rng.uniform(10, 35, size=3)).astype(np.float32)
    elif kind == 2:  # checks
        cell = int(rng.integers(10, 40))
        checks = ((xx // cell + yy // cell) % 2)[..., None] - 0.5
        img += checks * rng.uniform(15, 50, size=3)
    elif kind == 3:  # horizon: sky and ground
        horizon = rng.uniform(0.3, 0.6) * h
        ground = rng.uniform(40, 200, size=3)
        img[int(horizon) :] = img[int(horizon) :] * 0.4 + ground * 0.6
    fine = rng.normal(0, rng.uniform(2, 10), size=(h, w, 1)).astype(np.float32)
    img = img + fine
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 6))):  # clutter: thin lines
        a = rng.uniform((0, 0), (w, h))
        b = rng.uniform((0, 0), (w, h))
        color = tuple(int(v) for v in rng.uniform(0, 255, size=3))
        _line(img, a, b, color, int(rng.integers(1, 3)))
    return img


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated random RGB colour."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(110, 256)]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


# --------------------------------------------------------------------------- objects


@dataclasses.dataclass
class _Object:
    """One object's appearance and motion (parameters drawn once per clip)."""

    track_id: int
    category_id: int
    depth: float
    x0: float
    y0: float
    vx: float
    vy: float
    size: float
    colors: tuple[tuple[int, int, int], ...]
    phase: float
    rate: float
    extra: float
    style: int

    def position(self, t: int) -> tuple[float, float]:
        return self.x0 + self.vx * t, self.y0 + self.vy * t


def _person_keypoints(obj: _Object, t: int) -> np.ndarray:
    """(17, 2) float64 keypoint positions of a walking (optionally waving) stick figure.

    The figure faces the camera, so its left side is on the image's right. ``size``
    is the height from the ankles to the top of the head, pixels.
    """
    cx, foot = obj.position(t)
    hgt = obj.size
    phi = obj.phase + obj.rate * t
    direction = 1.0 if obj.vx >= 0 else -1.0
    bob = 0.015 * hgt * abs(math.sin(phi))
    kp = np.zeros((_K, 2))
    hip_y = foot - 0.50 * hgt - bob
    sh_y = foot - 0.80 * hgt - bob
    head = np.array([cx + 0.01 * hgt * direction, foot - 0.915 * hgt - bob])
    kp[_NOSE] = head + (0.012 * hgt * direction, 0.012 * hgt)
    kp[_LEYE] = head + (0.028 * hgt, -0.012 * hgt)
    kp[_REYE] = head + (-0.028 * hgt, -0.012 * hgt)
    kp[_LEAR] = head + (0.062 * hgt, 0.0)
    kp[_REAR] = head + (-0.062 * hgt, 0.0)
    kp[_LSH] = (cx + 0.13 * hgt, sh_y)
    kp[_RSH] = (cx - 0.13 * hgt, sh_y)
    kp[_LHIP] = (cx + 0.085 * hgt, hip_y)
    kp[_RHIP] = (cx - 0.085 * hgt, hip_y)
    upper, fore, thigh, shin = 0.17 * hgt, 0.16 * hgt, 0.245 * hgt, 0.245 * hgt
    swing = math.radians(18.0) * math.sin(phi)
    # Angles from straight down, positive towards the walking direction.
    for side, (hip, knee, ankle, s) in enumerate(((_LHIP, _LKN, _LANK, 1.0), (_RHIP, _RKN, _RANK, -1.0))):
        a_thigh = s * swing
        bend = math.radians(35.0) * max(0.0, math.sin(phi + (0 if side == 0 else math.pi) - 0.8))
        a_shin = a_thigh - bend
        spread = 0.03 * hgt * (1.0 if s > 0 else -1.0)
        kp[knee] = kp[hip] + (direction * thigh * math.sin(a_thigh) + spread, thigh * math.cos(a_thigh))
        kp[ankle] = kp[knee] + (direction * shin * math.sin(a_shin) + spread, shin * math.cos(a_shin))
    for side, (sh, el, wr, s) in enumerate(((_LSH, _LEL, _LWR, 1.0), (_RSH, _REL, _RWR, -1.0))):
        outward = 1.0 if s > 0 else -1.0  # image x direction away from the body
        if obj.style == 1 and side == 0:  # waving left arm
            lift = math.radians(110.0 + 40.0 * math.sin(2.3 * phi))
            kp[el] = kp[sh] + (outward * upper * math.sin(lift), upper * math.cos(lift))
            bend2 = lift + math.radians(30.0)
            kp[wr] = kp[el] + (outward * fore * math.sin(bend2), fore * math.cos(bend2))
            continue
        a_up = -s * swing * 1.5
        a_fore = a_up + math.radians(25.0 + 15.0 * math.sin(phi))
        abduct = math.radians(12.0 + obj.extra * 15.0)
        kp[el] = kp[sh] + (
            direction * upper * math.sin(a_up) + outward * upper * math.sin(abduct),
            upper * math.cos(a_up) * math.cos(abduct),
        )
        kp[wr] = kp[el] + (
            direction * fore * math.sin(a_fore) + outward * fore * math.sin(abduct) * 0.5,
            fore * math.cos(a_fore),
        )
    return kp


def _draw_person(obj: _Object, t: int, canvas: np.ndarray, kp: np.ndarray) -> None:
    """Draw the stick figure on an (H, W, 3) canvas (colour 0 is never used)."""
    hgt = obj.size
    skin, shirt, pants = obj.colors[0], obj.colors[1], obj.colors[2]
    limb = max(2, int(round(0.055 * hgt)))
    arm = max(2, int(round(0.045 * hgt)))
    # legs (behind the torso)
    for a, b in ((_LHIP, _LKN), (_LKN, _LANK), (_RHIP, _RKN), (_RKN, _RANK)):
        _line(canvas, kp[a], kp[b], pants, limb)
    direction = 1.0 if obj.vx >= 0 else -1.0
    for ank in (_LANK, _RANK):  # feet
        _line(canvas, kp[ank], kp[ank] + (direction * 0.05 * hgt, 0.01 * hgt), (40, 40, 40), max(2, limb - 1))
    torso = np.stack([kp[_LSH], kp[_RSH], kp[_RHIP], kp[_LHIP]])
    _poly(canvas, torso, shirt)
    _line(canvas, kp[_LSH], kp[_RSH], shirt, arm)
    _line(canvas, kp[_LHIP], kp[_RHIP], pants, limb)
    neck = (kp[_LSH] + kp[_RSH]) / 2
    head = (kp[_LEAR] + kp[_REAR]) / 2
    _line(canvas, neck, head, skin, max(2, int(0.04 * hgt)))
    _disc(canvas, head, 0.075 * hgt, skin)
    for eye in (_LEYE, _REYE):
        _disc(canvas, kp[eye], max(0.8, 0.012 * hgt), (30, 30, 30))
    _disc(canvas, kp[_NOSE], max(0.6, 0.008 * hgt), (150, 80, 70))
    for a, b in ((_LSH, _LEL), (_LEL, _LWR), (_RSH, _REL), (_REL, _RWR)):
        _line(canvas, kp[a], kp[b], shirt if a in (_LSH, _RSH) else skin, arm)
    for wr in (_LWR, _RWR):
        _disc(canvas, kp[wr], 0.03 * hgt, skin)


def _draw_ball(obj: _Object, t: int, canvas: np.ndarray) -> None:
    x, y = obj.position(t)
    y -= abs(math.sin(obj.phase + obj.rate * t)) * obj.extra * 60.0  # bounce
    r = obj.size / 2
    c = np.array([x, y])
    _disc(canvas, c, r, obj.colors[0])
    angle = obj.phase + 0.15 * t * (1 if obj.vx >= 0 else -1)
    d = np.array([math.cos(angle), math.sin(angle)]) * r * 0.95
    _line(canvas, c - d, c + d, obj.colors[1], max(2, int(r * 0.35)))
    _disc(canvas, c + (-0.35 * r, -0.35 * r), 0.18 * r, (250, 250, 250))


def _draw_box(obj: _Object, t: int, canvas: np.ndarray) -> None:
    x, y = obj.position(t)
    s = obj.size
    angle = obj.phase + obj.rate * 0.3 * t
    rect = ((x, y), (s, s * (0.7 + 0.3 * obj.extra)), math.degrees(angle))
    pts = cv2.boxPoints(rect)
    _poly(canvas, pts, obj.colors[0])
    edge = obj.colors[1]
    for i in range(4):
        _line(canvas, pts[i], pts[(i + 1) % 4], edge, max(2, int(s * 0.07)))
    _line(canvas, pts[0], pts[2], edge, max(1, int(s * 0.05)))
    _line(canvas, pts[1], pts[3], edge, max(1, int(s * 0.05)))


def _draw_car(obj: _Object, t: int, canvas: np.ndarray) -> None:
    x, y = obj.position(t)  # y is the bottom of the wheels
    length = obj.size
    d = 1.0 if obj.vx >= 0 else -1.0
    body_h = 0.28 * length
    wheel_r = 0.12 * length
    body_bottom = y - wheel_r
    shape = np.array([(-0.5, 0.0), (0.5, 0.0), (0.5, -0.8), (0.42, -1.0), (-0.5, -1.0)])
    body = np.stack([x + d * shape[:, 0] * length, body_bottom + shape[:, 1] * body_h], axis=1)
    _poly(canvas, body, obj.colors[0])
    top = body_bottom - body_h
    cabin = np.array(
        [
            (x - d * 0.38 * length, top + 1),
            (x + d * 0.2 * length, top + 1),
            (x + d * 0.05 * length, top - 0.26 * length),
            (x - d * 0.30 * length, top - 0.26 * length),
        ]
    )
    _poly(canvas, cabin, obj.colors[0])
    window = cabin.copy()
    window[:, 0] = x + (window[:, 0] - x) * 0.85
    window[:, 1] = top - (top - window[:, 1]) * 0.75
    _poly(canvas, window, (170, 210, 235))
    spin = obj.rate * t
    for wx in (x - 0.3 * length, x + 0.3 * length):
        c = np.array([wx, y - wheel_r])
        _disc(canvas, c, wheel_r, (25, 25, 25))
        _disc(canvas, c, wheel_r * 0.45, (160, 160, 160))
        spoke = np.array([math.cos(spin), math.sin(spin)]) * wheel_r * 0.45
        _line(canvas, c - spoke, c + spoke, (60, 60, 60), 1)
    light = (x + d * length / 2 - d * 2, body_bottom - body_h * 0.55)
    _disc(canvas, np.array(light), max(1.0, 0.03 * length), (255, 240, 150))


def _new_object(rng: np.random.Generator, track_id: int, category: int, h: int, w: int, n: int) -> _Object:
    """Random appearance and a trajectory that crosses (part of) the frame during the clip."""
    if category == PERSON:
        size = rng.uniform(0.45, 0.85) * h
        speed = rng.uniform(0.6, 2.2)
        y0 = rng.uniform(0.62, 1.02) * h
        vy = rng.uniform(-0.2, 0.2)
        colors = (_skin(rng), _color(rng), _color(rng))
        rate = speed / size * 9.0
    elif category == BALL:
        size = rng.uniform(0.08, 0.2) * h
        speed = rng.uniform(1.0, 4.0)
        y0 = rng.uniform(0.3, 0.95) * h
        vy = rng.uniform(-0.6, 0.6)
        colors = (_color(rng), _color(rng))
        rate = rng.uniform(0.08, 0.2)
    elif category == BOX:
        size = rng.uniform(0.13, 0.3) * h
        speed = rng.uniform(0.3, 2.5)
        y0 = rng.uniform(0.2, 0.9) * h
        vy = rng.uniform(-0.8, 0.8)
        colors = (_color(rng), _color(rng))
        rate = rng.uniform(-0.2, 0.2)
    else:
        size = rng.uniform(0.25, 0.5) * w
        speed = rng.uniform(1.5, 5.0)
        y0 = rng.uniform(0.55, 1.0) * h
        vy = rng.uniform(-0.15, 0.15)
        colors = (_color(rng),)
        rate = speed / (0.12 * size)
    vx = speed * (1.0 if rng.random() < 0.5 else -1.0)
    # Start so that the object is inside the frame somewhere in the clip: anywhere from
    # off-screen on the entry side to the middle of the frame.
    travel = abs(vx) * n
    margin = size * 0.6
    entry = rng.uniform(-margin - 0.5 * travel, w * 0.8)
    x0 = entry if vx > 0 else w - entry
    return _Object(
        track_id=track_id,
        category_id=category,
        depth=float(rng.random()),
        x0=float(x0),
        y0=float(y0),
        vx=float(vx),
        vy=float(vy),
        size=float(size),
        colors=colors,
        phase=float(rng.uniform(0, 2 * math.pi)),
        rate=float(rate),
        extra=float(rng.random()),
        style=int(rng.random() < 0.3) if category == PERSON else 0,
    )


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    tone = rng.uniform(0.35, 1.0)
    return int(120 + 120 * tone), int(80 + 110 * tone), int(60 + 100 * tone)


def _clip_rng(seed: int, split: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(split),)))


def _scene(rng: np.random.Generator, h: int, w: int, n: int) -> list[_Object]:
    """1-2 persons and 2-5 other objects, each class at least... as drawn; persons first."""
    objects = []
    num_person = int(rng.integers(1, 3))
    others = [int(c) for c in rng.choice([BALL, BOX, CAR], size=int(rng.integers(2, 6)))]
    for k, cat in enumerate([PERSON] * num_person + others):
        objects.append(_new_object(rng, k + 1, cat, h, w, n))
    return objects


_DRAW: dict[int, Callable[[_Object, int, np.ndarray], None]] = {
    BALL: _draw_ball,
    BOX: _draw_box,
    CAR: _draw_car,
}


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
    background = _background(rng, h, w)
    objects = sorted(_scene(rng, h, w, num_frames), key=lambda o: o.depth)  # back to front
    noise_rng = np.random.default_rng(rng.integers(0, 2**32))
    canvas = np.zeros((h, w, 3), np.uint8)
    for t in range(num_frames):
        if only is not None and t not in only:
            continue
        image = background.copy()
        full_masks: list[np.ndarray] = []
        keypoints: list[np.ndarray | None] = []
        for obj in objects:
            canvas[:] = 0
            kp = None
            if obj.category_id == PERSON:
                kp = _person_keypoints(obj, t)
                _draw_person(obj, t, canvas, kp)
            else:
                _DRAW[obj.category_id](obj, t, canvas)
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


# --------------------------------------------------------------------------- exports


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(obj: ObjectGT, ann_id: int, image_id: int) -> dict[str, Any]:
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj.category_id,
        "segmentation": _rle(obj.mask),
        "bbox": [round(v, 2) for v in obj.bbox],
        "area": float(obj.area),
        "iscrowd": 0,
        "track_id": obj.track_id,
        "visibility": round(obj.visibility, 4),
    }
    if obj.keypoints is not None:
        flat = obj.keypoints.reshape(-1)
        ann["keypoints"] = [round(float(v), 2) if j % 3 != 2 else int(v) for j, v in enumerate(flat)]
        ann["num_keypoints"] = int((obj.keypoints[:, 2] > 0).sum())
    else:
        ann["keypoints"] = [0] * (3 * _K)
        ann["num_keypoints"] = 0
    return ann


def _coco(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], description: str
) -> dict[str, Any]:
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    }


def write_clip(
    out_dir: str | Path,
    *,
    seed: int = HELDOUT_SEED,
    num_frames: int = 120,
    size: tuple[int, int] = DEMO_SIZE,
    fps: int = DEMO_FPS,
    split: int = SPLIT_HELDOUT,
    name: str = "clip",
) -> dict[str, Path]:
    """Render a clip and write it as ``<name>.mp4``, ``<name>.json`` (COCO) and ``gt.txt`` (MOT).

    COCO json: ``images`` with ``id = frame_index + 1``, ``frame_index`` (0-based),
    ``file_name`` ``"<name>.mp4#<frame_index>"``, width, height; ``annotations`` as
    :class:`ObjectGT` (RLE ``segmentation``, ``bbox`` xywh, ``area``, ``iscrowd`` 0,
    ``keypoints`` (51 numbers, zeros for non-persons), ``num_keypoints``, ``track_id``,
    ``visibility``); ``categories`` from :func:`coco_categories`.

    MOT ``gt.txt``: one line per annotation, ``frame, id, x, y, w, h, 1, class, visibility``
    (frame 1-based; box = tight box of the visible mask; visibility = visible fraction
    of the object's in-image pixels; MOT-challenge 2016 ground-truth layout).

    Args:
        out_dir: folder (created).
        seed: clip seed.
        num_frames: frames.
        size: (H, W) pixels.
        fps: frame rate, frames per second.
        split: random stream (held-out by default).
        name: base name of the MP4 and json.

    Returns:
        ``{"video": mp4 path, "coco": json path, "mot": gt.txt path}``.
    """
    from streamseg.sinks.video import VideoWriter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"video": out / f"{name}.mp4", "coco": out / f"{name}.json", "mot": out / "gt.txt"}
    h, w = size
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    mot_lines: list[str] = []
    with VideoWriter(paths["video"], width=w, height=h, fps=Fraction(fps)) as writer:
        for frame in clip_frames(seed=seed, num_frames=num_frames, size=size, split=split):
            writer.write(frame.image, frame.index / fps)
            image_id = frame.index + 1
            images.append(
                {
                    "id": image_id,
                    "frame_index": frame.index,
                    "file_name": f"{paths['video'].name}#{frame.index}",
                    "width": w,
                    "height": h,
                }
            )
            for obj in frame.objects:
                annotations.append(_annotation(obj, len(annotations) + 1, image_id))
                x, y, bw, bh = obj.bbox
                mot_lines.append(
                    f"{image_id},{obj.track_id},{x:.2f},{y:.2f},{bw:.2f},{bh:.2f},1,{obj.category_id},"
                    f"{obj.visibility:.4f}"
                )
    desc = f"streamseg demo world clip, seed {seed}, split {split}, {num_frames} frames, {w}x{h} @ {fps} fps"
    paths["coco"].write_text(json.dumps(_coco(images, annotations, desc)))
    paths["mot"].write_text("\n".join(mot_lines) + ("\n" if mot_lines else ""))
    return paths


def write_dataset(
    out_dir: str | Path,
    *,
    num_clips: int,
    frames_per_clip: int = 48,
    frame_stride: int = 3,
    seed: int = 0,
    size: tuple[int, int] = DEMO_SIZE,
    jpeg_quality: int = 85,
    progress: bool = False,
) -> Path:
    """Write a COCO-format training set of demo-world frames (JPEG + one json).

    Clip ``i`` uses seed ``seed * 100_003 + i`` on the training stream
    (:data:`SPLIT_TRAIN`); every ``frame_stride``-th of its ``frames_per_clip`` frames is
    kept. Images are ``images/c<clip>_f<frame>.jpg`` (JPEG, like the compressed frames
    the model sees at inference).

    Args:
        out_dir: folder (created); gets ``images/`` and ``annotations.json``.
        num_clips: number of clips, >= 1.
        frames_per_clip: length of each rendered clip.
        frame_stride: keep every n-th frame.
        seed: dataset seed.
        size: (H, W) pixels.
        jpeg_quality: cv2 JPEG quality (0-100).
        progress: show a tqdm bar.

    Returns:
        The path of ``annotations.json``.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    h, w = size
    for clip in tqdm(range(int(num_clips)), desc="generating clips", unit="clip", disable=not progress):
        clip_seed = int(seed) * 100_003 + clip
        keep = frozenset(range(0, frames_per_clip, frame_stride))
        frames = clip_frames(
            seed=clip_seed, num_frames=frames_per_clip, size=size, split=SPLIT_TRAIN, only=keep
        )
        for frame in frames:
            name = f"c{clip:05d}_f{frame.index:03d}.jpg"
            cv2.imwrite(
                str(img_dir / name),
                cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
            )
            image_id = len(images) + 1
            images.append(
                {"id": image_id, "file_name": name, "width": w, "height": h, "frame_index": frame.index}
            )
            for obj in frame.objects:
                annotations.append(_annotation(obj, len(annotations) + 1, image_id))
    path = out / "annotations.json"
    desc = f"streamseg demo world training set: {num_clips} clips, seed {seed}, stride {frame_stride}"
    path.write_text(json.dumps(_coco(images, annotations, desc)))
    return path


def write_synthetic_clip(
    path: str | Path,
    *,
    seed: int = HELDOUT_SEED,
    num_frames: int = 48,
    size: tuple[int, int] = DEMO_SIZE,
    fps: int = DEMO_FPS,
) -> Path:
    """Write only the MP4 of a held-out clip (no ground truth); see :func:`write_clip`.

    Args:
        path: output .mp4 path (parent folders are created).
        seed: clip seed (held-out stream).
        num_frames: frames.
        size: (H, W) pixels.
        fps: frame rate (frames per second).

    Returns:
        The path written.
    """
    from streamseg.sinks.video import VideoWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, width=size[1], height=size[0], fps=Fraction(fps)) as writer:
        for k, img in enumerate(synthetic_frames(seed=seed, num_frames=num_frames, size=size)):
            writer.write(img, k / fps)
    return path


def run_demo(
    out_dir: str | Path,
    *,
    num_frames: int = 120,
    seed: int = HELDOUT_SEED,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate the held-out demo clip with its ground truth (the first step of ``streamseg demo``).

    The caller then runs the pipeline on ``paths["video"]`` with model ``demo``
    (``min_size`` :data:`~streamseg.models.demo_model.DEMO_MIN_SIZE`) and scores the JSONL with
    ``streamseg.eval.coco.evaluate_coco(jsonl, paths["coco"])``.

    Args:
        out_dir: folder (created).
        num_frames: clip length (>= 100 for the published figures).
        seed: held-out seed (training never uses the held-out stream).
        progress: unused (the clip renders in a few seconds); kept for the caller's signature.

    Returns:
        ``{"video", "coco", "mot"}`` paths plus ``"seconds"`` (generation wall time),
        ``"frames"``, ``"size"`` (H, W) and ``"fps"``.
    """
    t0 = time.perf_counter()
    paths = write_clip(out_dir, seed=seed, num_frames=num_frames)
    return {
        **paths,
        "seconds": time.perf_counter() - t0,
        "frames": int(num_frames),
        "size": DEMO_SIZE,
        "fps": DEMO_FPS,
    }
