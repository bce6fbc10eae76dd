"""The demo world's objects: appearance, motion and drawing.

Four classes (:data:`~streamseg.models.demo_model.DEMO_CATEGORIES`, label index =
COCO category id): ``person`` (:data:`PERSON`, a stick figure whose joints are the 17
COCO keypoints, walking and optionally waving, limbs drawn as thick strokes along the
COCO skeleton), ``ball`` (:data:`BALL`, a bouncing striped disc), ``box`` (:data:`BOX`,
a rotating square crate) and ``car`` (:data:`CAR`, a body, cabin and two wheels).
Each object's parameters are drawn once per clip (:func:`new_object`); its position
at frame ``t`` is linear in ``t``.

Drawing uses cv2 with 4 fractional bits (sub-pixel positions) and no anti-aliasing,
so an object's pixels are exactly the non-zero pixels of its canvas. Coordinates are
continuous pixels (pixel ``i`` spans ``[i, i + 1)``), as COCO and torchvision.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from streamseg.models.coco import COCO_KEYPOINT_NAMES

__all__ = [
    "BALL",
    "BOX",
    "CAR",
    "PERSON",
    "DemoObject",
    "background",
    "draw_object",
    "new_object",
]

#: Category ids (label index into ``DEMO_CATEGORIES``).
PERSON, BALL, BOX, CAR = 1, 2, 3, 4
_K = len(COCO_KEYPOINT_NAMES)
_NOSE, _LEYE, _REYE, _LEAR, _REAR = 0, 1, 2, 3, 4
_LSH, _RSH, _LEL, _REL, _LWR, _RWR = 5, 6, 7, 8, 9, 10
_LHIP, _RHIP, _LKN, _RKN, _LANK, _RANK = 11, 12, 13, 14, 15, 16
_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT


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


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background: coloured smooth noise, stripes or checks, clutter lines.

    Args:
        rng: the clip's random stream (consumed).
        h: height, pixels.
        w: width, pixels.

    Returns:
        (h, w, 3) uint8 RGB image.
    """
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
class DemoObject:
    """One object's appearance and motion (parameters drawn once per clip, :func:`new_object`).

    Attributes:
        track_id: id of the object, stable over the clip (1-based).
        category_id: :data:`PERSON`, :data:`BALL`, :data:`BOX` or :data:`CAR`.
        depth: z-order in [0, 1); objects with a larger depth are drawn in front.
        x0: x of the object's centre at frame 0, pixels.
        y0: y of the anchor at frame 0, pixels: the centre of a box or of a ball (before
            its bounce), a person's feet, the bottom of a car's wheels.
        vx: horizontal speed, pixels per frame (its sign is the facing direction).
        vy: vertical speed, pixels per frame.
        size: pixels: a person's height, a ball's diameter, a box's side, a car's length.
        colors: RGB colours: person (skin, shirt, trousers), ball (body, stripe), box
            (face, edges), car (body,).
        phase: initial phase, radians (gait, bounce, rotation, stripe).
        rate: phase speed, radians per frame (gait, bounce, rotation, wheel spin).
        extra: a shape parameter in [0, 1): arm spread, bounce height, box aspect.
        style: 1 for a person who waves the left arm, else 0.
    """

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
        """(x, y) of the anchor at frame ``t``, pixels."""
        return self.x0 + self.vx * t, self.y0 + self.vy * t


def _person_keypoints(obj: DemoObject, t: int) -> np.ndarray:
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


def _draw_person(obj: DemoObject, t: int, canvas: np.ndarray, kp: np.ndarray) -> None:
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


def _draw_ball(obj: DemoObject, t: int, canvas: np.ndarray) -> None:
    x, y = obj.position(t)
    y -= abs(math.sin(obj.phase + obj.rate * t)) * obj.extra * 60.0  # bounce
    r = obj.size / 2
    c = np.array([x, y])
    _disc(canvas, c, r, obj.colors[0])
    angle = obj.phase + 0.15 * t * (1 if obj.vx >= 0 else -1)
    d = np.array([math.cos(angle), math.sin(angle)]) * r * 0.95
    _line(canvas, c - d, c + d, obj.colors[1], max(2, int(r * 0.35)))
    _disc(canvas, c + (-0.35 * r, -0.35 * r), 0.18 * r, (250, 250, 250))


def _draw_box(obj: DemoObject, t: int, canvas: np.ndarray) -> None:
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


def _draw_car(obj: DemoObject, t: int, canvas: np.ndarray) -> None:
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


def new_object(rng: np.random.Generator, track_id: int, category: int, h: int, w: int, n: int) -> DemoObject:
    """Random appearance and a trajectory that crosses (part of) the frame during the clip.

    Args:
        rng: the clip's random stream (consumed).
        track_id: the object's id (1-based).
        category: :data:`PERSON`, :data:`BALL`, :data:`BOX` or :data:`CAR`.
        h: frame height, pixels.
        w: frame width, pixels.
        n: clip length, frames.

    Returns:
        The object.
    """
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
    return DemoObject(
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


_DRAW: dict[int, Callable[[DemoObject, int, np.ndarray], None]] = {
    BALL: _draw_ball,
    BOX: _draw_box,
    CAR: _draw_car,
}


def draw_object(obj: DemoObject, t: int, canvas: np.ndarray) -> np.ndarray | None:
    """Draw ``obj`` as it is at frame ``t`` onto ``canvas``, in its own colours.

    No colour is ever (0, 0, 0), so the object's pixels are ``canvas.any(axis=2)``
    when the canvas was zero before.

    Args:
        obj: the object.
        t: frame index (0-based).
        canvas: (H, W, 3) uint8 RGB image, drawn on in place.

    Returns:
        (17, 2) float64 (x, y) keypoint positions in pixels (COCO order; possibly
        outside the image) for a person, else None.
    """
    if obj.category_id == PERSON:
        kp = _person_keypoints(obj, t)
        _draw_person(obj, t, canvas, kp)
        return kp
    _DRAW[obj.category_id](obj, t, canvas)
    return None
