"""Instances to and from supervision's Detections and KeyPoints (issue 18, item 1), with real supervision objects."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from streamseg.datasets.demo_export import write_clip
from streamseg.masks import paste_masks
from streamseg.models.demo_model import DEMO_CATEGORIES
from streamseg.types import Frame, FrameResult, Instances

from .conftest import data_path

sv = pytest.importorskip("supervision", reason="supervision is the optional extra streamseg[supervision]")
mask_utils = pytest.importorskip("pycocotools.mask")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def demo_gt(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict]:
    """A demo-world clip's first frame and its ground truth (COCO json with RLE masks), written here."""
    import av

    paths = write_clip(tmp_path_factory.mktemp("clip"), num_frames=2)
    with av.open(str(paths["video"])) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return image, json.loads(Path(paths["coco"]).read_text())


def _gt_detections(coco: dict, image_id: int) -> sv.Detections:
    """Ground-truth annotations of one image as supervision Detections (masks from pycocotools)."""
    image = next(im for im in coco["images"] if im["id"] == image_id)
    anns = [a for a in coco["annotations"] if a["image_id"] == image_id and not a.get("iscrowd", 0)]
    h, w = image["height"], image["width"]
    masks = []
    for a in anns:
        seg = a["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, h, w)
        masks.append(mask_utils.decode(rle).astype(bool))
    xyxy = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)], np.float32)
    return sv.Detections(
        xyxy=xyxy.reshape(-1, 4),
        mask=np.stack(masks) if masks else np.zeros((0, h, w), bool),
        class_id=np.array([a["category_id"] for a in anns], np.int64),
    )


def _instances(n: int = 3, tracked: bool = True) -> Instances:
    """Instances with soft elliptical 28 x 28 masks and keypoints (a NaN row for a non-person)."""
    c = (np.arange(28, dtype=np.float32) + 0.5) / 28 * 2 - 1
    blob = 1.0 / (1.0 + np.exp(-12 * (0.8 - np.hypot(c[:, None], c[None, :]))))
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 20, 110, 180], [150, 40, 230, 120], [60, 100, 300, 230]][:n], np.float32)
    kps = np.concatenate([rng.uniform(20, 200, (n, 17, 2)), rng.uniform(0, 9, (n, 17, 1))], axis=2).astype(np.float32)
    kps[-1] = np.nan
    return Instances(
        image_size=(240, 320),
        boxes=boxes,
        scores=np.array([0.9, 0.7, 0.55][:n], np.float32),
        labels=np.array([1, 1, 4][:n]),
        masks=np.repeat(blob[None].astype(np.float32), n, axis=0),
        keypoints=kps,
        track_ids=np.array([3, 7, -1][:n]) if tracked else None,
    )


def test_to_supervision_maps_every_field() -> None:
    inst = _instances()
    det = inst.to_supervision(DEMO_CATEGORIES)
    assert isinstance(det, sv.Detections) and len(det) == 3
    np.testing.assert_array_equal(det.xyxy, inst.boxes)
    np.testing.assert_array_equal(det.confidence, np.float32([0.9, 0.7, 0.55]))
    np.testing.assert_array_equal(det.class_id, [1, 1, 4])
    np.testing.assert_array_equal(det.tracker_id, [3, 7, -1])
    assert det.mask.shape == (3, 240, 320) and det.mask.dtype == bool
    np.testing.assert_array_equal(det.mask, paste_masks(inst.masks, inst.boxes, inst.image_size))
    assert det.data["class_name"].tolist() == [DEMO_CATEGORIES[1], DEMO_CATEGORIES[1], DEMO_CATEGORIES[4]]
    np.testing.assert_array_equal(det.data["keypoints"], inst.keypoints)
    # supervision's own operations work on it: filtering keeps masks and data in step
    confident = det[det.confidence > 0.6]
    assert len(confident) == 2 and confident.mask.shape == (2, 240, 320) and confident.data["keypoints"].shape == (2, 17, 3)


def test_untracked_instances_have_no_tracker_id_and_no_masks_is_none() -> None:
    det = _instances(tracked=False).to_supervision()
    assert det.tracker_id is None and "class_name" not in det.data
    no_masks = _instances().replace(masks=None).to_supervision()
    assert no_masks.mask is None
    empty = Instances.empty((240, 320)).to_supervision()
    assert len(empty) == 0 and empty.mask.shape == (0, 240, 320)
    with pytest.raises(ValueError, match=r"labels \[4\] have no name"):
        _instances().to_supervision(["background", "person"])


def test_round_trip_keeps_boxes_scores_labels_ids_keypoints_and_the_mask_pixels() -> None:
    inst = _instances()
    back = Instances.from_supervision(inst.to_supervision())
    assert back.image_size == inst.image_size
    np.testing.assert_array_equal(back.boxes, inst.boxes)
    np.testing.assert_array_equal(back.scores, inst.scores)
    np.testing.assert_array_equal(back.labels, inst.labels)
    np.testing.assert_array_equal(back.track_ids, inst.track_ids)
    np.testing.assert_array_equal(back.keypoints, inst.keypoints)  # NaN rows compare equal here
    assert back.masks.shape == (3, 28, 28) and back.masks.dtype == np.float32
    assert 0.0 <= back.masks.min() and back.masks.max() <= 1.0
    before = paste_masks(inst.masks, inst.boxes, inst.image_size)
    after = paste_masks(back.masks, back.boxes, back.image_size)
    for i in range(3):
        assert _iou(before[i], after[i]) > 0.97, i


