"""A short synthetic clip that the project generates itself, for the embedded default run.

The clip needs no file from outside the repository: a textured background with
moving, overlapping shapes (a ball, a box, a car-like block) and a walking stick
figure. It is deterministic for a seed. It exists so that ``streamseg demo`` can
exercise the whole pipeline (decode, model, render, encode, JSONL) anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

__all__ = ["synthetic_frames", "write_synthetic_clip"]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth coloured noise plus a horizon: (h, w, 3) uint8 RGB."""
    noise = rng.random((h // 8 + 1, w // 8 + 1, 3), dtype=np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    base = np.empty((h, w, 3), np.float32)
    base[: h // 2] = (120, 160, 200)  # sky
    base[h // 2 :] = (110, 120, 90)  # ground
    return np.clip(base + (smooth - 0.5) * 60, 0, 255).astype(np.uint8)


def _stick_figure(img: np.ndarray, cx: float, foot_y: float, height: float, phase: float) -> None:
    """Draw a walking stick figure whose joints follow the COCO keypoint layout."""
    s = height / 170.0
    swing = math.sin(phase)
    head = (cx, foot_y - 160 * s)
    neck = (cx, foot_y - 140 * s)
    hip = (cx, foot_y - 85 * s)
    hands = [(cx + 25 * s * swing, foot_y - 95 * s), (cx - 25 * s * swing, foot_y - 95 * s)]
    knees = [(cx + 15 * s * swing, foot_y - 45 * s), (cx - 15 * s * swing, foot_y - 45 * s)]
    feet = [(cx + 28 * s * swing, foot_y), (cx - 28 * s * swing, foot_y)]
    color = (200, 60, 50)
    thick = max(2, int(9 * s))

    def p(q: tuple[float, float]) -> tuple[int, int]:
        return int(q[0]), int(q[1])

    cv2.line(img, p(neck), p(hip), color, thick, cv2.LINE_AA)
    for hand, knee, foot in zip(hands, knees, feet):
        cv2.line(img, p(neck), p(hand), color, thick, cv2.LINE_AA)
        cv2.line(img, p(hip), p(knee), color, thick, cv2.LINE_AA)
        cv2.line(img, p(knee), p(foot), color, thick, cv2.LINE_AA)
    cv2.circle(img, p(head), int(14 * s), (230, 190, 160), -1, cv2.LINE_AA)


def synthetic_frames(
    *, seed: int = 0, num_frames: int = 48, size: tuple[int, int] = (360, 640)
) -> Iterator[np.ndarray]:
    """Yield the frames of the synthetic clip.

    Args:
        seed: random seed; the same seed gives the same clip.
        num_frames: number of frames.
        size: (H, W) in pixels.

    Yields:
        (H, W, 3) uint8 RGB frames.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    background = _background(rng, h, w)
    objects = [
        # kind, x0, y0, vx, vy (pixels per frame), size, colour
        ("ball", rng.uniform(0, w), rng.uniform(h * 0.3, h * 0.7), rng.uniform(3, 6), rng.uniform(-2, 2), 0.08, (240, 200, 40)),
        ("box", rng.uniform(0, w), rng.uniform(h * 0.5, h * 0.8), rng.uniform(-5, -2), 0.0, 0.15, (60, 90, 200)),
        ("car", rng.uniform(0, w), h * 0.75, rng.uniform(4, 8), 0.0, 0.22, (40, 160, 90)),
    ]  # fmt: skip
    walker_x, walker_v = rng.uniform(0, w), rng.uniform(2, 4)
    for t in range(num_frames):
        img = background.copy()
        for kind, x0, y0, vx, vy, rel, color in objects:
            x = (x0 + vx * t) % (w * 1.2) - w * 0.1
            y = y0 + vy * t
            r = rel * h
            if kind == "ball":
                cv2.circle(img, (int(x), int(y)), int(r / 2), color, -1, cv2.LINE_AA)
            elif kind == "box":
                cv2.rectangle(img, (int(x - r / 2), int(y - r / 2)), (int(x + r / 2), int(y + r / 2)), color, -1)
            else:
                cv2.rectangle(img, (int(x - r), int(y - r / 3)), (int(x + r), int(y + r / 4)), color, -1)
                for wx in (x - r * 0.6, x + r * 0.6):
                    cv2.circle(img, (int(wx), int(y + r / 4)), int(r / 5), (30, 30, 30), -1, cv2.LINE_AA)
        wx = (walker_x + walker_v * t) % (w * 1.2) - w * 0.1
        _stick_figure(img, wx, h * 0.9, h * 0.55, phase=t * 0.35)
        yield img


def write_synthetic_clip(
    path: str | Path, *, seed: int = 0, num_frames: int = 48, size: tuple[int, int] = (360, 640), fps: int = 24
) -> Path:
    """Write the synthetic clip as an H.264 MP4.

    Args:
        path: output .mp4 path (parent folders are created).
        seed, num_frames, size: as :func:`synthetic_frames`.
        fps: frame rate (frames per second).

    Returns:
        The path written.
    """
    from streamseg.sinks import VideoWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, width=size[1], height=size[0], fps=Fraction(fps)) as writer:
        for k, img in enumerate(synthetic_frames(seed=seed, num_frames=num_frames, size=size)):
            writer.write(img, k / fps)
    return path
