from __future__ import annotations

import numpy as np
import pytest

from streamseg.types import Frame, FrameResult, Instances


def make_instances(n: int = 3, *, keypoints: bool = True) -> Instances:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (n, 2))
    return Instances(
        image_size=(100, 120),
        boxes=np.concatenate([xy, xy + 20], axis=1),
        scores=np.linspace(0.9, 0.5, n),
        labels=np.arange(1, n + 1),
        masks=rng.random((n, 28, 28)),
        keypoints=rng.random((n, 17, 3)) if keypoints else None,
    )


def test_instances_dtypes_shapes_and_defaults() -> None:
    inst = make_instances()
    assert inst.boxes.dtype == np.float32 and inst.boxes.shape == (3, 4)
    assert inst.scores.dtype == np.float32 and inst.labels.dtype == np.int64
    assert inst.masks.dtype == np.float32 and inst.masks.shape == (3, 28, 28)
    assert inst.keypoints.shape == (3, 17, 3)
    assert inst.track_ids.tolist() == [-1, -1, -1]
    assert len(inst) == 3


def test_instances_are_read_only_and_do_not_alias_caller_arrays() -> None:
    boxes = np.zeros((1, 4), np.float32)
    inst = Instances(image_size=(10, 10), boxes=boxes, scores=[0.5], labels=[1])
    boxes[0, 0] = 5.0
    assert inst.boxes[0, 0] == 0.0
    with pytest.raises(ValueError):
        inst.boxes[0, 0] = 1.0


def test_indexing_and_boolean_filtering_return_new_instances() -> None:
    inst = make_instances(4)
    keep = inst.scores > 0.6
    sub = inst[keep]
    assert isinstance(sub, Instances) and len(sub) == int(keep.sum())
    np.testing.assert_array_equal(sub.labels, inst.labels[keep])
    np.testing.assert_array_equal(sub.masks, inst.masks[keep])
    one = inst[1]
    assert len(one) == 1 and one.labels[0] == inst.labels[1]
    assert len(inst[1:3]) == 2
    assert inst[[3, 0]].labels.tolist() == [inst.labels[3], inst.labels[0]]
    with pytest.raises(IndexError):
        inst[np.array([True, False])]
    with pytest.raises(IndexError):
        inst[7]


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Instances(image_size=(10, 10), boxes=np.zeros((2, 4)), scores=[0.1], labels=[1, 2])
    with pytest.raises(ValueError, match="masks"):
        Instances(image_size=(10, 10), boxes=np.zeros((1, 4)), scores=[0.1], labels=[1], masks=np.zeros((2, 28, 28)))


def test_empty_and_replace() -> None:
    empty = Instances.empty((20, 30), with_keypoints=True)
    assert len(empty) == 0 and empty.masks.shape == (0, 28, 28) and empty.keypoints.shape == (0, 17, 3)
    inst = make_instances(2)
    tracked = inst.replace(track_ids=[4, 5])
    assert tracked.track_ids.tolist() == [4, 5] and inst.track_ids.tolist() == [-1, -1]


def test_frame_validates_image_and_result_timings_are_read_only() -> None:
    with pytest.raises(ValueError):
        Frame("s", 0, 0.0, 0.0, np.zeros((4, 4), np.uint8))
    frame = Frame("s", 3, 0.3, 1.0, np.zeros((4, 6, 3), np.uint8))
    assert (frame.height, frame.width) == (4, 6)
    result = FrameResult(frame, Instances.empty((4, 6)), {"model": 1.0})
    with pytest.raises(TypeError):
        result.timings_ms["x"] = 1.0  # type: ignore[index]
    assert dict(result.with_timings(render=2.0).timings_ms) == {"model": 1.0, "render": 2.0}
