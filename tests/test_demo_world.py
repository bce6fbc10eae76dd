"""The demo world: determinism, ground-truth consistency and the clip exports."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from streamseg.datasets.demo_export import coco_categories, write_clip, write_dataset
from streamseg.datasets.demo_world import (
    DEMO_SIZE,
    MIN_VISIBLE_AREA,
    SPLIT_HELDOUT,
    SPLIT_TRAIN,
    clip_frames,
)
from streamseg.models.demo_model import DEMO_CATEGORIES

H, W = DEMO_SIZE


def _clip(seed: int, n: int = 40, split: int = SPLIT_TRAIN) -> list:
    return list(clip_frames(seed=seed, num_frames=n, split=split))


@pytest.fixture(scope="module")
def clips() -> list[list]:
    return [_clip(seed) for seed in range(4)]


def test_deterministic_for_a_seed() -> None:
    a, b = _clip(7, 12), _clip(7, 12)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.image, fb.image)
        assert [o.track_id for o in fa.objects] == [o.track_id for o in fb.objects]
        for oa, ob in zip(fa.objects, fb.objects):
            np.testing.assert_array_equal(oa.mask, ob.mask)
            assert oa.bbox == ob.bbox
    other = _clip(7, 12, split=SPLIT_HELDOUT)
    assert not np.array_equal(a[0].image, other[0].image)
    assert not np.array_equal(a[0].image, _clip(8, 12)[0].image)


def test_frames_and_masks(clips: list[list]) -> None:
    for clip in clips:
        for frame in clip:
            assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
            union = np.zeros((H, W), np.int32)
            ids = [o.track_id for o in frame.objects]
            assert len(ids) == len(set(ids))
            for obj in frame.objects:
                assert obj.mask.shape == (H, W) and obj.mask.dtype == bool
                assert obj.area == int(obj.mask.sum()) >= MIN_VISIBLE_AREA
                ys, xs = np.nonzero(obj.mask)
                x, y, w, h = obj.bbox
                assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                assert 0 < obj.visibility <= 1
                assert 1 <= obj.category_id < len(DEMO_CATEGORIES)
                union += obj.mask
            assert union.max() <= 1  # visible masks never overlap


def test_keypoints_follow_occlusion(clips: list[list]) -> None:
    seen = {0: 0, 1: 0, 2: 0}
    for clip in clips:
        for frame in clip:
            for i, obj in enumerate(frame.objects):
                if obj.category_id != 1:
                    assert obj.keypoints is None
                    continue
                kps = obj.keypoints
                assert kps.shape == (17, 3) and kps.dtype == np.float32
                in_front = np.zeros((H, W), bool)
                for other in frame.objects[i + 1 :]:  # back to front
                    in_front |= other.mask
                for x, y, v in kps:
                    seen[int(v)] += 1
                    if v == 0:
                        assert x == 0 and y == 0
                        continue
                    assert 0 <= x < W and 0 <= y < H
                    if v == 2:
                        assert not in_front[int(y), int(x)]
    assert seen[0] > 0 and seen[1] > 0 and seen[2] > 0


def test_tracks_and_scene_dynamics(clips: list[list]) -> None:
    categories = set()
    occluded = entering_or_leaving = False
    for clip in clips:
        track_category: dict[int, int] = {}
        present: dict[int, list[bool]] = {}
        for frame in clip:
            ids = {o.track_id for o in frame.objects}
            for obj in frame.objects:
                assert track_category.setdefault(obj.track_id, obj.category_id) == obj.category_id
                categories.add(obj.category_id)
                occluded |= obj.visibility < 0.9
            for tid in ids | set(present):
                present.setdefault(tid, [False] * frame.index).append(tid in ids)
        entering_or_leaving |= any(len(set(p)) == 2 for p in present.values())
    assert categories == {1, 2, 3, 4}
    assert occluded and entering_or_leaving


def test_person_articulates() -> None:
    clip = _clip(3, 24)
    persons = [next(o for o in f.objects if o.category_id == 1 and o.keypoints is not None) for f in clip[:2]]
    # Wrists and ankles move relative to the hips between frames (walking, not sliding).
    rel = [p.keypoints[[9, 10, 15, 16], :2] - p.keypoints[11, :2] for p in persons]
    assert np.abs(rel[0] - rel[1]).max() > 0.5


def test_write_clip_exports(tmp_path: Path) -> None:
    n = 12
    paths = write_clip(tmp_path, seed=3, num_frames=n)
    coco = COCO(str(paths["coco"]))
    data = json.loads(paths["coco"].read_text())
    assert [img["frame_index"] for img in data["images"]] == list(range(n))
    assert all(img["id"] == img["frame_index"] + 1 for img in data["images"])
    assert data["categories"] == coco_categories()
    person = coco.loadCats(1)[0]
    assert len(person["keypoints"]) == 17 and len(person["skeleton"]) == 19
    frames = list(clip_frames(seed=3, num_frames=n, split=SPLIT_HELDOUT))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == sum(len(f.objects) for f in frames)
    for ann in anns:
        frame = frames[ann["image_id"] - 1]
        obj = next(o for o in frame.objects if o.track_id == ann["track_id"])
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), obj.mask)
        assert ann["iscrowd"] == 0 and ann["area"] == obj.area
        assert ann["bbox"] == pytest.approx(list(obj.bbox))
        assert len(ann["keypoints"]) == 51
        assert ann["num_keypoints"] == (0 if obj.keypoints is None else int((obj.keypoints[:, 2] > 0).sum()))
        assert mask_util.area(ann["segmentation"]) == obj.area
    mot = np.loadtxt(paths["mot"], delimiter=",", ndmin=2)
    assert mot.shape == (len(anns), 9)
    assert mot[:, 0].min() == 1 and mot[:, 0].max() <= n
    first = mot[mot[:, 0] == 1]
    assert sorted(first[:, 1].astype(int)) == sorted(o.track_id for o in frames[0].objects)
    with av.open(str(paths["video"])) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == n and decoded[0].shape == (H, W, 3)
    # H.264 is lossy: the decoded frame is close to the rendered one.
    assert np.abs(decoded[5].astype(float) - frames[5].image).mean() < 8


def test_write_dataset(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, num_clips=2, frames_per_clip=8, frame_stride=4, seed=1)
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 4
    for img in coco.loadImgs(coco.getImgIds()):
        assert (tmp_path / "images" / img["file_name"]).is_file()
    assert len(coco.getAnnIds()) > 0