def test_compact_masks_convert_as_dense_ones() -> None:
    det = _instances().to_supervision()
    compact = det.to_compact_masks()
    assert type(compact.mask).__name__ == "CompactMask"
    np.testing.assert_array_equal(Instances.from_supervision(compact).masks, Instances.from_supervision(det).masks)


def test_from_supervision_errors_and_defaults() -> None:
    xyxy = np.array([[1, 2, 30, 40]], np.float32)
    with pytest.raises(ValueError, match="class_id is None"):
        Instances.from_supervision(sv.Detections(xyxy=xyxy))
    with pytest.raises(ValueError, match=r"give image_size=\(H, W\)"):
        Instances.from_supervision(sv.Detections(xyxy=xyxy, class_id=np.array([2])))
    masked = sv.Detections(xyxy=xyxy, class_id=np.array([2]), mask=np.zeros((1, 50, 60), bool))
    with pytest.raises(ValueError, match=r"image_size \(60, 50\) differs from the masks' \(H, W\) \(50, 60\)"):
        Instances.from_supervision(masked, image_size=(60, 50))
    inst = Instances.from_supervision(sv.Detections(xyxy=xyxy, class_id=np.array([2])), image_size=(50, 60))
    assert inst.image_size == (50, 60) and inst.masks is None and inst.keypoints is None
    np.testing.assert_array_equal(inst.scores, [1.0])  # no confidence: ground truth
    np.testing.assert_array_equal(inst.track_ids, [-1])


def test_full_masks_from_supervision_are_valid_for_the_renderer_and_the_jsonl(demo_gt, tmp_path: Path) -> None:
    """Ground-truth masks (demo world) -> Detections -> Instances: drawn, written as RLE, close to the truth."""
    from streamseg.render import render
    from streamseg.sinks.jsonl import JsonlWriter

    image, coco = demo_gt
    det = _gt_detections(coco, coco["images"][0]["id"])
    assert len(det) >= 3
    inst = Instances.from_supervision(det)
    drawn = render(image, inst, categories=DEMO_CATEGORIES)
    assert drawn.shape == image.shape and (drawn != image).any()
    path = tmp_path / "gt.jsonl"
    writer = JsonlWriter(path, categories=DEMO_CATEGORIES)
    writer.write(FrameResult(Frame("gt", 0, 0.0, 0.0, image), inst))
    writer.close()
    written = json.loads(path.read_text().splitlines()[0])["instances"]
    assert len(written) == len(det)
    for row, truth in zip(written, det.mask):
        rle = dict(row["segmentation"], counts=row["segmentation"]["counts"].encode())
        if truth.sum() > 32**2:  # medium and large objects; small ones are measured on COCO below
            assert _iou(mask_utils.decode(rle).astype(bool), truth) > 0.9


def test_mask_approximation_iou_on_coco_val2017() -> None:
    """The figures the README and streamseg.interop state: real COCO masks, pasted back, by object size."""
    folder = data_path("coco", "val2017-80")
    coco = json.loads((folder / "instances_val2017.json").read_text())
    ious: dict[str, list[float]] = {"small": [], "medium": [], "large": []}
    for image in coco["images"]:
        det = _gt_detections(coco, image["id"])
        if not len(det):
            continue
        inst = Instances.from_supervision(det)
        pasted = paste_masks(inst.masks, inst.boxes, inst.image_size)
        for truth, back in zip(det.mask, pasted):
            area = int(truth.sum())
            size = "small" if area < 32**2 else "medium" if area < 96**2 else "large"
            ious[size].append(_iou(truth, back))
    assert sum(map(len, ious.values())) == 804  # every non-crowd mask of the 80 images
    assert np.mean(ious["large"]) > 0.975 and min(ious["large"]) > 0.94
    assert np.mean(ious["medium"]) > 0.94
    assert np.mean(ious["small"]) > 0.85


def test_to_supervision_keypoints_for_its_annotators() -> None:
    inst = _instances()
    kp = inst.to_supervision_keypoints()
    assert isinstance(kp, sv.KeyPoints) and len(kp) == 3
    np.testing.assert_array_equal(kp.xy, inst.keypoints[:, :, :2])
    np.testing.assert_array_equal(kp.keypoint_confidence, inst.keypoints[:, :, 2])
    assert kp.visible[:2].all() and not kp.visible[2].any()  # the non-person's NaN row
    np.testing.assert_array_equal(kp.data["tracker_id"], [3, 7, -1])
    canvas = np.zeros((240, 320, 3), np.uint8)
    drawn = sv.EdgeAnnotator().annotate(canvas.copy(), kp)
    assert (drawn != canvas).any()
    with pytest.raises(ValueError, match="no keypoints"):
        inst.replace(keypoints=None).to_supervision_keypoints()


def test_without_supervision_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "supervision", None)  # import supervision raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'streamseg\[supervision\]'"):
        _instances().to_supervision()
