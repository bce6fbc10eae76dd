"""The ``replay`` backend: detections recorded in a streamseg JSONL file, given back frame by frame at no model cost.

It answers :meth:`ReplayBackend.infer` with the instances of the next recorded frame
(the n-th call gets the n-th line), so the rest of the core (tracker, threshold,
drawing, outputs) runs exactly as with a model. Uses: replaying a real run's
detections through other tracker settings, measuring the CPU side of the pipeline
without a model, and tests that need chosen scores (an object whose score dips
under ``--score-thresh`` for a few frames).

The recorded boxes, scores and labels are given back as they were; the model's score
floor (:attr:`~streamseg.config.ModelConfig.score_floor`) applies as it would for a
model (``score > floor``). Masks and keypoints are not replayed (``masks`` and
``keypoints`` are None): a JSONL holds pasted masks, not the model's 28 x 28 ones.

``--replay synthetic[:N]`` replays no file but a generated scene of N moving instances
with masks and keypoints (:mod:`streamseg.backends.synthetic`), for measuring the CPU
side of the pipeline at full load.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamseg.backends.synthetic import SyntheticReplay, parse_synthetic
from streamseg.errors import BackendError, ConfigError
from streamseg.sinks.jsonl import read_jsonl
from streamseg.types import Instances

if TYPE_CHECKING:
    from streamseg.config import ModelConfig

__all__ = ["ReplayBackend"]


class ReplayBackend:
    """Gives back the frames of a streamseg JSONL file in order (see the module docstring).

    Args:
        path: a JSONL file in :mod:`streamseg.sinks.jsonl`'s schema.
        categories: class names indexed by label (the model the file was recorded with).
        score_floor: keep detections with ``score > score_floor`` (exclusive, as torchvision).

    Attributes:
        name: ``"replay"``.
        frames: the recorded frames left to give back.

    Raises:
        ConfigError: the file is missing or not a streamseg JSONL.
    """

    name = "replay"
    device = "cpu"
    random_weights = False

    def __init__(self, path: str | Path, *, categories: Sequence[str], model_name: str, score_floor: float = 0.0) -> None:
        self.path = Path(path)
        self.model_name = model_name
        self.categories = tuple(categories)
        self.score_floor = float(score_floor)
        try:
            self._records = list(read_jsonl(self.path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot replay {self.path}: {exc}") from None
        self._next = 0

    @classmethod
    def from_config(cls, config: ModelConfig) -> ReplayBackend | SyntheticReplay:
        """The backend of ``config``: ``config.replay`` is the file, the model gives the categories.

        ``config.replay`` ``synthetic[:N]`` gives generated detections instead
        (:class:`~streamseg.backends.synthetic.SyntheticReplay`, N = 20 by default), with
        keypoints on persons when ``config.keypoints``.
        """
        if config.replay is None:
            raise ConfigError("backend replay needs a recorded JSONL file: give --replay FILE.jsonl (or synthetic)")
        count = parse_synthetic(config.replay)
        if count is not None:
            return SyntheticReplay(categories=config.spec.categories, model_name=config.name, count=count,
                                   keypoints=config.keypoints or config.spec.has_keypoints, seed=config.seed)
        return cls(config.replay, categories=config.spec.categories, model_name=config.name,
                   score_floor=config.score_floor)

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """The next recorded frame's instances, checked against ``image``'s size.

        Returns:
            ``(instances, {"model": ms})``: boxes (N, 4) float32 xyxy pixels, scores, labels;
            no masks or keypoints.

        Raises:
            BackendError: the file has no more frames, or the frame size differs.
        """
        t0 = time.perf_counter()
        if self._next >= len(self._records):
            raise BackendError(f"{self.path} holds {len(self._records)} frames; the source has more")
        record = self._records[self._next]
        self._next += 1
        size = (int(image.shape[0]), int(image.shape[1]))
        if tuple(record["image_size"]) != size:
            raise BackendError(f"{self.path} frame {record['frame']} is {record['image_size']}, the video {list(size)}")
        rows = [r for r in record["instances"] if r["score"] > self.score_floor]
        xywh = np.array([r["bbox"] for r in rows], np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        instances = Instances(
            image_size=size,
            boxes=boxes,
            scores=np.array([r["score"] for r in rows], np.float32),
            labels=np.array([r["category_id"] for r in rows], np.int64),
        )
        return instances, {"model": (time.perf_counter() - t0) * 1000.0}
