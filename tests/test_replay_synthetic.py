"""``--backend replay --replay synthetic``: generated instances that load the CPU side like a model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamseg.backends.synthetic import SyntheticReplay, parse_synthetic
from streamseg.cli import main
from streamseg.errors import ConfigError
from streamseg.models.coco import COCO_CATEGORIES
from streamseg.tracking import ByteTracker, TrackerConfig

IMAGE = np.zeros((720, 1280, 3), np.uint8)


def test_parse_synthetic() -> None:
    assert parse_synthetic("synthetic") == 20
    assert parse_synthetic("synthetic:7") == 7
    assert parse_synthetic("run.jsonl") is None
    for bad in ("synthetic:0", "synthetic:x", "synthetic:"):
        with pytest.raises(ConfigError, match="synthetic:N"):
            parse_synthetic(bad)


def test_frames_are_full_and_deterministic() -> None:
    a = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn")
    b = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn")
    for _ in range(50):
        ia, _ = a.infer(IMAGE)
        ib, _ = b.infer(IMAGE)
        assert len(ia) == 20
        np.testing.assert_array_equal(ia.boxes, ib.boxes)
        np.testing.assert_array_equal(ia.keypoints, ib.keypoints)
    assert ia.masks.shape == (20, 28, 28)
    assert (ia.masks[:, 14, 14] > 0.9).all() and (ia.masks[:, 0, 0] < 0.1).all()  # a blob, soft-edged
    assert (ia.boxes[:, :2] >= 0).all() and (ia.boxes[:, 2] <= 1280).all() and (ia.boxes[:, 3] <= 720).all()
    persons = ia.labels == COCO_CATEGORIES.index("person")
    assert 0 < persons.sum() < 20
    assert np.isfinite(ia.keypoints[persons]).all() and np.isnan(ia.keypoints[~persons]).all()


def test_objects_move_and_the_tracker_keeps_their_ids() -> None:
    scene = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn", keypoints=False)
    tracker = ByteTracker(TrackerConfig())
    first = last = None
    ids = []
    for _ in range(60):
        detections, _ = scene.infer(IMAGE)
        tracked = tracker.update(detections)
        ids.append(frozenset(tracked.track_ids.tolist()))
        first = detections if first is None else first
        last = detections
    assert last.keypoints is None
    moved = np.abs(last.boxes - first.boxes).max(axis=1)
    assert (moved > 5).mean() > 0.8  # most objects moved more than 5 px in 60 frames
    assert len(ids[-1]) == 20 and -1 not in ids[-1]
    assert len(set(ids[10:])) == 1  # the same 20 IDs on every frame once started: no switch, no new track


def test_run_with_synthetic_replay_writes_masks_and_keypoints(tmp_path: Path) -> None:
    video = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "vtest.avi"
    if not video.exists():
        pytest.skip(f"real data absent: {video}")
    jsonl = tmp_path / "out.jsonl"
    code = main(["run", str(video), "--backend", "replay", "--replay", "synthetic:5", "--keypoints",
                 "--max-frames", "3", "--jsonl", str(jsonl)])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [len(r["instances"]) for r in lines] == [5, 5, 5]
    assert all("segmentation" in i for i in lines[0]["instances"])
    assert any("keypoints" in i for i in lines[0]["instances"])
